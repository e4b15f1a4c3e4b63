package xmpp

// Tests of XEP-0184 receipts as DESIGN.md's double check uses them: the
// purge a receipt causes (and the ones it must not), the purge on flush
// without stream management, and receipts routed back to the sender,
// queued while the sender is offline.

import (
	"testing"

	"github.com/twotick/twotick/receipts"
	"github.com/twotick/twotick/xmpp/wire"
)

// receipt returns a receipt for id from the recipient to to.
func receipt(to, id string) string {
	return "<message to='" + to + "' id='r-" + id + "'><received xmlns='" + receipts.NS +
		"' id='" + id + "'/></message>"
}

// sendRequesting sends a chat message with a receipt request and the given
// id.
func sendRequesting(t *testing.T, c *rawClient, to, id, body string) {
	t.Helper()
	c.send(t, "<message type='chat' id='"+id+"' to='"+to+"'><body>"+body+
		"</body><request xmlns='"+receipts.NS+"'/></message>")
}

// isReceiptFor matches a message carrying a receipt for id.
func isReceiptFor(id string) func(*wire.Element) bool {
	return func(el *wire.Element) bool {
		r := el.Child(receipts.NS, "received")
		return el.Name.Local == "message" && r != nil && r.Get("id") == id
	}
}

// TestReceiptPurges checks that the recipient's receipt deletes the queued
// message it names before any <a/>, and that receipts naming anything else
// delete nothing.
func TestReceiptPurges(t *testing.T) {
	ts := newTestServer(t)
	addUsers(t, ts, "alice", "bob", "carol")
	alice := login(t, ts, "alice", "pw-alice", "")
	alice.sendPresence(t, "")
	carol := login(t, ts, "carol", "pw-carol", "") // no presence: carol stays offline
	sendRequesting(t, alice, ts.jid("bob"), "a1", "from alice")
	sendRequesting(t, carol, ts.jid("bob"), "c1", "from carol")
	// The same id from alice to carol: another user's message.
	sendRequesting(t, alice, ts.jid("carol"), "a1", "for carol")
	alice.sync(t)
	carol.sync(t)
	waitQueued(t, ts, "bob", 2)
	waitQueued(t, ts, "carol", 1)

	bob, _ := smLogin(t, ts, "bob", "phone", false)

	t.Run("before delivery", func(t *testing.T) {
		// bob has sent no presence: nothing was delivered, so a receipt
		// proves nothing.
		bob.send(t, receipt(ts.jid("alice"), "a1"))
		bob.sync(t)
		if n := queued(t, ts, "bob"); n != 2 {
			t.Fatalf("%d queued, want 2", n)
		}
	})

	bob.sendPresence(t, "")
	bob.expect(t, bodyIs("from carol"), 0)
	alice.expect(t, isReceiptFor("a1"), 0) // the early receipt was routed anyway

	tests := []struct {
		name     string
		receipt  string
		bobLeft  int
		carolHas int
	}{
		{"unknown id", receipt(ts.jid("alice"), "never-sent"), 2, 1},
		{"right id, wrong sender", receipt(ts.jid("carol"), "a1"), 2, 1},
		{"alice's message", receipt(ts.jid("alice"), "a1"), 1, 1},
		{"carol's message", receipt(ts.jid("carol"), "c1"), 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bob.send(t, tt.receipt)
			bob.sync(t)
			// A receipt to carol is queued for her: count only bob's.
			waitQueued(t, ts, "bob", tt.bobLeft)
			if n := storedFrom(t, ts, "carol", ts.jid("alice")); n != tt.carolHas {
				t.Fatalf("carol has %d messages from alice, want %d", n, tt.carolHas)
			}
		})
	}
	// bob never acknowledged anything: the receipts did all the purging.
	s := sessionOf(t, ts, "bob")
	s.mu.Lock()
	hAcked := s.sm.hAcked
	s.mu.Unlock()
	if hAcked != 0 {
		t.Fatalf("bob acknowledged %d stanzas", hAcked)
	}
}

// storedFrom counts the messages queued for local from the bare JID from.
func storedFrom(t *testing.T, ts *testServer, local, from string) int {
	t.Helper()
	var n int
	err := ts.db.QueryRow("SELECT COUNT(*) FROM offline_messages WHERE recipient = ? AND sender = ?",
		ts.jid(local), from).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFlushPurgesWithoutSM checks that a session without stream management
// deletes a queued message once it is written to the socket.
func TestFlushPurgesWithoutSM(t *testing.T) {
	ts := newTestServer(t)
	addUsers(t, ts, "alice", "bob")
	alice := login(t, ts, "alice", "pw-alice", "")
	sendBodies(t, alice, ts.jid("bob"), "stored")
	alice.sync(t)
	waitQueued(t, ts, "bob", 1)

	bob := login(t, ts, "bob", "pw-bob", "")
	bob.sendPresence(t, "")
	bob.expect(t, bodyIs("stored"), 0)
	waitQueued(t, ts, "bob", 0)
	alice.sendMessage(t, ts.jid("bob"), "live")
	bob.expect(t, bodyIs("live"), 0)
	waitQueued(t, ts, "bob", 0)
}

// TestDoubleCheck routes receipts back to the sender: live when the sender
// is online, queued and delivered at the next login when not, and never
// carrying a request of their own.
func TestDoubleCheck(t *testing.T) {
	ts := newTestServer(t)
	addUsers(t, ts, "alice", "bob")
	bob, _ := smLogin(t, ts, "bob", "phone", false)
	bob.sendPresence(t, "")

	t.Run("sender online", func(t *testing.T) {
		alice, _ := smLogin(t, ts, "alice", "phone", false)
		alice.sendPresence(t, "")
		sendRequesting(t, alice, ts.jid("bob"), "d1", "online")
		msg := bob.expect(t, bodyIs("online"), 0)
		if msg.Child(receipts.NS, "request") == nil {
			t.Fatalf("the request was lost: %s", msg)
		}
		bob.send(t, receipt(msg.Get("from"), "d1"))
		got := alice.expect(t, isReceiptFor("d1"), 0)
		if got.Get("from") != bob.full {
			t.Fatalf("receipt from %q, want %q", got.Get("from"), bob.full)
		}
		ackAll(t, alice)
		waitQueued(t, ts, "alice", 0)
		alice.closeStream(t)
	})

	t.Run("sender offline", func(t *testing.T) {
		alice := login(t, ts, "alice", "pw-alice", "phone")
		sendRequesting(t, alice, ts.jid("bob"), "d2", "then offline")
		alice.sync(t)
		alice.closeStream(t)
		bob.expect(t, bodyIs("then offline"), 0)

		// A receipt that asks for a receipt: the request is removed.
		bob.send(t, "<message to='"+ts.jid("alice")+"' id='r-d2'><received xmlns='"+
			receipts.NS+"' id='d2'/><request xmlns='"+receipts.NS+"'/></message>")
		bob.sync(t)
		waitQueued(t, ts, "alice", 1)

		back := login(t, ts, "alice", "pw-alice", "phone")
		back.sendPresence(t, "")
		got := back.expect(t, isReceiptFor("d2"), 0)
		if got.Child(receipts.NS, "request") != nil {
			t.Fatalf("the receipt requests a receipt: %s", got)
		}
		if got.Child(nsDelay, "delay") == nil {
			t.Fatalf("a stored receipt without <delay/>: %s", got)
		}
		waitQueued(t, ts, "alice", 0) // no SM: purged on flush
	})
}
