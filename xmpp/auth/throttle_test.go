package auth

import (
	"crypto/tls"
	"net/netip"
	"testing"
	"time"
)

// tlsStub stands for a TLS connection that cannot export keying material:
// enough to offer PLAIN.
var tlsStub tls.ConnectionState

func TestThrottle(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	th := NewThrottle(ThrottleConfig{MaxPerAddr: 3, MaxPerAccount: 2, Window: time.Minute,
		MaxEntries: 100})
	th.now = func() time.Time { return now }
	attacker := netip.MustParseAddr("198.51.100.1")
	attacker2 := netip.MustParseAddr("198.51.100.2")
	victim := netip.MustParseAddr("203.0.113.9")
	v6a := netip.MustParseAddr("2001:db8::1")
	v6b := netip.MustParseAddr("2001:db8::2")

	allow := func(name string, a netip.Addr, local string, want bool) {
		t.Helper()
		if ok, _ := th.Allow(a, local); ok != want {
			t.Errorf("%s: Allow(%v, %q) = %v, want %v", name, a, local, ok, want)
		}
	}
	th.Failure(attacker, "+1")
	th.Failure(attacker2, "+1")
	allow("account hot, attacker that failed", attacker, "+1", false)
	allow("account hot, another attacker that failed", attacker2, "+1", false)
	allow("account hot, victim from a clean address", victim, "+1", true)
	allow("attacker on another account", attacker, "+2", true)

	th.Failure(attacker, "+2")
	th.Failure(attacker, "+3")
	allow("attacker over its address limit", attacker, "+4", false)
	allow("victim unaffected", victim, "+4", true)
	_, wait := th.Allow(attacker, "+4")
	if wait <= 0 || wait > time.Minute {
		t.Errorf("retryAfter %v", wait)
	}

	th.Failure(victim, "+1")
	allow("victim mistyped while hot", victim, "+1", false)
	th.Success(victim, "+1")
	allow("victim after a success elsewhere", victim, "+1", true)

	for range 3 {
		th.Failure(v6a, "")
	}
	allow("IPv6 neighbour in the same /64", v6b, "", false)

	now = now.Add(time.Minute)
	allow("after the window", attacker, "+1", true)
	allow("after the window, IPv6", v6b, "", true)
}

func TestThrottleBoundedMemory(t *testing.T) {
	th := NewThrottle(ThrottleConfig{MaxPerAddr: 1, MaxEntries: 10})
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		th.Failure(a, "+1")
	}
	if n := len(th.addrs.m) + len(th.pairs.m) + len(th.locals.m); n > 21 {
		t.Errorf("%d entries kept, cap is 10 per table", n)
	}
	if ok, _ := th.Allow(netip.AddrFrom4([4]byte{10, 0, 3, 231}), ""); ok {
		t.Error("the most recent failing address was forgotten")
	}
}

func TestServerUsesThrottle(t *testing.T) {
	store := newTestStore(t)
	th := NewThrottle(ThrottleConfig{MaxPerAddr: 100, MaxPerAccount: 2, Window: time.Hour})
	srv := NewServer(store, th)
	if err := store.Create(t.Context(), "+12025550101", KindPhone, "pw"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if c := condition(plainLogin(srv, "+12025550101", "guess")); c != CondNotAuthorized {
			t.Fatalf("guess: %q", c)
		}
	}
	err := plainLogin(srv, "+12025550101", "pw")
	if c := condition(err); c != CondTemporaryAuthFailure {
		t.Fatalf("attacker's address after failures: %q", c)
	}
	if err.(*Failure).RetryAfter <= 0 {
		t.Errorf("no RetryAfter in %+v", err)
	}
	// The owner, from an address that has not failed, still gets in.
	ctx := t.Context()
	x, err := srv.Start(ctx, MechPlain, &tlsStub, netip.MustParseAddr("203.0.113.9"))
	if err != nil {
		t.Fatal(err)
	}
	if _, done, err := x.Step(ctx, []byte("\x00+12025550101\x00pw")); err != nil || !done {
		t.Fatalf("owner from a clean address: %v", err)
	}
}
