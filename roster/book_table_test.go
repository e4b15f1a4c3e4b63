package roster

import (
	"math/rand/v2"
	"testing"
)

// TestNumTable runs random inserts and deletions on a numTable and on a
// map side by side, with few distinct keys so that probe chains collide,
// wrap around the end and shift back on deletion.
func TestNumTable(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var tab numTable
	want := map[uint64]uint64{}
	for step := range 200000 {
		k := 1 + r.Uint64N(3000)
		switch r.IntN(3) {
		case 0, 1:
			v, added := tab.ref(k)
			if _, had := want[k]; had == added {
				t.Fatalf("step %d: ref(%d) added = %v, map had it: %v", step, k, added, had)
			}
			*v = uint64(step)
			want[k] = uint64(step)
		case 2:
			tab.del(k)
			delete(want, k)
		}
		if tab.len() != len(want) {
			t.Fatalf("step %d: %d keys, want %d", step, tab.len(), len(want))
		}
	}
	for k := uint64(1); k <= 3000; k++ {
		v, ok := tab.get(k)
		if w, had := want[k]; ok != had || v != w {
			t.Errorf("get(%d) = %d, %v; want %d, %v", k, v, ok, w, had)
		}
	}
}
