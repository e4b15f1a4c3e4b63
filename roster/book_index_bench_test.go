package roster

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// benchBooks returns n books of 1,000 numbers each, drawn from 1,000,000
// numbers as in the load generator's contacts scenario, sorted.
func benchBooks(r *rand.Rand, n int) [][]bookEntry {
	const base = 12020000000
	books := make([][]bookEntry, n)
	for i := range books {
		seen := map[uint64]bool{}
		var es []bookEntry
		for len(es) < 1000 {
			k := base + r.Uint64N(1000000)
			if !seen[k] {
				seen[k] = true
				es = append(es, bookEntry{k: k})
			}
		}
		slices.SortFunc(es, func(a, b bookEntry) int { return cmpU64(a.k, b.k) })
		books[i] = es
	}
	return books
}

// BenchmarkIndexMemory builds the index of 3,000 books of 1,000 numbers
// drawn from 1,000,000, without names and with a name for every number as
// real address books have, and reports what the index keeps on the heap:
// bytes per number (not counting the books' own name strings, which the
// benchmark holds anyway), objects, and the time of one full collection
// with the index live, which every cycle of the garbage collector pays in
// part. Each op builds a new index.
func BenchmarkIndexMemory(b *testing.B) {
	for _, named := range []bool{false, true} {
		b.Run(map[bool]string{false: "unnamed", true: "named"}[named], func(b *testing.B) {
			books := benchBooks(rand.New(rand.NewPCG(1, 2)), 3000)
			for _, book := range books {
				for i := range book {
					if named {
						book[i].name = fmt.Sprintf("Contact %d", book[i].k%1000000)
					}
				}
			}
			var before, after runtime.MemStats
			for b.Loop() {
				runtime.GC()
				runtime.ReadMemStats(&before)
				var x bookIndex
				x.resetBooks()
				for i, book := range books {
					x.replace(13030000000+uint64(i), nil, book)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				t0 := time.Now()
				runtime.GC()
				gc := time.Since(t0)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/3e6, "B/number")
				b.ReportMetric(float64(after.HeapObjects-before.HeapObjects), "objects")
				b.ReportMetric(float64(gc.Microseconds()), "µs/GC")
				runtime.KeepAlive(&x)
			}
		})
	}
}

// BenchmarkIndexReplace adds one new book of 1,000 numbers to an index
// that holds 3,000 books of 1,000, drawn from 1,000,000 numbers as in the
// load generator's contacts scenario: the in-memory part of an upload,
// done under the write lock. Each op is one book.
func BenchmarkIndexReplace(b *testing.B) {
	stored := benchBooks(rand.New(rand.NewPCG(1, 2)), 3000+256)
	var x bookIndex
	x.resetBooks()
	for i, book := range stored[:3000] {
		x.replace(13030000000+uint64(i), nil, book)
	}
	books := stored[3000:]
	owner := uint64(14040000000)
	for i := 0; b.Loop(); i++ {
		owner++
		x.replace(owner, nil, books[i%len(books)])
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
