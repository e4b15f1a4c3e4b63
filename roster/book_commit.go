package roster

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// maxGroup bounds the writes that share one transaction, so that the
// first of them does not wait for an unbounded tail.
const maxGroup = 64

// groupCommit lets the writes of concurrent uploads share one transaction
// and one sync of the write-ahead log. A sync costs milliseconds on a real
// disk, more than an upload's own writes once those follow only the
// changes, so committing each upload alone capped the rate at the disk's
// sync rate. Writers queue their function; whoever takes the store's
// write lock runs everything queued so far, each function inside its own
// savepoint so that one failure (a refused upload) undoes only its own
// changes, then commits once and tells each writer its result.
type groupCommit struct {
	mu    sync.Mutex
	queue []*groupReq
}

type groupReq struct {
	fn   func(tx *sql.Tx) error
	done chan error // buffered: the leader never waits for the writer
}

// write runs fn in a transaction under the store's write lock, possibly
// together with the functions of other writers, and returns fn's error or
// the commit's. fn must leave in-memory state alone until its last
// statement has succeeded: a later commit failure marks the index stale
// instead of undoing it.
func (b *Book) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	req := &groupReq{fn: fn, done: make(chan error, 1)}
	g := &b.group
	g.mu.Lock()
	g.queue = append(g.queue, req)
	g.mu.Unlock()

	s := b.store
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	select {
	case err := <-req.done: // an earlier leader ran it
		return err
	default:
	}
	for {
		g.mu.Lock()
		n := min(len(g.queue), maxGroup)
		batch := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		b.runGroup(ctx, batch)
		select {
		case err := <-req.done:
			return err
		default: // ours was beyond the first maxGroup; run the next group
		}
	}
}

// runGroup runs one group in one transaction. Lock: store.writeMu held.
func (b *Book) runGroup(ctx context.Context, batch []*groupReq) {
	fail := func(err error) {
		for _, r := range batch {
			r.done <- err
		}
	}
	// The leader's context starts the transaction; each function uses
	// its writer's own context for its statements.
	tx, err := b.store.db.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		fail(fmt.Errorf("starting roster transaction: %w", err))
		return
	}
	errs := make([]error, len(batch))
	if len(batch) == 1 {
		errs[0] = batch[0].fn(tx)
		if errs[0] != nil {
			tx.Rollback()
			batch[0].done <- errs[0]
			return
		}
	} else {
		for i, r := range batch {
			if _, err := tx.Exec(`SAVEPOINT book_write`); err != nil {
				tx.Rollback()
				b.idx.stale()
				fail(fmt.Errorf("starting roster savepoint: %w", err))
				return
			}
			errs[i] = r.fn(tx)
			q := `RELEASE book_write`
			if errs[i] != nil {
				q = `ROLLBACK TO book_write; RELEASE book_write`
			}
			if _, err := tx.Exec(q); err != nil {
				tx.Rollback()
				b.idx.stale()
				fail(fmt.Errorf("ending roster savepoint: %w", err))
				return
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.idx.stale()
		fail(fmt.Errorf("committing roster transaction: %w", err))
		return
	}
	for i, r := range batch {
		r.done <- errs[i]
	}
}

// stale makes the next use reload the index from the database, after a
// transaction whose changes the index already holds did not commit.
func (x *bookIndex) stale() {
	x.mu.Lock()
	x.booksLoaded, x.regLoaded = false, false
	x.holders, x.more, x.free = numTable{}, nil, nil
	x.names, x.registered = nil, nil
	x.mu.Unlock()
}
