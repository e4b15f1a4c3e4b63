package roster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
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
	// The statements are the pool's (DB.PrepareContext), not the
	// connection's: Tx.StmtContext reuses a pool statement's preparation
	// on the transaction's connection, but parses a connection's
	// statement again in every transaction. Lock: store.writeMu.
	conn     *sql.Conn
	prepared map[string]*sql.Stmt

	// wal is the database's write-ahead log, open when the database
	// syncs every commit (synchronous=FULL). The groups' connection then
	// commits without a sync, and a group's writers learn their result
	// only once a sync of wal covers its commit (syncWAL), made after the
	// write lock is released: the next group runs during the sync instead
	// of behind it. A commit is written into the log before the lock is
	// released, and a sync of the file makes durable what any connection
	// wrote to it, so each writer gets what a synced commit gives.
	// Without this, an answer to an upload waited for the sync of the
	// previous group, which takes milliseconds and sometimes hundreds.
	// Lock: store.writeMu and syncMu to set; syncMu to use.
	wal *os.File
	// committed counts the groups committed on conn while wal is open;
	// synced is the count that the last sync of wal covered.
	committed atomic.Uint64
	syncMu    sync.Mutex
	synced    uint64 // Lock: syncMu

	// checkpointing is set while a background checkpoint runs, which
	// cpDone then counts; lastCP is when the last one started (Lock:
	// store.writeMu).
	checkpointing atomic.Bool
	cpDone        sync.WaitGroup
	lastCP        time.Time
}

// syncFile syncs the write-ahead log; tests replace it.
var syncFile = (*os.File).Sync

// checkpointEvery is how often, at most, the groups' commits start a
// checkpoint of the write-ahead log.
const checkpointEvery = 250 * time.Millisecond

type groupReq struct {
	fn   func(tx *sql.Tx) error
	ran  bool       // a leader ran fn (Lock: store.writeMu)
	done chan error // buffered: the leader never waits for the writer
}

// pendingGroup is a committed group whose writers wait for a sync of the
// write-ahead log that covers commit number seq (see groupCommit.wal).
type pendingGroup struct {
	batch []*groupReq
	errs  []error
	seq   uint64
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
	// Unless an earlier leader ran it, run groups until one holds ours
	// (it may be beyond the first maxGroup).
	var pending []pendingGroup
	for !req.ran {
		g.mu.Lock()
		n := min(len(g.queue), maxGroup)
		batch := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		if p, ok := b.runGroup(ctx, batch); ok {
			pending = append(pending, p)
		}
	}
	s.writeMu.Unlock()
	if len(pending) > 0 {
		err := b.syncWAL(pending[len(pending)-1].seq)
		for _, p := range pending {
			for i, r := range p.batch {
				if err != nil {
					r.done <- fmt.Errorf("syncing the roster transaction: %w", err)
				} else {
					r.done <- p.errs[i]
				}
			}
		}
	}
	return <-req.done
}

// syncWAL syncs the write-ahead log unless a sync since commit number seq
// already did. Concurrent leaders share one sync: whoever waits for the
// lock finds the work done by the one before.
func (b *Book) syncWAL(seq uint64) error {
	g := &b.group
	g.syncMu.Lock()
	defer g.syncMu.Unlock()
	if g.synced >= seq {
		return nil
	}
	if g.wal == nil {
		return errors.New("the write-ahead log was closed before its sync")
	}
	upto := g.committed.Load()
	if err := syncFile(g.wal); err != nil {
		return err
	}
	g.synced = upto
	return nil
}

