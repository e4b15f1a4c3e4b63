package roster

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/twotick/twotick/xmpp/storage"
)

// openBenchBook opens a Book on a fresh database file, as the server does.
func openBenchBook(b *testing.B, dir Directory, opts ...BookOption) (*Book, *Store) {
	b.Helper()
	db, err := storage.Open(context.Background(), filepath.Join(b.TempDir(), "b.db"), "normal")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	s, err := OpenStore(context.Background(), db)
	if err != nil {
		b.Fatal(err)
	}
	return NewBook(s, dir, "localhost", 1<<30, opts...), s
}

// benchEntries returns a book of n numbers of which every matchEvery-th
// is registered in dir.
func benchEntries(dir *directory, n, matchEvery int) []Entry {
	entries := make([]Entry, n)
	for i := range entries {
		num := fmt.Sprintf("+1202555%04d", i)
		entries[i] = Entry{Number: num, Name: "n" + num}
		if i%matchEvery == 0 {
			dir.numbers[num] = true
		}
	}
	return entries
}

// BenchmarkSync times uploads of 1,000 numbers: first uploads by a new
// owner each time (every number is new, every match a new item), with 10%,
// 30% and all of the numbers registered; the same book again; and a book
// emptied after a first upload where all matched (1,000 removals).
func BenchmarkSync(b *testing.B) {
	ctx := context.Background()
	for _, every := range []int{10, 3, 1} {
		b.Run(fmt.Sprintf("first/match%dpct", 100/every), func(b *testing.B) {
			dir := newDirectory()
			entries := benchEntries(dir, 1000, every)
			book, _ := openBenchBook(b, listDirectory{dir})
			for i := 0; b.Loop(); i++ {
				owner := fmt.Sprintf("+1303555%04d@localhost", i)
				if _, err := book.Sync(ctx, owner, entries); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("again/match100pct", func(b *testing.B) {
		dir := newDirectory()
		entries := benchEntries(dir, 1000, 1)
		book, _ := openBenchBook(b, listDirectory{dir})
		const owner = "+13035550000@localhost"
		if _, err := book.Sync(ctx, owner, entries); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			res, err := book.Sync(ctx, owner, entries)
			if err != nil || len(res.Pushes) != 0 {
				b.Fatal(err, len(res.Pushes))
			}
		}
	})
	b.Run("remove/match100pct", func(b *testing.B) {
		dir := newDirectory()
		entries := benchEntries(dir, 1000, 1)
		book, _ := openBenchBook(b, listDirectory{dir})
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			owner := fmt.Sprintf("+1303555%04d@localhost", i)
			if _, err := book.Sync(ctx, owner, entries); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			res, err := book.Sync(ctx, owner, nil)
			if err != nil || len(res.Pushes) != len(entries) {
				b.Fatal(err, len(res.Pushes))
			}
		}
	})
}

// BenchmarkJoined registers a number held in the books of 10,000 users.
func BenchmarkJoined(b *testing.B) {
	ctx := context.Background()
	dir := newDirectory()
	book, _ := openBenchBook(b, listDirectory{dir})
	var entries []Entry
	for j := range 3 {
		entries = append(entries, Entry{Number: fmt.Sprintf("+1202555%04d", j), Name: "friend"})
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < 10000; i += 8 {
				owner := fmt.Sprintf("+1303555%04d@localhost", i)
				if _, err := book.Sync(ctx, owner, entries); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := 0; b.Loop(); i++ {
		num := fmt.Sprintf("+1202555%04d", i%3)
		pushes, err := book.Joined(ctx, num)
		if err != nil || len(pushes) != 10000 {
			b.Fatal(err, len(pushes))
		}
		b.StopTimer()
		if _, err := book.Left(ctx, num); err != nil {
			b.Fatal(err)
		}
		// Left forgets the account's book only; the holders keep theirs.
		b.StartTimer()
	}
}
