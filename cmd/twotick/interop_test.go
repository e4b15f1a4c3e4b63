package main

// Interoperability tests: real third-party clients, slixmpp (Debian's
// python3-slixmpp) and @xmpp/client (npm, testdata/interop), against the
// real twotick binary. The client scripts live in testdata/interop and
// exit 0 only when their scenario happened.
//
// `make test` installs the clients and sets TWOTICK_REQUIRE_INTEROP=1, so
// that a missing client fails the run instead of skipping these tests.
// TWOTICK_INTEROP_SERVER=prosody runs the same scenarios against Debian's
// Prosody, which tells a twotick bug from a script bug.

import (
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

const (
	// scenarioTimeout bounds one client script's whole scenario; the
	// script enforces it itself and the test waits a little longer.
	scenarioTimeout = 60 * time.Second

	offlineCount = 10
)

// TestInteropChat has a slixmpp user and an @xmpp/client user log in with
// SCRAM over STARTTLS, fetch their rosters and exchange one message each.
func TestInteropChat(t *testing.T) {
	needClients(t)
	srv := startServer(t)
	alice := srv.addUser(t, "+1 (202) 555-0101", "alice-secret")
	bob := srv.addUser(t, "+1 (202) 555-0102", "bob-secret")

	timeout := strconv.Itoa(int(scenarioTimeout.Seconds()))
	port := portOf(t, srv.c2s)
	slix := startClient(t, "slixmpp", debianPython, "slix_chat.py",
		"--jid", alice, "--password", "alice-secret", "--host", "127.0.0.1",
		"--port", port, "--peer", bob, "--timeout", timeout)
	js := startClient(t, "xmpp.js", "node", "xmppjs_chat.mjs",
		"--jid", bob, "--password", "bob-secret", "--host", "127.0.0.1",
		"--port", port, "--peer", alice, "--timeout", timeout)
	deadline := time.Now().Add(scenarioTimeout + 10*time.Second)

	// Both must be online before either sends: a message to an account
	// with no session is the offline test's business, not this one's.
	for _, c := range []*client{slix, js} {
		if err := c.waitLine("online", deadline); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*client{slix, js} {
		if err := c.send("go"); err != nil {
			t.Fatalf("telling %s to go: %v", c.name, err)
		}
	}
	for _, c := range []*client{slix, js} {
		if err := c.wait(deadline); err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	srv.stop(t)
}

// TestInteropOffline is DESIGN.md's two checks through real clients: an
// @xmpp/client user sends messages with receipt requests to a slixmpp user
// who is offline and sees the server acknowledge each (XEP-0198); the
// slixmpp user logs in, receives them all in order, acknowledges them,
// logs in again and receives nothing more; the sender sees every receipt.
//
// TWOTICK_INTEROP_OFFLINE=0 skips it, for as long as the server lacks
// stream management and the queue; the Makefile says when.
func TestInteropOffline(t *testing.T) {
	if os.Getenv("TWOTICK_INTEROP_OFFLINE") == "0" {
		t.Skip("offline interoperability test disabled by TWOTICK_INTEROP_OFFLINE=0")
	}
	needClients(t)
	srv := startServer(t)
	sender := srv.addUser(t, "+1 (202) 555-0103", "sender-secret")
	receiver := srv.addUser(t, "+1 (202) 555-0104", "receiver-secret")

	timeout := strconv.Itoa(int(scenarioTimeout.Seconds()))
	port := portOf(t, srv.c2s)
	count := strconv.Itoa(offlineCount)
	deadline := time.Now().Add(2*scenarioTimeout + 10*time.Second)

	js := startClient(t, "xmpp.js sender", "node", "xmppjs_offline_send.mjs",
		"--jid", sender, "--password", "sender-secret", "--host", "127.0.0.1",
		"--port", port, "--peer", receiver, "--count", count, "--timeout", timeout)
	if err := js.waitLine("acknowledged", deadline); err != nil {
		t.Fatal(err)
	}

	// Only now does the receiver exist as a session: everything the sender
	// sent so far had to be stored.
	slix := startClient(t, "slixmpp receiver", debianPython, "slix_offline_recv.py",
		"--jid", receiver, "--password", "receiver-secret", "--host", "127.0.0.1",
		"--port", port, "--peer", sender, "--count", count, "--timeout", timeout)
	for _, c := range []*client{slix, js} {
		if err := c.wait(deadline); err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	srv.stop(t)
}

// portOf returns the port of a host:port address.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("splitting %q: %v", addr, err)
	}
	return port
}
