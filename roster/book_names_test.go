package roster

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestNameStore sets and removes random names of a few hundred keys on a
// nameStore and on a map side by side, with compaction at a low
// threshold so that it runs many times, and checks every name after each
// step of a sample and the byte counts at the end.
func TestNameStore(t *testing.T) {
	defer func(m int) { minCompacted = m }(minCompacted)
	minCompacted = 4096
	r := rand.New(rand.NewPCG(5, 6))
	s := newNameStore()
	want := map[[2]uint64]string{}
	compactions := 0
	for step := range 200000 {
		key := [2]uint64{1 + r.Uint64N(20), 1000 + r.Uint64N(20)}
		name := ""
		if r.IntN(4) > 0 {
			name = strings.Repeat(string(rune('a'+r.IntN(26))), r.IntN(maxNameBytes+1))
		}
		dead := s.dead
		s.set(key[0], key[1], name)
		if s.dead < dead { // only compaction lowers it
			compactions++
		}
		if name == "" {
			delete(want, key)
		} else {
			want[key] = name
		}
		if step%101 == 0 {
			for k, w := range want {
				if got := s.get(k[0], k[1]); got != w {
					t.Fatalf("step %d: name of %v is %d bytes of %q, want %d of %q",
						step, k, len(got), got[:min(len(got), 1)], len(w), w[:1])
				}
			}
		}
	}
	if s.len() != len(want) {
		t.Errorf("%d names, want %d", s.len(), len(want))
	}
	live := 0
	for _, w := range want {
		live += len(w)
	}
	if s.live != live {
		t.Errorf("live bytes %d, want %d", s.live, live)
	}
	if compactions == 0 {
		t.Error("never compacted")
	}
	if got := s.get(999, 999); got != "" {
		t.Errorf("name of an unknown key: %q", got)
	}
}
