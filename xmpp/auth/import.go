package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// ImportRecord is one account to create with Store.Import.
type ImportRecord struct {
	Line     int    // line in the source file, for reports; may be 0
	Local    string // canonical localpart, as for Store.Create
	Kind     Kind   // "" means KindPhone
	Password string
}

// Rejected is a record that Import did not create, with the reason.
type Rejected struct {
	Line   int
	Local  string
	Reason string // "duplicate", or why the name is invalid; never the password
}

// ImportResult summarises an import.
type ImportResult struct {
	Created    int
	Duplicates int // names already registered or repeated in the records
	Invalid    int
	Rejected   []Rejected // every duplicate and invalid record, in record order
	Derived    int        // PBKDF2 credential pairs computed
}

// ImportOption changes how Import works.
type ImportOption func(*importConfig)

type importConfig struct {
	sharedSalt bool
	batch      int
}

// SharedSalt makes Import derive the credentials of each distinct password
// once, with one salt, and give them to every account with that password.
//
// This is acceptable only for test populations (a million accounts with one
// password): accounts that share a password then share identical stored
// keys, so the database shows which accounts have the same password, and
// one offline attack recovers them all. Real users must each get their own
// salt, which is what Import does without this option.
func SharedSalt(on bool) ImportOption {
	return func(c *importConfig) { c.sharedSalt = on }
}

// importChunk is the unit of work passed from the workers to the writer.
const importChunk = 512

type derivedChunk struct {
	seq   int
	start int
	creds [][2]Cred // nil entry for an invalid record
	errs  []error
}

