package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// errNotLoopback is returned for any target outside 127.0.0.0/8 and ::1. The
// tool opens tens of thousands of connections and must never be pointed at
// a machine someone else runs.
var errNotLoopback = errors.New("target is not a loopback address")

// checkLoopback accepts "localhost" or a literal loopback IP, with a port.
// Other host names are refused rather than resolved, so that a resolver
// cannot redirect the load.
func checkLoopback(hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("target %q: %w", hostport, err)
	}
	if port == "" {
		return fmt.Errorf("target %q: missing port", hostport)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return fmt.Errorf("target %q: %w", hostport, errNotLoopback)
	}
	return nil
}

// pacer hands out start times at most rate per second. It is safe for
// concurrent use; the zero rate means no bound.
type pacer struct {
	interval time.Duration

	mu   sync.Mutex
	next time.Time // guarded by mu
}

func newPacer(perSecond float64) *pacer {
	if perSecond <= 0 {
		return &pacer{}
	}
	return &pacer{interval: time.Duration(float64(time.Second) / perSecond)}
}

// wait blocks until the caller's slot comes, or ctx ends.
func (p *pacer) wait(ctx context.Context) error {
	if p.interval == 0 {
		return ctx.Err()
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	slot := p.next
	p.next = p.next.Add(p.interval)
	p.mu.Unlock()
	return sleepUntil(ctx, slot)
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dialer opens TCP connections from source addresses spread over
// 127.0.0.0/8. One source address and one destination give at most about
// 28,000 ephemeral ports (net.ipv4.ip_local_port_range), and TIME_WAIT keeps
// them busy after a run; many sources lift that limit.
type dialer struct {
	target  string
	sources []net.IP
	n       atomic.Uint64
	pace    *pacer
}

func newDialer(target string, sources int, connectRate float64) (*dialer, error) {
	if err := checkLoopback(target); err != nil {
		return nil, err
	}
	d := &dialer{target: target, pace: newPacer(connectRate)}
	host, _, _ := net.SplitHostPort(target)
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() && !ip.Is4In6() {
		return d, nil // ::1 has no spare addresses; use the default source
	}
	for i := 0; i < sources; i++ {
		// 127.0.x.y with x in 1..250 and y in 1..250, skipping 127.0.0.1.
		d.sources = append(d.sources, net.IPv4(127, 0, byte(1+i/250%250), byte(1+i%250)))
	}
	return d, nil
}

// dial waits for a connect slot, then connects.
func (d *dialer) dial(ctx context.Context) (net.Conn, error) {
	if err := d.pace.wait(ctx); err != nil {
		return nil, err
	}
	nd := net.Dialer{Timeout: 10 * time.Second}
	if len(d.sources) > 0 {
		src := d.sources[d.n.Add(1)%uint64(len(d.sources))]
		nd.LocalAddr = &net.TCPAddr{IP: src}
	}
	c, err := nd.DialContext(ctx, "tcp", d.target)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", d.target, err)
	}
	return c, nil
}
