package xmpp

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// memStep is one observation: how much was allocated since the previous
// one, what is live, how many bytes objects hold, and whether the policy
// must release.
type memStep struct {
	after   time.Duration // since the previous step
	alloc   uint64        // bytes allocated since the previous step
	cpu     time.Duration // CPU used since the previous step
	live    uint64
	objects uint64
	want    bool
}

const mib = 1 << 20

// steps of 250 ms, as the releaser takes them with a quiet window of 1 s.
const q = 250 * time.Millisecond

func TestMemoryPolicy(t *testing.T) {
	// A login burst: 25 MiB/s for as long as the steps say, the heap at
	// twice the live 100 MiB.
	burst := func(n int) []memStep {
		s := make([]memStep, n)
		for i := range s {
			s[i] = memStep{q, 25 * mib / 4, q * 8 / 10, 100 * mib, 200 * mib, false}
		}
		return s
	}
	quiet := func(n int, live, objects uint64, last bool) []memStep {
		s := make([]memStep, n)
		for i := range s {
			s[i] = memStep{q, 4 << 10, time.Millisecond, live, objects, false}
		}
		s[n-1].want = last
		return s
	}
	// The process works, 80% of a core, without allocating.
	stalled := func(n int) []memStep {
		s := make([]memStep, n)
		for i := range s {
			s[i] = memStep{q, 0, q * 8 / 10, 100 * mib, 200 * mib, false}
		}
		return s
	}
	cat := func(parts ...[]memStep) []memStep {
		var all []memStep
		for _, p := range parts {
			all = append(all, p...)
		}
		return all
	}
	tests := []struct {
		name  string
		steps []memStep
	}{
		{"busy never releases", burst(400)},
		{"quiet after growth releases once the window is full",
			cat(burst(20), quiet(4, 100*mib, 200*mib, true))},
		{"quiet without growth does nothing",
			quiet(40, 10*mib, 20*mib, false)},
		{"a slow trickle that would refill the heap within the horizon is busy",
			cat(burst(8), []memStep{
				{q, 1 * mib, 5 * time.Millisecond, 100 * mib, 200 * mib, false},
				{q, 1 * mib, 5 * time.Millisecond, 100 * mib, 200 * mib, false},
				{q, 1 * mib, 5 * time.Millisecond, 100 * mib, 200 * mib, false},
				{q, 1 * mib, 5 * time.Millisecond, 100 * mib, 200 * mib, false},
				{q, 1 * mib, 5 * time.Millisecond, 100 * mib, 200 * mib, false},
			})},
		{"a large heap under moderate traffic is busy",
			cat(burst(8), []memStep{
				{q, 1 * mib, 5 * time.Millisecond, 1 << 30, 2 << 30, false},
				{q, 1 * mib, 5 * time.Millisecond, 1 << 30, 2 << 30, false},
				{q, 1 * mib, 5 * time.Millisecond, 1 << 30, 2 << 30, false},
				{q, 1 * mib, 5 * time.Millisecond, 1 << 30, 2 << 30, false},
				{q, 1 * mib, 5 * time.Millisecond, 1 << 30, 2 << 30, false},
			})},
		{"a stall in a long collection, or starved of CPU, allocates nothing but is busy",
			cat(burst(8), stalled(8), quiet(3, 100*mib, 200*mib, false),
				quiet(1, 100*mib, 200*mib, true))},
		{"CPU demand that goes down (a thread exited) is no proof of quiet",
			cat(burst(8), quiet(3, 100*mib, 200*mib, false),
				[]memStep{{q, 4 << 10, -time.Second, 100 * mib, 200 * mib, false}},
				quiet(3, 100*mib, 200*mib, false), quiet(1, 100*mib, 200*mib, true))},
		{"one allocation spike inside the window delays the release",
			cat(burst(8), quiet(3, 100*mib, 200*mib, false),
				[]memStep{{q, 50 * mib, 50 * time.Millisecond, 100 * mib, 200 * mib, false}},
				quiet(3, 100*mib, 200*mib, false), quiet(1, 100*mib, 200*mib, true))},
		{"released memory that does not come back: no second release",
			cat(burst(8), quiet(4, 100*mib, 200*mib, true),
				// A release leaves objects at the live heap.
				quiet(200, 100*mib, 101*mib, false))},
		{"new growth after a release: released again, but not within 10 s",
			cat(burst(8), quiet(4, 100*mib, 200*mib, true),
				quiet(4, 100*mib, 110*mib, false),
				burst(8), quiet(4, 150*mib, 300*mib, false), // 4 s after
				quiet(23, 150*mib, 300*mib, false), // 9.75 s after
				quiet(1, 150*mib, 300*mib, true))},
		{"a collection that found sessions gone: what it freed is released",
			cat(burst(8), quiet(4, 100*mib, 200*mib, true),
				quiet(40, 100*mib, 110*mib, false),
				quiet(1, 40*mib, 110*mib, true))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newMemoryPolicy(time.Second)
			now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
			var allocs uint64
			var cpu time.Duration
			for i, s := range tt.steps {
				now = now.Add(s.after)
				allocs += s.alloc
				cpu += s.cpu
				st := heapStats{allocs: allocs, live: s.live, objects: s.objects, cpu: cpu}
				got := p.observe(now, st)
				if got != s.want {
					t.Fatalf("step %d (%v in): release %v, want %v", i, s.after*time.Duration(i+1),
						got, s.want)
				}
				if got {
					p.released(now)
				}
			}
		})
	}
}

func TestMemoryReleaserStops(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := StartMemoryReleaser(time.Millisecond, reg, slog.New(slog.DiscardHandler))
	m.Stop()
	m.Stop()
	if n := testutil.CollectAndCount(reg); n != 2 {
		t.Errorf("%d metrics registered, want 2", n)
	}
	off := StartMemoryReleaser(0, nil, slog.New(slog.DiscardHandler))
	off.Stop()
}

func TestProcCPUDemandCountsWork(t *testing.T) {
	start := procCPUDemand()
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for procCPUDemand()-start < 5*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("10 s of spinning moved the CPU demand by %v", procCPUDemand()-start)
		}
		for i := range 100000 {
			x += i
		}
	}
	heapSink = make([]byte, x&1)
}

// heapSink makes the test's allocation escape to the heap.
var heapSink []byte

func TestHeapReaderReadsTheRuntime(t *testing.T) {
	var r heapReader
	s := r.read()
	if s.allocs == 0 || s.retained() == 0 || s.cpu == 0 {
		t.Errorf("heap statistics %+v: the runtime metrics are missing", s)
	}
	heapSink = make([]byte, 1<<20)
	if s2 := r.read(); s2.allocs < s.allocs+1<<20 {
		t.Errorf("allocating 1 MiB moved the counter from %d to %d", s.allocs, s2.allocs)
	}
}
