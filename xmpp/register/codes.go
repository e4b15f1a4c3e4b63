package register

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
	"time"
)

// Errors returned by Codes.Verify and Registrar.Complete.
var (
	// ErrWrongCode means the code does not match; the attempt was counted.
	ErrWrongCode = errors.New("wrong verification code")
	// ErrExpired means there is no usable code for the number: it expired,
	// was used, was never requested, or could not be sent.
	ErrExpired = errors.New("verification code expired or never requested")
	// ErrTooManyAttempts means the code was invalidated by too many wrong
	// guesses; only a new code can verify the number.
	ErrTooManyAttempts = errors.New("too many wrong verification codes")
)

// Scopes of a LimitError.
const (
	ScopeNumber  = "number"
	ScopeAddress = "address"
	ScopeGlobal  = "global"
)

// LimitError is returned by Codes.Request when a new code would exceed an
// abuse limit. RetryAfter is the wait after which the same request would
// pass every limit that refused it; Scope names the limit with the longest
// wait.
type LimitError struct {
	RetryAfter time.Duration
	Scope      string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("too many verification codes requested (%s limit); retry in %s",
		e.Scope, e.RetryAfter.Round(time.Second))
}

// Limit allows at most Max codes within any sliding Window.
type Limit struct {
	Max    int
	Window time.Duration
}

func (l Limit) enabled() bool { return l.Max > 0 && l.Window > 0 }

// Options configures Codes. A zero field takes the default shown; a Limit
// with a negative Max is switched off (not recommended: every limit stands
// between an attacker and the SMS bill).
type Options struct {
	// CodeTTL is how long a code stays valid (default 10m).
	CodeTTL time.Duration
	// MaxAttempts is the number of wrong codes after which a code is
	// invalidated (default 5).
	MaxAttempts int
	// NumberShort and NumberLong limit the codes sent to one number
	// (defaults 1 per 2m and 2 per 8h).
	NumberShort, NumberLong Limit
	// AddressShort and AddressLong limit the codes requested from one
	// client address, IPv6 addresses counted per IPv6Prefix
	// (defaults 5 per 5m and 100 per 24h).
	AddressShort, AddressLong Limit
	// Global limits the codes sent in total, to cap the SMS bill
	// (default 1000 per 1h).
	Global Limit
	// IPv6Prefix is the prefix length under which IPv6 addresses count as
	// one client (default 64, one customer's network).
	IPv6Prefix int
}

