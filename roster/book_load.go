package roster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
)

// accountLogSchema records the account changes that a process without the
// server's index (the command line) made, so that the server can apply
// them to its in-memory index (TakeQueued). A deleted account's row keeps
// its book, since the server must drop that book's numbers from the index
// and the book's row is gone by then.
const accountLogSchema = `
CREATE TABLE IF NOT EXISTS roster_book_accounts (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	number TEXT NOT NULL,
	joined INTEGER NOT NULL,
	book   BLOB
);
`

// errIndexStale: the index was dropped by a failed commit between loading
// and use; the caller may retry.
var errIndexStale = errors.New("address-book index is being reloaded")

// Warm loads the in-memory index (the books' numbers and, with a Lister,
// the registered numbers) now rather than at the first upload, which would
// otherwise wait for it: about a second for a million accounts.
func (b *Book) Warm(ctx context.Context) error {
	if err := b.ensureLoaded(ctx, true); err != nil {
		return fmt.Errorf("loading the address-book index: %w", err)
	}
	return nil
}

// ensureLoaded loads the index if it is not loaded, outside a write;
// withReg asks for the registered numbers too, which only matching needs.
func (b *Book) ensureLoaded(ctx context.Context, withReg bool) error {
	b.idx.mu.RLock()
	ok := b.idx.booksLoaded && (b.idx.regLoaded || !withReg || !b.lists())
	b.idx.mu.RUnlock()
	if ok {
		return nil
	}
	return b.write(ctx, func(tx *sql.Tx) error {
		if err := b.load(ctx, tx); err != nil || !withReg {
			return err
		}
		return b.loadRegistered(ctx, tx)
	})
}

func (b *Book) lists() bool {
	_, ok := b.dir.(Lister)
	return ok
}

