package offline

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// op is the kind of work a request asks of the committer.
type op int

const (
	opEnqueue op = iota
	opDelete
	opDeleteClientID
	opExpire
	opHook // runs a function on the writer's connection; for tests
)

// request is one caller's share of a group commit. The caller fills the
// inputs, the committer fills the outputs and then closes done; the caller
// reads the outputs only after done is closed.
type request struct {
	op op

	// Inputs.
	msgs     []Message // opEnqueue
	to       string    // opDelete, opDeleteClientID
	from     string    // opDeleteClientID
	clientID string    // opDeleteClientID
	ids      []int64   // opDelete: the IDs to delete
	cutoff   int64     // opExpire: delete stamps below this (Unix ns)
	limit    int       // opExpire: at most this many rows
	hook     func(context.Context, *sql.Conn) error

	// lazy marks a request nobody waits for (DeleteLater): it has no done
	// channel, and its outcome is only logged.
	lazy bool

	// Outputs. ids is reused for the IDs inserted (opEnqueue) or
	// deleted (opDeleteClientID).
	n    int // opExpire: rows deleted
	err  error
	done chan struct{}
}

// walAutocheckpoint is the WAL size, in pages, past which a commit of the
// writer copies the WAL back into the database file. Every queued message
// dirties a leaf of the (recipient, id) index at a random place, so a
// checkpoint writes about one page per message; a WAL ten times SQLite's
// default lets one checkpoint write a page once for the many commits that
// touched it, and makes the checkpoint's sync of the database file rarer.
// Measured here: 1.5 to 1.8 times the enqueue rate of the default, for a WAL
// of up to about 40 MB with 4 KiB pages.
const walAutocheckpoint = 10000

// failureLogEvery bounds how often a queue that keeps failing logs.
const failureLogEvery = 10 * time.Second

// runCommitter is the committer goroutine: it takes every request that
// arrived since its last round and commits them together, until Close.
func (q *Queue) runCommitter() {
	defer q.wg.Done()

	// Two buffers take turns as the incoming list, so that a steady stream
	// of requests allocates nothing here.
	var spare []*request
	for {
		select {
		case <-q.wake:
		case <-q.stop:
			q.failRemaining()
			return
		}

		q.mu.Lock()
		batch := q.incoming
		q.incoming = spare[:0]
		q.mu.Unlock()

		q.commit(batch)
		clear(batch) // let finished requests be collected
		spare = batch
	}
}

// failRemaining answers every request that Close left waiting.
func (q *Queue) failRemaining() {
	q.mu.Lock()
	batch := q.incoming
	q.incoming = nil
	q.mu.Unlock()

	for _, r := range batch {
		r.err = ErrClosed
		r.finish()
	}
}

// commit writes batch in one transaction and answers every request in it.
// Runs on the committer goroutine only.
func (q *Queue) commit(batch []*request) {
	if len(batch) == 0 {
		return
	}
	// The committer's operations are bounded by the busy timeout of the
	// connection, not by any caller: a caller who gives up must not abort
	// the commit of everyone else.
	ctx := context.Background()

	err := q.w.ensureOpen(ctx, q.db, q.opts.Synchronous)
	if err == nil {
		if batch = q.runHooks(ctx, batch); len(batch) == 0 {
			return
		}
		start := time.Now()
		if err = q.w.transact(ctx, batch, q.opts.MaxPerUser); err == nil {
			q.stats.commits.Add(1)
			q.stats.requests.Add(uint64(len(batch)))
			q.stats.nanos.Add(int64(time.Since(start)))
		}
	}
	if err != nil {
		q.fail(batch, err)
	} else if q.w.wrote {
		q.recovered()
		select {
		case q.wrote <- struct{}{}:
		default: // the checkpointer has a signal pending
		}
	}
	for _, r := range batch {
		r.finish()
	}
}

// finish tells the waiting caller, if any, that r's outputs are set.
func (r *request) finish() {
	if r.done != nil {
		close(r.done)
	}
}