// DefaultOptions returns the documented defaults.
func DefaultOptions() Options {
	return Options{
		CodeTTL:      10 * time.Minute,
		MaxAttempts:  5,
		NumberShort:  Limit{1, 2 * time.Minute},
		NumberLong:   Limit{2, 8 * time.Hour},
		AddressShort: Limit{5, 5 * time.Minute},
		AddressLong:  Limit{100, 24 * time.Hour},
		Global:       Limit{1000, time.Hour},
		IPv6Prefix:   64,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.CodeTTL <= 0 {
		o.CodeTTL = d.CodeTTL
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = d.MaxAttempts
	}
	for _, p := range []struct{ l, d *Limit }{
		{&o.NumberShort, &d.NumberShort}, {&o.NumberLong, &d.NumberLong},
		{&o.AddressShort, &d.AddressShort}, {&o.AddressLong, &d.AddressLong},
		{&o.Global, &d.Global},
	} {
		if p.l.Max == 0 || (p.l.Max > 0 && p.l.Window <= 0) {
			*p.l = *p.d
		}
	}
	if o.IPv6Prefix <= 0 || o.IPv6Prefix > 128 {
		o.IPv6Prefix = d.IPv6Prefix
	}
	return o
}

// RequestResult is a freshly issued code. Code is the only copy of the
// digits: hand it to a Gateway and drop it.
type RequestResult struct {
	Number  string
	Code    string
	Lang    string
	Expires time.Time
}

// Codes issues and checks verification codes, stored in SQLite. Requests
// and verifications each run in one immediate transaction, so concurrent
// callers (and several processes on one database) see consistent counts.
//
// Set Now before the Codes is shared; after that it is safe for concurrent
// use.
type Codes struct {
	// Now returns the current time (default time.Now); tests set a fake
	// clock.
	Now func() time.Time

	db     *sql.DB
	opts   Options
	secret []byte // HMAC key for stored codes, created once per database
}

const codesSchema = `
CREATE TABLE IF NOT EXISTS register_secret (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	secret BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS register_codes (
	number TEXT PRIMARY KEY,
	mac BLOB NOT NULL,
	expires INTEGER NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS register_requests (
	scope TEXT NOT NULL,
	key TEXT NOT NULL,
	at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS register_requests_key ON register_requests (scope, key, at);
CREATE INDEX IF NOT EXISTS register_requests_at ON register_requests (at);`

// OpenCodes creates the code tables in db if needed (db comes from
// storage.Open) and returns a Codes with opts, zero fields defaulted.
func OpenCodes(ctx context.Context, db *sql.DB, opts Options) (*Codes, error) {
	if _, err := db.ExecContext(ctx, codesSchema); err != nil {
		return nil, fmt.Errorf("creating registration tables: %w", err)
	}
	fresh := make([]byte, 32)
	rand.Read(fresh)
	_, err := db.ExecContext(ctx,
		`INSERT INTO register_secret (id, secret) VALUES (1, ?) ON CONFLICT DO NOTHING`, fresh)
	if err != nil {
		return nil, fmt.Errorf("creating registration secret: %w", err)
	}
	c := &Codes{Now: time.Now, db: db, opts: opts.withDefaults()}
	err = db.QueryRowContext(ctx, `SELECT secret FROM register_secret WHERE id = 1`).Scan(&c.secret)
	if err != nil {
		return nil, fmt.Errorf("loading registration secret: %w", err)
	}
	return c, nil
}

// Options returns the options in effect, defaults applied.
func (c *Codes) Options() Options { return c.opts }

func (c *Codes) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// mac keys the stored form of a code to this database and to the number,
// so that equal codes for two numbers do not look alike at rest.
func (c *Codes) mac(number, code string) []byte {
	m := hmac.New(sha256.New, c.secret)
	m.Write([]byte(number))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return m.Sum(nil)
}

// randomCode returns 6 decimal digits, uniformly distributed.
func randomCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("generating code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// AddressKey returns the key under which addr is counted: the address for
// IPv4 (and IPv4-mapped IPv6), the enclosing /bits prefix for IPv6, and
// "unknown" for an invalid address.
func AddressKey(addr netip.Addr, bits int) string {
	addr = addr.Unmap().WithZone("")
	switch {
	case !addr.IsValid():
		return "unknown"
	case addr.Is4():
		return addr.String()
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return addr.String()
	}
	return p.String()
}

type scoped struct {
	scope, key string
	limits     []Limit
}

func (c *Codes) scopes(number string, addr netip.Addr) []scoped {
	o := c.opts
	return []scoped{
		{ScopeNumber, number, []Limit{o.NumberShort, o.NumberLong}},
		{ScopeAddress, AddressKey(addr, o.IPv6Prefix), []Limit{o.AddressShort, o.AddressLong}},
		{ScopeGlobal, "", []Limit{o.Global}},
	}
}

// longestWindow is how far back request records matter.
func (c *Codes) longestWindow() time.Duration {
	var w time.Duration
	for _, l := range []Limit{c.opts.NumberShort, c.opts.NumberLong, c.opts.AddressShort,
		c.opts.AddressLong, c.opts.Global} {
		if l.enabled() && l.Window > w {
			w = l.Window
		}
	}
	return w
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// wait returns how long until one more request fits within l for scope and
// key: zero if it fits now, else the time until the oldest of the last Max
// requests in the window leaves it.
func wait(ctx context.Context, q querier, s scoped, l Limit, now time.Time) (time.Duration, error) {
	if !l.enabled() {
		return 0, nil
	}
	var at int64
	err := q.QueryRowContext(ctx, `SELECT at FROM register_requests
		WHERE scope = ? AND key = ? AND at > ? ORDER BY at DESC LIMIT 1 OFFSET ?`,
		s.scope, s.key, now.Add(-l.Window).UnixMilli(), l.Max-1).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("counting %s requests: %w", s.scope, err)
	}
	d := time.UnixMilli(at).Add(l.Window).Sub(now)
	if d < time.Second {
		d = time.Second // never tell a client to retry at once and be refused
	}
	return d, nil
}

// check returns the LimitError with the longest wait among scopes, or nil.
func check(ctx context.Context, q querier, scopes []scoped, now time.Time) (*LimitError, error) {
	var worst *LimitError
	for _, s := range scopes {
		for _, l := range s.limits {
			d, err := wait(ctx, q, s, l, now)
			if err != nil {
				return nil, err
			}
			if d > 0 && (worst == nil || d > worst.RetryAfter) {
				worst = &LimitError{RetryAfter: d, Scope: s.scope}
			}
		}
	}
	return worst, nil
}

// Request issues a new code for number (already in E.164) asked for from
// addr, replacing any earlier code for the number. If a limit refuses it,
// the error is a *LimitError and nothing is recorded. lang is carried into
// the result for the gateway. Cancelling ctx abandons the transaction.
func (c *Codes) Request(ctx context.Context, number string, addr netip.Addr,
	lang string) (RequestResult, error) {
	code, err := randomCode()
	if err != nil {
		return RequestResult{}, err
	}
	now := c.now()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return RequestResult{}, fmt.Errorf("requesting code for %s: %w", number, err)
	}
	defer tx.Rollback()

	// Forget what no limit looks at any more, so that the tables stay as
	// small as the windows.
	if _, err := tx.ExecContext(ctx, `DELETE FROM register_requests WHERE at <= ?`,
		now.Add(-c.longestWindow()).UnixMilli()); err != nil {
		return RequestResult{}, fmt.Errorf("pruning requests: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM register_codes WHERE expires <= ?`,
		now.UnixMilli()); err != nil {
		return RequestResult{}, fmt.Errorf("pruning codes: %w", err)
	}

	scopes := c.scopes(number, addr)
	lerr, err := check(ctx, tx, scopes, now)
	if err != nil {
		return RequestResult{}, fmt.Errorf("requesting code for %s: %w", number, err)
	}
	if lerr != nil {
		return RequestResult{}, lerr
	}

	for _, s := range scopes {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO register_requests (scope, key, at) VALUES (?, ?, ?)`,
			s.scope, s.key, now.UnixMilli()); err != nil {
			return RequestResult{}, fmt.Errorf("recording request for %s: %w", number, err)
		}
	}
	expires := now.Add(c.opts.CodeTTL)
	if _, err := tx.ExecContext(ctx, `INSERT INTO register_codes (number, mac, expires, attempts)
		VALUES (?, ?, ?, 0) ON CONFLICT (number) DO UPDATE
		SET mac = excluded.mac, expires = excluded.expires, attempts = 0`,
		number, c.mac(number, code), expires.UnixMilli()); err != nil {
		return RequestResult{}, fmt.Errorf("storing code for %s: %w", number, err)
	}
	if err := tx.Commit(); err != nil {
		return RequestResult{}, fmt.Errorf("requesting code for %s: %w", number, err)
	}
	return RequestResult{Number: number, Code: code, Lang: lang, Expires: expires}, nil
}

// Verify checks code for number. A match consumes the code. A mismatch
// counts against the code and returns ErrWrongCode, or ErrTooManyAttempts
// once MaxAttempts wrong codes have been given; an invalidated code keeps
// answering ErrTooManyAttempts until it expires or a new one replaces it.
// No code, or an expired one, gives ErrExpired.
func (c *Codes) Verify(ctx context.Context, number, code string) error {
	now := c.now()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("verifying code for %s: %w", number, err)
	}
	defer tx.Rollback()

	var mac []byte
	var expires int64
	var attempts int
	err = tx.QueryRowContext(ctx,
		`SELECT mac, expires, attempts FROM register_codes WHERE number = ?`, number).
		Scan(&mac, &expires, &attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("verifying code for %s: %w", number, ErrExpired)
	}
	if err != nil {
		return fmt.Errorf("verifying code for %s: %w", number, err)
	}
	if now.UnixMilli() >= expires {
		if err := c.finish(ctx, tx, `DELETE FROM register_codes WHERE number = ?`, number); err != nil {
			return err
		}
		return fmt.Errorf("verifying code for %s: %w", number, ErrExpired)
	}
	if attempts >= c.opts.MaxAttempts {
		return fmt.Errorf("verifying code for %s: %w", number, ErrTooManyAttempts)
	}

	if hmac.Equal(mac, c.mac(number, strings.TrimSpace(code))) {
		if err := c.finish(ctx, tx, `DELETE FROM register_codes WHERE number = ?`, number); err != nil {
			return err
		}
		return nil
	}
	if err := c.finish(ctx, tx,
		`UPDATE register_codes SET attempts = attempts + 1 WHERE number = ?`, number); err != nil {
		return err
	}
	if attempts+1 >= c.opts.MaxAttempts {
		return fmt.Errorf("verifying code for %s: %w", number, ErrTooManyAttempts)
	}
	return fmt.Errorf("verifying code for %s: %w", number, ErrWrongCode)
}

// finish runs one statement about number and commits.
func (c *Codes) finish(ctx context.Context, tx *sql.Tx, stmt, number string) error {
	if _, err := tx.ExecContext(ctx, stmt, number); err != nil {
		return fmt.Errorf("verifying code for %s: %w", number, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("verifying code for %s: %w", number, err)
	}
	return nil
}

// Discard removes the code of number, if any. The Registrar calls it when
// the gateway could not send the code, so that no code is left that nobody
// received. The request still counts against the limits.
func (c *Codes) Discard(ctx context.Context, number string) error {
	_, err := c.db.ExecContext(ctx, `DELETE FROM register_codes WHERE number = ?`, number)
	if err != nil {
		return fmt.Errorf("discarding code for %s: %w", number, err)
	}
	return nil
}

// NumberRetryAfter returns how long until a new code may be sent to number
// as far as the per-number limits go (zero if now), so that a client told
// ErrTooManyAttempts can be told when to ask again.
func (c *Codes) NumberRetryAfter(ctx context.Context, number string) (time.Duration, error) {
	s := c.scopes(number, netip.Addr{})[0]
	lerr, err := check(ctx, c.db, []scoped{s}, c.now())
	if err != nil || lerr == nil {
		return 0, err
	}
	return lerr.RetryAfter, nil
}
