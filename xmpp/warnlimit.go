package xmpp

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// Limits of warnLimiter. A client address may cause warnBurst warnings per
// warnWindow, and all addresses together warnGlobal, so that neither one
// attacker nor many can flood the log. What is held back is counted and
// reported with the address's next warning.
const (
	warnWindow   = time.Minute
	warnBurst    = 10
	warnGlobal   = 1000
	warnMaxAddrs = 10000 // addresses remembered at most, in each table
)

// warnLimiter rate-limits the warnings hostile clients can cause, per
// client address. The zero value is ready to use; it is safe for
// concurrent use.
type warnLimiter struct {
	mu          sync.Mutex // guards the fields below
	windowStart time.Time
	total       int                // warnings let through in this window
	addrs       map[netip.Addr]int // warnings let through per address
	held        map[netip.Addr]int // warnings held back, not yet reported
}

// allow reports whether a warning caused by addr may be logged now, and
// how many of addr's warnings were held back before it.
func (l *warnLimiter) allow(addr netip.Addr, now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.addrs == nil || now.Sub(l.windowStart) >= warnWindow || len(l.addrs) >= warnMaxAddrs {
		l.windowStart, l.total = now, 0
		l.addrs = make(map[netip.Addr]int)
	}
	if l.addrs[addr] >= warnBurst || l.total >= warnGlobal {
		if l.held == nil {
			l.held = make(map[netip.Addr]int)
		}
		// Past warnMaxAddrs, new addresses' counts are dropped rather
		// than grow the table.
		if _, seen := l.held[addr]; seen || len(l.held) < warnMaxAddrs {
			l.held[addr]++
		}
		return false, 0
	}
	l.addrs[addr]++
	l.total++
	held = l.held[addr]
	delete(l.held, addr)
	return true, held
}

// warn logs msg at Warn for a failure caused by the client at addr, unless
// that address, or all of them, has caused too many warnings lately. The
// count of warnings held back is added as "suppressed" to the next one
// that is logged. Nothing in args may be a secret: callers pass conditions
// and reasons, never passwords, codes or payloads.
func (s *Server) warn(log *slog.Logger, addr netip.Addr, msg string, args ...any) {
	ok, held := s.warns.allow(addr, time.Now())
	if !ok {
		return
	}
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	log.Warn(msg, args...)
}
