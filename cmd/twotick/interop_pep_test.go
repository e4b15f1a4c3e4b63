package main

// Interoperability test of personal eventing (XEP-0163): what OMEMO
// clients such as Conversations do first, done by slixmpp against the real
// binary.

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TestInteropPEP runs slix_pep.py: the stranger finds the owner's PEP
// service in disco#info, the owner publishes an OMEMO device list with
// publish-options access_model=open, the stranger retrieves it, a
// conflicting precondition is refused with <precondition-not-met/>, a
// node with the default presence access model is refused to the stranger,
// and once the two share presence and the stranger announces
// devicelist+notify in its entity capabilities, it gets the last device
// list and then each new one as events.
func TestInteropPEP(t *testing.T) {
	if os.Getenv("TWOTICK_INTEROP_SERVER") == "prosody" {
		t.Skip("the reference Prosody configuration does not load mod_pep")
	}
	needClients(t)
	srv := startServer(t)
	owner := srv.addUser(t, "+1 (202) 555-0131", "owner-secret")
	stranger := srv.addUser(t, "+1 (202) 555-0132", "stranger-secret")

	slix := startClient(t, "slixmpp", debianPython, "slix_pep.py",
		"--jid", owner, "--password", "owner-secret", "--host", "127.0.0.1",
		"--port", portOf(t, srv.c2s), "--peer", stranger, "--peer-password", "stranger-secret",
		"--timeout", strconv.Itoa(int(scenarioTimeout.Seconds())))
	if err := slix.wait(time.Now().Add(scenarioTimeout + 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
}
