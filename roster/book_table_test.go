package roster

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestNumTable runs random inserts and deletions on a numTable and on a
// map side by side, with few distinct keys so that probe chains collide,
// wrap around the end and shift back on deletion.
func TestNumTable(t *testing.T) {
	t.Run("table", func(t *testing.T) { testNumTable(t, &numTable{}) })
	// With 3,000 keys the table's shards hold a few each; one shard
	// alone gets the long chains.
	t.Run("shard", func(t *testing.T) { testNumTable(t, &oneShard{}) })
}

// oneShard is a numShard with numTable's methods.
type oneShard struct{ numShard }

func (s *oneShard) ref(k uint64) (*uint64, bool) { return s.numShard.ref(k, mix(k)) }
func (s *oneShard) get(k uint64) (uint64, bool)  { return s.numShard.get(k, mix(k)) }
func (s *oneShard) del(k uint64)                 { s.numShard.del(k, mix(k)) }
func (s *oneShard) len() int                     { return s.n }

type numMap interface {
	ref(k uint64) (*uint64, bool)
	get(k uint64) (uint64, bool)
	del(k uint64)
	len() int
}

func testNumTable(t *testing.T, tab numMap) {
	r := rand.New(rand.NewPCG(1, 2))
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

// TestNumTableShardsEven checks that keys of one area spread over the
// shards evenly, so that the growth of one shard, the most that one insert
// copies, is a small part of the table.
func TestNumTableShardsEven(t *testing.T) {
	var tab numTable
	const n = 200000
	for i := range uint64(n) {
		tab.ref(12025550000 + i)
	}
	largest := 0
	for i := range tab.shards {
		largest = max(largest, len(tab.shards[i].slots))
	}
	// 200,000 keys over 1,024 shards at most 3/4 full: 256 or 512
	// slots each.
	if largest > 512 {
		t.Errorf("largest shard has %d slots, want at most 512", largest)
	}
}

// BenchmarkNumTableFill adds 4,000,000 numbers, as many as 4,000 books
// of 1,000 hold, and reports the longest single insert: the pause that a
// table's growth puts on the upload that triggers it, under the index's
// lock. Each op fills a new table.
func BenchmarkNumTableFill(b *testing.B) {
	const n = 4000000
	var worst time.Duration
	for b.Loop() {
		var tab numTable
		for i := range uint64(n) {
			t0 := time.Now()
			v, _ := tab.ref(12020000000 + i*7)
			*v = i
			if d := time.Since(t0); d > worst {
				worst = d
			}
		}
	}
	b.ReportMetric(float64(worst.Microseconds()), "max-µs/insert")
}
