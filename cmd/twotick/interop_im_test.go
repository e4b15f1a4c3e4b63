package main

// Interoperability tests of what multi-device users need: slixmpp's
// XEP-0280 and XEP-0191 plugins against the real binary, and XEP-0357
// push enabled by slixmpp and received by a XEP-0114 component, written
// here, acting as the app server.

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twotick/twotick/xmpp/wire"
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

// Namespaces the app server component checks.
const (
	nsPubSub      = "http://jabber.org/protocol/pubsub"
	nsPush        = "urn:xmpp:push:0"
	nsDataForm    = "jabber:x:data"
	nsComponent   = "jabber:component:accept"
	pushDomain    = "push.localhost"
	pushSecret    = "app server secret"
	pushNode      = "yxs32uqsflafdk3iuqo"
	publishSecret = "eruio234vzxc2kla-91"
)

// appServer is a XEP-0114 component acting as a push app server: the
// tiny one that ejabberd's test suite uses, in Go.
type appServer struct {
	nc net.Conn
	rd *wire.Reader
}

// dialAppServer connects to the component port and completes the
// handshake of XEP-0114 § 3.
func dialAppServer(t *testing.T, addr string) *appServer {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialing the component port: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(scenarioTimeout))
	fmt.Fprintf(nc, "<stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>",
		nsComponent, wire.NSStream, pushDomain)
	rd := wire.NewReader(nc, wire.Limits{}, 0)
	h, err := rd.StreamHeader()
	if err != nil {
		t.Fatalf("component stream header: %v", err)
	}
	sum := sha1.Sum([]byte(h.ID + pushSecret))
	fmt.Fprintf(nc, "<handshake>%s</handshake>", hex.EncodeToString(sum[:]))
	el, err := rd.Next()
	if err != nil || el.Name.Local != "handshake" {
		t.Fatalf("component handshake answered %v, %v", el, err)
	}
	return &appServer{nc: nc, rd: rd}
}

// expectPublish reads until a pubsub publish arrives.
func (a *appServer) expectPublish(t *testing.T) *wire.Element {
	t.Helper()
	for {
		el, err := a.rd.Next()
		if err != nil {
			t.Fatalf("app server waiting for a publish: %v", err)
		}
		if el.Name.Local == "iq" && el.Child(nsPubSub, "pubsub") != nil {
			return el
		}
	}
}

// formValues returns a data form's fields by var.
func formValues(x *wire.Element) map[string]string {
	out := map[string]string{}
	if x == nil {
		return out
	}
	for _, f := range x.Children() {
		out[f.Get("var")] = f.ChildText(nsDataForm, "value")
	}
	return out
}

// TestInteropPush: slixmpp enables push (XEP-0357) with publish-options
// on the real binary and goes offline; a message to it makes the server
// publish a notification to the app server, a component, from the
// server's domain, to the node the client gave, with the client's
// publish-options, and by default without the body or the sender.
func TestInteropPush(t *testing.T) {
	if os.Getenv("TWOTICK_INTEROP_SERVER") == "prosody" {
		t.Skip("the push scenario needs twotick's component configuration")
	}
	needClients(t)
	compAddr := freeAddrs(t, 1)[0]
	srv := startTwotick(t, fmt.Sprintf(`
[components]
addr = %q

[[components.service]]
domain = %q
secret = %q
`, compAddr, pushDomain, pushSecret))
	app := dialAppServer(t, compAddr)
	bob := srv.addUser(t, "+1 (202) 555-0121", "bob-secret")
	alice := srv.addUser(t, "+1 (202) 555-0122", "alice-secret")

	slix := startClient(t, "slixmpp", debianPython, "slix_push.py",
		"--jid", bob, "--password", "bob-secret", "--host", "127.0.0.1",
		"--port", portOf(t, srv.c2s), "--peer", alice, "--peer-password", "alice-secret",
		"--push-jid", pushDomain, "--node", pushNode, "--secret", publishSecret,
		"--timeout", strconv.Itoa(int(scenarioTimeout.Seconds())))
	if err := slix.wait(time.Now().Add(scenarioTimeout + 10*time.Second)); err != nil {
		t.Fatal(err)
	}

	iq := app.expectPublish(t)
	if iq.Get("type") != "set" || iq.Get("from") != "localhost" || iq.Get("to") != pushDomain {
		t.Fatalf("publish %s: want an IQ set from localhost to %s", iq, pushDomain)
	}
	ps := iq.Child(nsPubSub, "pubsub")
	pub := ps.Child(nsPubSub, "publish")
	if pub == nil || pub.Get("node") != pushNode {
		t.Fatalf("publish to the wrong node: %s", iq)
	}
	var summary *wire.Element
	if item := pub.Child(nsPubSub, "item"); item != nil {
		if n := item.Child(nsPush, "notification"); n != nil {
			summary = n.Child(nsDataForm, "x")
		}
	}
	fields := formValues(summary)
	if fields["FORM_TYPE"] != "urn:xmpp:push:summary" || fields["message-count"] != "1" {
		t.Fatalf("notification summary %v, want urn:xmpp:push:summary with message-count 1", fields)
	}
	for _, private := range []string{"last-message-body", "last-message-sender"} {
		if _, ok := fields[private]; ok {
			t.Errorf("the notification carries %s by default: %v", private, fields)
		}
	}
	var opts *wire.Element
	if po := ps.Child(nsPubSub, "publish-options"); po != nil {
		opts = po.Child(nsDataForm, "x")
	}
	if got := formValues(opts)["secret"]; got != publishSecret {
		t.Errorf("publish-options secret %q, want %q: %s", got, publishSecret, iq)
	}
	fmt.Fprintf(app.nc, "<iq type='result' id='%s' from='%s' to='localhost'/>",
		iq.Get("id"), pushDomain)
	srv.stop(t)
}