// runHooks runs and answers the test hooks in batch, outside any
// transaction, and returns the other requests.
func (q *Queue) runHooks(ctx context.Context, batch []*request) []*request {
	rest := batch[:0]
	for _, r := range batch {
		if r.op != opHook {
			rest = append(rest, r)
			continue
		}
		r.err = r.hook(ctx, q.w.conn)
		r.finish()
	}
	return rest
}

// fail gives every request of a failed group an ErrUnavailable error, marks
// the queue unhealthy and drops the writer's connection, whose state after
// a failed commit is not to be trusted.
func (q *Queue) fail(batch []*request, cause error) {
	err := fmt.Errorf("%w: %w", ErrUnavailable, cause)
	for _, r := range batch {
		r.err = err
		r.ids = nil
	}
	q.w.discard()
	q.unhealthy.Store(&err)

	// A full disk fails every commit; log the first failure and then a
	// summary now and then instead of once per group.
	q.w.failures++
	now := time.Now()
	if q.w.failures == 1 || now.Sub(q.w.lastLog) >= failureLogEvery {
		q.logger.Error("offline queue cannot commit; messages refused",
			"err", cause, "requests", len(batch), "failures", q.w.failures)
		q.w.lastLog = now
	}
}

// recovered clears the unhealthy state after a successful commit.
func (q *Queue) recovered() {
	if q.w.failures == 0 {
		return
	}
	q.unhealthy.Store(nil)
	q.logger.Info("offline queue commits again", "failures", q.w.failures)
	q.w.failures = 0
}

// withWriter runs fn on the committer's connection between two commits.
// Tests use it to change the connection's limits.
func (q *Queue) withWriter(ctx context.Context, fn func(context.Context, *sql.Conn) error) error {
	return q.do(ctx, &request{op: opHook, hook: fn})
}

// writer is the committer's connection, its prepared statements and the
// state derived from what it wrote. Only the committer goroutine uses it
// (Open and Close touch it while the committer is not running).
type writer struct {
	conn      *sql.Conn
	insert    *sql.Stmt
	del       *sql.Stmt
	delMany   *sql.Stmt
	delClient *sql.Stmt
	expire    *sql.Stmt
	count     *sql.Stmt

	// counts holds the number of queued messages of recipients the
	// committer has touched, as seen by the open transaction. An absent
	// recipient is loaded from the table on first use; a recipient whose
	// count falls to zero is dropped to keep the map small. It is emptied
	// after a failed commit, when nothing it says can be trusted.
	counts map[string]int

	// inserts holds multi-row INSERT statements by their count of rows,
	// a power of two up to insertChunk, prepared on first use.
	inserts map[int]*sql.Stmt

	// rows collects the messages of a group's enqueues after their cap
	// check, so that they are inserted by a few multi-row statements.
	rows []pendingRow

	// purges collects the IDs of a group's lazy deletions by recipient, so
	// that each recipient's are deleted by one statement however many
	// acknowledgements named them.
	purges map[string][]int64

	// wrote records whether the open transaction changed any row; only
	// such a commit writes and syncs the WAL.
	wrote bool

	failures int       // failed commits since the last success
	lastLog  time.Time // when a failure was last logged

	// afterOpen, if set, runs on every new connection of the writer. Tests
	// use it to make a failure outlive the discarded connection.
	afterOpen func(context.Context, *sql.Conn) error
}