// load fills the reverse index from the stored books if it is not loaded.
// Lock: runs inside Book.write, which keeps the books from changing
// meanwhile.
func (b *Book) load(ctx context.Context, tx *sql.Tx) error {
	b.idx.mu.Lock()
	defer b.idx.mu.Unlock()
	x := &b.idx
	if x.booksLoaded {
		return nil
	}
	if err := migrateBooks(ctx, tx); err != nil {
		return err
	}
	x.resetBooks()
	rows, err := tx.QueryContext(ctx, `SELECT owner, book FROM roster_books`)
	if err != nil {
		return fmt.Errorf("loading address books: %w", err)
	}
	defer rows.Close()
	var named []bookEntry // of one book, reused
	for rows.Next() {
		var owner string
		var blob []byte
		if err := rows.Scan(&owner, &blob); err != nil {
			return fmt.Errorf("loading address books: %w", err)
		}
		num, err := ownerNumber(owner)
		if err != nil {
			continue // not a phone account: never matched
		}
		ok, _ := numKey(num)
		named = named[:0]
		if err := decodeBook(blob, func(k uint64, name string) {
			x.add(ok, k)
			if name != "" {
				named = append(named, bookEntry{k: k, name: name})
			}
		}); err != nil {
			return fmt.Errorf("loading the address book of %s: %w", owner, err)
		}
		if len(named) > 0 {
			x.names[ok] = packNames(named)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("loading address books: %w", err)
	}
	x.booksLoaded = true
	return nil
}

// loadRegistered reads every registered number from a Lister directory if
// the set is not loaded. A server first applies the account changes that
// other processes logged, so that what it reads afterwards includes them
// all and no stale entry of the log is applied over a later change. An
// account created meanwhile is added by its Joined, which waits for the
// lock. Lock: runs inside Book.write, after load.
func (b *Book) loadRegistered(ctx context.Context, tx *sql.Tx) error {
	l, ok := b.dir.(Lister)
	b.idx.mu.RLock()
	done := !ok || b.idx.regLoaded
	b.idx.mu.RUnlock()
	if done {
		return nil
	}
	if !b.logAccounts {
		if err := b.applyAccountLog(ctx, tx); err != nil {
			return err
		}
	}
	var reg []uint64
	err := l.AllRegistered(ctx, func(n string) {
		if k, ok := numKey(n); ok {
			reg = append(reg, k)
		}
	})
	if err != nil {
		return fmt.Errorf("loading registered numbers: %w", err)
	}
	slices.Sort(reg)
	b.idx.mu.Lock()
	b.idx.registered = slices.Compact(reg)
	b.idx.regLoaded = true
	b.idx.mu.Unlock()
	return nil
}

// migrateBooks moves the books of a database from before roster_books
// (one row per number in roster_book, digests in roster_book_digest) into
// it, and drops the old tables.
func migrateBooks(ctx context.Context, tx *sql.Tx) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master
		WHERE type = 'table' AND name = 'roster_book'`).Scan(&n); err != nil || n == 0 {
		return err
	}
	fail := func(err error) error {
		return fmt.Errorf("moving address books to one row each: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT owner, number, name FROM roster_book ORDER BY owner`)
	if err != nil {
		return fail(err)
	}
	books := map[string]map[string]string{}
	for rows.Next() {
		var owner, number, name string
		if err := rows.Scan(&owner, &number, &name); err != nil {
			rows.Close()
			return fail(err)
		}
		if books[owner] == nil {
			books[owner] = map[string]string{}
		}
		books[owner][number] = name
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	for owner, book := range books {
		sorted := sortBook(book)
		if _, err := tx.ExecContext(ctx, `INSERT INTO roster_books (owner, digest, book)
			VALUES (?, ?, ?) ON CONFLICT (owner) DO NOTHING`,
			owner, bookDigest(sorted), encodeBook(sorted)); err != nil {
			return fail(err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DROP TABLE roster_book;
		DROP TABLE IF EXISTS roster_book_digest`); err != nil {
		return fail(err)
	}
	return nil
}

// logAccount records an account change for the server (WithAccountLog);
// book is a deleted account's stored book.
func (b *Book) logAccount(ctx context.Context, tx *sql.Tx, number string, joined bool,
	book []byte) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO roster_book_accounts (number, joined, book)
		VALUES (?, ?, ?)`, number, joined, book)
	if err != nil {
		return fmt.Errorf("logging the account change of %s: %w", number, err)
	}
	return nil
}

// applyAccountLog applies and removes the account changes that other
// processes logged. Lock: runs inside Book.write, after load.
func (b *Book) applyAccountLog(ctx context.Context, tx *sql.Tx) error {
	// All at once, even after an import of a million accounts (a second
	// under the write lock, once): applied in parts, each part would
	// re-sort the registered set.
	rows, err := tx.QueryContext(ctx, `SELECT id, number, joined, book
		FROM roster_book_accounts ORDER BY id`)
	if err != nil {
		return fmt.Errorf("reading the account log: %w", err)
	}
	type change struct {
		number string
		joined bool
		book   []byte
	}
	var list []change
	var last int64
	for rows.Next() {
		var c change
		if err := rows.Scan(&last, &c.number, &c.joined, &c.book); err != nil {
			rows.Close()
			return fmt.Errorf("reading the account log: %w", err)
		}
		list = append(list, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(list) == 0 {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM roster_book_accounts WHERE id <= ?`,
		last); err != nil {
		return fmt.Errorf("trimming the account log: %w", err)
	}
	b.idx.mu.Lock()
	defer b.idx.mu.Unlock()
	var joined []string
	for _, c := range list {
		if c.joined {
			joined = append(joined, c.number)
			continue
		}
		b.idx.addRegistered(joined)
		joined = joined[:0]
		b.idx.setRegistered(c.number, false)
		k, ok := numKey(c.number)
		if !ok {
			continue
		}
		// The deleted account's book leaves the reverse index.
		_ = decodeBook(c.book, func(n uint64, _ string) { b.idx.remove(k, n) })
		delete(b.idx.names, k)
	}
	b.idx.addRegistered(joined)
	return nil
}

// applyLogIfServer applies the account log, unless this Book is one of the
// processes that write it (WithAccountLog), which leave it to the server.
func (b *Book) applyLogIfServer(ctx context.Context, tx *sql.Tx) error {
	if b.logAccounts {
		return nil
	}
	return b.applyAccountLog(ctx, tx)
}
