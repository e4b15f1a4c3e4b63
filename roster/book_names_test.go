package roster

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestPackNames packs random sorted books, some entries named and some
// not, and looks up every number of each, and numbers between them.
func TestPackNames(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	if got := packNames([]bookEntry{{k: 5}}); got != nil {
		t.Errorf("a book without names packed into %d bytes", len(got))
	}
	if got := nameIn(nil, 5); got != "" {
		t.Errorf("name in nothing: %q", got)
	}
	for round := range 200 {
		var book []bookEntry
		k := uint64(1000)
		for i := range r.IntN(300) {
			k += 1 + r.Uint64N(3)
			name := ""
			if r.IntN(3) > 0 {
				name = fmt.Sprintf("n%d-%d", round, i)[:1+r.IntN(4)]
			}
			book = append(book, bookEntry{k: k, name: name})
		}
		packed := packNames(book)
		want := map[uint64]string{}
		for _, e := range book {
			want[e.k] = e.name
		}
		for q := uint64(990); q <= k+2; q++ {
			if got := nameIn(packed, q); got != want[q] {
				t.Fatalf("round %d: name of %d = %q, want %q", round, q, got, want[q])
			}
		}
	}
}