// open takes a connection from db for the writer and prepares it.
func (w *writer) open(ctx context.Context, db *sql.DB, synchronous string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("offline: opening writer connection: %w", err)
	}
	w.conn = conn

	// synchronous is one of three validated words, never user text.
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = "+synchronous); err != nil {
		w.discard()
		return fmt.Errorf("offline: setting synchronous=%s: %w", synchronous, err)
	}
	// See walAutocheckpoint.
	if _, err := conn.ExecContext(ctx,
		fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", walAutocheckpoint)); err != nil {
		w.discard()
		return fmt.Errorf("offline: setting wal_autocheckpoint: %w", err)
	}
	if w.afterOpen != nil {
		if err := w.afterOpen(ctx, conn); err != nil {
			w.discard()
			return fmt.Errorf("offline: preparing writer connection: %w", err)
		}
	}

	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&w.insert, insertSQL},
		{&w.del, deleteSQL},
		{&w.delMany, deleteManySQL},
		{&w.delClient, deleteClientIDSQL},
		{&w.expire, expireSQL},
		{&w.count, countSQL},
	} {
		if *p.dst, err = conn.PrepareContext(ctx, p.query); err != nil {
			w.discard()
			return fmt.Errorf("offline: preparing writer statements: %w", err)
		}
	}
	// A group of thousands of messages dirties more pages than SQLite's
	// default cache of 2 MiB holds; a spill writes pages to the WAL in the
	// middle of the transaction, and again at its commit.
	if _, err := conn.ExecContext(ctx, "PRAGMA cache_size = -65536"); err != nil {
		w.discard()
		return fmt.Errorf("offline: setting cache_size: %w", err)
	}
	w.counts = make(map[string]int)
	w.inserts = make(map[int]*sql.Stmt)
	return nil
}

// ensureOpen reopens the writer after a failure discarded it.
func (w *writer) ensureOpen(ctx context.Context, db *sql.DB, synchronous string) error {
	if w.conn != nil {
		return nil
	}
	return w.open(ctx, db, synchronous)
}

// discard closes the writer's statements and throws its connection away
// rather than returning it to the pool: it may hold a broken transaction,
// and it carries the queue's synchronous setting, which other users of the
// pool must not inherit.
func (w *writer) discard() {
	for _, s := range []**sql.Stmt{&w.insert, &w.del, &w.delMany, &w.delClient, &w.expire, &w.count} {
		if *s != nil {
			(*s).Close()
			*s = nil
		}
	}
	for _, s := range w.inserts {
		s.Close()
	}
	w.inserts = nil
	clear(w.rows)
	w.rows = w.rows[:0]
	if w.conn != nil {
		// ErrBadConn from Raw makes database/sql close the connection.
		_ = w.conn.Raw(func(any) error { return driver.ErrBadConn })
		w.conn.Close()
		w.conn = nil
	}
	w.counts = nil
}

// close releases the writer for good.
func (w *writer) close() error {
	w.discard()
	return nil
}

