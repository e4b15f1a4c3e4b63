package xmpp

import (
	"testing"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/wire"
)

// send writes raw XML on the component's stream.
func (c *testComponent) send(t *testing.T, s string) {
	t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		t.Fatalf("component write: %v", err)
	}
}

// expect reads until an element that match accepts arrives, with its
// content moved to jabber:client.
func (c *testComponent) expect(t *testing.T, what string,
	match func(*wire.Element) bool) *wire.Element {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitTime))
	for {
		el, err := c.rd.Next()
		if err != nil {
			t.Fatalf("component waiting for %s: %v", what, err)
		}
		toClientNS(el) // the component's stream is in jabber:component:accept
		if match(el) {
			return el
		}
	}
}

// TestComponentReachedByUsers: a user's message, IQ and presence to JIDs
// of the component's domain reach the component with the user's full JID
// as from, and the component's answers reach the user (XEP-0114 § 3.1).
func TestComponentReachedByUsers(t *testing.T) {
	ts := newTestServer(t, withPushComponent)
	ts.addUser(t, "alice", "pw")
	comp, _ := dialComponent(t, ts, testPushSecret)
	alice := login(t, ts, "alice", "pw", "phone")
	full := ts.jid("alice") + "/phone"
	bot := "bot@" + testPushDomain

	tests := []struct {
		name     string
		user     string // what alice sends
		atComp   func(*wire.Element) bool
		answer   string // what the component sends back
		atClient func(*wire.Element) bool
	}{
		{
			name: "message",
			user: "<message type='chat' id='m1' to='" + bot + "'><body>weather?</body></message>",
			atComp: func(el *wire.Element) bool {
				return el.Name.Local == "message" && el.Get("from") == full && el.Get("to") == bot &&
					el.ChildText(wire.NSClient, "body") == "weather?"
			},
			answer: "<message type='chat' from='" + bot + "' to='" + full + "'><body>sunny</body></message>",
			atClient: func(el *wire.Element) bool {
				return el.Name.Local == "message" && el.Get("from") == bot &&
					el.ChildText(wire.NSClient, "body") == "sunny"
			},
		},
		{
			name: "message to the bare JID",
			user: "<message type='chat' id='m2' to='" + bot + "'><body>again?</body></message>",
			atComp: func(el *wire.Element) bool {
				return el.Name.Local == "message" && el.ChildText(wire.NSClient, "body") == "again?"
			},
			answer: "<message type='chat' from='" + bot + "' to='" + ts.jid("alice") +
				"'><body>still sunny</body></message>",
			atClient: func(el *wire.Element) bool {
				return el.Name.Local == "message" && el.ChildText(wire.NSClient, "body") == "still sunny"
			},
		},
		{
			name: "iq",
			user: "<iq type='get' id='q1' to='" + testPushDomain + "'>" +
				"<query xmlns='jabber:iq:version'/></iq>",
			atComp: func(el *wire.Element) bool {
				return el.Name.Local == "iq" && el.Get("id") == "q1" && el.Get("from") == full
			},
			answer: "<iq type='result' id='q1' from='" + testPushDomain + "' to='" + full +
				"'><query xmlns='jabber:iq:version'><name>bot</name></query></iq>",
			atClient: stanza("iq", "id", "q1", "type", "result", "from", testPushDomain),
		},
		{
			name: "presence",
			user: "<presence to='" + bot + "'/>",
			atComp: func(el *wire.Element) bool {
				return el.Name.Local == "presence" && el.Get("from") == full && el.Get("to") == bot
			},
			answer:   "<presence from='" + bot + "/service' to='" + full + "'/>",
			atClient: stanza("presence", "from", bot+"/service"),
		},
	}
	alice.sendPresence(t, "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alice.send(t, tt.user)
			comp.expect(t, "the user's "+tt.name, tt.atComp)
			comp.send(t, tt.answer)
			alice.expect(t, tt.atClient, 0)
		})
	}
}

// TestComponentInvalidFrom: a component may only send from its own domain
// (XEP-0114 § 3.1); anything else ends its stream with invalid-from.
func TestComponentInvalidFrom(t *testing.T) {
	tests := []struct{ name, from string }{
		{"a user of the server", "alice@example.net"},
		{"another domain", "bot@other.example"},
		{"no from", ""},
		{"a domain that only starts like its own", "push.example.net.evil"},
	}
	for _, tt := range tests {
		from := tt.from
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, withPushComponent)
			ts.addUser(t, "alice", "pw")
			comp, _ := dialComponent(t, ts, testPushSecret)
			attr := ""
			if from != "" {
				attr = " from='" + from + "'"
			}
			comp.send(t, "<message"+attr+" to='alice@example.net'><body>forged</body></message>")
			el := comp.expect(t, "a stream error",
				func(el *wire.Element) bool { return el.Name.Local == "error" })
			if el.Child(wire.NSStreams, "invalid-from") == nil {
				t.Fatalf("stream error %s, want invalid-from", el)
			}
		})
	}
}

