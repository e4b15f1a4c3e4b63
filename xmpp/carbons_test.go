package xmpp

import (
	"testing"

	"github.com/twotick/twotick/xmpp/wire"
)

// enableCarbons turns carbons on (or off) for c.
func (c *rawClient) enableCarbons(t *testing.T, on bool) {
	t.Helper()
	op := "enable"
	if !on {
		op = "disable"
	}
	id := c.nextID()
	c.send(t, "<iq type='set' id='"+id+"'><"+op+" xmlns='"+nsCarbons+"'/></iq>")
	if res := c.expect(t, byID(id), 0); res.Get("type") != "result" {
		t.Fatalf("%s carbons: %s", op, res)
	}
}

// carbonOf matches a carbon copy of kind (sent or received) from the
// account's bare JID whose forwarded message has the given body; it
// returns the forwarded message through fwd if not nil.
func carbonOf(kind, bare, body string) func(*wire.Element) bool {
	return func(el *wire.Element) bool {
		w := el.Child(nsCarbons, kind)
		if el.Name.Local != "message" || el.Get("from") != bare || w == nil {
			return false
		}
		f := w.Child(nsForward, "forwarded")
		if f == nil {
			return false
		}
		m := f.Child(wire.NSClient, "message")
		return m != nil && m.ChildText(wire.NSClient, "body") == body
	}
}

// anyCarbon matches any carbon copy.
func anyCarbon(el *wire.Element) bool {
	return el.Name.Local == "message" &&
		(el.Child(nsCarbons, "sent") != nil || el.Child(nsCarbons, "received") != nil)
}

// TestCarbons checks XEP-0280 with three resources of one account, two of
// them with carbons enabled.
func TestCarbons(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	phone := login(t, ts, "alice", "pw", "phone")
	desk := login(t, ts, "alice", "pw", "desk")
	old := login(t, ts, "alice", "pw", "old") // never enables carbons
	bob := login(t, ts, "bob", "pw", "pc")
	for _, c := range []*rawClient{phone, desk, old, bob} {
		c.sendPresence(t, "")
	}
	phone.enableCarbons(t, true)
	desk.enableCarbons(t, true)
	desk.enableCarbons(t, true) // repeating is not an error (§ 10.1)
	for _, c := range []*rawClient{phone, desk, old, bob} {
		c.sync(t)
	}

	t.Run("sent", func(t *testing.T) {
		phone.sendMessage(t, bob.bare, "from my phone")
		bob.expectMessage(t, phone.full, "from my phone")
		c := desk.expect(t, carbonOf("sent", phone.bare, "from my phone"), 0)
		if c.Get("to") != desk.full || c.Get("type") != "chat" {
			t.Fatalf("sent carbon addressing: %s", c)
		}
		inner := c.Child(nsCarbons, "sent").Child(nsForward, "forwarded").Child(wire.NSClient, "message")
		if inner.Get("from") != phone.full || inner.Get("to") != bob.bare {
			t.Fatalf("forwarded message: %s", inner)
		}
		phone.expectNone(t, anyCarbon) // not to the sender itself
		old.expectNone(t, anyCarbon)   // nor to a session without carbons
	})

	t.Run("sent chat state", func(t *testing.T) {
		// Chat states are not queued: this is the live delivery path.
		phone.send(t, "<message type='chat' to='"+bob.bare+"'>"+
			"<composing xmlns='"+nsChatStates+"'/></message>")
		c := desk.expect(t, func(el *wire.Element) bool { return el.Child(nsCarbons, "sent") != nil }, 0)
		inner := c.Child(nsCarbons, "sent").Child(nsForward, "forwarded").Child(wire.NSClient, "message")
		if inner.Child(nsChatStates, "composing") == nil {
			t.Fatalf("forwarded chat state: %s", c)
		}
	})

	t.Run("received on another resource", func(t *testing.T) {
		bob.sendMessage(t, phone.full, "to your phone")
		phone.expectMessage(t, bob.full, "to your phone")
		c := desk.expect(t, carbonOf("received", phone.bare, "to your phone"), 0)
		if c.Get("to") != desk.full {
			t.Fatalf("received carbon addressing: %s", c)
		}
		phone.expectNone(t, anyCarbon)
		old.expectNone(t, func(el *wire.Element) bool { return el.Name.Local == "message" })
	})

	t.Run("to the bare JID reaches everyone once", func(t *testing.T) {
		bob.sendMessage(t, phone.bare, "to all of you")
		for _, c := range []*rawClient{phone, desk, old} {
			c.expectMessage(t, bob.full, "to all of you")
			c.expectNone(t, anyCarbon)
		}
	})

	hints := []struct{ name, hint string }{
		{"private", "<private xmlns='" + nsCarbons + "'/>"},
		{"no-copy", "<no-copy xmlns='" + nsHints + "'/>"},
	}
	for _, h := range hints {
		t.Run(h.name+" suppresses copies", func(t *testing.T) {
			phone.send(t, "<message type='chat' id='p1' to='"+bob.bare+"'>"+
				"<body>quiet</body>"+h.hint+"</message>")
			bob.expectMessage(t, phone.full, "quiet")
			bob.send(t, "<message type='chat' id='p2' to='"+phone.full+"'>"+
				"<body>hush</body>"+h.hint+"</message>")
			phone.expectMessage(t, bob.full, "hush")
			desk.expectNone(t, anyCarbon)
		})
	}

	t.Run("a client-made carbon is stripped", func(t *testing.T) {
		forged := "<received xmlns='" + nsCarbons + "'><forwarded xmlns='" + nsForward +
			"'><message xmlns='jabber:client' from='carol@example.net/x' to='" + phone.full +
			"' type='chat'><body>fake</body></message></forwarded></received>"
		bob.send(t, "<message type='chat' to='"+phone.full+"'><body>real</body>"+forged+"</message>")
		m := phone.expectMessage(t, bob.full, "real")
		if anyCarbon(m) {
			t.Fatalf("forged wrapper delivered: %s", m)
		}
		// The copy the server makes forwards the message without it.
		c := desk.expect(t, carbonOf("received", phone.bare, "real"), 0)
		inner := c.Child(nsCarbons, "received").Child(nsForward, "forwarded").
			Child(wire.NSClient, "message")
		if inner.Child(nsCarbons, "received") != nil {
			t.Fatalf("forged wrapper forwarded: %s", c)
		}
		// A user's own client cannot send itself a carbon either.
		phone.send(t, "<message type='chat' to='"+desk.full+"'>"+
			"<sent xmlns='"+nsCarbons+"'><forwarded xmlns='"+nsForward+"'><message xmlns='jabber:client'"+
			" from='alice@example.net/x' to='bob@example.net'><body>never said</body></message>"+
			"</forwarded></sent></message>")
		for _, el := range desk.sync(t) {
			if anyCarbon(el) {
				t.Fatalf("client-made carbon reached another resource: %s", el)
			}
		}
	})

	t.Run("disable", func(t *testing.T) {
		desk.enableCarbons(t, false)
		phone.sendMessage(t, bob.bare, "after disable")
		bob.expectMessage(t, phone.full, "after disable")
		desk.expectNone(t, anyCarbon)
	})
}

