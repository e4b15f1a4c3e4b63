package xmpp

// Identity (issue 4, item 4): no client speaks as another. Resumption with
// another account's token and two simultaneous resumptions are tested in
// sm_test.go.

import (
	"testing"

	"github.com/twotick/twotick/xmpp/wire"
)

// TestFromStamping checks that the server stamps the sender's full JID on
// what a client sends without a from, or with its own bare or full JID,
// and ends the stream with invalid-from for any other from (RFC 6120
// § 8.1.2.1), before routing anything.
func TestFromStamping(t *testing.T) {
	ts := newTestServer(t)
	w := newBystanders(t, ts)
	ts.addUser(t, "mallory", "pw-m")
	walter := w.b

	t.Run("stamped", func(t *testing.T) {
		m := login(t, ts, "mallory", "pw-m", "phone")
		for _, from := range []string{"", "mallory@example.net", "mallory@example.net/phone"} {
			attr := ""
			if from != "" {
				attr = " from='" + from + "'"
			}
			m.send(t, "<message type='chat' to='"+walter.full+"'"+attr+"><body>from "+from+
				"</body></message>")
			el := walter.expect(t, func(el *wire.Element) bool {
				return el.ChildText(wire.NSClient, "body") == "from "+from
			}, 0)
			if el.Get("from") != m.full {
				t.Errorf("sent with from=%q, delivered from %q, want %q", from, el.Get("from"), m.full)
			}
		}
		m.send(t, "<iq type='get' id='who' to='"+walter.full+"'><ping xmlns='"+nsPing+"'/></iq>")
		if el := walter.expect(t, stanza("iq", "id", "who"), 0); el.Get("from") != m.full {
			t.Errorf("IQ delivered from %q, want %q", el.Get("from"), m.full)
		}
	})

	forged := []struct{ name, stanza string }{
		{"message from another user", "<message type='chat' to='" + walter.full +
			"' from='wanda@example.net'><body>forged</body></message>"},
		{"message from another user's full JID", "<message type='chat' to='" + walter.full +
			"' from='" + w.a.full + "'><body>forged</body></message>"},
		{"message from another resource of the sender", "<message type='chat' to='" +
			walter.full + "' from='mallory@example.net/other'><body>forged</body></message>"},
		{"message from the server", "<message type='chat' to='" + walter.full +
			"' from='example.net'><body>forged</body></message>"},
		{"message from a malformed JID", "<message type='chat' to='" + walter.full +
			"' from='@@'><body>forged</body></message>"},
		{"presence from another user", "<presence to='walter@example.net' from='wanda@example.net'/>"},
		{"IQ from another user", "<iq type='get' id='forged' to='" + walter.full +
			"' from='wanda@example.net/phone'><ping xmlns='" + nsPing + "'/></iq>"},
	}
	for _, tt := range forged {
		t.Run(tt.name, func(t *testing.T) {
			m := login(t, ts, "mallory", "pw-m", "")
			m.send(t, tt.stanza)
			m.expectRefusal(t, "invalid-from", "")
		})
	}
	walter.expectNone(t, func(el *wire.Element) bool {
		return el.ChildText(wire.NSClient, "body") == "forged" || el.Get("id") == "forged" ||
			el.Name.Local == "presence" && el.Get("from") == "wanda@example.net"
	})
	w.check(t)
}