// TestComponentReplaced: a second connection for a domain replaces the
// first, which gets a conflict stream error; stanzas go to the new one.
func TestComponentReplaced(t *testing.T) {
	ts := newTestServer(t, withPushComponent)
	ts.addUser(t, "alice", "pw")
	first, _ := dialComponent(t, ts, testPushSecret)
	second, el := dialComponent(t, ts, testPushSecret)
	if el.Name.Local != "handshake" {
		t.Fatalf("second connection answered with %s", el)
	}
	se := first.expect(t, "a stream error",
		func(el *wire.Element) bool { return el.Name.Local == "error" })
	if se.Child(wire.NSStreams, "conflict") == nil {
		t.Fatalf("replaced component got %s, want conflict", se)
	}
	alice := login(t, ts, "alice", "pw", "phone")
	alice.send(t, "<message type='chat' to='bot@"+testPushDomain+"'><body>hi</body></message>")
	second.expect(t, "the user's message", func(el *wire.Element) bool {
		return el.Name.Local == "message" && el.ChildText(wire.NSClient, "body") == "hi"
	})
}

// TestComponentBlocked: a user who blocked a component's JID gets neither
// its messages nor its presence, and the component is answered with
// service-unavailable, as a blocked user would be (XEP-0191 § 3.4).
func TestComponentBlocked(t *testing.T) {
	ts := newTestServer(t, withPushComponent)
	ts.addUser(t, "alice", "pw")
	comp, _ := dialComponent(t, ts, testPushSecret)
	alice := login(t, ts, "alice", "pw", "phone")
	alice.sendPresence(t, "")
	bot := "bot@" + testPushDomain
	full := ts.jid("alice") + "/phone"
	alice.send(t, "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'>"+
		"<item jid='"+bot+"'/></block></iq>")
	alice.expect(t, stanza("iq", "id", "b1", "type", "result"), 0)

	// Presence comes first: the errors for the stanzas after it prove
	// that the server handled it, since it handles them in order.
	tests := []struct {
		name   string
		id     string
		stanza string
		cond   string // the error the component gets; "" for none
	}{
		{"presence", "c4", "<presence id='c4' from='" + bot + "' to='" + full + "'/>", ""},
		{"message to the full JID", "c1", "<message id='c1' type='chat' from='" + bot + "' to='" + full +
			"'><body>buy now</body></message>", "service-unavailable"},
		{"message to the bare JID", "c2", "<message id='c2' type='chat' from='" + bot + "' to='" +
			ts.jid("alice") + "'><body>buy now</body></message>", "service-unavailable"},
		{"iq", "c3", "<iq id='c3' type='get' from='" + bot + "' to='" + full +
			"'><ping xmlns='urn:xmpp:ping'/></iq>", "service-unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			comp.send(t, tt.stanza)
			if tt.cond != "" {
				el := comp.expect(t, "an error", func(el *wire.Element) bool {
					return el.Get("id") == tt.id && el.Get("type") == "error"
				})
				if got := stanzaErrorCond(el); got != tt.cond {
					t.Fatalf("component got %s, want %s", el, tt.cond)
				}
			}
		})
	}
	// Once unblocked, the component's next message reaches alice, and
	// nothing of what it sent before does: it handled them in order.
	alice.send(t, "<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'>"+
		"<item jid='"+bot+"'/></unblock></iq>")
	alice.expect(t, stanza("iq", "id", "u1", "type", "result"), 0)
	comp.send(t, "<message id='c5' type='chat' from='"+bot+"' to='"+full+"'>"+
		"<body>after</body></message>")
	for {
		el := alice.expect(t, func(el *wire.Element) bool { return jidMatches(el.Get("from"), bot) }, 0)
		if el.Get("id") == "c5" {
			return
		}
		t.Fatalf("alice got %s from the component she blocked", el)
	}
}

// TestComponentToOfflineUser: a component's messages to a user who is
// offline are queued and wake the user's devices; when the user's queue
// is full the component is told so with resource-constraint, as a client
// would be.
func TestComponentToOfflineUser(t *testing.T) {
	ts := newTestServer(t, withPushComponent, func(c *conf.Config) { c.Offline.MaxPerUser = 2 })
	ts.addUser(t, "alice", "pw")
	comp, _ := dialComponent(t, ts, testPushSecret)
	alice := login(t, ts, "alice", "pw", "phone")
	alice.send(t, "<iq type='set' id='e1'>"+enablePush("node-1", "")+"</iq>")
	alice.expect(t, stanza("iq", "id", "e1", "type", "result"), 0)
	alice.closeStream(t)
	waitOffline(t, ts, "alice")

	bot := "bot@" + testPushDomain
	send := func(id string) {
		comp.send(t, "<message id='"+id+"' type='chat' from='"+bot+"' to='"+ts.jid("alice")+
			"'><body>news "+id+"</body></message>")
	}
	send("n1")
	if iq := comp.expect(t, "a push publish", func(el *wire.Element) bool {
		return el.Name.Local == "iq" && el.Child(nsPubSub, "pubsub") != nil
	}); iq.Get("to") != testPushDomain {
		t.Fatalf("publish %s", iq)
	}
	send("n2")
	send("n3")
	el := comp.expect(t, "the error for n3", func(el *wire.Element) bool {
		return el.Name.Local == "message" && el.Get("id") == "n3"
	})
	if el.Get("type") != "error" || stanzaErrorCond(el) != "resource-constraint" {
		t.Fatalf("got %s, want a resource-constraint error", el)
	}
	if n := queued(t, ts, "alice"); n != 2 {
		t.Fatalf("%d queued, want 2", n)
	}
}
