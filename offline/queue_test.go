package offline

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

const (
	alice = "+12025550101@localhost"
	bob   = "+12025550102@localhost"
	carol = "+12025550103@localhost"
)

// openDB opens a SQLite file with the settings the server uses (see
// xmpp/storage): WAL, a busy timeout, immediate write transactions.
func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newQueue opens a queue on a fresh database file; it is closed when the
// test ends.
func newQueue(t testing.TB, opts Options) (*Queue, *sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "queue.db")
	db := openDB(t, path)
	q, err := Open(context.Background(), db, opts, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q, db, path
}

func msg(from, to, clientID string) *Message {
	return &Message{
		To:       to,
		From:     from,
		ClientID: clientID,
		StanzaID: "sid-" + clientID,
		Payload:  []byte(`<message id="` + clientID + `"><body>hi</body></message>`),
	}
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func ids(ms []Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func TestEnqueueIsCommittedBeforeReturn(t *testing.T) {
	for _, mode := range []string{"full", "normal", "off"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.db")
			db := openDB(t, path)
			q, err := Open(context.Background(), db, Options{Synchronous: mode}, nil)
			if err != nil {
				t.Fatal(err)
			}
			m := msg(alice, bob, "c1")
			if err := q.Enqueue(context.Background(), m); err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
			if m.ID == 0 || m.Stamp.IsZero() {
				t.Errorf("Enqueue left ID=%d Stamp=%v", m.ID, m.Stamp)
			}

			// A second, independent database handle sees the row at once:
			// it is committed, not sitting in a buffer.
			other := openDB(t, path)
			var payload []byte
			err = other.QueryRow(`SELECT payload FROM offline_messages WHERE id = ?`,
				m.ID).Scan(&payload)
			if err != nil || !bytes.Equal(payload, m.Payload) {
				t.Fatalf("other handle read %q, %v; want the payload", payload, err)
			}

			// The writer really runs with the requested mode.
			var got int
			err = q.withWriter(context.Background(), func(ctx context.Context, c *sql.Conn) error {
				return c.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&got)
			})
			want := map[string]int{"off": 0, "normal": 1, "full": 2}[mode]
			if err != nil || got != want {
				t.Errorf("writer synchronous = %d, %v; want %d", got, err, want)
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOpenOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
	}{
		{"defaults", Options{}, false},
		{"upper case mode", Options{Synchronous: "NORMAL"}, false},
		{"bad mode", Options{Synchronous: "extra"}, true},
		{"injection", Options{Synchronous: "full; DROP TABLE x"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openDB(t, filepath.Join(t.TempDir(), "q.db"))
			q, err := Open(context.Background(), db, tt.opts, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Open error = %v, want error %v", err, tt.wantErr)
			}
			if q != nil {
				q.Close()
			}
		})
	}
}

func TestPendingOrderAndFields(t *testing.T) {
	q, _, _ := newQueue(t, Options{})
	ctx := context.Background()

	// Interleave two recipients so that bob's IDs have gaps.
	var bobs []*Message
	for i := range 6 {
		m := msg(alice, bob, fmt.Sprint("b", i))
		m.Stamp = time.Date(2025, 1, 2, 3, 4, 5, 600+i, time.UTC)
		if err := q.Enqueue(ctx, m); err != nil {
			t.Fatal(err)
		}
		bobs = append(bobs, m)
		if err := q.Enqueue(ctx, msg(bob, carol, fmt.Sprint("c", i))); err != nil {
			t.Fatal(err)
		}
	}

	all, err := q.Pending(ctx, bob, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(bobs) {
		t.Fatalf("Pending returned %d messages, want %d", len(all), len(bobs))
	}
	for i, got := range all {
		want := *bobs[i]
		if got.ID != want.ID || got.To != want.To || got.From != want.From ||
			got.ClientID != want.ClientID || got.StanzaID != want.StanzaID ||
			!got.Stamp.Equal(want.Stamp) || got.Stamp.Location() != time.UTC ||
			!bytes.Equal(got.Payload, want.Payload) {
			t.Errorf("message %d = %+v, want %+v", i, got, want)
		}
	}

	tests := []struct {
		name    string
		afterID int64
		limit   int
		want    []int64
	}{
		{"first page", 0, 2, []int64{bobs[0].ID, bobs[1].ID}},
		{"next page", bobs[1].ID, 2, []int64{bobs[2].ID, bobs[3].ID}},
		{"after an id of another user", bobs[1].ID + 1, 1, []int64{bobs[2].ID}},
		{"tail without limit", bobs[3].ID, 0, []int64{bobs[4].ID, bobs[5].ID}},
		{"past the end", bobs[5].ID, 10, []int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := q.Pending(ctx, bob, tt.afterID, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tt.want) {
				t.Errorf("Pending = %v, want %v", ids(got), tt.want)
			}
		})
	}
}

func TestDeleteOnlyTouchesRecipient(t *testing.T) {
	tests := []struct {
		name      string
		deleteFor string
		pick      func(forBob, forCarol []int64) []int64
		wantBob   int
		wantCarol int
	}{
		{"own ids", bob, func(b, c []int64) []int64 { return b[:2] }, 1, 3},
		{"another user's ids", bob, func(b, c []int64) []int64 { return c }, 3, 3},
		{"mixed ids", carol, func(b, c []int64) []int64 { return append(b, c[0]) }, 3, 2},
		{"unknown ids", bob, func(b, c []int64) []int64 { return []int64{-1, 1 << 40} }, 3, 3},
		{"twice the same id", bob, func(b, c []int64) []int64 { return []int64{b[0], b[0]} }, 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _, _ := newQueue(t, Options{})
			ctx := context.Background()
			var forBob, forCarol []int64
			for i := range 3 {
				b, c := msg(alice, bob, fmt.Sprint(i)), msg(alice, carol, fmt.Sprint(i))
				if err := q.EnqueueBatch(ctx, []*Message{b, c}); err != nil {
					t.Fatal(err)
				}
				forBob, forCarol = append(forBob, b.ID), append(forCarol, c.ID)
			}

			if err := q.Delete(ctx, tt.deleteFor, tt.pick(forBob, forCarol)); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			for _, c := range []struct {
				to   string
				want int
			}{{bob, tt.wantBob}, {carol, tt.wantCarol}} {
				n, err := q.Count(ctx, c.to)
				if err != nil || n != c.want {
					t.Errorf("Count(%s) = %d, %v; want %d", c.to, n, err, c.want)
				}
			}
		})
	}
}

func TestDeleteByClientID(t *testing.T) {
	q, _, _ := newQueue(t, Options{})
	ctx := context.Background()
	fromAlice := msg(alice, bob, "x1")
	fromCarol := msg(carol, bob, "x1")
	second := msg(alice, bob, "x2")
	toCarol := msg(alice, carol, "x1")
	if err := q.EnqueueBatch(ctx, []*Message{fromAlice, fromCarol, second, toCarol}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name          string
		to, from, cid string
		want          []int64
		wantBobLeft   int
		wantCarolLeft int
	}{
		{"wrong recipient", carol, bob, "x1", nil, 3, 1},
		{"no client id", bob, alice, "", nil, 3, 1},
		{"receipt for alice's message", bob, alice, "x1", []int64{fromAlice.ID}, 2, 1},
		{"again removes nothing", bob, alice, "x1", nil, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := q.DeleteByClientID(ctx, tt.to, tt.from, tt.cid)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("DeleteByClientID = %v, %v; want %v", got, err, tt.want)
			}
			if n, _ := q.Count(ctx, bob); n != tt.wantBobLeft {
				t.Errorf("bob has %d, want %d", n, tt.wantBobLeft)
			}
			if n, _ := q.Count(ctx, carol); n != tt.wantCarolLeft {
				t.Errorf("carol has %d, want %d", n, tt.wantCarolLeft)
			}
		})
	}
}