// TestRosterPushForgery checks that a client cannot send a roster push: a
// jabber:iq:roster set to another user's full JID, another user's bare
// JID, or another of its own resources is refused and delivered nowhere,
// while the server's own pushes still reach the user's resources.
func TestRosterPushForgery(t *testing.T) {
	ts := newTestServer(t)
	w := newBystanders(t, ts)
	ts.addUser(t, "mallory", "pw-m")
	m := login(t, ts, "mallory", "pw-m", "phone")
	laptop := login(t, ts, "mallory", "pw-m", "laptop")
	laptop.rosterGet(t, "-") // the laptop now receives roster pushes
	w.b.rosterGet(t, "-")

	push := func(id, to string) string {
		return "<iq type='set' id='" + id + "' to='" + to + "'><query xmlns='" + nsRoster +
			"'><item jid='mallory@example.net' name='your bank' subscription='both'/></query></iq>"
	}
	tests := []struct {
		name, to, cond string
		victim         *rawClient
	}{
		{"to another user's full JID", w.b.full, "forbidden", w.b},
		{"to another user's bare JID", "walter@example.net", "service-unavailable", w.b},
		{"to another resource of the sender", laptop.full, "forbidden", laptop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "push-" + m.nextID()
			m.send(t, push(id, tt.to))
			res := m.expect(t, byID(id), 0)
			if res.Get("type") != "error" || stanzaErrorCond(res) != tt.cond {
				t.Fatalf("got %s, want a %s error", res, tt.cond)
			}
			tt.victim.expectNone(t, func(el *wire.Element) bool {
				return el.Name.Local == "iq" && el.Child(nsRoster, "query") != nil
			})
		})
	}

	t.Run("the server's push still arrives", func(t *testing.T) {
		id := "own-" + m.nextID()
		m.send(t, "<iq type='set' id='"+id+"'><query xmlns='"+nsRoster+
			"'><item jid='walter@example.net' name='Walter'/></query></iq>")
		if res := m.expect(t, byID(id), 0); res.Get("type") != "result" {
			t.Fatalf("own roster set: %s", res)
		}
		p := laptop.expect(t, func(el *wire.Element) bool {
			return el.Name.Local == "iq" && el.Get("type") == "set" &&
				el.Child(nsRoster, "query") != nil
		}, 0)
		if f := p.Get("from"); f != "" && f != "mallory@example.net" {
			t.Fatalf("roster push from %q", f)
		}
	})
	w.check(t)
}

// TestForgedWrappersStripped checks that carbon wrappers (XEP-0280 § 11)
// and stanza-ids (XEP-0359 § 5) a client makes are removed before
// delivery, that the server's own stanza-id is the only one, and that a
// <forwarded/> quote stays inside the sender's message.
func TestForgedWrappersStripped(t *testing.T) {
	ts := newTestServer(t)
	w := newBystanders(t, ts)
	ts.addUser(t, "mallory", "pw-m")
	m := login(t, ts, "mallory", "pw-m", "phone")
	m2 := login(t, ts, "mallory", "pw-m", "laptop")
	m2.sendPresence(t, "")
	m2.sync(t)

	inner := "<forwarded xmlns='" + nsForward + "'><message xmlns='jabber:client' " +
		"from='wanda@example.net/phone' to='walter@example.net' type='chat'>" +
		"<body>inner</body></message></forwarded>"
	tests := []struct {
		name      string
		to        *rawClient
		toJID     string
		extra     string
		forwarded bool // a <forwarded/> quote stays in place
	}{
		{"sent carbon to another user", w.b, "walter@example.net",
			"<sent xmlns='" + nsCarbons + "'>" + inner + "</sent>", false},
		{"received carbon to another user", w.b, "walter@example.net",
			"<received xmlns='" + nsCarbons + "'>" + inner + "</received>", false},
		{"received carbon to the sender's own account", m2, "mallory@example.net",
			"<received xmlns='" + nsCarbons + "'>" + inner + "</received>", false},
		{"stanza-id", w.b, "walter@example.net",
			"<stanza-id xmlns='" + nsSID + "' id='forged-id' by='walter@example.net'/>", false},
		{"forwarded quote", w.b, "walter@example.net", inner, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := "outer " + tt.name
			m.send(t, "<message type='chat' id='"+m.nextID()+"' to='"+tt.toJID+"'><body>"+
				body+"</body>"+tt.extra+"</message>")
			el := tt.to.expect(t, func(el *wire.Element) bool {
				return el.Name.Local == "message" && el.ChildText(wire.NSClient, "body") == body
			}, 0)
			if el.Get("from") != m.full {
				t.Fatalf("delivered from %q, want %q", el.Get("from"), m.full)
			}
			if el.Child(nsCarbons, "sent") != nil || el.Child(nsCarbons, "received") != nil {
				t.Fatalf("carbon wrapper delivered: %s", el)
			}
			var ids []*wire.Element
			for _, c := range el.Children() {
				if c.Name.Space == nsSID && c.Name.Local == "stanza-id" {
					ids = append(ids, c)
				}
			}
			if len(ids) != 1 || ids[0].Get("id") == "forged-id" || ids[0].Get("by") != tt.toJID {
				t.Fatalf("stanza-ids delivered: %s", el)
			}
			if got := el.Child(nsForward, "forwarded") != nil; got != tt.forwarded {
				t.Fatalf("forwarded quote kept: %v, want %v: %s", got, tt.forwarded, el)
			}
			// Nothing reaches anyone as a message from wanda.
			tt.to.expectNone(t, func(el *wire.Element) bool {
				return el.Name.Local == "message" && jidMatches(el.Get("from"), "wanda@example.net")
			})
		})
	}
	w.check(t)
}
