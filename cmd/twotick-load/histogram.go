package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram counts durations in logarithmic buckets with 64 sub-buckets per
// power of two, so any reported percentile is within 1.6% of the true value
// while memory stays fixed however many samples arrive. Record is safe for
// concurrent use and lock-free; read only after recording has stopped.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

const (
	histExact   = 128 // values below this many microseconds are exact
	histSub     = 64  // sub-buckets per power of two above that
	histBuckets = histExact + 40*histSub
)

// bucketOf maps a value in microseconds to its bucket.
func bucketOf(us uint64) int {
	if us < histExact {
		return int(us)
	}
	shift := bits.Len64(us) - 7 // keeps the top 7 bits: 64..127
	i := histExact + (shift-1)*histSub + int(us>>shift) - histSub
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// bucketValue is the midpoint, in microseconds, of bucket i.
func bucketValue(i int) uint64 {
	if i < histExact {
		return uint64(i)
	}
	shift := (i-histExact)/histSub + 1
	low := uint64(histSub+(i-histExact)%histSub) << shift
	return low + (uint64(1)<<shift)/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	us := uint64(d / time.Microsecond)
	h.counts[bucketOf(us)].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
}

func (h *histogram) count() uint64 { return h.total.Load() }

// quantile returns the value at fraction q (0..1) of the samples, or 0 when
// there are none. The maximum is exact.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max.Load())
	}
	rank := uint64(q*float64(n)) + 1 // the rank-th smallest sample
	if rank > n {
		rank = n
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := time.Duration(bucketValue(i)) * time.Microsecond
			if m := time.Duration(h.max.Load()); v > m {
				v = m
			}
			return v
		}
	}
	return time.Duration(h.max.Load())
}

// points returns (value, cumulative fraction) for every non-empty bucket,
// for plotting.
func (h *histogram) points() (vals []time.Duration, cum []float64) {
	n := float64(h.total.Load())
	if n == 0 {
		return nil, nil
	}
	var seen uint64
	for i := range h.counts {
		c := h.counts[i].Load()
		if c == 0 {
			continue
		}
		seen += c
		vals = append(vals, time.Duration(bucketValue(i))*time.Microsecond)
		cum = append(cum, float64(seen)/n)
	}
	return vals, cum
}