func TestCap(t *testing.T) {
	const max = 3
	q, db, _ := newQueue(t, Options{MaxPerUser: max})
	ctx := context.Background()

	var held []int64
	for i := range max {
		m := msg(alice, bob, fmt.Sprint(i))
		if err := q.Enqueue(ctx, m); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		held = append(held, m.ID)
	}

	steps := []struct {
		name    string
		do      func() error
		wantErr error
		wantBob int
	}{
		{"over the cap", func() error { return q.Enqueue(ctx, msg(alice, bob, "x")) },
			ErrQueueFull, max},
		{"other recipient unaffected", func() error { return q.Enqueue(ctx, msg(alice, carol, "x")) },
			nil, max},
		{"delete frees room", func() error { return q.Delete(ctx, bob, held[:1]) }, nil, max - 1},
		{"room used again", func() error { return q.Enqueue(ctx, msg(alice, bob, "y")) }, nil, max},
		{"batch over the cap stores nothing", func() error {
			return q.EnqueueBatch(ctx, []*Message{msg(alice, carol, "z"), msg(alice, bob, "z")})
		}, ErrQueueFull, max},
		{"batch within the cap", func() error {
			if err := q.Delete(ctx, bob, held[1:]); err != nil {
				return err
			}
			return q.EnqueueBatch(ctx, []*Message{msg(alice, bob, "p"), msg(carol, bob, "q")})
		}, nil, max},
		{"batch two past the cap", func() error {
			return q.EnqueueBatch(ctx, []*Message{msg(alice, bob, "r"), msg(carol, bob, "s")})
		}, ErrQueueFull, max},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := s.do(); !errors.Is(err, s.wantErr) {
				t.Fatalf("error = %v, want %v", err, s.wantErr)
			}
			if n, _ := q.Count(ctx, bob); n != s.wantBob {
				t.Errorf("bob has %d, want %d", n, s.wantBob)
			}
		})
	}
	if n, _ := q.Count(ctx, carol); n != 1 {
		t.Errorf("carol has %d, want 1: a refused batch stored part of itself", n)
	}

	// A new queue on the same table learns the counts from the table.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, err := Open(ctx, db, Options{MaxPerUser: max}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if err := q2.Enqueue(ctx, msg(alice, bob, "after restart")); !errors.Is(err, ErrQueueFull) {
		t.Errorf("after restart: error = %v, want ErrQueueFull", err)
	}
}

