package main

import (
	"context"
	"fmt"
	"time"
)

// runIdle logs in sessions up to each checkpoint in cfg.sessions and holds
// them; at each checkpoint, after cfg.settle, it reads the server's resident
// memory. Memory per session is the growth since before the first login
// divided by the sessions held; the slope between the first and last
// checkpoints removes fixed costs such as caches that fill once.
func runIdle(ctx context.Context, e *env, res *result) error {
	pid := e.cfg.serverPID
	var rss0 int64
	if pid > 0 {
		var err error
		if rss0, err = rssBytes(pid); err != nil {
			return err
		}
		res.add("server_rss_before_mb", float64(rss0)/(1<<20), "MiB")
	}

	var held []*session
	defer func() { closeAll(held, false) }()
	loginHist := &histogram{}
	noop := func(int) handlers { return handlers{} }
	start := time.Now()
	var loginTime time.Duration
	var firstRSS int64
	failedTotal := 0
	for ci, n := range e.cfg.sessions {
		t0 := time.Now()
		ss, failed, err := loginAll(ctx, e, span(len(held)+failedTotal, n), noop, true, loginHist)
		loginTime += time.Since(t0)
		failedTotal += failed
		for _, s := range ss {
			if s != nil {
				held = append(held, s)
			}
		}
		if err != nil {
			e.logger.Warn("logins failed", "failed", failed, "err", err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("idle run stopped at %d sessions: %w", len(held), ctx.Err())
		}
		if len(held) == 0 {
			return fmt.Errorf("no session could log in: %w", err)
		}
		if pid == 0 {
			continue
		}
		if err := sleepUntil(ctx, time.Now().Add(e.cfg.settle)); err != nil {
			return err
		}
		rss, err := rssBytes(pid)
		if err != nil {
			return err
		}
		per := float64(rss-rss0) / float64(len(held)) / 1024
		res.add(fmt.Sprintf("rss_at_%d_mb", n), float64(rss)/(1<<20), "MiB")
		res.add(fmt.Sprintf("kb_per_session_at_%d", n), per, "KiB")
		if ci == 0 {
			firstRSS = rss
		} else if ci == len(e.cfg.sessions)-1 {
			slope := float64(rss-firstRSS) / float64(n-e.cfg.sessions[0]) / 1024
			res.add("kb_per_session_slope", slope, "KiB")
		}
	}
	res.add("sessions_held", float64(len(held)), "")
	res.add("logins_failed", float64(failedTotal), "")
	res.add("login_rate", float64(len(held))/loginTime.Seconds(), "/s")
	res.add("run_time_s", time.Since(start).Seconds(), "s")
	res.addLatency("login", loginHist)
	return nil
}
