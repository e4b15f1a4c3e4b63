package roster

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/twotick/twotick/xmpp/storage"
)

func openTestBlocklist(t *testing.T, max int) *Blocklist {
	t.Helper()
	b, err := OpenBlocklist(context.Background(), openTestDB(t), max)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBlocklist(t *testing.T) {
	ctx := context.Background()
	steps := []struct {
		name    string
		op      func(b *Blocklist) ([]string, error)
		changed []string // what the operation reports
		list    []string // alice's list afterwards
	}{
		{"block two", func(b *Blocklist) ([]string, error) {
			return b.Block(ctx, alice, []string{bob, bot})
		}, []string{bob, bot}, []string{bob, bot}},
		{"block again reports only new", func(b *Blocklist) ([]string, error) {
			return b.Block(ctx, alice, []string{bob, "localhost"})
		}, []string{"localhost"}, []string{bob, "localhost", bot}},
		{"unblock one and an unknown", func(b *Blocklist) ([]string, error) {
			return b.Unblock(ctx, alice, []string{bob, carol})
		}, []string{bob}, []string{"localhost", bot}},
		{"unblock all", func(b *Blocklist) ([]string, error) {
			return b.UnblockAll(ctx, alice)
		}, []string{"localhost", bot}, []string{}},
	}
	b := openTestBlocklist(t, 0)
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, err := st.op(b)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, st.changed) {
				t.Errorf("changed %v, want %v", got, st.changed)
			}
			list, err := b.List(ctx, alice)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(list, st.list) {
				t.Errorf("list %v, want %v", list, st.list)
			}
		})
	}
}

func TestBlocklistBlocksAndPersists(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	b, err := OpenBlocklist(ctx, db, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Load (and cache) the empty list first, so that the write must
	// invalidate it.
	if ok, err := b.Blocks(ctx, alice, bob); err != nil || ok {
		t.Fatalf("Blocks before blocking = %v, %v", ok, err)
	}
	if _, err := b.Block(ctx, alice, []string{bob + "/phone"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		owner string
		forms []string
		want  bool
	}{
		{"the blocked full JID", alice, []string{bob + "/phone", bob}, true},
		{"another resource", alice, []string{bob + "/desk", bob}, false},
		{"the other direction", bob, []string{alice}, false},
		{"an owner with no list", carol, []string{bob + "/phone"}, false},
	}
	// A second Blocklist over the same database has no cache: what it
	// sees is what was stored.
	reopened, err := OpenBlocklist(ctx, db, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, bl := range []*Blocklist{b, reopened} {
				got, err := bl.Blocks(ctx, c.owner, c.forms...)
				if err != nil {
					t.Fatal(err)
				}
				if got != c.want {
					t.Errorf("Blocks = %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestBlocklistCap(t *testing.T) {
	ctx := context.Background()
	b := openTestBlocklist(t, 2)
	if _, err := b.Block(ctx, alice, []string{bob}); err != nil {
		t.Fatal(err)
	}
	_, err := b.Block(ctx, alice, []string{carol, bot})
	if !errors.Is(err, ErrTooManyBlocked) {
		t.Fatalf("blocking past the cap: err = %v", err)
	}
	list, err := b.List(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(list, []string{bob}) {
		t.Fatalf("a refused block changed the list: %v", list)
	}
	// Blocking what is already blocked does not count twice.
	if _, err := b.Block(ctx, alice, []string{bob, carol}); err != nil {
		t.Fatalf("blocking up to the cap: %v", err)
	}
}

// BenchmarkBlocklistBlocks measures the check every routed stanza makes:
// a cached owner's list against the four forms of a sender's JID.
func BenchmarkBlocklistBlocks(b *testing.B) {
	ctx := context.Background()
	db, err := storage.Open(ctx, filepath.Join(b.TempDir(), "t.db"), "normal")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	bl, err := OpenBlocklist(ctx, db, 0)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bl.Block(ctx, alice, []string{carol, bot}); err != nil {
		b.Fatal(err)
	}
	forms := []string{bob + "/phone", bob, "localhost/phone", "localhost"}
	for b.Loop() {
		if ok, err := bl.Blocks(ctx, alice, forms...); ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func TestBlocklistDeleteOwner(t *testing.T) {
	ctx := context.Background()
	b := openTestBlocklist(t, 0)
	if _, err := b.Block(ctx, alice, []string{bob, carol}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Block(ctx, bob, []string{alice}); err != nil {
		t.Fatal(err)
	}
	// Cache alice's list so that the deletion must invalidate it.
	if ok, err := b.Blocks(ctx, alice, bob); err != nil || !ok {
		t.Fatalf("Blocks(alice, bob) = %v, %v before the deletion", ok, err)
	}
	if err := b.DeleteOwner(ctx, alice); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		owner string
		want  []string
	}{
		{"the deleted owner's list is empty", alice, []string{}},
		{"another owner's list that blocks her stays", bob, []string{alice}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := b.List(ctx, tt.owner)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(list, tt.want) {
				t.Errorf("list of %s = %v, want %v", tt.owner, list, tt.want)
			}
		})
	}
	if ok, err := b.Blocks(ctx, alice, bob); err != nil || ok {
		t.Fatalf("Blocks(alice, bob) = %v, %v after the deletion", ok, err)
	}
}

// TestBlocklistKnownEmpty: the fast path says "empty" only for a list that
// was read and is empty, never for one not read yet or one with entries.
func TestBlocklistKnownEmpty(t *testing.T) {
	ctx := context.Background()
	b := openTestBlocklist(t, 0)
	if b.KnownEmpty(alice) {
		t.Fatal("KnownEmpty before the list was read")
	}
	if blocked, err := b.Blocks(ctx, alice, bob); err != nil || blocked {
		t.Fatalf("Blocks = %v, %v", blocked, err)
	}
	if !b.KnownEmpty(alice) {
		t.Fatal("an empty list that was read is not KnownEmpty")
	}
	if _, err := b.Block(ctx, alice, []string{bob}); err != nil {
		t.Fatal(err)
	}
	if b.KnownEmpty(alice) {
		t.Fatal("KnownEmpty after a block")
	}
	if blocked, err := b.Blocks(ctx, alice, bob); err != nil || !blocked {
		t.Fatalf("after the block Blocks = %v, %v", blocked, err)
	}
}