func TestExpiry(t *testing.T) {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start}
	// ExpireEvery is long: the test drives expiry itself, except where it
	// checks the goroutine.
	q, _, _ := newQueue(t, Options{
		MaxAge: time.Hour, MaxPerUser: 2, ExpireEvery: time.Hour, Now: clock.Now,
	})
	ctx := context.Background()

	old := msg(alice, bob, "old")
	if err := q.Enqueue(ctx, old); err != nil {
		t.Fatal(err)
	}
	clock.Advance(40 * time.Minute)
	young := msg(alice, bob, "young")
	if err := q.Enqueue(ctx, young); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, msg(alice, bob, "full")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third message: %v, want ErrQueueFull", err)
	}

	steps := []struct {
		name        string
		advance     time.Duration
		wantExpired int
		wantLeft    []int64
	}{
		{"nothing old yet", 0, 0, []int64{old.ID, young.ID}},
		{"exactly max age is kept", 20 * time.Minute, 0, []int64{old.ID, young.ID}},
		{"older than max age goes", time.Nanosecond, 1, []int64{young.ID}},
		{"the rest later", time.Hour, 1, []int64{}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clock.Advance(s.advance)
			n, err := q.expire(ctx)
			if err != nil || n != s.wantExpired {
				t.Fatalf("expire = %d, %v; want %d", n, err, s.wantExpired)
			}
			left, _ := q.Pending(ctx, bob, 0, 0)
			if !slices.Equal(ids(left), s.wantLeft) {
				t.Errorf("left %v, want %v", ids(left), s.wantLeft)
			}
		})
	}

	// The in-memory count followed the expiry: the cap has room again.
	for i := range 2 {
		if err := q.Enqueue(ctx, msg(alice, bob, fmt.Sprint("new", i))); err != nil {
			t.Fatalf("enqueue after expiry: %v", err)
		}
	}

	t.Run("backlog larger than a chunk", func(t *testing.T) {
		q, _, _ := newQueue(t, Options{
			MaxAge: time.Hour, ExpireEvery: time.Hour, Now: clock.Now,
		})
		const n = 2*expireChunk + 17
		batch := make([]*Message, n)
		for i := range batch {
			batch[i] = msg(alice, fmt.Sprint("+1202555", 1000+i%50, "@localhost"), fmt.Sprint(i))
		}
		if err := q.EnqueueBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		clock.Advance(2 * time.Hour)
		if got, err := q.expire(ctx); err != nil || got != n {
			t.Fatalf("expire = %d, %v; want %d", got, err, n)
		}
	})

	t.Run("the goroutine runs it", func(t *testing.T) {
		q, _, _ := newQueue(t, Options{
			MaxAge: time.Hour, ExpireEvery: time.Millisecond, Now: clock.Now,
		})
		if err := q.Enqueue(ctx, msg(alice, bob, "g")); err != nil {
			t.Fatal(err)
		}
		clock.Advance(2 * time.Hour)
		waitFor(t, "expiry goroutine", func() bool {
			n, err := q.Count(ctx, bob)
			return err == nil && n == 0
		})
	})
}

