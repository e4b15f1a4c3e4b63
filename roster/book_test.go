package roster

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// directory is a Directory over a set of numbers.
type directory struct {
	mu      sync.Mutex
	numbers map[string]bool
}

func newDirectory(numbers ...string) *directory {
	d := &directory{numbers: map[string]bool{}}
	for _, n := range numbers {
		d.numbers[n] = true
	}
	return d
}

func (d *directory) Registered(_ context.Context, numbers []string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, n := range numbers {
		if d.numbers[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

const (
	aliceNum = "+12025550101"
	bobNum   = "+12025550102"
	carolNum = "+12025550103"
	berlin   = "+49301234567"
)

func TestCleanName(t *testing.T) {
	long := strings.Repeat("é", maxNameBytes) // two bytes each
	for _, tc := range []struct{ in, want string }{
		{"  Anna Maier ", "Anna Maier"},
		{"Zoë 🙂", "Zoë 🙂"},
		{"Bad\x01Name", "BadName"},
		{"not \xff\xfeUTF-8", "not UTF-8"},
		{"two\nlines\tand a tab", "two lines and a tab"},
		{"\ufffe\uffffnon-characters", "non-characters"},
		{long, long[:maxNameBytes-1]}, // 511 whole characters, not half of one
	} {
		got := cleanName(tc.in)
		if got != tc.want {
			t.Errorf("cleanName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !utf8.ValidString(got) || len(got) > maxNameBytes {
			t.Errorf("cleanName(%q) = %q: not UTF-8 or too long", tc.in, got)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name    string
		in      []Entry
		region  string
		want    map[string]string
		skipped int
	}{
		{name: "e164 fast path", in: []Entry{{"+12025550102", "Bob"}}, region: "DE",
			want: map[string]string{bobNum: "Bob"}},
		{name: "national number read in owner's region", in: []Entry{{"030 1234567", "B"}},
			region: "DE", want: map[string]string{berlin: "B"}},
		{name: "formatted", in: []Entry{{" +1 (202) 555-0102 ", " Bob "}}, region: "DE",
			want: map[string]string{bobNum: "Bob"}},
		{name: "invalid skipped and counted", region: "US",
			in:   []Entry{{"hello", "x"}, {"+1 202", "y"}, {"", ""}, {"(202) 555-0103", "C"}},
			want: map[string]string{carolNum: "C"}, skipped: 3},
		{name: "e164 that cannot be a number skipped and counted", region: "US",
			in: []Entry{{"+99912345678", "unassigned code"}, {"+1202555010", "nine digits"},
				{"+80012345678", "freephone"}, {bobNum, "Bob"}},
			want: map[string]string{"+80012345678": "freephone", bobNum: "Bob"}, skipped: 2},
		{name: "e164 with the trunk zero parsed", region: "US",
			in:   []Entry{{"+490301234567", "B"}, {"+390612345678", "Roma"}},
			want: map[string]string{berlin: "B", "+390612345678": "Roma"}},
		{name: "duplicates keep first name", region: "US",
			in:   []Entry{{"2025550102", ""}, {"+12025550102", "Bob"}, {"+1 202 555 0102", "Robert"}},
			want: map[string]string{bobNum: "Bob"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, skipped := Normalize(tc.in, tc.region)
			if !maps.Equal(got, tc.want) || skipped != tc.skipped {
				t.Errorf("Normalize = %v, %d; want %v, %d", got, skipped, tc.want, tc.skipped)
			}
		})
	}
}

// TestQuicksyVer checks the hash against values computed outside Go:
//
//	printf '+12025550102\x1e+12025550102@localhost\x1d+49301234567\x1e+49301234567@localhost' |
//	  sha1sum | cut -d' ' -f1 | xxd -r -p | base64
func TestQuicksyVer(t *testing.T) {
	tests := []struct {
		name    string
		matches []Match
		want    string
	}{
		{"empty", nil, "2jmj7l5rSw0yVb/vlWAYkK/YBwk="},
		{"two numbers out of order", []Match{
			{berlin, berlin + "@localhost"},
			{bobNum, bobNum + "@localhost"},
		}, "iVhLw0Db+R1ctQQDjtH+hbMtH4U="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := QuicksyVer(tc.matches); got != tc.want {
				t.Errorf("QuicksyVer = %q, want %q", got, tc.want)
			}
		})
	}
}

func newTestBook(t *testing.T, dir Directory, limit int) (*Book, *Store) {
	t.Helper()
	s := openTestStore(t)
	return NewBook(s, dir, "localhost", limit), s
}

func pushFor(pushes []Push, owner, jid string) (Push, bool) {
	for _, p := range pushes {
		if p.Owner == owner && p.Item.JID == jid {
			return p, true
		}
	}
	return Push{}, false
}

func TestSyncMutualAndOneSided(t *testing.T) {
	dir := newDirectory(aliceNum, bobNum, carolNum)
	b, s := newTestBook(t, dir, 0)
	ctx := context.Background()

	// Alice has Bob's number and an invalid one; Bob has not uploaded yet.
	res, err := b.Sync(ctx, alice, []Entry{{"(202) 555-0102", "Bobby"}, {"12", ""},
		{"+15555550100", "not registered"}, {aliceNum, "me"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped != 1 || len(res.Matches) != 1 || res.Matches[0].JID != bob {
		t.Fatalf("first sync: %+v", res)
	}
	if res.Ver != QuicksyVer([]Match{{bobNum, bob}}) {
		t.Errorf("ver %q does not match the matches", res.Ver)
	}
	p, ok := pushFor(res.Pushes, alice, bob)
	if !ok || len(res.Pushes) != 1 || p.Item.Subscription != None ||
		p.Item.Origin != OriginBook || p.Item.Name != "Bobby" {
		t.Fatalf("pushes after one-sided sync: %+v", res.Pushes)
	}

	// Bob uploads Alice's number: both sides become both.
	res, err = b.Sync(ctx, bob, []Entry{{aliceNum, "Alice"}})
	if err != nil {
		t.Fatal(err)
	}
	pa, okA := pushFor(res.Pushes, alice, bob)
	pb, okB := pushFor(res.Pushes, bob, alice)
	if !okA || !okB || pa.Item.Subscription != Both || pb.Item.Subscription != Both ||
		pa.Before != None {
		t.Fatalf("mutual sync pushes: %+v", res.Pushes)
	}
	if subs, _ := s.Subscribers(ctx, alice); !slices.Equal(subs, []string{bob}) {
		t.Errorf("Alice's subscribers %v, want Bob", subs)
	}
	if v := mustVer(t, s, alice); pa.Ver != "2" || v != 2 {
		t.Errorf("Alice's push version %s, stored %d; want 2", pa.Ver, v)
	}

	// The same upload again changes nothing and costs nothing.
	res, err = b.Sync(ctx, bob, []Entry{{aliceNum, "Alice"}})
	if err != nil || len(res.Pushes) != 0 {
		t.Fatalf("repeated sync: %+v, %v", res.Pushes, err)
	}

	// Bob drops Alice from his book: his item goes, hers falls back to none.
	res, err = b.Sync(ctx, bob, nil)
	if err != nil {
		t.Fatal(err)
	}
	pa, okA = pushFor(res.Pushes, alice, bob)
	pb, okB = pushFor(res.Pushes, bob, alice)
	if !okA || !okB || pb.Item.Subscription != Remove || pa.Item.Subscription != None ||
		pa.Before != Both {
		t.Fatalf("pushes after removal: %+v", res.Pushes)
	}
	if _, ok, _ := s.Get(ctx, bob, alice); ok {
		t.Error("book item survived leaving the book")
	}
}

func TestSyncKeepsManualItems(t *testing.T) {
	dir := newDirectory(carolNum)
	b, s := newTestBook(t, dir, 0)
	ctx := context.Background()
	manual := Item{JID: carol, Name: "Caz", Groups: []string{"Work"}}
	if _, err := s.Set(ctx, alice, manual); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx, alice, []Entry{{carolNum, "Carol Book"}}); err != nil {
		t.Fatal(err)
	}
	it, _, _ := s.Get(ctx, alice, carol)
	if it.Name != "Caz" || it.Origin != OriginManual || !slices.Equal(it.Groups, []string{"Work"}) {
		t.Errorf("manual item after sync: %+v", it)
	}
	if _, err := b.Sync(ctx, alice, nil); err != nil {
		t.Fatal(err)
	}
	if it, ok, _ := s.Get(ctx, alice, carol); !ok || it.Name != "Caz" {
		t.Errorf("manual item after leaving the book: %+v, %v", it, ok)
	}
}

func TestSyncRefusesBots(t *testing.T) {
	b, _ := newTestBook(t, newDirectory(), 0)
	if _, err := b.Sync(context.Background(), bot, nil); !errors.Is(err, ErrNotPhoneAccount) {
		t.Errorf("bot sync = %v, want ErrNotPhoneAccount", err)
	}
}

func TestDailyLimit(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	clock := time.Date(2025, 3, 1, 23, 0, 0, 0, time.UTC)
	open := func() *Book {
		s, err := OpenStore(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		b := NewBook(s, newDirectory(), "localhost", 3)
		b.now = func() time.Time { return clock }
		return b
	}
	b := open()
	three := []Entry{{bobNum, ""}, {carolNum, ""}, {berlin, ""}}
	if _, err := b.Sync(ctx, alice, three); err != nil {
		t.Fatalf("upload within the limit: %v", err)
	}
	if _, err := b.Sync(ctx, alice, three); err != nil {
		t.Fatalf("same book again: %v", err)
	}
	// Dropping a number and adding it back the same day costs nothing more.
	if _, err := b.Sync(ctx, alice, three[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx, alice, three); err != nil {
		t.Fatalf("re-adding a number looked up today: %v", err)
	}

	b = open() // a restart
	more := append(slices.Clone(three), Entry{"+12025550104", ""})
	_, err := b.Sync(ctx, alice, more)
	var le *LimitError
	if !errors.As(err, &le) || !errors.Is(err, ErrLookupLimit) {
		t.Fatalf("upload past the limit after restart = %v, want *LimitError", err)
	}
	if want := time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC); !le.RetryAt.Equal(want) ||
		le.New != 1 || le.Left != 0 {
		t.Errorf("LimitError %+v, want retry at %v", le, want)
	}
	if _, err := b.Sync(ctx, bob, three); err != nil {
		t.Errorf("another account has a limit of its own, got: %v", err)
	}

	clock = clock.Add(2 * time.Hour)
	if _, err := b.Sync(ctx, alice, more); err != nil {
		t.Errorf("upload the next day: %v", err)
	}
}

func TestJoinedAndLeft(t *testing.T) {
	dir := newDirectory(aliceNum, bobNum)
	b, s := newTestBook(t, dir, 0)
	ctx := context.Background()
	// Alice and Bob hold Carol's number before she registers; Bob also
	// added her by hand.
	for _, owner := range []string{alice, bob} {
		if _, err := b.Sync(ctx, owner, []Entry{{carolNum, "Carol of " + owner[:5]}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Set(ctx, bob, Item{JID: carol, Name: "C"}); err != nil {
		t.Fatal(err)
	}

	dir.numbers[carolNum] = true
	pushes, err := b.Joined(ctx, carolNum)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := pushFor(pushes, alice, carol)
	if !ok || p.Item.Name != "Carol of +1202" || p.Item.Origin != OriginBook ||
		p.Item.Subscription != None {
		t.Fatalf("joined pushes: %+v", pushes)
	}
	if _, ok := pushFor(pushes, bob, carol); ok {
		t.Errorf("Bob's manual item was pushed as if it changed: %+v", pushes)
	}

	// Carol uploads Alice's number: mutual.
	if _, err := b.Sync(ctx, carol, []Entry{{aliceNum, "Alice"}}); err != nil {
		t.Fatal(err)
	}
	if it, _, _ := s.Get(ctx, alice, carol); it.Subscription != Both {
		t.Errorf("after Carol's upload Alice has %+v, want both", it)
	}

	pushes, err = b.Left(ctx, carolNum)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := pushFor(pushes, alice, carol); !ok || p.Item.Subscription != Remove {
		t.Errorf("left pushes: %+v", pushes)
	}
	if _, ok, _ := s.Get(ctx, alice, carol); ok {
		t.Error("deleted account still in Alice's roster")
	}
	if it, ok, _ := s.Get(ctx, bob, carol); !ok || it.Name != "C" {
		t.Errorf("Bob's manual item for the deleted account: %+v, %v", it, ok)
	}
	if ver, items, _ := s.Items(ctx, carol); ver != "0" || len(items) != 0 {
		t.Errorf("deleted account keeps roster %s %v", ver, items)
	}
}

// TestOneSidedPolicy checks both settings of WithOneSided for an entry that
// only the owner holds, and that a later mutual pair is both either way.
func TestOneSidedPolicy(t *testing.T) {
	tests := []struct {
		name          string
		policy        Subscription
		owner         Subscription // Alice's item for Bob after her upload
		contactExists bool         // Bob has an item for Alice
		contact       Subscription
	}{
		{name: "none", policy: None, owner: None},
		{name: "to", policy: To, owner: To, contactExists: true, contact: From},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTestStore(t)
			b := NewBook(s, newDirectory(aliceNum, bobNum), "localhost", 0, WithOneSided(tc.policy))
			if _, err := b.Sync(ctx, alice, []Entry{{bobNum, "Bob"}}); err != nil {
				t.Fatal(err)
			}
			if it, ok, _ := s.Get(ctx, alice, bob); !ok || it.Subscription != tc.owner {
				t.Errorf("Alice's item %+v (%v), want %s", it, ok, tc.owner)
			}
			it, ok, _ := s.Get(ctx, bob, alice)
			if ok != tc.contactExists || (ok && it.Subscription != tc.contact) {
				t.Errorf("Bob's item %+v (%v), want exists=%v %s", it, ok, tc.contactExists,
					tc.contact)
			}
			if _, err := b.Sync(ctx, bob, []Entry{{aliceNum, "Alice"}}); err != nil {
				t.Fatal(err)
			}
			for _, pair := range [][2]string{{alice, bob}, {bob, alice}} {
				if it, _, _ := s.Get(ctx, pair[0], pair[1]); it.Subscription != Both {
					t.Errorf("mutual: %s has %+v", pair[0], it)
				}
			}
			// Alice drops Bob: Bob still holds her, so with policy to
			// she keeps a from item and he a to item.
			if _, err := b.Sync(ctx, alice, nil); err != nil {
				t.Fatal(err)
			}
			it, ok, _ = s.Get(ctx, alice, bob)
			if ok != tc.contactExists || (ok && it.Subscription != tc.contact) {
				t.Errorf("after Alice dropped Bob she has %+v (%v)", it, ok)
			}
			if it, _, _ := s.Get(ctx, bob, alice); it.Subscription != tc.owner {
				t.Errorf("after Alice dropped Bob he has %+v, want %s", it, tc.owner)
			}
		})
	}
}

// TestQueuedPushes checks that pushes left by another process come back
// with the items as they are when taken, once.
func TestQueuedPushes(t *testing.T) {
	ctx := context.Background()
	dir := newDirectory(aliceNum)
	b, s := newTestBook(t, dir, 0)
	if _, err := b.Sync(ctx, alice, []Entry{{bobNum, "Bob"}, {carolNum, "Carol"}}); err != nil {
		t.Fatal(err)
	}
	pushes, err := b.JoinedMany(ctx, []string{bobNum, carolNum, "+12025550199"})
	if err != nil || len(pushes) != 2 {
		t.Fatalf("JoinedMany: %+v, %v", pushes, err)
	}
	if err := b.Queue(ctx, pushes); err != nil {
		t.Fatal(err)
	}
	left, err := b.Left(ctx, carolNum)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Queue(ctx, left); err != nil {
		t.Fatal(err)
	}
	got, err := b.TakeQueued(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ver, _ := s.Version(ctx, alice)
	pb, okB := pushFor(got, alice, bob)
	pc, okC := pushFor(got, alice, carol)
	if len(got) != 2 || !okB || !okC || pb.Item.Name != "Bob" || pb.Ver != ver ||
		pc.Item.Subscription != Remove || pc.Before != None {
		t.Errorf("taken pushes %+v (version %s)", got, ver)
	}
	if again, err := b.TakeQueued(ctx); err != nil || len(again) != 0 {
		t.Errorf("second take: %+v, %v", again, err)
	}
}

// TestSyncChanges walks one owner's book through the changes an upload can
// make and checks the pushes and counts of each.
func TestSyncChanges(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, WithMaxItems(2))
	dir := newDirectory(bobNum, carolNum, "+12025550104")
	b := NewBook(s, dir, "localhost", 0)
	steps := []struct {
		name    string
		entries []Entry
		pushes  map[string]Subscription // contact: subscription pushed to Alice
		names   map[string]string       // contact: name pushed
		overCap int
	}{
		{name: "first upload, one over the cap",
			entries: []Entry{{bobNum, "Bob"}, {carolNum, "Carol"}, {"+12025550104", "Dan"}},
			pushes:  map[string]Subscription{bob: None, carol: None},
			names:   map[string]string{bob: "Bob", carol: "Carol"}, overCap: 1},
		{name: "same book: nothing, still over the cap",
			entries: []Entry{{bobNum, "Bob"}, {carolNum, "Carol"}, {"+12025550104", "Dan"}},
			overCap: 1},
		{name: "renamed entry",
			entries: []Entry{{bobNum, "Robert"}, {carolNum, "Carol"}, {"+12025550104", "Dan"}},
			pushes:  map[string]Subscription{bob: None}, names: map[string]string{bob: "Robert"},
			overCap: 1},
		{name: "entry removed makes room",
			entries: []Entry{{bobNum, "Robert"}, {"+12025550104", "Dan"}},
			pushes: map[string]Subscription{carol: Remove,
				"+12025550104@localhost": None},
			names: map[string]string{"+12025550104@localhost": "Dan"}},
	}
	for _, st := range steps {
		res, err := b.Sync(ctx, alice, st.entries)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if res.OverCap != st.overCap || len(res.Pushes) != len(st.pushes) {
			t.Errorf("%s: over cap %d, pushes %+v", st.name, res.OverCap, res.Pushes)
			continue
		}
		for _, p := range res.Pushes {
			sub, ok := st.pushes[p.Item.JID]
			if !ok || p.Owner != alice || p.Item.Subscription != sub ||
				(sub != Remove && p.Item.Name != st.names[p.Item.JID]) {
				t.Errorf("%s: unexpected push %+v", st.name, p)
			}
		}
	}
	ver, items, err := s.Items(ctx, alice)
	if err != nil || len(items) != 2 {
		t.Fatalf("final roster %s %+v, %v", ver, items, err)
	}
	// Each change had its own version: 2 items, a rename, a removal and
	// an addition.
	if ver != "5" {
		t.Errorf("final version %s, want 5", ver)
	}
	_, changes, ok, err := s.Since(ctx, alice, "3")
	if err != nil || !ok || len(changes) != 2 {
		t.Errorf("changes since 3: %+v, %v, %v", changes, ok, err)
	}
}

// TestLeftFindsEveryBookItem checks that an account leaving takes with it
// the items that books made for it on both sides: those of the users whose
// book holds its number, and, under the To policy, the from items its own
// book gave the accounts it holds. Both are found without an index on the
// contact column (see schema).
func TestLeftFindsEveryBookItem(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	b := NewBook(s, newDirectory(aliceNum, bobNum, carolNum), "localhost", 0,
		WithOneSided(To))
	// Alice holds Bob, whom the policy gives a from item for her; Carol
	// holds Alice.
	if _, err := b.Sync(ctx, alice, []Entry{{bobNum, "Bob"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx, carol, []Entry{{aliceNum, "Alice"}}); err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{bob, carol} {
		if _, ok, _ := s.Get(ctx, owner, alice); !ok {
			t.Fatalf("before Alice leaves, %s has no item for her", owner)
		}
	}
	pushes, err := b.Left(ctx, aliceNum)
	if err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{bob, carol} {
		if it, ok, _ := s.Get(ctx, owner, alice); ok {
			t.Errorf("after Alice left, %s still has %+v", owner, it)
		}
		if p, ok := pushFor(pushes, owner, alice); !ok || p.Item.Subscription != Remove {
			t.Errorf("no removal pushed to %s: %+v", owner, pushes)
		}
	}
}

// TestContactIndexDropped checks that opening a database made before the
// partial index leaves no full index on roster_items.contact, whose upkeep
// was most of what an upload wrote.
func TestContactIndexDropped(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	if _, err := OpenStore(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx,
		`CREATE INDEX roster_items_contact ON roster_items (contact)`); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(ctx, db); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, `SELECT name, partial FROM pragma_index_list('roster_items')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var name string
		var partial bool
		if err := rows.Scan(&name, &partial); err != nil {
			t.Fatal(err)
		}
		found[name] = partial
	}
	if _, ok := found["roster_items_contact"]; ok {
		t.Error("the full index on contact is still there")
	}
	if partial, ok := found["roster_items_manual"]; !ok || !partial {
		t.Errorf("indexes %v: want the partial roster_items_manual", found)
	}
}

// FuzzCleanName checks that any uploaded name comes out as text that XML
// 1.0 allows, within maxNameBytes.
func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"Anna", "Bad\x01Name", "\xff\xfe", "Zoë 🙂\n", "\ufffe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := cleanName(s)
		if !utf8.ValidString(got) || len(got) > maxNameBytes {
			t.Fatalf("cleanName(%q) = %q: not UTF-8 or too long", s, got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0xfffe || r == 0xffff {
				t.Fatalf("cleanName(%q) = %q keeps %U", s, got, r)
			}
		}
	})
}
