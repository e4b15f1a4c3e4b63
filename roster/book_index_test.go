package roster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// listDirectory is a directory that can list its numbers, so that Book
// matches from memory.
type listDirectory struct{ *directory }

func (d listDirectory) AllRegistered(_ context.Context, fn func(string)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for n := range d.numbers {
		fn(n)
	}
	return nil
}

func TestBookCodec(t *testing.T) {
	for _, book := range []map[string]string{
		{},
		{"+12025550101": ""},
		{"+12025550101": "Anna", "+49301234567": "Bob, Berlin", "+999999999999999": "x"},
	} {
		t.Run(fmt.Sprint(len(book)), func(t *testing.T) {
			got, err := bookMap(encodeBook(sortBook(book)))
			if err != nil || !maps.Equal(got, book) {
				t.Errorf("round trip of %v: %v, %v", book, got, err)
			}
		})
	}
	for _, bad := range [][]byte{{9}, {bookFormat, 0x80}, {bookFormat, 1, 5, 'a'}} {
		if _, err := bookMap(bad); !errors.Is(err, errBadBook) {
			t.Errorf("bookMap(%v) = %v, want errBadBook", bad, err)
		}
	}
}

// TestListerMatchesInMemory checks that with a Lister the registered set
// is read once and kept current by Joined and Left, not asked again.
func TestListerMatchesInMemory(t *testing.T) {
	ctx := context.Background()
	dir := listDirectory{newDirectory(aliceNum, bobNum)}
	b, s := newTestBook(t, dir, 0)
	res, err := b.Sync(ctx, alice, []Entry{{bobNum, "Bob"}, {carolNum, "Carol"}})
	if err != nil || len(res.Matches) != 1 || res.Matches[0].Number != bobNum {
		t.Fatalf("first upload: %+v, %v", res, err)
	}
	// Registered behind the Book's back: not seen until Joined says so.
	dir.numbers[carolNum] = true
	if res, _ := b.Sync(ctx, bob, []Entry{{carolNum, ""}}); len(res.Matches) != 0 {
		t.Errorf("matched %+v before Joined", res.Matches)
	}
	pushes, err := b.Joined(ctx, carolNum)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pushFor(pushes, alice, carol); !ok {
		t.Errorf("joined pushes %+v lack Alice's", pushes)
	}
	if _, ok := pushFor(pushes, bob, carol); !ok {
		t.Errorf("joined pushes %+v lack Bob's", pushes)
	}
	// The same book again is matched from memory too.
	res, err = b.Sync(ctx, alice, []Entry{{bobNum, "Bob"}, {carolNum, "Carol"}})
	if err != nil || len(res.Matches) != 2 || len(res.Pushes) != 0 {
		t.Errorf("same book: %+v, %v", res, err)
	}
	if _, err := b.Left(ctx, carolNum); err != nil {
		t.Fatal(err)
	}
	res, err = b.Sync(ctx, alice, []Entry{{carolNum, "Carol"}})
	if err != nil || len(res.Matches) != 0 {
		t.Errorf("after Left: %+v, %v", res, err)
	}
	if it, ok, _ := s.Get(ctx, alice, bob); ok {
		t.Errorf("Bob left Alice's book but stays: %+v", it)
	}
}

