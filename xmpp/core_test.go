package xmpp

import (
	"testing"
)

// TestHarnessLogin checks the harness itself: two users log in, exchange a
// message, and the stanza count follows.
func TestHarnessLogin(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw-a")
	ts.addUser(t, "bob", "pw-b")
	a := login(t, ts, "alice", "pw-a", "phone")
	b := login(t, ts, "bob", "pw-b", "")
	if a.full != "alice@example.net/phone" {
		t.Fatalf("bound %q", a.full)
	}
	a.sendPresence(t, "")
	b.sendPresence(t, "")
	a.sendMessage(t, b.full, "hello")
	b.expectMessage(t, a.full, "hello")
	if b.stanzaCount() < 1 {
		t.Fatal("stanza count not kept")
	}
}