// Import creates many accounts. Keys are derived by workers goroutines
// (workers < 1 means one per CPU) and inserted in transactions of many
// thousand rows by one writer. progress, if not nil, is called from the
// calling goroutine with the number of records handled so far.
//
// Records whose name exists already, or appears earlier in records, are
// skipped and reported as duplicates; invalid names are reported and skipped.
// If ctx is cancelled the import stops; batches already committed stay.
// Import does not call OnChange.
func (s *Store) Import(ctx context.Context, records []ImportRecord, workers int,
	progress func(done, total int), opts ...ImportOption) (ImportResult, error) {
	cfg := importConfig{batch: 50000}
	for _, o := range opts {
		o(&cfg)
	}
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	dup, err := s.findDuplicates(ctx, records)
	if err != nil {
		return ImportResult{}, err
	}
	d := &deriver{iterations: s.Iterations, shared: cfg.sharedSalt, dup: dup,
		cache: map[string]*sharedCred{}}
	jobs := make(chan int)
	out := make(chan derivedChunk, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range jobs {
				c := d.chunk(records, seq)
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for seq := 0; seq*importChunk < len(records); seq++ {
			select {
			case jobs <- seq:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(out) }()

	res, err := s.writeImport(ctx, records, out, cfg.batch, progress)
	cancel()
	for range out {
		// Drain so that the workers can exit.
	}
	res.Derived = d.derived()
	return res, err
}

var errDuplicate = errors.New("duplicate")

// findDuplicates marks the records whose name is already registered or
// appears earlier in records, so that no keys are derived for them (at a
// millisecond each, re-running a large import would otherwise cost
// minutes). The insert still checks, for accounts created meanwhile.
func (s *Store) findDuplicates(ctx context.Context, records []ImportRecord) ([]bool, error) {
	seen := make(map[string]struct{}, len(records))
	rows, err := s.db.QueryContext(ctx, `SELECT local FROM auth_accounts`)
	if err != nil {
		return nil, fmt.Errorf("importing accounts: listing existing: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			return nil, fmt.Errorf("importing accounts: listing existing: %w", err)
		}
		seen[l] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("importing accounts: listing existing: %w", err)
	}
	dup := make([]bool, len(records))
	for i, r := range records {
		if _, ok := seen[r.Local]; ok {
			dup[i] = true
			continue
		}
		seen[r.Local] = struct{}{}
	}
	return dup, nil
}

// deriver computes credentials for chunks of records; it is shared by the
// workers.
type deriver struct {
	iterations int
	shared     bool
	dup        []bool // records known to be duplicates, which need no keys

	mu      sync.Mutex
	cache   map[string]*sharedCred // by password; guarded by mu
	counter int                    // credential pairs derived; guarded by mu
}

type sharedCred struct {
	once sync.Once
	c    [2]Cred
}

func (d *deriver) derived() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.counter
}

func (d *deriver) chunk(records []ImportRecord, seq int) derivedChunk {
	start := seq * importChunk
	end := min(start+importChunk, len(records))
	c := derivedChunk{seq: seq, start: start,
		creds: make([][2]Cred, end-start), errs: make([]error, end-start)}
	for i := start; i < end; i++ {
		r := records[i]
		kind := r.Kind
		if kind == "" {
			kind = KindPhone
		}
		if err := validLocal(r.Local, kind); err != nil {
			c.errs[i-start] = err
			continue
		}
		if d.dup[i] {
			c.errs[i-start] = errDuplicate
			continue
		}
		c.creds[i-start] = d.creds(r.Password)
	}
	return c
}

func (d *deriver) creds(password string) [2]Cred {
	if !d.shared {
		c1, c256 := NewCredentials(password, d.iterations)
		d.mu.Lock()
		d.counter++
		d.mu.Unlock()
		return [2]Cred{c1, c256}
	}
	d.mu.Lock()
	e, ok := d.cache[password]
	if !ok {
		e = &sharedCred{}
		d.cache[password] = e
	}
	d.mu.Unlock()
	e.once.Do(func() {
		c1, c256 := NewCredentials(password, d.iterations)
		e.c = [2]Cred{c1, c256}
		d.mu.Lock()
		d.counter++
		d.mu.Unlock()
	})
	return e.c
}

// writeImport inserts chunks in record order, so that the first of two equal
// names wins, committing every batch rows.
func (s *Store) writeImport(ctx context.Context, records []ImportRecord, in <-chan derivedChunk,
	batch int, progress func(done, total int)) (ImportResult, error) {
	var res ImportResult
	w := &importTx{s: s, batch: batch, created: time.Now()}
	defer w.rollback()

	pending := map[int]derivedChunk{}
	next, done := 0, 0
	for {
		var c derivedChunk
		var ok bool
		select {
		case c, ok = <-in:
		case <-ctx.Done():
			return res, fmt.Errorf("importing accounts: %w", ctx.Err())
		}
		if !ok {
			break
		}
		pending[c.seq] = c
		for {
			c, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if err := w.insertChunk(ctx, records, c, &res); err != nil {
				return res, err
			}
			done += len(c.creds)
			if progress != nil {
				progress(done, len(records))
			}
		}
	}
	if err := w.commit(); err != nil {
		return res, err
	}
	return res, nil
}

// importTx holds the open transaction of an import.
type importTx struct {
	s       *Store
	batch   int
	created time.Time
	tx      *sql.Tx
	stmt    *sql.Stmt
	rows    int
}

func (w *importTx) insertChunk(ctx context.Context, records []ImportRecord, c derivedChunk,
	res *ImportResult) error {
	for i, cr := range c.creds {
		r := records[c.start+i]
		if err := c.errs[i]; err == errDuplicate {
			res.Duplicates++
			res.Rejected = append(res.Rejected, Rejected{Line: r.Line, Local: r.Local, Reason: "duplicate"})
			continue
		} else if err != nil {
			res.Invalid++
			res.Rejected = append(res.Rejected, Rejected{Line: r.Line, Local: r.Local, Reason: err.Error()})
			continue
		}
		if w.tx == nil {
			if err := w.begin(ctx); err != nil {
				return err
			}
		}
		kind := r.Kind
		if kind == "" {
			kind = KindPhone
		}
		rs, err := w.stmt.ExecContext(ctx, insertArgs(r.Local, kind, w.created, cr[0], cr[1])...)
		if err != nil {
			return fmt.Errorf("importing %s (line %d): %w", r.Local, r.Line, err)
		}
		if n, _ := rs.RowsAffected(); n == 0 {
			res.Duplicates++
			res.Rejected = append(res.Rejected, Rejected{Line: r.Line, Local: r.Local, Reason: "duplicate"})
			continue
		}
		res.Created++
		w.rows++
		if w.rows >= w.batch {
			if err := w.commit(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *importTx) begin(ctx context.Context) error {
	tx, err := w.s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("importing accounts: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, insertSQL)
	if err != nil {
		tx.Rollback()
		return fmt.Errorf("importing accounts: %w", err)
	}
	w.tx, w.stmt, w.rows = tx, stmt, 0
	return nil
}

func (w *importTx) commit() error {
	if w.tx == nil {
		return nil
	}
	w.stmt.Close()
	err := w.tx.Commit()
	w.tx, w.stmt = nil, nil
	if err != nil {
		return fmt.Errorf("importing accounts: committing: %w", err)
	}
	return nil
}

func (w *importTx) rollback() {
	if w.tx != nil {
		w.stmt.Close()
		w.tx.Rollback()
		w.tx, w.stmt = nil, nil
	}
}