// transact applies batch in one transaction. On error the transaction is
// rolled back (as far as SQLite still can) and the error returned; requests
// refused on their own (ErrQueueFull) carry their error and write nothing.
func (w *writer) transact(ctx context.Context, batch []*request, maxPerUser int) error {
	if len(batch) == 0 {
		return nil
	}
	w.wrote = false
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	for _, r := range batch {
		if r.op == opDelete && r.lazy {
			if w.purges == nil {
				w.purges = make(map[string][]int64)
			}
			w.purges[r.to] = append(w.purges[r.to], r.ids...)
			continue
		}
		if err := w.apply(ctx, r, maxPerUser); err != nil {
			w.rollback(ctx)
			return err
		}
	}
	if err := w.purge(ctx); err != nil {
		w.rollback(ctx)
		return err
	}
	if err := w.insertRows(ctx); err != nil {
		w.rollback(ctx)
		return err
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		w.rollback(ctx)
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// rollback ends a failed transaction. SQLite may already have rolled it
// back itself (it does on some I/O errors), so an error here says nothing
// new; the connection is discarded anyway.
func (w *writer) rollback(ctx context.Context) {
	_, _ = w.conn.ExecContext(ctx, "ROLLBACK")
}

func (w *writer) apply(ctx context.Context, r *request, maxPerUser int) error {
	switch r.op {
	case opEnqueue:
		return w.enqueue(ctx, r, maxPerUser)
	case opDelete:
		return w.deleteIDs(ctx, r)
	case opDeleteClientID:
		return w.deleteClientID(ctx, r)
	case opExpire:
		return w.expireOld(ctx, r)
	}
	return fmt.Errorf("offline: unknown request %d", r.op)
}

// enqueue inserts r's messages if every recipient stays within its cap.
func (w *writer) enqueue(ctx context.Context, r *request, maxPerUser int) error {
	if to, err := w.overCap(ctx, r.msgs, maxPerUser); err != nil {
		return err
	} else if to != "" {
		r.err = fmt.Errorf("enqueueing for %s: %w", to, ErrQueueFull)
		return nil
	}

	// The rows are inserted by insertRows, after every request of the
	// group: in the order of the group, so IDs still follow arrival.
	r.ids = make([]int64, len(r.msgs))
	for i := range r.msgs {
		w.rows = append(w.rows, pendingRow{r: r, i: i})
		w.counts[r.msgs[i].To]++ // loaded by overCap
	}
	return nil
}

// pendingRow is message i of request r, checked against its cap and not
// yet inserted.
type pendingRow struct {
	r *request
	i int
}

// insertChunk is the most rows one INSERT statement takes: six parameters a
// row stays far below SQLite's limit of 32766.
const insertChunk = 256

// insertRows inserts the rows collected by enqueue, in their order, with
// statements of insertChunk, then halving, rows. Each statement is one call
// into SQLite instead of one per message: a call that blocks on I/O lets
// the Go scheduler give the only processor (GOMAXPROCS=1) to the sessions,
// and the committer then waits behind all of them to run again.
func (w *writer) insertRows(ctx context.Context) error {
	rows := w.rows
	defer func() {
		clear(w.rows)
		w.rows = w.rows[:0]
	}()
	var args []any
	for n := insertChunk; len(rows) > 0; n /= 2 {
		for len(rows) >= n {
			chunk := rows[:n]
			rows = rows[n:]
			args = args[:0]
			for _, p := range chunk {
				m := &p.r.msgs[p.i]
				payload := m.Payload
				if payload == nil {
					payload = []byte{} // NULL is not allowed
				}
				args = append(args, m.To, m.From, m.ClientID, m.StanzaID,
					m.Stamp.UnixNano(), payload)
			}
			if err := w.insertChunk(ctx, chunk, args); err != nil {
				return err
			}
		}
	}
	return nil
}

// insertChunk runs one multi-row INSERT and hands out the IDs. Under
// AUTOINCREMENT one statement gives its rows consecutive IDs in the order
// of its VALUES, the last being LastInsertId: each row takes one more than
// the largest ID ever used, and only this connection writes.
func (w *writer) insertChunk(ctx context.Context, chunk []pendingRow, args []any) error {
	stmt, err := w.insertStmt(ctx, len(chunk))
	if err != nil {
		return err
	}
	res, err := stmt.ExecContext(ctx, args...)
	if err == nil {
		var last, n int64
		if last, err = res.LastInsertId(); err == nil {
			n, err = res.RowsAffected()
			if err == nil && n != int64(len(chunk)) {
				err = fmt.Errorf("%d rows inserted of %d", n, len(chunk))
			}
		}
		for i, p := range chunk {
			p.r.ids[p.i] = last - int64(len(chunk)-1-i)
		}
	}
	if err != nil {
		return fmt.Errorf("inserting %d messages: %w", len(chunk), err)
	}
	w.wrote = true
	return nil
}

// insertStmt returns the INSERT statement for n rows, preparing it once.
func (w *writer) insertStmt(ctx context.Context, n int) (*sql.Stmt, error) {
	if n == 1 {
		return w.insert, nil
	}
	if s := w.inserts[n]; s != nil {
		return s, nil
	}
	q := insertSQL + strings.Repeat(", (?, ?, ?, ?, ?, ?)", n-1)
	s, err := w.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("preparing insert of %d rows: %w", n, err)
	}
	w.inserts[n] = s
	return s, nil
}

// overCap returns the first recipient in msgs that the messages would take
// past maxPerUser, or "" if all fit. It loads every recipient's count.
func (w *writer) overCap(ctx context.Context, msgs []Message, maxPerUser int) (string, error) {
	if len(msgs) == 1 { // the common case, without a map
		n, err := w.countOf(ctx, msgs[0].To)
		if err != nil || n < maxPerUser {
			return "", err
		}
		return msgs[0].To, nil
	}

	adding := make(map[string]int)
	for _, m := range msgs {
		adding[m.To]++
	}
	for _, m := range msgs {
		n, err := w.countOf(ctx, m.To)
		if err != nil {
			return "", err
		}
		if n+adding[m.To] > maxPerUser {
			return m.To, nil
		}
	}
	return "", nil
}

// countOf returns the number of messages queued for to, loading it from the
// table (inside the open transaction) if it is not known.
func (w *writer) countOf(ctx context.Context, to string) (int, error) {
	if n, ok := w.counts[to]; ok {
		return n, nil
	}
	var n int
	if err := w.count.QueryRowContext(ctx, to).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting messages for %s: %w", to, err)
	}
	w.counts[to] = n
	return n, nil
}

