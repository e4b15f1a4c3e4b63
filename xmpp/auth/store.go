package auth

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/twotick/twotick/roster"
)

// Errors returned by the Store.
var (
	ErrExists       = errors.New("account already exists")
	ErrNotFound     = errors.New("no such account")
	ErrInvalidLocal = errors.New("invalid account name")
)

// Kind says what an account is.
type Kind string

// Account kinds.
const (
	// KindPhone accounts are named by their E.164 number and take part in
	// contact discovery.
	KindPhone Kind = "phone"
	// KindBot accounts have plain localparts and are created by the
	// administrator.
	KindBot Kind = "bot"
)

// Account is a registered account, without its credentials.
type Account struct {
	Local   string // localpart: "+12025550101" or "weather"
	Kind    Kind
	Created time.Time
}

// Change says what happened to an account, for Store.OnChange.
type Change int

// Changes reported to Store.OnChange.
const (
	ChangeCreated Change = iota + 1
	ChangePassword
	ChangeDeleted
)

func (c Change) String() string {
	switch c {
	case ChangeCreated:
		return "created"
	case ChangePassword:
		return "password"
	case ChangeDeleted:
		return "deleted"
	}
	return fmt.Sprintf("Change(%d)", int(c))
}

// Store keeps accounts and their SCRAM credentials in SQLite.
//
// Set the exported fields before the Store is shared; after that it is safe
// for concurrent use.
type Store struct {
	// Iterations is the PBKDF2 iteration count for new credentials
	// (default DefaultIterations).
	Iterations int
	// OnChange, if not nil, is called after a password change or a deletion
	// has been committed, so that the server can close the account's
	// sessions. Import does not call it. It runs on the caller's goroutine and
	// must not block for long.
	OnChange func(local string, c Change)

	db     *sql.DB
	domain string
	secret []byte // keys the fake credentials of unknown accounts
	// commonIter is, per hash (SHA1, SHA256), the iteration count most
	// stored credentials had when the store was opened, 0 if none: the
	// count fake credentials give, so that they look like most real ones
	// even when accounts were created or imported with another count than
	// Iterations.
	commonIter map[string]int
}

const schema = `
CREATE TABLE IF NOT EXISTS auth_accounts (
	local TEXT PRIMARY KEY,
	kind TEXT NOT NULL CHECK (kind IN ('phone', 'bot')),
	created INTEGER NOT NULL,
	sha1_salt BLOB NOT NULL,
	sha1_iter INTEGER NOT NULL,
	sha1_stored BLOB NOT NULL,
	sha1_server BLOB NOT NULL,
	sha256_salt BLOB NOT NULL,
	sha256_iter INTEGER NOT NULL,
	sha256_stored BLOB NOT NULL,
	sha256_server BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS auth_secret (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	secret BLOB NOT NULL
);`

// OpenStore creates the account tables in db if needed and returns a Store
// for domain. It also creates, once, the random server secret from which the
// fake credentials of unknown accounts are derived; keeping it in the
// database keeps those credentials stable across restarts, as real ones are.
func OpenStore(ctx context.Context, db *sql.DB, domain string) (*Store, error) {
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return nil, fmt.Errorf("creating account tables: %w", err)
	}
	fresh := make([]byte, 32)
	rand.Read(fresh)
	_, err := db.ExecContext(ctx,
		`INSERT INTO auth_secret (id, secret) VALUES (1, ?) ON CONFLICT DO NOTHING`, fresh)
	if err != nil {
		return nil, fmt.Errorf("creating server secret: %w", err)
	}
	s := &Store{Iterations: DefaultIterations, db: db, domain: domain,
		commonIter: make(map[string]int)}
	err = db.QueryRowContext(ctx, `SELECT secret FROM auth_secret WHERE id = 1`).Scan(&s.secret)
	if err != nil {
		return nil, fmt.Errorf("loading server secret: %w", err)
	}
	for _, h := range []string{SHA1, SHA256} {
		if s.commonIter[h], err = commonIterations(ctx, db, h); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// commonIterations returns the iteration count most stored credentials of
// hash have, or 0 if there are none. It reads the whole table once, at
// start (about 0.1 s for a million accounts).
func commonIterations(ctx context.Context, db *sql.DB, hash string) (int, error) {
	col := "sha1_iter"
	if hash == SHA256 {
		col = "sha256_iter"
	}
	var n int
	err := db.QueryRowContext(ctx, `SELECT `+col+` FROM auth_accounts
		GROUP BY `+col+` ORDER BY COUNT(*) DESC, `+col+` DESC LIMIT 1`).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("finding the common %s iteration count: %w", hash, err)
	}
	return n, nil
}

// Domain returns the domain the store serves.
func (s *Store) Domain() string { return s.domain }

// NormalizeBot returns the canonical localpart for a bot name (RFC 7622
// UsernameCaseMapped, so "Weather" gives "weather"), or an error wrapping
// ErrInvalidLocal. Names starting with '+' are reserved for phone accounts.
func NormalizeBot(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("empty bot name: %w", ErrInvalidLocal)
	}
	if strings.HasPrefix(name, "+") {
		return "", fmt.Errorf("bot name %q starts with '+', which is reserved for phone numbers: %w",
			name, ErrInvalidLocal)
	}
	j, err := jid.New(name, "example.net", "")
	if err != nil {
		return "", fmt.Errorf("bot name %q is not a valid XMPP localpart (%v): %w",
			name, err, ErrInvalidLocal)
	}
	if strings.HasPrefix(j.Localpart(), "+") {
		return "", fmt.Errorf("bot name %q starts with '+': %w", name, ErrInvalidLocal)
	}
	return j.Localpart(), nil
}

