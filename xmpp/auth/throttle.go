package auth

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// ThrottleConfig sets the limits of a Throttle.
type ThrottleConfig struct {
	// MaxPerAddr is the number of failures from one address within Window
	// after which that address is refused (default 10). IPv6 addresses are
	// counted per /64, since one host commonly has a whole /64.
	MaxPerAddr int
	// MaxPerAccount is the number of failures for one account, from all
	// addresses, within Window after which the account is "under attack"
	// (default 5). While it is, addresses that have failed for that account
	// are refused; addresses that have not (the owner's phone, say) are
	// still let in, so an attacker cannot lock the owner out.
	MaxPerAccount int
	// Window is the period over which failures count (default 15 minutes).
	Window time.Duration
	// MaxEntries caps each of the three tables (per address, per account,
	// per address and account); past it the oldest entry is forgotten
	// (default 100000, a few tens of MB at most).
	MaxEntries int
}

// Throttle counts failed logins per client address and per account within a
// window. It is safe for concurrent use.
//
// Memory is bounded by MaxEntries per table. Eviction means that an attacker
// who makes very many distinct entries can make the Throttle forget old
// ones; per-address counting of IPv6 by /64 keeps that expensive.
type Throttle struct {
	cfg ThrottleConfig
	now func() time.Time // replaced in tests

	mu     sync.Mutex
	addrs  *window[netip.Prefix] // guarded by mu
	locals *window[string]       // guarded by mu
	pairs  *window[pairKey]      // guarded by mu
}

type pairKey struct {
	addr  netip.Prefix
	local string
}

// NewThrottle returns a Throttle; zero fields of cfg take their defaults.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	if cfg.MaxPerAddr <= 0 {
		cfg.MaxPerAddr = 10
	}
	if cfg.MaxPerAccount <= 0 {
		cfg.MaxPerAccount = 5
	}
	if cfg.Window <= 0 {
		cfg.Window = 15 * time.Minute
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100000
	}
	return &Throttle{
		cfg:    cfg,
		now:    time.Now,
		addrs:  newWindow[netip.Prefix](cfg.MaxEntries),
		locals: newWindow[string](cfg.MaxEntries),
		pairs:  newWindow[pairKey](cfg.MaxEntries),
	}
}

// addrKey groups an address: itself for IPv4, its /64 for IPv6.
func addrKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() || !a.IsValid() {
		return netip.PrefixFrom(a, a.BitLen())
	}
	p, _ := a.Prefix(64)
	return p
}

// Allow reports whether a login attempt from addr for local may proceed and,
// if not, how long until it may. local "" checks only the address.
func (t *Throttle) Allow(addr netip.Addr, local string) (ok bool, retryAfter time.Duration) {
	now := t.now()
	k := addrKey(addr)
	t.mu.Lock()
	defer t.mu.Unlock()

	if n, until := t.addrs.get(k, now, t.cfg.Window); n >= t.cfg.MaxPerAddr {
		return false, until.Sub(now)
	}
	if local == "" {
		return true, 0
	}
	n, until := t.locals.get(local, now, t.cfg.Window)
	if n < t.cfg.MaxPerAccount {
		return true, 0
	}
	if p, _ := t.pairs.get(pairKey{k, local}, now, t.cfg.Window); p > 0 {
		return false, until.Sub(now)
	}
	return true, 0
}

// Failure records a failed login from addr for local.
func (t *Throttle) Failure(addr netip.Addr, local string) {
	now := t.now()
	k := addrKey(addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addrs.add(k, now, t.cfg.Window)
	if local != "" {
		t.locals.add(local, now, t.cfg.Window)
		t.pairs.add(pairKey{k, local}, now, t.cfg.Window)
	}
}

// Success records a successful login. It forgets the failures of this
// address for this account (the owner mistyped), but neither the address's
// total, which an attacker could otherwise reset by logging in to an
// account of their own between guesses, nor the account's total.
func (t *Throttle) Success(addr netip.Addr, local string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pairs.remove(pairKey{addrKey(addr), local})
}

// window is a table of failure counts that each expire a fixed time after
// their first failure, capped in size with the oldest entry evicted first.
// It is not safe for concurrent use; Throttle guards it.
type window[K comparable] struct {
	max   int
	m     map[K]*list.Element
	order *list.List // of *entry[K], oldest first
}

type entry[K comparable] struct {
	key   K
	n     int
	start time.Time
}

func newWindow[K comparable](max int) *window[K] {
	return &window[K]{max: max, m: map[K]*list.Element{}, order: list.New()}
}

// get returns the live count for k and when it expires.
func (w *window[K]) get(k K, now time.Time, win time.Duration) (int, time.Time) {
	el, ok := w.m[k]
	if !ok {
		return 0, now
	}
	e := el.Value.(*entry[K])
	if now.Sub(e.start) >= win {
		w.order.Remove(el)
		delete(w.m, k)
		return 0, now
	}
	return e.n, e.start.Add(win)
}

func (w *window[K]) add(k K, now time.Time, win time.Duration) {
	if el, ok := w.m[k]; ok {
		e := el.Value.(*entry[K])
		if now.Sub(e.start) < win {
			e.n++
			return
		}
		w.order.Remove(el)
		delete(w.m, k)
	}
	for w.order.Len() >= w.max {
		old := w.order.Front()
		w.order.Remove(old)
		delete(w.m, old.Value.(*entry[K]).key)
	}
	w.m[k] = w.order.PushBack(&entry[K]{key: k, n: 1, start: now})
}

func (w *window[K]) remove(k K) {
	if el, ok := w.m[k]; ok {
		w.order.Remove(el)
		delete(w.m, k)
	}
}
