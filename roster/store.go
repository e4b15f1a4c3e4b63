package roster

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
)

// Errors returned by Store.
var (
	// ErrNotFound: the owner has no item for that contact.
	ErrNotFound = errors.New("no such roster item")
	// ErrTooManyItems: adding the item would take the owner past the cap on
	// items (or on stored subscription requests). The server answers
	// resource-constraint (RFC 6121 § 2.3.3 allows a server-defined limit).
	ErrTooManyItems = errors.New("too many roster items")
)

// DefaultMaxItems is the cap on items per owner when OpenStore is given none.
const DefaultMaxItems = 1000

// schema holds every table of the package. Items keep what the owner set
// (name, groups, manual) apart from what the address book says (in_book,
// book_name), so that a book change never overwrites an edit and removing a
// book entry never removes an item the owner added by hand.
const schema = `
CREATE TABLE IF NOT EXISTS roster_versions (
	owner TEXT PRIMARY KEY,
	ver   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS roster_items (
	owner        TEXT NOT NULL,
	contact      TEXT NOT NULL,
	name         TEXT,              -- set by the owner; NULL when never set
	groups       TEXT NOT NULL DEFAULT '[]', -- JSON array set by the owner
	manual       INTEGER NOT NULL DEFAULT 0, -- exists apart from the book
	in_book      INTEGER NOT NULL DEFAULT 0, -- the contact's number is in the book
	book_name    TEXT NOT NULL DEFAULT '',
	subscription TEXT NOT NULL DEFAULT 'none',
	ask          INTEGER NOT NULL DEFAULT 0,
	approved     INTEGER NOT NULL DEFAULT 0,
	ver          INTEGER NOT NULL,  -- roster version of the last change
	PRIMARY KEY (owner, contact)
);
-- Items by contact are looked up only when an account joins or leaves:
-- manual ones through this partial index, address-book ones through the
-- in-memory index of the books (Book). A full index on contact cost every
-- upload a random page per new item, most of its writes; databases from
-- before keep no such index.
CREATE INDEX IF NOT EXISTS roster_items_manual ON roster_items (contact) WHERE manual = 1;
DROP INDEX IF EXISTS roster_items_contact;
CREATE TABLE IF NOT EXISTS roster_removed (
	owner   TEXT NOT NULL,
	contact TEXT NOT NULL,
	ver     INTEGER NOT NULL,
	PRIMARY KEY (owner, contact)
);
CREATE TABLE IF NOT EXISTS roster_pending (
	owner   TEXT NOT NULL,
	contact TEXT NOT NULL,
	status  TEXT NOT NULL DEFAULT '',
	created INTEGER NOT NULL,
	PRIMARY KEY (owner, contact)
);
`

// Store keeps rosters, their versions (XEP-0237) and stored subscription
// requests in SQL tables. It is safe for concurrent use.
//
// Every change runs in one transaction that also bumps the owner's version,
// so a roster push and its version are never out of step, even across a
// crash.
type Store struct {
	db       *sql.DB
	maxItems int

	// writeMu serialises write transactions in this process. SQLite admits
	// one writer at a time anyway; queueing here rather than in SQLite's
	// busy handler keeps a read-modify-write from failing with SQLITE_BUSY
	// when a database is opened without immediate transactions.
	writeMu sync.Mutex
}

// Option configures a Store.
type Option func(*Store)

// WithMaxItems caps the items (and, separately, the stored inbound
// subscription requests) per owner; n <= 0 keeps DefaultMaxItems. A high
// cap lets one account grow the database and every login's roster result.
func WithMaxItems(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.maxItems = n
		}
	}
}

