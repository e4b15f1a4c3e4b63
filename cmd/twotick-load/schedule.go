package main

import "time"

// schedule is an open-loop send plan: message k of a run is due at
// start + k/rate, whatever happened to earlier messages. Latency is measured
// from the due time, so a server that stalls is charged for every message
// that waited behind the stall (no coordinated omission).
type schedule struct {
	start time.Time
	rate  float64 // messages per second over all senders
	total int     // messages in the run
}

// due returns when message k is to be sent.
func (s schedule) due(k int) time.Time {
	return s.start.Add(time.Duration(float64(k) * float64(time.Second) / s.rate))
}

// forSender lists the message numbers that sender i of n sends, in order:
// messages are dealt round-robin, so each sender runs at rate/n and the
// senders' due times interleave evenly.
func (s schedule) forSender(i, n int) []int {
	var ks []int
	for k := i; k < s.total; k += n {
		ks = append(ks, k)
	}
	return ks
}