func TestCarbonEligible(t *testing.T) {
	srv := &Server{domain: testDomain}
	// alice sent message 'm1' to bob, and it was eligible.
	sent, err := parseOwn([]byte("<message type='chat' id='m1'><body>x</body></message>"))
	if err != nil {
		t.Fatal(err)
	}
	srv.carbonIDs.remember(sent, "alice@example.net", "bob@example.net")

	cases := []struct {
		name string
		xml  string
		want bool
	}{
		{"chat", "<message type='chat'><body>x</body></message>", true},
		{"chat without body", "<message type='chat'><thread>t</thread></message>", true},
		{"normal with body", "<message><body>x</body></message>", true},
		{"normal without body", "<message><x xmlns='jabber:x:oob'/></message>", false},
		{"normal receipt", "<message><received xmlns='urn:xmpp:receipts' id='1'/></message>", true},
		{"normal chat state",
			"<message><active xmlns='http://jabber.org/protocol/chatstates'/></message>", true},
		{"normal marker", "<message><displayed xmlns='urn:xmpp:chat-markers:0' id='1'/></message>", true},
		{"groupchat", "<message type='groupchat'><body>x</body></message>", false},
		{"headline", "<message type='headline'><body>x</body></message>", false},
		{"error answering an eligible message",
			"<message type='error' id='m1' from='bob@example.net/pc'>" +
				"<error type='cancel'/></message>", true},
		{"error answering another message",
			"<message type='error' id='m2' from='bob@example.net/pc'>" +
				"<error type='cancel'/></message>", false},
		{"error with the id from someone else",
			"<message type='error' id='m1' from='carol@example.net'>" +
				"<error type='cancel'/></message>", false},
		{"direct MUC invitation",
			"<message><x xmlns='jabber:x:conference' jid='room@muc.example.org'/></message>", true},
		{"mediated MUC invitation",
			"<message from='room@muc.example.org'><x xmlns='http://jabber.org/protocol/muc#user'>" +
				"<invite from='carol@example.org'/></x></message>", true},
		{"private message from an occupant", "<message type='chat' from='room@muc.example.org/carol'>" +
			"<body>x</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>", false},
		{"private message to an occupant", "<message type='chat' from='alice@example.net/phone' " +
			"to='room@muc.example.org/carol'><body>x</body>" +
			"<x xmlns='http://jabber.org/protocol/muc#user'/></message>", true},
		{"private",
			"<message type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>", false},
		{"no-copy",
			"<message type='chat'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			el, err := parseOwn([]byte(c.xml))
			if err != nil {
				t.Fatal(err)
			}
			if got := srv.carbonEligible(el, "alice@example.net"); got != c.want {
				t.Fatalf("carbonEligible = %v, want %v", got, c.want)
			}
		})
	}
}