func TestClose(t *testing.T) {
	t.Run("calls after close", func(t *testing.T) {
		q, db, _ := newQueue(t, Options{})
		ctx := context.Background()
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		if err := q.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := q.Enqueue(ctx, msg(alice, bob, "late")); !errors.Is(err, ErrClosed) {
			t.Errorf("Enqueue after Close: %v, want ErrClosed", err)
		}
		if err := q.Delete(ctx, bob, []int64{1}); !errors.Is(err, ErrClosed) {
			t.Errorf("Delete after Close: %v, want ErrClosed", err)
		}
		// The writer's connection was given back (and discarded).
		if s := db.Stats(); s.InUse != 0 {
			t.Errorf("%d connections still in use after Close", s.InUse)
		}
	})

	t.Run("racing enqueues never see a false success", func(t *testing.T) {
		q, db, _ := newQueue(t, Options{})
		ctx := context.Background()
		const senders = 32
		var wg sync.WaitGroup
		results := make([][]error, senders)
		sent := make([][]*Message, senders)
		for s := range senders {
			wg.Go(func() {
				for i := 0; ; i++ {
					m := msg(alice, bob, fmt.Sprintf("s%d-%d", s, i))
					err := q.Enqueue(ctx, m)
					sent[s], results[s] = append(sent[s], m), append(results[s], err)
					if err != nil {
						return
					}
				}
			})
		}
		waitFor(t, "some commits", func() bool {
			n, _ := q.Count(ctx, bob)
			return n > 100
		})
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()

		for s := range senders {
			for i, m := range sent[s] {
				var stored int
				err := db.QueryRow(`SELECT COUNT(*) FROM offline_messages WHERE client_id = ?`,
					m.ClientID).Scan(&stored)
				if err != nil {
					t.Fatal(err)
				}
				switch err := results[s][i]; {
				case err == nil && stored != 1:
					t.Errorf("%s reported stored but is not", m.ClientID)
				case errors.Is(err, ErrClosed) && stored != 0:
					t.Errorf("%s reported ErrClosed but is stored", m.ClientID)
				case err != nil && !errors.Is(err, ErrClosed):
					t.Errorf("%s: unexpected error %v", m.ClientID, err)
				}
			}
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		q, _, _ := newQueue(t, Options{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := q.Enqueue(ctx, msg(alice, bob, "c")); !errors.Is(err, context.Canceled) {
			t.Errorf("Enqueue = %v, want context.Canceled", err)
		}
		if n, _ := q.Count(context.Background(), bob); n != 0 {
			t.Errorf("%d messages stored for a cancelled call", n)
		}
	})
}

func TestConcurrentEnqueue(t *testing.T) {
	q, _, _ := newQueue(t, Options{})
	ctx := context.Background()
	const senders, each = 40, 50
	recipients := []string{bob, carol, "+12025550104@localhost"}

	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				m := msg(fmt.Sprintf("+1303555%04d@localhost", s),
					recipients[(s+i)%len(recipients)], fmt.Sprintf("%d-%d", s, i))
				if err := q.Enqueue(ctx, m); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Enqueue: %v", err)
	}

	// Each sender waited for every commit before its next message, so its
	// messages must come out in the order it sent them.
	total := 0
	seen := map[int64]bool{}
	last := map[string]int{}
	for _, to := range recipients {
		ms, err := q.Pending(ctx, to, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		total += len(ms)
		for _, m := range ms {
			if seen[m.ID] {
				t.Fatalf("ID %d given twice", m.ID)
			}
			seen[m.ID] = true
			var s, i int
			fmt.Sscanf(m.ClientID, "%d-%d", &s, &i)
			key := m.From + " " + to
			if prev, ok := last[key]; ok && i <= prev {
				t.Errorf("%s: message %d delivered after %d", key, i, prev)
			}
			last[key] = i
		}
	}
	if total != senders*each {
		t.Errorf("%d messages stored, want %d", total, senders*each)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCommitFailure makes SQLite run out of room for real (SQLITE_FULL
// through max_page_count, the error a full disk gives) and checks that no
// caller is told its message is stored.
func TestCommitFailure(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	db := openDB(t, filepath.Join(t.TempDir(), "queue.db"))
	ctx := context.Background()
	q, err := Open(ctx, db, Options{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := q.Enqueue(ctx, msg(alice, bob, "before")); err != nil {
		t.Fatal(err)
	}

	// Cap the file at its present size on this connection and on every
	// connection the writer opens after discarding a failed one, so the
	// "disk" stays full until the test frees it.
	fill := func(ctx context.Context, c *sql.Conn) error {
		var pages int
		if err := c.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
			return err
		}
		_, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages))
		return err
	}
	err = q.withWriter(ctx, func(ctx context.Context, c *sql.Conn) error {
		q.w.afterOpen = fill // on the committer goroutine: no race
		return fill(ctx, c)
	})
	if err != nil {
		t.Fatal(err)
	}

	const secret = "SECRET-BODY-TEXT"
	big := func(id string) *Message {
		m := msg(alice, bob, id)
		m.Payload = []byte(strings.Repeat(secret, 64<<10/len(secret)))
		return m
	}

	t.Run("one message", func(t *testing.T) {
		err := q.Enqueue(ctx, big("f1"))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Enqueue = %v, want ErrUnavailable", err)
		}
		t.Logf("the full disk gave: %v", err)
		if h := q.Healthy(); !errors.Is(h, ErrUnavailable) {
			t.Errorf("Healthy = %v, want ErrUnavailable", h)
		}
	})

	t.Run("concurrent senders all fail", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 16)
		for i := range errs {
			wg.Go(func() { errs[i] = q.Enqueue(ctx, big(fmt.Sprint("g", i))) })
		}
		wg.Wait()
		for i, err := range errs {
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("sender %d: %v, want ErrUnavailable", i, err)
			}
		}
	})

	t.Run("nothing failed was stored", func(t *testing.T) {
		ms, err := q.Pending(ctx, bob, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 1 || ms[0].ClientID != "before" {
			t.Errorf("queue holds %d messages, want only the one before the failure", len(ms))
		}
	})

	t.Run("logged at error without the payload", func(t *testing.T) {
		out := logs.String()
		if !strings.Contains(out, `"level":"ERROR"`) ||
			!strings.Contains(out, `"component":"offline"`) {
			t.Errorf("no error log from component offline:\n%s", out)
		}
		if strings.Contains(out, secret) {
			t.Error("the log contains a payload")
		}
	})

	t.Run("a commit that changes nothing proves nothing", func(t *testing.T) {
		if err := q.Delete(ctx, bob, []int64{1 << 40}); err != nil {
			t.Fatalf("Delete of an unknown id: %v", err)
		}
		if h := q.Healthy(); !errors.Is(h, ErrUnavailable) {
			t.Errorf("Healthy = %v after an empty commit, want ErrUnavailable", h)
		}
	})

	t.Run("recovers once there is room", func(t *testing.T) {
		err := q.withWriter(ctx, func(ctx context.Context, c *sql.Conn) error {
			q.w.afterOpen = nil
			_, err := c.ExecContext(ctx, "PRAGMA max_page_count = 1073741823")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		m := big("after")
		if err := q.Enqueue(ctx, m); err != nil {
			t.Fatalf("Enqueue after freeing room: %v", err)
		}
		if h := q.Healthy(); h != nil {
			t.Errorf("Healthy = %v after a successful commit", h)
		}
		if n, _ := q.Count(ctx, bob); n != 2 {
			t.Errorf("bob has %d messages, want 2", n)
		}
	})
}

// TestStats: each commit, the requests it held and its time are counted.
func TestStats(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "queue.db"))
	q, err := Open(context.Background(), db, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if s := q.Stats(); s.Commits != 0 || s.Requests != 0 {
		t.Fatalf("a new queue reports %+v", s)
	}
	for i := range 3 {
		if err := q.Enqueue(context.Background(), msg(alice, bob, fmt.Sprint("s", i))); err != nil {
			t.Fatal(err)
		}
	}
	s := q.Stats()
	if s.Commits < 1 || s.Commits > 3 || s.Requests != 3 || s.CommitTime <= 0 {
		t.Fatalf("after three enqueues: %+v", s)
	}
}
