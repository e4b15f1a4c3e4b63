package roster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// ErrTooManyBlocked: blocking would take the owner past the cap on blocked
// JIDs. The server answers resource-constraint.
var ErrTooManyBlocked = errors.New("too many blocked JIDs")

// DefaultMaxBlocked is the cap on blocked JIDs per owner when none is given.
const DefaultMaxBlocked = 1000

// cachedOwners bounds the owners whose lists are kept in memory. Every
// stanza between two users asks whether either blocks the other, so the
// answer must not cost a query; an owner who blocks nobody is cached too.
const cachedOwners = 10000

const blocklistSchema = `
CREATE TABLE IF NOT EXISTS blocklist (
	owner TEXT NOT NULL,   -- bare JID of the user who blocks
	jid   TEXT NOT NULL,   -- the blocked JID as XEP-0191 § 6 matches it
	PRIMARY KEY (owner, jid)
);
`

// Blocklist keeps each user's blocked JIDs (XEP-0191) in an SQL table, with
// a bounded in-memory cache of recently asked owners. It is safe for
// concurrent use.
//
// It stores and compares strings: the server normalises JIDs and works out
// which forms of a sender's JID an item can match (Blocks).
type Blocklist struct {
	db  *sql.DB
	max int

	writeMu sync.Mutex // serialises writes, as Store does

	mu    sync.Mutex // guards cache and gen
	cache map[string]map[string]struct{}
	gen   uint64 // bumped by every write, so a stale read is not cached
}

// OpenBlocklist creates the blocklist table in db if it is missing. max
// caps the JIDs per owner; max <= 0 keeps DefaultMaxBlocked. A high cap lets
// one account grow the database and the cost of its blocklist result.
func OpenBlocklist(ctx context.Context, db *sql.DB, max int) (*Blocklist, error) {
	if max <= 0 {
		max = DefaultMaxBlocked
	}
	if _, err := db.ExecContext(ctx, blocklistSchema); err != nil {
		return nil, fmt.Errorf("creating blocklist table: %w", err)
	}
	return &Blocklist{db: db, max: max, cache: make(map[string]map[string]struct{})}, nil
}

// OpenBlocklist opens a Blocklist over the store's database, with the
// default cap.
func (s *Store) OpenBlocklist(ctx context.Context) (*Blocklist, error) {
	return OpenBlocklist(ctx, s.db, 0)
}

// List returns the owner's blocked JIDs, sorted.
func (b *Blocklist) List(ctx context.Context, owner string) ([]string, error) {
	set, err := b.set(ctx, owner)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(set))
	for j := range set {
		out = append(out, j)
	}
	slices.Sort(out)
	return out, nil
}

// Blocks reports whether owner has blocked any of the given JIDs. The
// caller passes every form an item could have that matches the sender.
func (b *Blocklist) Blocks(ctx context.Context, owner string, forms ...string) (bool, error) {
	set, err := b.set(ctx, owner)
	if err != nil {
		return false, err
	}
	for _, f := range forms {
		if _, ok := set[f]; ok {
			return true, nil
		}
	}
	return false, nil
}

// KnownEmpty reports whether the owner's list is cached and empty: the
// common case, answered without a context, a query or the JID's forms.
func (b *Blocklist) KnownEmpty(owner string) bool {
	b.mu.Lock()
	set, ok := b.cache[owner]
	b.mu.Unlock()
	return ok && len(set) == 0
}

// set returns the owner's blocked JIDs from the cache, or loads them. The
// map must not be modified.
func (b *Blocklist) set(ctx context.Context, owner string) (map[string]struct{}, error) {
	b.mu.Lock()
	set, ok := b.cache[owner]
	gen := b.gen
	b.mu.Unlock()
	if ok {
		return set, nil
	}

	rows, err := b.db.QueryContext(ctx, `SELECT jid FROM blocklist WHERE owner = ?`, owner)
	if err != nil {
		return nil, fmt.Errorf("loading blocklist of %s: %w", owner, err)
	}
	defer rows.Close()
	set = map[string]struct{}{}
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("loading blocklist of %s: %w", owner, err)
		}
		set[j] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading blocklist of %s: %w", owner, err)
	}

	b.mu.Lock()
	// A write since the read began may have changed this list; the next
	// lookup reads it again instead of caching what may be stale.
	if b.gen == gen {
		if len(b.cache) >= cachedOwners {
			for k := range b.cache {
				delete(b.cache, k) // an arbitrary owner: map order is random
				break
			}
		}
		b.cache[owner] = set
	}
	b.mu.Unlock()
	return set, nil
}

