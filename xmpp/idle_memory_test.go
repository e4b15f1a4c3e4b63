package xmpp

// Memory of idle bound sessions (issue 8: at most 24 KB per TLS session and
// 16 KB in plaintext). The figures of record come from cmd/twotick-load
// against the server process; this test is where to look for the
// allocations. With TWOTICK_IDLE_HEAP=FILE it writes a heap profile while
// the sessions are held; the server's share is what (*conn).serve and its
// callees allocated:
//
//	TWOTICK_SOAK=1 TWOTICK_IDLE_HEAP=/tmp/idle.heap go test ./xmpp/ -run TestIdleBoundMemory -v
//	go tool pprof -sample_index=inuse_space -focus='conn\).serve' -top /tmp/idle.heap

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"testing"
)

// idleLogin logs a client in as the load generator does: STARTTLS, SCRAM,
// bind, stream management, initial presence; it returns once the server
// has handled all of it, without starting a reader goroutine of its own.
func idleLogin(t *testing.T, ts *testServer, local string) *rawClient {
	t.Helper()
	c := login(t, ts, local, "pw-"+local, "idle")
	c.send(t, "<enable xmlns='"+nsSM+"'/><presence/><r xmlns='"+nsSM+"'/>")
	for {
		el := c.nextSync(t)
		if el.Name.Space == nsSM && el.Name.Local == "failed" {
			t.Fatalf("enabling stream management: %s", el)
		}
		if el.Name.Space == nsSM && el.Name.Local == "a" {
			return c
		}
	}
}

// TestIdleBoundMemory holds bound sessions and reports the heap and stack
// they cost the process (clients included: their TLS state and readers are
// a part of the heap figure, which the profile separates).
func TestIdleBoundMemory(t *testing.T) {
	n := soakSize(t, 100, 2000)
	ts := newTestServer(t)
	const warm = 10
	locals := make([]string, n+warm)
	for i := range locals {
		locals[i] = fmt.Sprintf("idle%d", i)
	}
	addUsers(t, ts, locals...)
	// Pools and caches that fill once are not per-session costs.
	for _, l := range locals[:warm] {
		idleLogin(t, ts, l)
	}
	before := snapshot(t)
	if os.Getenv("TWOTICK_IDLE_HEAP") != "" {
		runtime.MemProfileRate = 512
		defer func() { runtime.MemProfileRate = 512 * 1024 }()
	}
	clients := make([]*rawClient, 0, n)
	for _, l := range locals[warm:] {
		clients = append(clients, idleLogin(t, ts, l))
	}
	after := snapshot(t)
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) / 1024 }
	t.Logf("%d idle bound sessions, clients in the same process: heap %.1f KiB/session, "+
		"stacks %.1f KiB/session, RSS %.1f KiB/session",
		n, per(after.heap, before.heap), per(after.stacks, before.stacks), per(after.rss, before.rss))
	// Stacks shrink by half at most once per collection, when a goroutine
	// uses under a quarter of its stack: after a few, only what an idle
	// connection's reader needs is left.
	for range 4 {
		runtime.GC()
	}
	settled := snapshot(t)
	t.Logf("after 6 more collections: heap %.1f KiB/session, stacks %.1f KiB/session, "+
		"RSS %.1f KiB/session, goroutines +%d",
		per(settled.heap, before.heap), per(settled.stacks, before.stacks), per(settled.rss, before.rss),
		settled.goroutines-before.goroutines)
	// What the server's memory policy (memory.go) leaves once it goes
	// quiet: the freed heap returned to the OS.
	debug.FreeOSMemory()
	released := snapshot(t)
	t.Logf("after returning free memory to the OS: heap %.1f KiB/session, RSS %.1f KiB/session",
		per(released.heap, before.heap), per(released.rss, before.rss))
	if path := os.Getenv("TWOTICK_IDLE_GOROUTINES"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		pprof.Lookup("goroutine").WriteTo(f, 1)
		f.Close()
	}
	if path := os.Getenv("TWOTICK_IDLE_HEAP"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	// A bound, not a measurement: both ends of a session together stay far
	// below what the clients of a large server would notice.
	if h := per(after.heap, before.heap) + per(after.stacks, before.stacks); h > 128 {
		t.Errorf("an idle bound session costs %.1f KiB with its client", h)
	}
	for _, c := range clients {
		c.raw.Close()
	}
}