// TestIndexSurvivesReopen checks that a second Book on the same database
// (a restart, or the command line) rebuilds the reverse index from the
// stored books, and that the changes it logs reach the first one.
func TestIndexSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := listDirectory{newDirectory(aliceNum, bobNum)}
	server, s := newTestBook(t, dir, 0)
	if _, err := server.Sync(ctx, alice, []Entry{{carolNum, "Carol"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Sync(ctx, bob, []Entry{{carolNum, ""}, {aliceNum, ""}}); err != nil {
		t.Fatal(err)
	}
	cli := NewBook(s, dir, "localhost", 0, WithAccountLog())
	dir.numbers[carolNum] = true
	pushes, err := cli.JoinedMany(ctx, []string{carolNum, "+12025550199"})
	if err != nil || len(pushes) != 2 {
		t.Fatalf("JoinedMany from the command line: %+v, %v", pushes, err)
	}
	if err := cli.Queue(ctx, pushes); err != nil {
		t.Fatal(err)
	}
	if _, err := server.TakeQueued(ctx); err != nil {
		t.Fatal(err)
	}
	// The server now matches the numbers the command line registered.
	res, err := server.Sync(ctx, alice, []Entry{{carolNum, "Carol"}, {"+12025550199", ""}})
	if err != nil || len(res.Matches) != 2 {
		t.Errorf("after the logged joins: %+v, %v", res, err)
	}
	// Bob is deleted by the command line: his book leaves the server's
	// index, so Carol's number no longer lists him.
	if _, err := cli.Left(ctx, bobNum); err != nil {
		t.Fatal(err)
	}
	if _, err := server.TakeQueued(ctx); err != nil {
		t.Fatal(err)
	}
	for _, h := range server.idx.holdersOf(carolNum, "localhost") {
		if h.owner == bob {
			t.Errorf("deleted Bob still holds Carol's number: %+v", h)
		}
	}
	res, err = server.Sync(ctx, carol, []Entry{{bobNum, ""}})
	if err != nil || len(res.Matches) != 0 {
		t.Errorf("deleted Bob still matches: %+v, %v", res, err)
	}
}

// TestMigrateBooks checks that books stored a row per number are moved
// into one row each at the first use, and still hold their numbers.
func TestMigrateBooks(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	_, err := s.db.Exec(`CREATE TABLE roster_book (owner TEXT NOT NULL, number TEXT NOT NULL,
		name TEXT NOT NULL DEFAULT '', PRIMARY KEY (owner, number));
		CREATE TABLE roster_book_digest (owner TEXT PRIMARY KEY, digest BLOB NOT NULL);
		INSERT INTO roster_book VALUES (?, ?, 'Carol'), (?, ?, '')`,
		alice, carolNum, bob, carolNum)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBook(s, newDirectory(aliceNum, bobNum, carolNum), "localhost", 0)
	pushes, err := b.Joined(ctx, carolNum)
	if err != nil || len(pushes) != 2 {
		t.Fatalf("Joined after migration: %+v, %v", pushes, err)
	}
	if p, _ := pushFor(pushes, alice, carol); p.Item.Name != "Carol" {
		t.Errorf("migrated name lost: %+v", p)
	}
	var n int
	s.db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'roster_book'`).Scan(&n)
	if n != 0 {
		t.Error("old table roster_book still there")
	}
	// Alice's book is the same as before: uploading it again changes nothing.
	res, err := b.Sync(ctx, alice, []Entry{{carolNum, "Carol"}})
	if err != nil || len(res.Pushes) != 0 {
		t.Errorf("same book after migration: %+v, %v", res, err)
	}
}

// TestGroupedUploads runs uploads concurrently, so that they share
// transactions, with one of them refused by the daily limit: the others
// commit, the refused one changes nothing.
func TestGroupedUploads(t *testing.T) {
	ctx := context.Background()
	dir := listDirectory{newDirectory(aliceNum, bobNum)}
	b, s := newTestBook(t, dir, 3)
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			owner := fmt.Sprintf("+1303555%04d@localhost", i)
			entries := []Entry{{aliceNum, "A"}, {bobNum, "B"}}
			if i == 7 {
				entries = append(entries, Entry{"+12025550150", ""}, Entry{"+12025550151", ""})
			}
			_, errs[i] = b.Sync(ctx, owner, entries)
		})
	}
	wg.Wait()
	for i, err := range errs {
		owner := fmt.Sprintf("+1303555%04d@localhost", i)
		_, items, _ := s.Items(ctx, owner)
		if i == 7 {
			if !errors.Is(err, ErrLookupLimit) || len(items) != 0 {
				t.Errorf("upload past the limit: %v, items %+v", err, items)
			}
			continue
		}
		if err != nil || len(items) != 2 {
			t.Errorf("upload %d: %v, items %+v", i, err, items)
		}
	}
	if hs := b.idx.holdersOf(aliceNum, "localhost"); len(hs) != 19 {
		t.Errorf("%d books hold Alice's number, want 19", len(hs))
	}
	// Closed, the Book writes again on a new connection.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx, "+13035559999@localhost", []Entry{{aliceNum, ""}}); err != nil {
		t.Errorf("upload after Close: %v", err)
	}
}

// TestIndexHolders adds and removes holders of one number through the
// one-holder entry and the shared lists, and checks that a freed list is
// reused.
func TestIndexHolders(t *testing.T) {
	var x bookIndex
	x.resetBooks()
	owners := func(k uint64) []uint64 {
		o := x.ownersOf(k)
		slices.Sort(o)
		return o
	}
	steps := []struct {
		add    bool
		owner  uint64
		number uint64
		want   []uint64
	}{
		{true, 1, 100, []uint64{1}},
		{true, 1, 100, []uint64{1}},
		{true, 2, 100, []uint64{1, 2}},
		{true, 3, 100, []uint64{1, 2, 3}},
		{false, 1, 100, []uint64{2, 3}},
		{false, 3, 100, []uint64{2}},
		{true, 4, 200, []uint64{4}},
		{true, 5, 200, []uint64{4, 5}},
		{false, 2, 100, nil},
		{false, 9, 200, []uint64{4, 5}},
	}
	for i, st := range steps {
		if st.add {
			x.add(st.owner, st.number)
		} else {
			x.remove(st.owner, st.number)
		}
		if got := owners(st.number); !slices.Equal(got, st.want) {
			t.Fatalf("step %d: holders of %d = %v, want %v", i, st.number, got, st.want)
		}
	}
	if x.lists.lists() != 1 || x.lists.classes[0].used != 1 || x.holders.len() != 1 {
		t.Errorf("freed list not reused: %d lists in %d blocks, %d numbers", x.lists.lists(),
			x.lists.classes[0].used, x.holders.len())
	}
}

// TestSyncEarly checks that the early answer comes once, with the matches
// and the cap's count but before the pushes, on every path, and not for a
// refused upload.
func TestSyncEarly(t *testing.T) {
	ctx := context.Background()
	dir := listDirectory{newDirectory(aliceNum, bobNum, carolNum)}
	b, _ := newTestBook(t, dir, 2)
	for _, tc := range []struct {
		name    string
		entries []Entry
		matches int
		refused bool
	}{
		{"first", []Entry{{bobNum, "B"}, {carolNum, "C"}}, 2, false},
		{"same again", []Entry{{bobNum, "B"}, {carolNum, "C"}}, 2, false},
		{"changed", []Entry{{bobNum, "Bob"}}, 1, false},
		{"past the limit", []Entry{{"+12025550150", ""}, {"+12025550151", ""}}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var answers []SyncResult
			res, err := b.SyncEarly(ctx, alice, tc.entries, func(r SyncResult) {
				answers = append(answers, r)
			})
			if tc.refused {
				if !errors.Is(err, ErrLookupLimit) || len(answers) != 0 {
					t.Errorf("refused upload: %v, answers %+v", err, answers)
				}
				return
			}
			if err != nil || len(answers) != 1 {
				t.Fatalf("%v, %d answers", err, len(answers))
			}
			a := answers[0]
			if len(a.Matches) != tc.matches || a.Ver != res.Ver || a.OverCap != res.OverCap ||
				a.Pushes != nil {
				t.Errorf("early answer %+v, final %+v", a, res)
			}
		})
	}
}

// TestIndexHoldersRandom adds and removes random holders of a few numbers
// on a bookIndex and on a map side by side, so that owner lists grow
// through several classes, shrink back, are freed and reused.
func TestIndexHoldersRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var x bookIndex
	x.resetBooks()
	want := map[uint64]map[uint64]bool{}
	const numbers, owners = 5, 300
	for step := range 100000 {
		k := 1000 + r.Uint64N(numbers)
		o := 1 + r.Uint64N(owners)
		// Phases that mostly add, then mostly remove, so that lists swing
		// between a few owners and hundreds.
		adding := r.IntN(100) < 70
		if (step/20000)%2 == 1 {
			adding = !adding
		}
		if want[k] == nil {
			want[k] = map[uint64]bool{}
		}
		if adding {
			x.add(o, k)
			want[k][o] = true
		} else {
			x.remove(o, k)
			delete(want[k], o)
		}
		if step%97 == 0 || step > 99000 {
			for k, set := range want {
				got := x.ownersOf(k)
				slices.Sort(got)
				w := slices.Sorted(maps.Keys(set))
				if !slices.Equal(got, w) {
					t.Fatalf("step %d: holders of %d = %v, want %v", step, k, got, w)
				}
			}
		}
	}
	lists := 0
	for _, set := range want {
		if len(set) > 1 {
			lists++
		}
	}
	if got := x.lists.lists(); got != lists {
		t.Errorf("%d lists in use, want %d", got, lists)
	}
}
