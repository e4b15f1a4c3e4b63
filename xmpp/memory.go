package xmpp

// Returning memory to the OS when the server goes quiet.
//
// The Go collector lets the heap grow to twice what was live after the last
// collection (GOGC=100) before it collects again, and the background
// scavenger gives back to the OS only what lies beyond that goal. After a
// burst of logins, which allocate far more (TLS handshakes, SCRAM, roster
// loads) than the sessions keep, the process therefore holds about twice
// its live heap for as long as nothing allocates: on an idle server that is
// forever, and the freed half is resident memory nobody uses (docs/memory.md).
//
// memoryPolicy decides when one forced collection and release is worth it:
// the heap has at least minReclaim bytes it could give back, the allocation rate over the quiet window is
// low, both in bytes per second and against what a release would free (the
// memory must stay free for at least horizon), the process used little CPU
// over the window, and the last release is at least minInterval ago. The
// CPU test is there because a server stalled in a long collection, or
// starved of CPU by other processes, allocates nothing for a while without
// being idle. Under load the rate
// and CPU tests fail, so it does not run while the server is busy; after a
// release it waits for new growth, so an idle server releases once and not
// again: a release leaves nothing to give back.

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the parts of the policy that are not settings: they bound its
// cost rather than tune it.
const (
	// memMinReclaim is the least memory worth a forced collection.
	memMinReclaim = 16 << 20
	// memHorizon: release only if, at the current allocation rate, the
	// released memory would not be needed again within this time.
	memHorizon = time.Minute
	// memMaxQuietRate is the highest allocation rate, in bytes per
	// second, that counts as quiet however large the heap: about 100 chat
	// messages per second with their receipts (some 6 KB allocated per
	// stanza). On a large heap the horizon alone would let a release
	// interrupt real traffic, when a release costs most.
	memMaxQuietRate = 2 << 20
	// memMaxQuietCPU is the share of one core the process may have used
	// or waited for over the quiet window: an idle server with 19,000
	// sessions used about 2% (with /metrics scraped twice a second), a
	// login burst or a collection uses all it gets.
	memMaxQuietCPU = 0.1
	// memMinInterval bounds releases to one per interval, whatever the
	// workload: a forced collection costs CPU in proportion to the live
	// heap (about 0.1 s per 100 MiB on one core).
	memMinInterval = 10 * time.Second
)

// heapStats is what the policy reads of the runtime. Heap memory not
// returned to the OS is objects+unused+free.
type heapStats struct {
	allocs  uint64        // bytes allocated since the process started
	live    uint64        // heap bytes marked live by the last collection
	objects uint64        // bytes of objects, live or not yet found dead
	unused  uint64        // free slots in spans that hold objects
	free    uint64        // free pages not returned to the OS
	cpu     time.Duration // CPU the process has used or waited for (procCPUDemand)
}

func (s heapStats) retained() uint64 { return s.objects + s.unused + s.free }

// reclaimable is what a collection and release would give back: the free
// pages, and the objects allocated since the last collection, most of
// which are garbage on a server gone quiet. Free slots in spans that still
// hold objects are not counted: the collector does not move objects, so
// that fragmentation stays until the spans fill again.
func (s heapStats) reclaimable() uint64 {
	return s.free + s.objects - min(s.objects, s.live)
}

// allocSample is the allocation and CPU counters at one time.
type allocSample struct {
	at     time.Time
	allocs uint64
	cpu    time.Duration
}

// memoryPolicy is the decision, without clock or runtime: observe is given
// both. It is not safe for concurrent use.
type memoryPolicy struct {
	quiet       time.Duration // the window the allocation rate is measured over
	horizon     time.Duration
	maxRate     float64 // bytes per second
	maxCPU      float64 // share of one core
	minReclaim  uint64
	minInterval time.Duration

	samples []allocSample // oldest first, spanning a little more than quiet
	last    time.Time     // the last release; zero before the first
}

func newMemoryPolicy(quiet time.Duration) *memoryPolicy {
	return &memoryPolicy{quiet: quiet, horizon: memHorizon, maxRate: memMaxQuietRate,
		maxCPU: memMaxQuietCPU, minReclaim: memMinReclaim, minInterval: memMinInterval}
}

// observe records s at now and reports whether to release memory now.
func (p *memoryPolicy) observe(now time.Time, s heapStats) bool {
	p.samples = append(p.samples, allocSample{now, s.allocs, s.cpu})
	// Keep one sample at least quiet old, as the start of the window.
	for len(p.samples) > 1 && now.Sub(p.samples[1].at) >= p.quiet {
		p.samples = p.samples[1:]
	}
	base := p.samples[0]
	window := now.Sub(base.at)
	switch {
	case window < p.quiet:
		return false // not watched for long enough
	case !p.last.IsZero() && now.Sub(p.last) < p.minInterval:
		return false
	case s.reclaimable() < p.minReclaim:
		return false // nothing to give back
	}
	if cpu := s.cpu - base.cpu; cpu < 0 || float64(cpu)/float64(window) > p.maxCPU {
		return false // working, or starved, if not allocating; or unknown
	}
	// Busy too: at this rate the heap would regrow into what a release
	// frees within the horizon.
	rate := float64(s.allocs-base.allocs) / window.Seconds()
	return rate <= p.maxRate && rate*p.horizon.Seconds() < float64(s.reclaimable())
}

