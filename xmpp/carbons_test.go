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
		phone.send(t, "<message type='chat' to='"+bob.bare+"'><composing xmlns='"+nsChatStates+"'/></message>")
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
			phone.send(t, "<message type='chat' id='p1' to='"+bob.bare+"'><body>quiet</body>"+h.hint+"</message>")
			bob.expectMessage(t, phone.full, "quiet")
			bob.send(t, "<message type='chat' id='p2' to='"+phone.full+"'><body>hush</body>"+h.hint+"</message>")
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
		inner := c.Child(nsCarbons, "received").Child(nsForward, "forwarded").Child(wire.NSClient, "message")
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
		{"groupchat", "<message type='groupchat'><body>x</body></message>", false},
		{"headline", "<message type='headline'><body>x</body></message>", false},
		{"error", "<message type='error'><body>x</body></message>", false},
		{"private", "<message type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>", false},
		{"no-copy", "<message type='chat'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			el, err := parseOwn([]byte(c.xml))
			if err != nil {
				t.Fatal(err)
			}
			if got := carbonEligible(el); got != c.want {
				t.Fatalf("carbonEligible = %v, want %v", got, c.want)
			}
		})
	}
}