// forget lowers the known count of to by n rows deleted.
func (w *writer) forget(to string, n int) {
	if n > 0 {
		w.wrote = true
	}
	c, ok := w.counts[to]
	if !ok {
		return // loaded from the table when next needed
	}
	if c -= n; c > 0 {
		w.counts[to] = c
	} else {
		delete(w.counts, to)
	}
}

// deleteIDs deletes r's messages: one by one for a few, else with one
// statement that reads the IDs from a JSON array, for the reason given at
// insertRows.
func (w *writer) deleteIDs(ctx context.Context, r *request) error {
	if len(r.ids) > 2 {
		var b strings.Builder
		b.WriteByte('[')
		for i, id := range r.ids {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(id, 10))
		}
		b.WriteByte(']')
		res, err := w.delMany.ExecContext(ctx, r.to, b.String())
		if err != nil {
			return fmt.Errorf("deleting %d messages for %s: %w", len(r.ids), r.to, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("deleting %d messages for %s: %w", len(r.ids), r.to, err)
		}
		w.forget(r.to, int(n))
		return nil
	}
	for _, id := range r.ids {
		res, err := w.del.ExecContext(ctx, id, r.to)
		if err != nil {
			return fmt.Errorf("deleting message %d for %s: %w", id, r.to, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("deleting message %d for %s: %w", id, r.to, err)
		}
		w.forget(r.to, int(n))
	}
	return nil
}

// purge runs the lazy deletions collected by transact, one statement per
// recipient. Nobody waits for them, so their order among the group's
// other requests does not matter: they name messages committed earlier.
func (w *writer) purge(ctx context.Context) error {
	defer clear(w.purges)
	for to, ids := range w.purges {
		if err := w.deleteIDs(ctx, &request{op: opDelete, to: to, ids: ids}); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) deleteClientID(ctx context.Context, r *request) error {
	rows, err := w.delClient.QueryContext(ctx, r.to, r.from, r.clientID)
	if err != nil {
		return fmt.Errorf("deleting receipted message for %s: %w", r.to, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("deleting receipted message for %s: %w", r.to, err)
		}
		r.ids = append(r.ids, id)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("deleting receipted message for %s: %w", r.to, err)
	}
	w.forget(r.to, len(r.ids))
	return nil
}

func (w *writer) expireOld(ctx context.Context, r *request) error {
	rows, err := w.expire.QueryContext(ctx, r.cutoff, r.limit)
	if err != nil {
		return fmt.Errorf("expiring messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var to string
		if err := rows.Scan(&to); err != nil {
			return fmt.Errorf("expiring messages: %w", err)
		}
		w.forget(to, 1)
		r.n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("expiring messages: %w", err)
	}
	return nil
}