// validLocal checks that local is canonical for its kind.
func validLocal(local string, kind Kind) error {
	switch kind {
	case KindPhone:
		if !roster.IsE164(local) {
			return fmt.Errorf("%q is not an E.164 number: %w", local, ErrInvalidLocal)
		}
	case KindBot:
		n, err := NormalizeBot(local)
		if err != nil {
			return err
		}
		if n != local {
			return fmt.Errorf("bot name %q is not in canonical form %q: %w", local, n, ErrInvalidLocal)
		}
	default:
		return fmt.Errorf("unknown account kind %q: %w", kind, ErrInvalidLocal)
	}
	return nil
}

// Create adds an account with credentials derived from password. local must
// already be canonical: an E.164 number for KindPhone (see
// roster.ParsePhone), a NormalizeBot result for KindBot.
func (s *Store) Create(ctx context.Context, local string, kind Kind, password string) error {
	if err := validLocal(local, kind); err != nil {
		return err
	}
	c1, c256 := NewCredentials(password, s.Iterations)
	res, err := s.db.ExecContext(ctx, insertSQL, insertArgs(local, kind, time.Now(), c1, c256)...)
	if err != nil {
		return fmt.Errorf("creating account %s: %w", local, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("creating account %s: %w", local, ErrExists)
	}
	s.notify(local, ChangeCreated)
	return nil
}

const insertSQL = `INSERT INTO auth_accounts (local, kind, created,
	sha1_salt, sha1_iter, sha1_stored, sha1_server,
	sha256_salt, sha256_iter, sha256_stored, sha256_server)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

func insertArgs(local string, kind Kind, created time.Time, c1, c256 Cred) []any {
	return []any{local, string(kind), created.UnixMilli(),
		c1.Salt, c1.Iterations, c1.StoredKey, c1.ServerKey,
		c256.Salt, c256.Iterations, c256.StoredKey, c256.ServerKey}
}

// SetPassword replaces an account's credentials.
func (s *Store) SetPassword(ctx context.Context, local, password string) error {
	c1, c256 := NewCredentials(password, s.Iterations)
	res, err := s.db.ExecContext(ctx, `UPDATE auth_accounts SET
		sha1_salt = ?, sha1_iter = ?, sha1_stored = ?, sha1_server = ?,
		sha256_salt = ?, sha256_iter = ?, sha256_stored = ?, sha256_server = ?
		WHERE local = ?`,
		c1.Salt, c1.Iterations, c1.StoredKey, c1.ServerKey,
		c256.Salt, c256.Iterations, c256.StoredKey, c256.ServerKey, local)
	if err != nil {
		return fmt.Errorf("setting password of %s: %w", local, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("setting password of %s: %w", local, ErrNotFound)
	}
	s.notify(local, ChangePassword)
	return nil
}

// Delete removes an account.
func (s *Store) Delete(ctx context.Context, local string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM auth_accounts WHERE local = ?`, local)
	if err != nil {
		return fmt.Errorf("deleting account %s: %w", local, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("deleting account %s: %w", local, ErrNotFound)
	}
	s.notify(local, ChangeDeleted)
	return nil
}

func (s *Store) notify(local string, c Change) {
	if s.OnChange != nil {
		s.OnChange(local, c)
	}
}

// List returns every account ordered by localpart.
func (s *Store) List(ctx context.Context) ([]Account, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT local, kind, created FROM auth_accounts ORDER BY local`)
	if err != nil {
		return nil, fmt.Errorf("listing accounts: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		var a Account
		var ms int64
		if err := rows.Scan(&a.Local, &a.Kind, &ms); err != nil {
			return nil, fmt.Errorf("listing accounts: %w", err)
		}
		a.Created = time.UnixMilli(ms)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing accounts: %w", err)
	}
	return out, nil
}

// Lookup returns one account, or an error wrapping ErrNotFound.
func (s *Store) Lookup(ctx context.Context, local string) (Account, error) {
	a := Account{Local: local}
	var ms int64
	err := s.db.QueryRowContext(ctx,
		`SELECT kind, created FROM auth_accounts WHERE local = ?`, local).Scan(&a.Kind, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("looking up %s: %w", local, ErrNotFound)
	}
	if err != nil {
		return Account{}, fmt.Errorf("looking up %s: %w", local, err)
	}
	a.Created = time.UnixMilli(ms)
	return a, nil
}

// Credentials returns the SCRAM credential of an account for hash (SHA1 or
// SHA256), or an error wrapping ErrNotFound.
//
// The query returns one row whether or not the account exists (NULLs for
// an unknown one), so that a miss does the same kind of work as a hit and
// takes about as long: the SASL exchange for an unknown account must not
// stand out by its timing.
func (s *Store) Credentials(ctx context.Context, local string, hash string) (Cred, error) {
	var cols string
	switch hash {
	case SHA1:
		cols = `a.sha1_salt, a.sha1_iter, a.sha1_stored, a.sha1_server`
	case SHA256:
		cols = `a.sha256_salt, a.sha256_iter, a.sha256_stored, a.sha256_server`
	default:
		return Cred{}, fmt.Errorf("credentials of %s: unknown hash %q", local, hash)
	}
	q := `SELECT ` + cols + ` FROM (SELECT 1) LEFT JOIN auth_accounts a ON a.local = ?`
	c := Cred{Hash: hash}
	var iter sql.NullInt64
	err := s.db.QueryRowContext(ctx, q, local).Scan(&c.Salt, &iter, &c.StoredKey, &c.ServerKey)
	if err != nil {
		return Cred{}, fmt.Errorf("credentials of %s: %w", local, err)
	}
	if !iter.Valid {
		return Cred{}, fmt.Errorf("credentials of %s: %w", local, ErrNotFound)
	}
	c.Iterations = int(iter.Int64)
	return c, nil
}
