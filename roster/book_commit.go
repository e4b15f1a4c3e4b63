package roster

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
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

	// The groups run on one connection of their own, with the
	// statements of every upload prepared on it once (prepared): parsing
	// a dozen statements per upload cost more than running them. The
	// database's pool must therefore allow more than one connection.
	// Lock: store.writeMu.
	conn     *sql.Conn
	prepared map[string]*sql.Stmt

	// checkpointing is set while a background checkpoint runs; lastCP
	// is when the last one started (Lock: store.writeMu).
	checkpointing atomic.Bool
	lastCP        time.Time
}

// checkpointEvery is how often, at most, the groups' commits start a
// checkpoint of the write-ahead log.
const checkpointEvery = 250 * time.Millisecond

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
	tx, err := b.begin(context.WithoutCancel(ctx))
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
			if err := b.exec(ctx, tx, `SAVEPOINT book_write`); err != nil {
				tx.Rollback()
				b.idx.stale()
				fail(fmt.Errorf("starting roster savepoint: %w", err))
				return
			}
			errs[i] = r.fn(tx)
			var err error
			if errs[i] == nil {
				err = b.exec(ctx, tx, `RELEASE book_write`)
			} else {
				_, err = tx.Exec(`ROLLBACK TO book_write; RELEASE book_write`)
			}
			if err != nil {
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
	b.checkpoint()
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

// begin starts a transaction on the groups' connection, opening it (again,
// after a failure) if needed. Lock: store.writeMu.
func (b *Book) begin(ctx context.Context) (*sql.Tx, error) {
	g := &b.group
	if g.conn != nil {
		tx, err := g.conn.BeginTx(ctx, nil)
		if err == nil {
			return tx, nil
		}
		g.conn.Close()
		g.conn, g.prepared = nil, nil
	}
	conn, err := b.store.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	// This connection leaves checkpoints to checkpoint: SQLite's
	// automatic one runs in the commit that passes its threshold, inside
	// the write lock, where copying megabytes of the log into the
	// database and syncing it would hold every upload behind it.
	if _, err := conn.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
		conn.Close()
		return nil, err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	g.conn, g.prepared = conn, map[string]*sql.Stmt{}
	return tx, nil
}

// stmt returns query prepared on the groups' connection, for tx, which
// must run on it (a function run by Book.write). Lock: store.writeMu.
func (b *Book) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	g := &b.group
	st, ok := g.prepared[query]
	if !ok {
		var err error
		if st, err = g.conn.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
		g.prepared[query] = st
	}
	return tx.StmtContext(ctx, st), nil
}

// exec runs a prepared statement in tx (see stmt).
func (b *Book) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	st, err := b.stmt(ctx, tx, query)
	if err == nil {
		_, err = st.ExecContext(ctx, args...)
	}
	return err
}

// query runs a prepared query in tx (see stmt).
func (b *Book) query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows,
	error) {
	st, err := b.stmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// scanner is a row to scan: *sql.Row, or the error of preparing it.
type scanner interface{ Scan(dest ...any) error }

type errScanner struct{ err error }

func (e errScanner) Scan(...any) error { return e.err }

// queryRow runs a prepared one-row query in tx (see stmt).
func (b *Book) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) scanner {
	st, err := b.stmt(ctx, tx, query)
	if err != nil {
		return errScanner{err}
	}
	return st.QueryRowContext(ctx, args...)
}

// checkpoint starts a passive checkpoint of the write-ahead log on another
// connection, unless one runs or one started less than checkpointEvery
// ago. A passive checkpoint copies what it can without waiting for
// readers or blocking writers, so uploads go on meanwhile. Lock:
// store.writeMu.
func (b *Book) checkpoint() {
	g := &b.group
	if time.Since(g.lastCP) < checkpointEvery || !g.checkpointing.CompareAndSwap(false, true) {
		return
	}
	g.lastCP = time.Now()
	go func() {
		defer g.checkpointing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// A failure leaves the log longer; the next commit tries again,
		// and SQLite's automatic checkpoint on the other connections
		// still runs.
		b.store.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
	}()
}

// Close releases the connection that the Book's writes hold (see
// groupCommit), so that closing the database can finish its log. The Book
// opens another one if it is used again.
func (b *Book) Close() error {
	b.store.writeMu.Lock()
	defer b.store.writeMu.Unlock()
	g := &b.group
	if g.conn == nil {
		return nil
	}
	for _, st := range g.prepared {
		st.Close()
	}
	err := g.conn.Close()
	g.conn, g.prepared = nil, nil
	return err
}