// OpenStore creates the package's tables in db if they are missing and
// returns a Store over them. db is typically opened by xmpp/storage.Open.
func OpenStore(ctx context.Context, db *sql.DB, opts ...Option) (*Store, error) {
	s := &Store{db: db, maxItems: DefaultMaxItems}
	for _, o := range opts {
		o(s)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return nil, fmt.Errorf("creating roster tables: %w", err)
	}
	if _, err := db.ExecContext(ctx, bookSchema); err != nil {
		return nil, fmt.Errorf("creating address book tables: %w", err)
	}
	return s, nil
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// record is a stored item with the columns that Item folds together.
type record struct {
	Item
	name     sql.NullString
	manual   bool
	inBook   bool
	bookName string
}

// item returns what the owner sees: their own name if they set one, else
// the book's.
func (r record) item() Item {
	it := r.Item
	it.Name = r.bookName
	if r.name.Valid {
		it.Name = r.name.String
	}
	it.Origin = OriginManual
	if !r.manual && r.inBook {
		it.Origin = OriginBook
	}
	if it.Groups == nil {
		it.Groups = []string{}
	}
	return it
}

const selectItems = `SELECT i.contact, i.name, i.groups, i.manual, i.in_book, i.book_name,
	i.subscription, i.ask, i.approved, p.contact IS NOT NULL
	FROM roster_items i LEFT JOIN roster_pending p
	ON p.owner = i.owner AND p.contact = i.contact`

func scanRecord(sc interface{ Scan(...any) error }) (record, error) {
	var r record
	var groups string
	err := sc.Scan(&r.JID, &r.name, &groups, &r.manual, &r.inBook, &r.bookName,
		&r.Subscription, &r.Ask, &r.Approved, &r.PendingIn)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(groups), &r.Groups); err != nil {
		return r, fmt.Errorf("groups of %s: %w", r.JID, err)
	}
	return r, nil
}

// load reads one record; ok is false if the owner has no item for contact.
func load(ctx context.Context, q querier, owner, contact string) (r record, ok bool, err error) {
	r, err = scanRecord(q.QueryRowContext(ctx,
		selectItems+` WHERE i.owner = ? AND i.contact = ?`, owner, contact))
	if errors.Is(err, sql.ErrNoRows) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, fmt.Errorf("loading roster item %s of %s: %w", contact, owner, err)
	}
	return r, true, nil
}

// save writes r at version ver, creating the row if needed, and forgets any
// earlier removal of the contact.
func save(ctx context.Context, tx *sql.Tx, owner string, r record, ver int64) error {
	groups, err := json.Marshal(r.Groups)
	if err != nil {
		return fmt.Errorf("encoding groups of %s: %w", r.JID, err)
	}
	if r.Groups == nil {
		groups = []byte("[]")
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO roster_items
		(owner, contact, name, groups, manual, in_book, book_name, subscription, ask, approved, ver)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name,
		groups = excluded.groups, manual = excluded.manual, in_book = excluded.in_book,
		book_name = excluded.book_name, subscription = excluded.subscription,
		ask = excluded.ask, approved = excluded.approved, ver = excluded.ver`,
		owner, r.JID, r.name, string(groups), r.manual, r.inBook, r.bookName,
		string(r.Subscription), r.Ask, r.Approved, ver)
	if err != nil {
		return fmt.Errorf("saving roster item %s of %s: %w", r.JID, owner, err)
	}
	_, err = tx.ExecContext(ctx,
		`DELETE FROM roster_removed WHERE owner = ? AND contact = ?`, owner, r.JID)
	if err != nil {
		return fmt.Errorf("saving roster item %s of %s: %w", r.JID, owner, err)
	}
	return nil
}

// drop deletes the item for contact at version ver and leaves a tombstone so
// that Since can report the removal.
func drop(ctx context.Context, tx *sql.Tx, owner, contact string, ver int64) error {
	if _, err := tx.ExecContext(ctx,
		`DELETE FROM roster_items WHERE owner = ? AND contact = ?`, owner, contact); err != nil {
		return fmt.Errorf("removing roster item %s of %s: %w", contact, owner, err)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO roster_removed (owner, contact, ver) VALUES (?, ?, ?)
		ON CONFLICT (owner, contact) DO UPDATE SET ver = excluded.ver`, owner, contact, ver)
	if err != nil {
		return fmt.Errorf("removing roster item %s of %s: %w", contact, owner, err)
	}
	return nil
}

// bump increments the owner's roster version and returns the new value.
func bump(ctx context.Context, tx *sql.Tx, owner string) (int64, error) {
	var ver int64
	err := tx.QueryRowContext(ctx, `INSERT INTO roster_versions (owner, ver) VALUES (?, 1)
		ON CONFLICT (owner) DO UPDATE SET ver = ver + 1 RETURNING ver`, owner).Scan(&ver)
	if err != nil {
		return 0, fmt.Errorf("bumping roster version of %s: %w", owner, err)
	}
	return ver, nil
}

