package xmpp

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"net"
	"testing"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/wire"
)

const (
	testPushDomain = "push.example.net"
	testPushSecret = "component secret"
)

// testComponent is an external component (XEP-0114) acting as a push app
// server, as ejabberd's test suite does it.
type testComponent struct {
	nc net.Conn
	rd *wire.Reader
}

func withPushComponent(c *conf.Config) {
	c.Components.Addr = "127.0.0.1:0"
	c.Components.Service = []conf.Component{{Domain: testPushDomain, Secret: testPushSecret}}
	c.Push.Coalesce = conf.Duration{Duration: 20 * time.Millisecond}
}

func dialComponent(t *testing.T, ts *testServer, secret string) (*testComponent, *wire.Element) {
	t.Helper()
	ts.srv.mu.Lock()
	addr := ts.srv.compLn.Addr().String()
	ts.srv.mu.Unlock()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	nc.Write([]byte("<stream:stream xmlns='jabber:component:accept' " +
		"xmlns:stream='http://etherx.jabber.org/streams' to='" + testPushDomain + "'>"))
	rd := wire.NewReader(nc, wire.Limits{}, 0)
	h, err := rd.StreamHeader()
	if err != nil {
		t.Fatalf("component stream header: %v", err)
	}
	sum := sha1.Sum([]byte(h.ID + secret))
	nc.Write([]byte("<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>"))
	el, err := rd.Next()
	if err != nil {
		t.Fatalf("component handshake: %v", err)
	}
	return &testComponent{nc: nc, rd: rd}, el
}

// expectPublish reads until a pubsub publish arrives and returns the IQ.
func (c *testComponent) expectPublish(t *testing.T) *wire.Element {
	t.Helper()
	for {
		el, err := c.rd.Next()
		if err != nil {
			t.Fatalf("waiting for a push publish: %v", err)
		}
		if el.Name.Local == "iq" && el.Child(nsPubSub, "pubsub") != nil {
			return el
		}
	}
}

func formFields(iq *wire.Element) map[string]string {
	out := map[string]string{}
	pub := iq.Child(nsPubSub, "pubsub").Child(nsPubSub, "publish")
	x := pub.Child(nsPubSub, "item").Child(nsPush, "notification").Child(nsDataForm, "x")
	for _, f := range x.Children() {
		out[f.Get("var")] = f.ChildText(nsDataForm, "value")
	}
	return out
}

func TestComponentHandshake(t *testing.T) {
	ts := newTestServer(t, withPushComponent)
	if _, el := dialComponent(t, ts, "wrong"); el.Name.Local != "error" {
		t.Fatalf("wrong secret answered with %s, want a stream error", el)
	}
	_, el := dialComponent(t, ts, testPushSecret)
	if el.Name.Local != "handshake" {
		t.Fatalf("right secret answered with %s, want <handshake/>", el)
	}
}

func TestPushNotifications(t *testing.T) {
	ts := newTestServer(t, withPushComponent)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	comp, _ := dialComponent(t, ts, testPushSecret)

	// Bob's phone enables push, then goes away.
	bob := login(t, ts, "bob", "pw", "phone")
	bob.send(t, "<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' jid='"+
		testPushDomain+"' node='node-1'/></iq>")
	bob.expect(t, stanza("iq", "id", "e1", "type", "result"), 0)
	bob.closeStream(t)
	waitOffline(t, ts, "bob")

	alice := login(t, ts, "alice", "pw", "laptop")
	t.Run("offline user", func(t *testing.T) {
		alice.sendMessage(t, ts.jid("bob"), "meet at noon")
		iq := comp.expectPublish(t)
		if iq.Get("from") != testDomain || iq.Get("to") != testPushDomain {
			t.Fatalf("publish from %q to %q", iq.Get("from"), iq.Get("to"))
		}
		pub := iq.Child(nsPubSub, "pubsub").Child(nsPubSub, "publish")
		if pub.Get("node") != "node-1" {
			t.Fatalf("published to node %q", pub.Get("node"))
		}
		f := formFields(iq)
		if f["FORM_TYPE"] != nsPushSumary || f["message-count"] != "1" {
			t.Fatalf("notification fields %v", f)
		}
		if _, ok := f["last-message-body"]; ok {
			t.Fatal("the body was sent to the app server by default")
		}
		if _, ok := f["last-message-sender"]; ok {
			t.Fatal("the sender was sent to the app server by default")
		}
		comp.nc.Write([]byte("<iq type='result' id='" + iq.Get("id") + "' from='" +
			testPushDomain + "' to='" + testDomain + "'/>"))
	})

	t.Run("session waiting to resume", func(t *testing.T) {
		phone := login(t, ts, "bob", "pw", "phone2")
		phone.enableSM(t, true)
		phone.sendPresence(t, "")
		phone.sync(t)
		phone.cut()
		// Wait until the server has noticed the cut and detached the session.
		deadline := time.Now().Add(waitTime)
		for {
			detached := false
			for _, s := range ts.srv.router.sessions(ts.jid("bob")) {
				s.mu.Lock()
				detached = detached || s.c == nil
				s.mu.Unlock()
			}
			if detached {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the cut session was not detached")
			}
			time.Sleep(5 * time.Millisecond)
		}
		alice.sendMessage(t, ts.jid("bob"), "are you there?")
		iq := comp.expectPublish(t)
		if f := formFields(iq); f["message-count"] == "" {
			t.Fatalf("notification fields %v", f)
		}
	})

	t.Run("errors disable the registration", func(t *testing.T) {
		for i := 0; i < ts.cfg.Push.MaxFailures; i++ {
			alice.sendMessage(t, ts.jid("bob"), "ping")
			iq := comp.expectPublish(t)
			comp.nc.Write([]byte("<iq type='error' id='" + iq.Get("id") + "' from='" +
				testPushDomain + "' to='" + testDomain + "'><error type='cancel'>" +
				"<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"))
		}
		deadline := time.Now().Add(waitTime)
		for {
			var n int
			ts.db.QueryRowContext(context.Background(),
				`SELECT COUNT(*) FROM push_registrations WHERE owner = ?`,
				ts.jid("bob")).Scan(&n)
			if n == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("registration still present after %d errors", ts.cfg.Push.MaxFailures)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}