// runGroup runs one group in one transaction. Its writers get their
// results at once, unless the commit must still be synced (see
// groupCommit.wal): runGroup then returns them as pending, with true.
// Lock: store.writeMu held.
func (b *Book) runGroup(ctx context.Context, batch []*groupReq) (pendingGroup, bool) {
	for _, r := range batch {
		r.ran = true
	}
	fail := func(err error) (pendingGroup, bool) {
		for _, r := range batch {
			r.done <- err
		}
		return pendingGroup{}, false
	}
	// The leader's context starts the transaction; each function uses
	// its writer's own context for its statements.
	tx, err := b.begin(context.WithoutCancel(ctx))
	if err != nil {
		return fail(fmt.Errorf("starting roster transaction: %w", err))
	}
	errs := make([]error, len(batch))
	if len(batch) == 1 {
		errs[0] = batch[0].fn(tx)
		if errs[0] != nil {
			tx.Rollback()
			return fail(errs[0])
		}
	} else {
		for i, r := range batch {
			if err := b.exec(ctx, tx, `SAVEPOINT book_write`); err != nil {
				tx.Rollback()
				b.idx.stale()
				return fail(fmt.Errorf("starting roster savepoint: %w", err))
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
				return fail(fmt.Errorf("ending roster savepoint: %w", err))
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.idx.stale()
		return fail(fmt.Errorf("committing roster transaction: %w", err))
	}
	b.checkpoint()
	if b.group.wal != nil {
		return pendingGroup{batch: batch, errs: errs, seq: b.group.committed.Add(1)}, true
	}
	for i, r := range batch {
		r.done <- errs[i]
	}
	return pendingGroup{}, false
}

// stale makes the next use reload the index from the database, after a
// transaction whose changes the index already holds did not commit.
func (x *bookIndex) stale() {
	x.mu.Lock()
	x.booksLoaded, x.regLoaded = false, false
	x.resetBooks()
	x.registered = nil
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
		b.closeConn()
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
	wal, err := openWAL(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		conn.Close()
		if wal != nil {
			wal.Close()
		}
		return nil, err
	}
	g.syncMu.Lock()
	g.wal = wal
	g.syncMu.Unlock()
	g.conn, g.prepared = conn, map[string]*sql.Stmt{}
	return tx, nil
}

// openWAL returns the write-ahead log of conn's database, opened to sync
// it, and sets conn to commit without syncing, if the database syncs
// every commit (synchronous=FULL or EXTRA); else it returns nil and leaves
// conn alone. A database without a file (in memory) has nothing to sync.
func openWAL(ctx context.Context, conn *sql.Conn) (*os.File, error) {
	var mode int
	if err := conn.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&mode); err != nil {
		return nil, err
	}
	var file string
	err := conn.QueryRowContext(ctx,
		`SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file)
	if err != nil {
		return nil, err
	}
	if mode < 2 || file == "" {
		return nil, nil
	}
	// The log exists: the database is in WAL mode, and a connection that
	// has read it keeps its log until the last one closes.
	wal, err := os.OpenFile(file+"-wal", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the write-ahead log to sync it: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		wal.Close()
		return nil, err
	}
	return wal, nil
}

// closeConn closes the groups' connection, after a last sync of the log
// for the writers still waiting for one. Lock: store.writeMu.
func (b *Book) closeConn() error {
	g := &b.group
	for _, st := range g.prepared {
		st.Close()
	}
	err := g.conn.Close()
	g.conn, g.prepared = nil, nil
	g.syncMu.Lock()
	defer g.syncMu.Unlock()
	if g.wal != nil {
		// The writers whose groups this sync covers find them synced;
		// if it fails, they get that error from syncWAL.
		if serr := syncFile(g.wal); serr == nil {
			g.synced = g.committed.Load()
		} else if err == nil {
			err = serr
		}
		g.wal.Close()
		g.wal = nil
	}
	return err
}

// stmt returns query prepared on the groups' connection, for tx, which
// must run on it (a function run by Book.write). Lock: store.writeMu.
func (b *Book) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	g := &b.group
	st, ok := g.prepared[query]
	if !ok {
		var err error
		if st, err = b.store.db.PrepareContext(ctx, query); err != nil {
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
	g.cpDone.Add(1)
	go func() {
		defer g.cpDone.Done()
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
// groupCommit) and waits for a background checkpoint, whose connection
// would otherwise stay open past the database's Close and leave the log
// behind. The Book opens another connection if it is used again.
func (b *Book) Close() error {
	b.store.writeMu.Lock()
	defer b.store.writeMu.Unlock()
	// No checkpoint starts while writeMu is held.
	defer b.group.cpDone.Wait()
	if b.group.conn == nil {
		return nil
	}
	return b.closeConn()
}
