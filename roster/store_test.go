package roster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/twotick/twotick/xmpp/storage"
)

const (
	alice = "+12025550101@localhost"
	bob   = "+12025550102@localhost"
	carol = "+12025550103@localhost"
	bot   = "weather@localhost"
)

// openTestDB opens a fresh database the way the server does.
func openTestDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), "normal")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openTestStore(t *testing.T, opts ...Option) *Store {
	t.Helper()
	s, err := OpenStore(context.Background(), openTestDB(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustVer(t *testing.T, s *Store, owner string) int {
	t.Helper()
	v, err := s.Version(context.Background(), owner)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("version %q is not decimal: %v", v, err)
	}
	return n
}

func TestOpenStoreTwice(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	s, err := OpenStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Set(ctx, alice, Item{JID: bob, Name: "Bob"}); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenStore(ctx, db)
	if err != nil {
		t.Fatalf("second OpenStore: %v", err)
	}
	if _, ok, err := s2.Get(ctx, alice, bob); !ok || err != nil {
		t.Fatalf("item lost on reopening: %v, %v", ok, err)
	}
}

func TestSetAndGet(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()

	if v := mustVer(t, s, alice); v != 0 {
		t.Fatalf("empty roster has version %d, want 0", v)
	}
	ver, err := s.Set(ctx, alice, Item{JID: bob, Name: "Bob", Groups: []string{"Friends", "Work"},
		Subscription: Both, Ask: true, Approved: true})
	if err != nil {
		t.Fatal(err)
	}
	if ver != "1" {
		t.Errorf("first set gave version %q, want 1", ver)
	}
	got, ok, err := s.Get(ctx, alice, bob)
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v", ok, err)
	}
	want := Item{JID: bob, Name: "Bob", Groups: []string{"Friends", "Work"},
		Subscription: None, Origin: OriginManual}
	if !equalItem(got, want) {
		t.Errorf("after set: %+v, want %+v (a client set must not grant a subscription)", got, want)
	}

	t.Run("same again is a no-op", func(t *testing.T) {
		ver2, err := s.Set(ctx, alice, Item{JID: bob, Name: "Bob", Groups: []string{"Friends", "Work"}})
		if err != nil || ver2 != ver {
			t.Fatalf("repeated set = %q, %v; want unchanged %q", ver2, err, ver)
		}
	})
	t.Run("keeps subscription", func(t *testing.T) {
		if _, err := s.OutboundSubscribe(ctx, alice, bob); err != nil {
			t.Fatal(err)
		}
		if _, err := s.InboundSubscribed(ctx, bob, alice); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Set(ctx, alice, Item{JID: bob, Name: "Robert", Subscription: None}); err != nil {
			t.Fatal(err)
		}
		got, _, _ := s.Get(ctx, alice, bob)
		if got.Subscription != To || got.Name != "Robert" || len(got.Groups) != 0 {
			t.Errorf("after rename: %+v, want subscription to, name Robert, no groups", got)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		for _, it := range []Item{
			{JID: ""},
			{JID: carol, Groups: []string{""}},
			{JID: carol, Groups: []string{"a", "a"}},
			{JID: carol, Name: string(make([]byte, 2000))},
		} {
			if _, err := s.Set(ctx, alice, it); !errors.Is(err, ErrInvalidItem) {
				t.Errorf("Set(%+v) = %v, want ErrInvalidItem", it.Groups, err)
			}
		}
		if _, ok, _ := s.Get(ctx, alice, carol); ok {
			t.Error("an invalid item was stored")
		}
	})
}

// equalItem compares items, counting nil and empty groups as equal.
func equalItem(a, b Item) bool {
	return slices.Equal(a.Groups, b.Groups) && a.JID == b.JID && a.Name == b.Name &&
		a.Subscription == b.Subscription && a.Ask == b.Ask && a.Origin == b.Origin &&
		a.Approved == b.Approved && a.PendingIn == b.PendingIn
}

func TestItemsAndRemove(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	for _, c := range []string{carol, bob, bot} {
		if _, err := s.Set(ctx, alice, Item{JID: c}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Set(ctx, bob, Item{JID: alice}); err != nil {
		t.Fatal(err)
	}
	ver, items, err := s.Items(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	var jids []string
	for _, it := range items {
		jids = append(jids, it.JID)
	}
	if want := []string{bob, carol, bot}; ver != "3" || !slices.Equal(jids, want) {
		t.Fatalf("Items = %q, %v; want 3, %v", ver, jids, want)
	}

	// Bob approves Alice's request from before, then Alice removes Bob:
	// the server must cancel both directions.
	if _, err := s.InboundSubscribe(ctx, bob, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OutboundSubscribed(ctx, alice, bob); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OutboundSubscribe(ctx, alice, bob); err != nil {
		t.Fatal(err)
	}
	ver, removed, err := s.Remove(ctx, alice, bob)
	if err != nil {
		t.Fatal(err)
	}
	if ver != "6" || removed.Subscription != From || !removed.Ask {
		t.Errorf("Remove = %q, %+v; want version 6 and the from+ask item", ver, removed)
	}
	if unsub, unsubd := removed.CancelOnRemove(); !unsub || !unsubd {
		t.Errorf("CancelOnRemove = %v, %v; want both", unsub, unsubd)
	}
	if _, ok, _ := s.Get(ctx, alice, bob); ok {
		t.Error("item still there after Remove")
	}
	if _, _, err := s.Remove(ctx, alice, bob); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove = %v, want ErrNotFound", err)
	}
	if mustVer(t, s, alice) != 6 {
		t.Error("a failed Remove changed the version")
	}
	if v := mustVer(t, s, bob); v != 1 {
		t.Errorf("Bob's version %d moved with Alice's roster", v)
	}
}

func TestRemovePendingOnly(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if _, err := s.InboundSubscribe(ctx, bob, alice); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Remove(ctx, alice, bob); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove of a contact with only a request = %v, want ErrNotFound", err)
	}
	// With an item, removing it also forgets the request.
	if _, err := s.Set(ctx, alice, Item{JID: bob}); err != nil {
		t.Fatal(err)
	}
	_, removed, err := s.Remove(ctx, alice, bob)
	if err != nil || !removed.PendingIn {
		t.Fatalf("Remove = %+v, %v; want PendingIn", removed, err)
	}
	if p, _ := s.PendingIn(ctx, alice); len(p) != 0 {
		t.Errorf("request survived Remove: %v", p)
	}
}

func TestSince(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	step := func(f func() error) {
		t.Helper()
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	step(func() error { _, err := s.Set(ctx, alice, Item{JID: bob}); return err })   // 1
	step(func() error { _, err := s.Set(ctx, alice, Item{JID: carol}); return err }) // 2
	step(func() error { _, err := s.Set(ctx, alice, Item{JID: bot}); return err })   // 3
	step(func() error { _, _, err := s.Remove(ctx, alice, carol); return err })      // 4
	step(func() error { _, err := s.Set(ctx, alice, Item{JID: bob, Name: "B"}); return err })

	tests := []struct {
		since string
		ok    bool
		want  []string
	}{
		{"0", true, []string{bot, "-" + carol, bob}},
		{"2", true, []string{bot, "-" + carol, bob}},
		{"3", true, []string{"-" + carol, bob}},
		{"4", true, []string{bob}},
		{"5", true, nil},
		{"6", false, nil},
		{"", false, nil},
		{"x", false, nil},
	}
	for _, tc := range tests {
		t.Run("since "+tc.since, func(t *testing.T) {
			cur, pushes, ok, err := s.Since(ctx, alice, tc.since)
			if err != nil || cur != "5" || ok != tc.ok {
				t.Fatalf("Since = %q, ok %v, %v; want 5, ok %v", cur, ok, err, tc.ok)
			}
			var got []string
			for _, p := range pushes {
				if p.Subscription == Remove {
					got = append(got, "-"+p.JID)
				} else {
					got = append(got, p.JID)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("pushes %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSubscribersAndSubscriptions(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	// Alice ends with bob: both, carol: to, bot: from.
	steps := []func() (Change, error){
		func() (Change, error) { return s.OutboundSubscribe(ctx, alice, bob) },
		func() (Change, error) { return s.InboundSubscribed(ctx, bob, alice) },
		func() (Change, error) { return s.InboundSubscribe(ctx, bob, alice) },
		func() (Change, error) { return s.OutboundSubscribed(ctx, alice, bob) },
		func() (Change, error) { return s.OutboundSubscribe(ctx, alice, carol) },
		func() (Change, error) { return s.InboundSubscribed(ctx, carol, alice) },
		func() (Change, error) { return s.InboundSubscribe(ctx, bot, alice) },
		func() (Change, error) { return s.OutboundSubscribed(ctx, alice, bot) },
	}
	for i, f := range steps {
		if _, err := f(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	subs, err := s.Subscribers(ctx, alice)
	if err != nil || !slices.Equal(subs, []string{bob, bot}) {
		t.Errorf("Subscribers = %v, %v; want bob and bot", subs, err)
	}
	tos, err := s.Subscriptions(ctx, alice)
	if err != nil || !slices.Equal(tos, []string{bob, carol}) {
		t.Errorf("Subscriptions = %v, %v; want bob and carol", tos, err)
	}
	if subs, _ := s.Subscribers(ctx, carol); len(subs) != 0 {
		t.Errorf("Carol has subscribers %v", subs)
	}
}

func TestCap(t *testing.T) {
	s := openTestStore(t, WithMaxItems(3))
	ctx := context.Background()
	for i := range 3 {
		if _, err := s.Set(ctx, alice, Item{JID: fmt.Sprintf("c%d@localhost", i)}); err != nil {
			t.Fatal(err)
		}
	}
	ver := mustVer(t, s, alice)
	if _, err := s.Set(ctx, alice, Item{JID: "c3@localhost"}); !errors.Is(err, ErrTooManyItems) {
		t.Errorf("fourth Set = %v, want ErrTooManyItems", err)
	}
	if _, err := s.OutboundSubscribe(ctx, alice, "c3@localhost"); !errors.Is(err, ErrTooManyItems) {
		t.Errorf("subscribe past the cap = %v, want ErrTooManyItems", err)
	}
	// Existing items can still change.
	if _, err := s.Set(ctx, alice, Item{JID: "c0@localhost", Name: "zero"}); err != nil {
		t.Errorf("editing at the cap: %v", err)
	}
	if mustVer(t, s, alice) != ver+1 {
		t.Error("refused additions moved the version")
	}
	// Stored requests have their own cap.
	for i := range 3 {
		if _, err := s.InboundSubscribe(ctx, fmt.Sprintf("s%d@localhost", i), alice); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.InboundSubscribe(ctx, "s3@localhost", alice); !errors.Is(err, ErrTooManyItems) {
		t.Errorf("fourth stored request = %v, want ErrTooManyItems", err)
	}
	if _, _, err := s.Remove(ctx, alice, "c1@localhost"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Set(ctx, alice, Item{JID: "c3@localhost"}); err != nil {
		t.Errorf("Set after making room: %v", err)
	}
}

// TestConcurrent runs many writers on a few rosters at once; run with -race.
// Every change must get its own version and none may be lost.
func TestConcurrent(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	vers := make(chan string, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				contact := fmt.Sprintf("w%d-%d@localhost", w, i)
				ver, err := s.Set(ctx, alice, Item{JID: contact, Name: contact})
				if err != nil {
					errs <- err
					return
				}
				vers <- ver
				if _, err := s.InboundSubscribe(ctx, contact, alice); err != nil {
					errs <- err
					return
				}
				if _, _, err := s.Items(ctx, alice); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(vers)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for v := range vers {
		if seen[v] {
			t.Fatalf("version %s given to two changes", v)
		}
		seen[v] = true
	}
	ver, items, err := s.Items(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != writers*each || ver != strconv.Itoa(writers*each) {
		t.Errorf("after concurrent writes: version %s, %d items; want %d of each",
			ver, len(items), writers*each)
	}
	if p, _ := s.PendingIn(ctx, alice); len(p) != writers*each {
		t.Errorf("%d stored requests, want %d", len(p), writers*each)
	}
}
