package xmpp

import (
	"net/netip"
	"testing"
	"time"
)

// TestWarnLimiter checks the per-address and global bounds on warnings and
// that what was held back is reported with the next warning let through.
func TestWarnLimiter(t *testing.T) {
	var l warnLimiter
	now := time.Unix(1_000_000, 0)
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")

	t.Run("burst per address", func(t *testing.T) {
		for i := range warnBurst {
			if ok, _ := l.allow(a, now); !ok {
				t.Fatalf("warning %d held back", i+1)
			}
		}
		for range 5 {
			if ok, _ := l.allow(a, now); ok {
				t.Fatal("warning past the burst let through")
			}
		}
	})
	t.Run("other addresses unaffected", func(t *testing.T) {
		if ok, held := l.allow(b, now); !ok || held != 0 {
			t.Fatalf("allow(b) = %v, %d", ok, held)
		}
	})
	t.Run("held back count reported after the window", func(t *testing.T) {
		ok, held := l.allow(a, now.Add(warnWindow))
		if !ok || held != 5 {
			t.Fatalf("allow after the window = %v, held %d, want true, 5", ok, held)
		}
		if _, held := l.allow(a, now.Add(warnWindow)); held != 0 {
			t.Fatalf("held count reported twice: %d", held)
		}
	})
	t.Run("global bound", func(t *testing.T) {
		var g warnLimiter
		let := 0
		for i := range warnGlobal * 2 {
			addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			if ok, _ := g.allow(addr, now); ok {
				let++
			}
		}
		if let != warnGlobal {
			t.Fatalf("%d warnings let through in one window, want %d", let, warnGlobal)
		}
	})
	t.Run("memory bound", func(t *testing.T) {
		var g warnLimiter
		for i := range warnMaxAddrs * 3 {
			addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			g.allow(addr, now)
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(g.addrs) > warnMaxAddrs || len(g.held) > warnMaxAddrs {
			t.Fatalf("%d addresses and %d held counts remembered", len(g.addrs), len(g.held))
		}
	})
}
