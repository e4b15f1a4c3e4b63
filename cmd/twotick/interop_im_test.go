package main

// Interoperability tests of what multi-device users need: slixmpp's
// XEP-0280 and XEP-0191 plugins against the real binary, and XEP-0357
// push through a XEP-0114 component acting as the app server.

import (
	"strconv"
	"testing"
	"time"
)

// TestInteropCarbonsBlocking runs slix_carbons_blocking.py: two resources
// of one account enable carbons and see each other's sent messages and a
// received copy; one blocks the peer, both get the push, the peer's
// message is refused with service-unavailable and a message to the peer
// with not-acceptable and <blocked/>; after unblocking, messages flow
// again and the refused one never arrives.
func TestInteropCarbonsBlocking(t *testing.T) {
	needClients(t)
	srv := startServer(t)
	alice := srv.addUser(t, "+1 (202) 555-0111", "alice-secret")
	bob := srv.addUser(t, "+1 (202) 555-0112", "bob-secret")

	slix := startClient(t, "slixmpp", debianPython, "slix_carbons_blocking.py",
		"--jid", alice, "--password", "alice-secret", "--host", "127.0.0.1",
		"--port", portOf(t, srv.c2s), "--peer", bob, "--peer-password", "bob-secret",
		"--timeout", strconv.Itoa(int(scenarioTimeout.Seconds())))
	if err := slix.wait(time.Now().Add(scenarioTimeout + 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
}