// released records a release at now.
func (p *memoryPolicy) released(now time.Time) {
	p.last = now
	p.samples = p.samples[:0]
}

// runtimeMetrics are the runtime/metrics samples readHeapStats reads.
var runtimeMetrics = []string{
	"/gc/heap/allocs:bytes",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
}

// heapReader reads heapStats from the runtime and the kernel, reusing its
// sample slice.
type heapReader struct{ samples []metrics.Sample }

func (r *heapReader) read() heapStats {
	if r.samples == nil {
		r.samples = make([]metrics.Sample, len(runtimeMetrics))
		for i, name := range runtimeMetrics {
			r.samples[i].Name = name
		}
	}
	metrics.Read(r.samples)
	v := func(i int) uint64 {
		if r.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return r.samples[i].Value.Uint64()
	}
	return heapStats{allocs: v(0), live: v(1), objects: v(2), unused: v(3), free: v(4),
		cpu: procCPUDemand()}
}

// procCPUDemand is the CPU time the process has used and, on Linux, the
// time its threads have waited for a CPU: a server starved by other
// processes allocates little and uses little CPU while its logins queue,
// and is not idle. Elsewhere, or without /proc, it is the CPU time used.
// A thread that exits takes its share with it, so the sum may go down.
func procCPUDemand() time.Duration {
	if tasks, err := os.ReadDir("/proc/self/task"); err == nil {
		var sum int64
		for _, t := range tasks {
			b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/schedstat")
			if err != nil {
				continue // the thread exited
			}
			// Time on a CPU and time waiting for one, in nanoseconds.
			f := strings.Fields(string(b))
			if len(f) < 2 {
				break
			}
			run, err1 := strconv.ParseInt(f[0], 10, 64)
			wait, err2 := strconv.ParseInt(f[1], 10, 64)
			if err1 != nil || err2 != nil {
				break
			}
			sum += run + wait
		}
		if sum > 0 {
			return time.Duration(sum)
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// MemoryReleaser returns free heap memory to the OS once the server has
// gone quiet after growing (see the top of this file). Its methods are safe
// for concurrent use.
type MemoryReleaser struct {
	cancel   context.CancelFunc
	done     chan struct{}
	releases prometheus.Counter
	bytes    prometheus.Counter
}

// StartMemoryReleaser starts the policy with the quiet window quiet, which
// is also how often, in eighths, it looks at the runtime's statistics. A
// quiet of zero or less starts nothing. Its counters are registered with
// reg unless reg is nil. Stop stops it.
func StartMemoryReleaser(quiet time.Duration, reg prometheus.Registerer,
	logger *slog.Logger) *MemoryReleaser {
	m := &MemoryReleaser{
		done: make(chan struct{}),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twotick_memory_releases_total",
			Help: "Forced collections that returned free memory to the OS while quiet."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twotick_memory_released_bytes_total",
			Help: "Heap bytes returned to the OS by those collections."}),
	}
	if reg != nil {
		reg.MustRegister(m.releases, m.bytes)
	}
	if quiet <= 0 {
		close(m.done)
		return m
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go m.run(ctx, newMemoryPolicy(quiet), logger.With("component", "memory"))
	return m
}

func (m *MemoryReleaser) run(ctx context.Context, p *memoryPolicy, log *slog.Logger) {
	defer close(m.done)
	// Eighths: a release comes at most an eighth of the window late, and
	// a look costs about a microsecond.
	tick := time.NewTicker(max(p.quiet/8, 25*time.Millisecond))
	defer tick.Stop()
	var r heapReader
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			before := r.read()
			if !p.observe(now, before) {
				continue
			}
			start := time.Now()
			debug.FreeOSMemory()
			after := r.read()
			p.released(time.Now())
			freed := before.retained() - min(before.retained(), after.retained())
			m.releases.Inc()
			m.bytes.Add(float64(freed))
			log.Debug("returned free memory to the OS", "freed_bytes", freed,
				"live_bytes", after.live, "took", time.Since(start))
		}
	}
}

// Stop stops the policy and waits for it; a release under way completes
// first. It may be called more than once.
func (m *MemoryReleaser) Stop() {
	if m.cancel != nil {
		m.cancel()
	}
	<-m.done
}
