package xmpp

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// GCFloor is the heap size below which the collector does not run: while
// the live heap is small, the collector's goal is raised to this instead
// of twice the live heap. A server with a few hundred busy sessions has a
// live heap of a few MiB and allocates a hundred MiB a second; with the
// default goal it collected twenty times a second, and those collections
// (and the stacks they shrink, which then grow again) took a fifth of its
// CPU. Above the floor the default policy (GOGC=100) holds unchanged, so
// the memory of many idle sessions is not affected.
const GCFloor = 64 << 20

// gcPercentFor is the GOGC that puts the heap goal, live*(1+p/100), at
// floor for a live heap of live bytes, and never below the default 100.
func gcPercentFor(live, floor uint64) int {
	if live == 0 || live >= floor/2 {
		return 100
	}
	return int(floor*100/live) - 100
}

// StartGCFloor keeps the collector's goal at or above floor, looking at
// the live heap every second, until ctx ends. It does nothing when the
// operator set GOGC: then the runtime does as told.
func StartGCFloor(ctx context.Context, floor uint64, logger *slog.Logger) {
	if _, set := os.LookupEnv("GOGC"); set || floor == 0 {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	apply := func(current int) int {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return current
		}
		p := gcPercentFor(sample[0].Value.Uint64(), floor)
		// Small changes of the live heap are not worth a call that takes
		// the heap lock.
		if p == current || current > 0 && p > current*9/10 && p < current*11/10 {
			return current
		}
		debug.SetGCPercent(p)
		logger.Debug("collector goal set", "gogc", p, "live_bytes", sample[0].Value.Uint64())
		return p
	}
	go func() {
		current := apply(0)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				debug.SetGCPercent(100)
				return
			case <-tick.C:
				current = apply(current)
			}
		}
	}()
}