// checkRoom returns ErrTooManyItems if owner already has the maximum number
// of rows in table (roster_items or roster_pending).
func (s *Store) checkRoom(ctx context.Context, tx *sql.Tx, table, owner string) error {
	var n int
	err := tx.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM `+table+` WHERE owner = ?`, owner).Scan(&n)
	if err != nil {
		return fmt.Errorf("counting %s of %s: %w", table, owner, err)
	}
	if n >= s.maxItems {
		return fmt.Errorf("%s has %d entries in %s: %w", owner, n, table, ErrTooManyItems)
	}
	return nil
}

// write runs fn in a write transaction and commits it if fn succeeds.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("starting roster transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing roster transaction: %w", err)
	}
	return nil
}

func version(ctx context.Context, q querier, owner string) (int64, error) {
	var ver int64
	err := q.QueryRowContext(ctx,
		`SELECT ver FROM roster_versions WHERE owner = ?`, owner).Scan(&ver)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("reading roster version of %s: %w", owner, err)
	}
	return ver, nil
}

func formatVer(v int64) string { return strconv.FormatInt(v, 10) }

// Version returns the owner's current roster version (XEP-0237), "0" for an
// owner who never had an item. Versions are opaque to clients.
func (s *Store) Version(ctx context.Context, owner string) (string, error) {
	v, err := version(ctx, s.db, owner)
	return formatVer(v), err
}

// Items returns the owner's whole roster, sorted by JID, and the version it
// corresponds to. Both are read in one transaction so they agree.
func (s *Store) Items(ctx context.Context, owner string) (ver string, items []Item, err error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return "", nil, fmt.Errorf("loading roster of %s: %w", owner, err)
	}
	defer tx.Rollback()
	v, err := version(ctx, tx, owner)
	if err != nil {
		return "", nil, err
	}
	items, err = queryItems(ctx, tx, owner, selectItems+
		` WHERE i.owner = ? ORDER BY i.contact`, owner)
	if err != nil {
		return "", nil, err
	}
	return formatVer(v), items, nil
}

func queryItems(ctx context.Context, q querier, owner, query string, args ...any) ([]Item, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("loading roster of %s: %w", owner, err)
	}
	defer rows.Close()
	items := []Item{}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("loading roster of %s: %w", owner, err)
		}
		items = append(items, r.item())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading roster of %s: %w", owner, err)
	}
	return items, nil
}

// Since returns what changed in the owner's roster after version since, as
// the interim roster pushes of XEP-0237 § 2.4 in order of modification:
// changed items, and removed ones with Subscription Remove. ok is false when
// since is not a version this store issued for owner; the server then sends
// the whole roster instead. cur is the current version.
func (s *Store) Since(ctx context.Context, owner, since string) (
	cur string, pushes []Item, ok bool, err error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return "", nil, false, fmt.Errorf("loading roster changes of %s: %w", owner, err)
	}
	defer tx.Rollback()
	v, err := version(ctx, tx, owner)
	if err != nil {
		return "", nil, false, err
	}
	from, perr := strconv.ParseInt(since, 10, 64)
	if perr != nil || from < 0 || from > v {
		return formatVer(v), nil, false, nil
	}
	// Items and tombstones are merged in version order; each carries the
	// version it was last touched at, which is unique per owner.
	rows, err := tx.QueryContext(ctx, `SELECT contact, ver, 0 FROM roster_items
		WHERE owner = ? AND ver > ?
		UNION ALL SELECT contact, ver, 1 FROM roster_removed WHERE owner = ? AND ver > ?
		ORDER BY 2`, owner, from, owner, from)
	if err != nil {
		return "", nil, false, fmt.Errorf("loading roster changes of %s: %w", owner, err)
	}
	type touched struct {
		jid     string
		removed bool
	}
	var list []touched
	for rows.Next() {
		var t touched
		var ver int64
		if err := rows.Scan(&t.jid, &ver, &t.removed); err != nil {
			rows.Close()
			return "", nil, false, fmt.Errorf("loading roster changes of %s: %w", owner, err)
		}
		list = append(list, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", nil, false, fmt.Errorf("loading roster changes of %s: %w", owner, err)
	}
	pushes = []Item{}
	for _, t := range list {
		if t.removed {
			pushes = append(pushes, Item{JID: t.jid, Subscription: Remove, Groups: []string{}})
			continue
		}
		r, found, err := load(ctx, tx, owner, t.jid)
		if err != nil {
			return "", nil, false, err
		}
		if found {
			pushes = append(pushes, r.item())
		}
	}
	return formatVer(v), pushes, true, nil
}

// Get returns the owner's item for contact; ok is false if there is none.
func (s *Store) Get(ctx context.Context, owner, contact string) (Item, bool, error) {
	r, ok, err := load(ctx, s.db, owner, contact)
	if !ok || err != nil {
		return Item{}, false, err
	}
	return r.item(), true, nil
}

// Set applies a roster set from the owner's client (RFC 6121 § 2.3): it
// stores the item's name and groups, and nothing else. Subscription, Ask
// and Approved are kept as they are, and a new item starts with subscription
// none. The item becomes manual: a later address-book change will neither
// rename nor remove it. ver is the new roster version; a set that changes
// nothing returns the current version without bumping it.
//
// Errors wrap ErrInvalidItem (bad name or groups) or ErrTooManyItems.
func (s *Store) Set(ctx context.Context, owner string, it Item) (ver string, err error) {
	if err := it.validate(); err != nil {
		return "", err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		r, found, err := load(ctx, tx, owner, it.JID)
		if err != nil {
			return err
		}
		if !found {
			if err := s.checkRoom(ctx, tx, "roster_items", owner); err != nil {
				return err
			}
			r = record{Item: Item{JID: it.JID, Subscription: None}}
		}
		before := r.item()
		groups := append([]string{}, it.Groups...)
		if found && r.manual && r.name.Valid && r.name.String == it.Name &&
			slices.Equal(before.Groups, groups) {
			v, err := version(ctx, tx, owner)
			ver = formatVer(v)
			return err
		}
		r.name = sql.NullString{String: it.Name, Valid: true}
		r.Groups = groups
		r.manual = true
		v, err := bump(ctx, tx, owner)
		if err != nil {
			return err
		}
		ver = formatVer(v)
		return save(ctx, tx, owner, r, v)
	})
	if err != nil {
		return "", fmt.Errorf("roster set of %s by %s: %w", it.JID, owner, err)
	}
	return ver, nil
}

// Remove deletes the owner's item for contact (RFC 6121 § 2.5) with any
// stored subscription request from the contact, and returns the new version
// and the item as it was. removed.CancelOnRemove says which presence
// stanzas the server must then send to the contact. The error wraps
// ErrNotFound if there was no item (the server answers item-not-found).
func (s *Store) Remove(ctx context.Context, owner, contact string) (
	ver string, removed Item, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		r, found, err := load(ctx, tx, owner, contact)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		removed = r.item()
		v, err := bump(ctx, tx, owner)
		if err != nil {
			return err
		}
		ver = formatVer(v)
		if err := drop(ctx, tx, owner, contact, v); err != nil {
			return err
		}
		return clearPending(ctx, tx, owner, contact)
	})
	if err != nil {
		return "", Item{}, fmt.Errorf("removing %s from roster of %s: %w", contact, owner, err)
	}
	return ver, removed, nil
}

func clearPending(ctx context.Context, tx *sql.Tx, owner, contact string) error {
	_, err := tx.ExecContext(ctx,
		`DELETE FROM roster_pending WHERE owner = ? AND contact = ?`, owner, contact)
	if err != nil {
		return fmt.Errorf("clearing subscription request of %s to %s: %w", contact, owner, err)
	}
	return nil
}

// Subscribers returns the contacts that receive the user's presence
// (subscription from or both), sorted.
func (s *Store) Subscribers(ctx context.Context, user string) ([]string, error) {
	return s.contacts(ctx, user, From, Both)
}

// Subscriptions returns the contacts whose presence the user receives
// (subscription to or both), sorted: whom to probe at login (RFC 6121
// § 4.3).
func (s *Store) Subscriptions(ctx context.Context, user string) ([]string, error) {
	return s.contacts(ctx, user, To, Both)
}

func (s *Store) contacts(ctx context.Context, user string, a, b Subscription) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT contact FROM roster_items
		WHERE owner = ? AND subscription IN (?, ?) ORDER BY contact`, user, string(a), string(b))
	if err != nil {
		return nil, fmt.Errorf("listing %s/%s contacts of %s: %w", a, b, user, err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("listing %s/%s contacts of %s: %w", a, b, user, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing %s/%s contacts of %s: %w", a, b, user, err)
	}
	return out, nil
}

// PendingIn returns the inbound subscription requests the user has not
// answered, oldest first, to deliver again at login (RFC 6121 § 3.1.3).
func (s *Store) PendingIn(ctx context.Context, user string) ([]Pending, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT contact, status FROM roster_pending
		WHERE owner = ? ORDER BY created, contact`, user)
	if err != nil {
		return nil, fmt.Errorf("listing subscription requests to %s: %w", user, err)
	}
	defer rows.Close()
	out := []Pending{}
	for rows.Next() {
		var p Pending
		if err := rows.Scan(&p.JID, &p.Status); err != nil {
			return nil, fmt.Errorf("listing subscription requests to %s: %w", user, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing subscription requests to %s: %w", user, err)
	}
	return out, nil
}