// TestCarbonsErrorCopied: an error that answers a message a resource sent
// reaches the account's other carbon-enabled resources as a received
// carbon, as XEP-0280 § 6.1 says; an error answering a headline does not.
func TestCarbonsErrorCopied(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	phone := login(t, ts, "alice", "pw", "phone")
	desk := login(t, ts, "alice", "pw", "desk")
	bob := login(t, ts, "bob", "pw", "pc")
	for _, c := range []*rawClient{phone, desk, bob} {
		c.sendPresence(t, "")
	}
	phone.enableCarbons(t, true)
	desk.enableCarbons(t, true)

	bounced := func(id string) func(*wire.Element) bool {
		return func(el *wire.Element) bool {
			w := el.Child(nsCarbons, "received")
			if el.Name.Local != "message" || w == nil {
				return false
			}
			f := w.Child(nsForward, "forwarded")
			if f == nil {
				return false
			}
			m := f.Child(wire.NSClient, "message")
			return m != nil && m.Get("type") == "error" && m.Get("id") == id
		}
	}
	answer := func(t *testing.T, typ, id string) {
		t.Helper()
		phone.send(t, "<message type='"+typ+"' id='"+id+"' to='"+bob.full+"'><body>q</body></message>")
		bob.expect(t, stanza("message", "id", id), 0)
		if typ == "chat" {
			// The server remembers an eligible message as it copies it,
			// just after delivering it; an error overtaking that is
			// not recognised (see carbonMemory).
			desk.expect(t, func(el *wire.Element) bool {
				if s := el.Child(nsCarbons, "sent"); s != nil {
					if f := s.Child(nsForward, "forwarded"); f != nil {
						m := f.Child(wire.NSClient, "message")
						return m != nil && m.Get("id") == id
					}
				}
				return false
			}, 0)
		}
		bob.send(t, "<message type='error' id='"+id+"' to='"+phone.full+"'><error type='cancel'>"+
			"<feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
		phone.expect(t, stanza("message", "id", id, "type", "error"), 0)
	}

	t.Run("error answering a chat message", func(t *testing.T) {
		answer(t, "chat", "e1")
		desk.expect(t, bounced("e1"), 0)
	})
	t.Run("error answering a headline", func(t *testing.T) {
		answer(t, "headline", "e2")
		desk.expectNone(t, bounced("e2"))
	})
}

// TestCarbonsToComponent: a message a user sends to a component's JID is
// copied to the user's other carbon-enabled resources like any other.
func TestCarbonsToComponent(t *testing.T) {
	ts := newTestServer(t, withPushComponent)
	ts.addUser(t, "alice", "pw")
	comp, _ := dialComponent(t, ts, testPushSecret)
	phone := login(t, ts, "alice", "pw", "phone")
	desk := login(t, ts, "alice", "pw", "desk")
	phone.enableCarbons(t, true)
	desk.enableCarbons(t, true)
	bot := "bot@" + testPushDomain
	phone.send(t, "<message type='chat' id='k1' to='"+bot+"'><body>to the bot</body></message>")
	comp.expect(t, "the message", func(el *wire.Element) bool { return el.Get("id") == "k1" })
	desk.expect(t, carbonOf("sent", ts.jid("alice"), "to the bot"), 0)
}

// TestCarbonsRulesAdvertised: the server advertises urn:xmpp:carbons:rules:0
// (XEP-0280 § 6.2), which binds it to § 6.1 as carbonEligible applies it.
func TestCarbonsRulesAdvertised(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw")
	c := login(t, ts, "alice", "pw", "phone")
	c.send(t, "<iq type='get' id='d1' to='"+testDomain+"'><query xmlns='"+nsDiscoInfo+"'/></iq>")
	res := c.expect(t, byID("d1"), 0)
	q := res.Child(nsDiscoInfo, "query")
	if q == nil {
		t.Fatalf("disco#info answered %s", res)
	}
	for _, f := range q.Children() {
		if f.Name.Local == "feature" && f.Get("var") == nsCarbonsRules {
			return
		}
	}
	t.Fatalf("disco#info lacks %s: %s", nsCarbonsRules, res)
}
