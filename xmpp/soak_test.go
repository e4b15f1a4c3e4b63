package xmpp

// Memory and leak measurements (issue 4, item 1). The normal suite runs a
// small version; TWOTICK_SOAK=1 runs the documented one:
//
//	TWOTICK_SOAK=1 go test ./xmpp/ -run 'TestIdleUnauthMemory|TestConnectCycles' -v -timeout 10m
//
// The figures go to docs/security.md.

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/wire"
)

// soakSize returns the soak figure with TWOTICK_SOAK=1, otherwise the
// small one; -short skips both.
func soakSize(t *testing.T, small, soak int) int {
	if testing.Short() {
		t.Skip("a measurement; skipped with -short")
	}
	if os.Getenv("TWOTICK_SOAK") != "" {
		return soak
	}
	return small
}

// procSnapshot is what a leak would grow.
type procSnapshot struct {
	goroutines int
	fds        int
	heap       uint64 // live heap after a collection, bytes
	stacks     uint64 // goroutine stacks in use, bytes
	rss        uint64 // resident set, bytes
}

func snapshot(t *testing.T) procSnapshot {
	t.Helper()
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return procSnapshot{goroutines: runtime.NumGoroutine(), fds: len(fds),
		heap: ms.HeapAlloc, stacks: ms.StackInuse, rss: rss()}
}

// rss reads the resident set size from /proc/self/statm, or 0.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// sourceIP spreads client connections over loopback addresses, so that
// 100,000 short connections do not run out of ephemeral ports.
func sourceIP(i int) string { return fmt.Sprintf("127.0.1.%d", 1+i%200) }

// openIdle connects from ip, sends a stream header and reads the server's
// header and features: the server now holds an idle unauthenticated
// stream waiting for STARTTLS.
func openIdle(ts *testServer, ip string) (net.Conn, error) {
	d := net.Dialer{Timeout: waitTime, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	nc, err := d.Dial("tcp", ts.starttlsAddr)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(waitTime))
	if _, err := nc.Write([]byte(clientHeader)); err != nil {
		nc.Close()
		return nil, err
	}
	rd := wire.NewReader(nc, wire.Limits{}, 512)
	if _, err := rd.StreamHeader(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("server header: %w", err)
	}
	if f, err := rd.Next(); err != nil || f.Name.Local != "features" {
		nc.Close()
		return nil, fmt.Errorf("server features: %v %v", f, err)
	}
	nc.SetDeadline(time.Time{})
	return nc, nil
}

// waitConns waits until the server holds n connections.
func waitConns(t *testing.T, ts *testServer, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ts.srv.mu.Lock()
		got := len(ts.srv.conns)
		ts.srv.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server holds %d connections, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond) // polling the server's count
	}
}

// TestIdleUnauthMemory opens idle unauthenticated streams and reports what
// each costs the process: the server's connection, reader and goroutine,
// and the client's socket (a small part).
func TestIdleUnauthMemory(t *testing.T) {
	n := soakSize(t, 500, 5000)
	ts := newTestServer(t, func(c *conf.Config) {
		c.C2S.NegotiationTimeout = conf.Duration{Duration: 10 * time.Minute}
	})
	before := snapshot(t)
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range n {
		c, err := openIdle(ts, sourceIP(i))
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	waitConns(t, ts, n)
	after := snapshot(t)
	perConn := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	t.Logf("%d idle unauthenticated connections: heap %.0f B/conn, stacks %.0f B/conn, "+
		"heap+stacks %.1f KiB/conn, RSS %.1f KiB/conn, goroutines +%d, fds +%d",
		n, perConn(after.heap, before.heap), perConn(after.stacks, before.stacks),
		(perConn(after.heap, before.heap)+perConn(after.stacks, before.stacks))/1024,
		perConn(after.rss, before.rss)/1024, after.goroutines-before.goroutines,
		after.fds-before.fds)
	// A bound, not a timing: an idle stream must stay in the tens of KiB.
	if per := perConn(after.heap, before.heap) + perConn(after.stacks, before.stacks); per > 64<<10 {
		t.Errorf("an idle unauthenticated connection costs %.0f bytes", per)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	waitConns(t, ts, 0)
}

// TestConnectCycles connects and disconnects many times, in bounded
// parallel and in three ways (close at once, close the stream, cut after
// the header), and checks that goroutines, file descriptors and heap
// return to where they started.
func TestConnectCycles(t *testing.T) {
	n := soakSize(t, 5000, 100000)
	ts := newTestServer(t)
	// A first round warms up pools and caches the server keeps by design.
	cycle(t, ts, 200)
	waitConns(t, ts, 0)
	before := snapshot(t)

	start := time.Now()
	cycle(t, ts, n)
	elapsed := time.Since(start)
	waitConns(t, ts, 0)

	// Goroutines and descriptors of closed connections end a moment after
	// the server forgets them; poll until they are back.
	var after procSnapshot
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = snapshot(t)
		if after.goroutines <= before.goroutines+2 && after.fds <= before.fds+2 ||
			time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling the process's counts
	}
	t.Logf("%d connect/disconnect cycles in %v (%.0f/s): goroutines %d -> %d, fds %d -> %d, "+
		"heap %.1f -> %.1f MiB, RSS %.1f -> %.1f MiB",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(),
		before.goroutines, after.goroutines, before.fds, after.fds,
		float64(before.heap)/(1<<20), float64(after.heap)/(1<<20),
		float64(before.rss)/(1<<20), float64(after.rss)/(1<<20))
	if after.goroutines > before.goroutines+2 {
		t.Errorf("goroutines leaked: %d -> %d", before.goroutines, after.goroutines)
	}
	if after.fds > before.fds+2 {
		t.Errorf("file descriptors leaked: %d -> %d", before.fds, after.fds)
	}
	// 1 MiB of slack covers allocator and runtime bookkeeping; a leak of
	// even 100 bytes a cycle exceeds it at 100,000 cycles.
	if after.heap > before.heap+1<<20 {
		t.Errorf("heap grew from %d to %d bytes", before.heap, after.heap)
	}
}

// cycle runs n connect/disconnect cycles on 8 workers.
func cycle(t *testing.T, ts *testServer, n int) {
	t.Helper()
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr sync.Once
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := oneCycle(ts, i); err != nil {
					failed.Add(1)
					firstErr.Do(func() { t.Errorf("cycle %d: %v", i, err) })
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d cycles failed", f, n)
	}
}

func oneCycle(ts *testServer, i int) error {
	ip := sourceIP(i)
	switch i % 3 {
	case 0: // connect and leave
		d := net.Dialer{Timeout: waitTime, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		nc, err := d.Dial("tcp", ts.starttlsAddr)
		if err != nil {
			return err
		}
		return nc.Close()
	case 1: // open the stream, then close it properly
		nc, err := openIdle(ts, ip)
		if err != nil {
			return err
		}
		nc.SetDeadline(time.Now().Add(waitTime))
		if _, err := nc.Write([]byte("</stream:stream>")); err != nil {
			nc.Close()
			return err
		}
		buf := make([]byte, 256)
		for {
			// Read until the server's close tag and EOF.
			if _, err := nc.Read(buf); err != nil {
				nc.Close()
				return nil
			}
		}
	default: // open the stream, then cut the connection
		nc, err := openIdle(ts, ip)
		if err != nil {
			return err
		}
		nc.(*net.TCPConn).SetLinger(0)
		return nc.Close()
	}
}
