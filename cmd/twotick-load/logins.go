package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// loginAll logs in users[i] for every i, at most cfg.concurrency at a time
// and no faster than the dialer's connect rate. Each session's reader is
// started with hs(i) and, when presence is set, initial presence is sent.
// The result is aligned with users; failed logins leave nil. Every login
// time goes into hist when it is not nil.
func loginAll(ctx context.Context, e *env, users []int, hs func(i int) handlers,
	presence bool, hist *histogram) (out []*session, failed int, firstErr error) {
	out = make([]*session, len(users))
	var (
		wg      sync.WaitGroup
		next    atomic.Int64
		nFailed atomic.Int64
		errOnce sync.Once
	)
	workers := min(e.cfg.concurrency, len(users))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(users) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				s, err := login(ctx, e.dialer, e.client, e.user(users[i]))
				if err == nil {
					s.start(hs(i))
					if presence {
						_, err = s.sendStanza("<presence/>", false)
					}
				}
				if err != nil {
					nFailed.Add(1)
					errOnce.Do(func() { firstErr = err })
					e.logger.Debug("login failed", "user", e.user(users[i]), "err", err)
					if s != nil {
						s.kill()
					}
					continue
				}
				if hist != nil {
					hist.record(time.Since(t0))
				}
				out[i] = s
			}
		}()
	}
	wg.Wait()
	return out, int(nFailed.Load()), firstErr
}

// closeAll ends every session in parallel, gracefully when graceful is set.
func closeAll(ss []*session, graceful bool) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, s := range ss {
		if s == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if graceful {
				s.close()
			} else {
				s.kill()
			}
		}()
	}
	wg.Wait()
}

// span returns the numbers from..to-1.
func span(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// waitFor polls cond every 20 ms until it holds, the deadline passes or ctx
// ends, and reports whether it held.
func waitFor(ctx context.Context, deadline time.Time, cond func() bool) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-t.C:
		}
	}
}