// Block adds jids to the owner's blocklist and returns those that were not
// on it yet. Nothing is added if the result would exceed the cap
// (ErrTooManyBlocked).
func (b *Blocklist) Block(ctx context.Context, owner string, jids []string) ([]string, error) {
	var added []string
	err := b.write(ctx, owner, func(tx *sql.Tx) error {
		added = nil
		for _, j := range jids {
			res, err := tx.ExecContext(ctx,
				`INSERT OR IGNORE INTO blocklist (owner, jid) VALUES (?, ?)`, owner, j)
			if err != nil {
				return fmt.Errorf("blocking %s for %s: %w", j, owner, err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				added = append(added, j)
			}
		}
		var n int
		err := tx.QueryRowContext(ctx,
			`SELECT COUNT(*) FROM blocklist WHERE owner = ?`, owner).Scan(&n)
		if err != nil {
			return fmt.Errorf("counting blocklist of %s: %w", owner, err)
		}
		if n > b.max {
			return fmt.Errorf("%s would block %d JIDs: %w", owner, n, ErrTooManyBlocked)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return added, nil
}

// Unblock removes jids from the owner's blocklist and returns those that
// were on it.
func (b *Blocklist) Unblock(ctx context.Context, owner string, jids []string) ([]string, error) {
	var removed []string
	err := b.write(ctx, owner, func(tx *sql.Tx) error {
		removed = nil
		for _, j := range jids {
			res, err := tx.ExecContext(ctx,
				`DELETE FROM blocklist WHERE owner = ? AND jid = ?`, owner, j)
			if err != nil {
				return fmt.Errorf("unblocking %s for %s: %w", j, owner, err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				removed = append(removed, j)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

// UnblockAll empties the owner's blocklist and returns what was on it,
// sorted.
func (b *Blocklist) UnblockAll(ctx context.Context, owner string) ([]string, error) {
	var removed []string
	err := b.write(ctx, owner, func(tx *sql.Tx) error {
		removed = nil
		rows, err := tx.QueryContext(ctx,
			`SELECT jid FROM blocklist WHERE owner = ? ORDER BY jid`, owner)
		if err != nil {
			return fmt.Errorf("loading blocklist of %s: %w", owner, err)
		}
		for rows.Next() {
			var j string
			if err := rows.Scan(&j); err != nil {
				rows.Close()
				return fmt.Errorf("loading blocklist of %s: %w", owner, err)
			}
			removed = append(removed, j)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("loading blocklist of %s: %w", owner, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM blocklist WHERE owner = ?`, owner); err != nil {
			return fmt.Errorf("clearing blocklist of %s: %w", owner, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

// DeleteOwner removes the owner's whole blocklist, for an account that is
// deleted: a new account that later gets the same JID (a recycled phone
// number) must not inherit the old owner's choices. Lists that block the
// owner are other users' and stay.
func (b *Blocklist) DeleteOwner(ctx context.Context, owner string) error {
	return b.write(ctx, owner, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM blocklist WHERE owner = ?`, owner); err != nil {
			return fmt.Errorf("deleting blocklist of %s: %w", owner, err)
		}
		return nil
	})
}

// write runs fn in a transaction and then drops the owner's cached list,
// whether or not the commit succeeded: the next lookup reads what is
// stored.
func (b *Blocklist) write(ctx context.Context, owner string, fn func(tx *sql.Tx) error) error {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	defer b.invalidate(owner)
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("starting blocklist transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing blocklist transaction: %w", err)
	}
	return nil
}

func (b *Blocklist) invalidate(owner string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	delete(b.cache, owner)
}
