package roster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twotick/twotick/xmpp/storage"
)

// openSyncedBook opens a Book on a database file in the given synchronous
// mode, with syncFile replaced by sync for the test.
func openSyncedBook(t *testing.T, mode string, sync func(*os.File) error) *Book {
	t.Helper()
	ctx := context.Background()
	db, err := storage.Open(ctx, filepath.Join(t.TempDir(), "t.db"), mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := OpenStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	syncFile = sync
	t.Cleanup(func() { syncFile = (*os.File).Sync })
	b := NewBook(s, newDirectory(aliceNum, bobNum, carolNum), "localhost", 0)
	t.Cleanup(func() { b.Close() })
	return b
}

// TestWALSyncedOutsideLock checks, on a database that syncs every commit,
// that an upload returns only after the write-ahead log was synced, and
// that the next upload is answered while that sync is still running.
func TestWALSyncedOutsideLock(t *testing.T) {
	ctx := context.Background()
	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	b := openSyncedBook(t, "full", func(f *os.File) error {
		entered <- struct{}{}
		<-release
		return f.Sync()
	})
	aliceDone := make(chan error, 1)
	go func() {
		_, err := b.Sync(ctx, alice, []Entry{{bobNum, "Bob"}})
		aliceDone <- err
	}()
	select {
	case <-entered:
	case err := <-aliceDone:
		close(release)
		t.Fatalf("Alice's upload returned (%v) without a sync of the write-ahead log", err)
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("no sync of the write-ahead log")
	}

	answered := make(chan SyncResult, 1)
	bobDone := make(chan error, 1)
	go func() {
		_, err := b.SyncEarly(ctx, bob, []Entry{{aliceNum, "Alice"}},
			func(r SyncResult) { answered <- r })
		bobDone <- err
	}()
	select {
	case r := <-answered:
		if len(r.Matches) != 1 || r.Matches[0].JID != alice {
			t.Errorf("Bob's answer: %+v", r.Matches)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("Bob's answer waited for the sync of Alice's commit")
	}
	select {
	case err := <-aliceDone:
		t.Fatalf("Alice's upload returned (%v) before its commit was synced", err)
	default:
	}
	close(release)
	for who, done := range map[string]chan error{"Alice": aliceDone, "Bob": bobDone} {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s's upload: %v", who, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s's upload did not return after the sync", who)
		}
	}
}

// TestWALNotSyncedWhenNormal checks that a database in synchronous=NORMAL
// gets no syncs of its log from the Book.
func TestWALNotSyncedWhenNormal(t *testing.T) {
	var syncs atomic.Int32
	b := openSyncedBook(t, "normal", func(f *os.File) error {
		syncs.Add(1)
		return f.Sync()
	})
	if _, err := b.Sync(context.Background(), alice, []Entry{{bobNum, "Bob"}}); err != nil {
		t.Fatal(err)
	}
	if n := syncs.Load(); n != 0 {
		t.Errorf("%d syncs of the log in synchronous=NORMAL", n)
	}
}

// TestCloseWaitsForCheckpoint checks that Close returns only once the
// background checkpoint that a write started has finished: its connection
// would otherwise be opened after the Book's was closed, and stay open
// past the database's Close (a command such as "twotick user add" then
// left the write-ahead log behind). Each round starts a checkpoint and
// closes at once, which without the wait finds it running nearly always.
func TestCloseWaitsForCheckpoint(t *testing.T) {
	b, _ := newTestBook(t, newDirectory(aliceNum, bobNum), 0)
	ctx := context.Background()
	for round := range 20 {
		b.store.writeMu.Lock()
		b.group.lastCP = time.Time{}
		b.store.writeMu.Unlock()
		book := []Entry{{bobNum, fmt.Sprint("Bob ", round)}}
		if _, err := b.Sync(ctx, alice, book); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if b.group.checkpointing.Load() {
			t.Fatalf("round %d: Close returned while a checkpoint ran", round)
		}
	}
}
