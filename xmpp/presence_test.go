package xmpp

import (
	"testing"

	"github.com/twotick/twotick/xmpp/wire"
)

// presenceFrom matches presence of type typ ("" for available) from from
// (a bare JID matches any of its resources).
func presenceFrom(from, typ string) func(*wire.Element) bool {
	return func(el *wire.Element) bool {
		return el.Name.Local == "presence" && el.Get("type") == typ && jidMatches(el.Get("from"), from)
	}
}

// mutualSubscribe runs the subscription handshake in both directions
// between two available clients, so that their items end as 'both'.
func mutualSubscribe(t *testing.T, a, b *rawClient) {
	t.Helper()
	for _, p := range [][2]*rawClient{{a, b}, {b, a}} {
		from, to := p[0], p[1]
		from.send(t, "<presence type='subscribe' to='"+to.bare+"'/>")
		to.expect(t, presenceFrom(from.bare, "subscribe"), 0)
		to.send(t, "<presence type='subscribed' to='"+from.bare+"'/>")
		from.expect(t, presenceFrom(to.full, ""), 0)
	}
	a.sync(t)
	b.sync(t)
}

// TestPresence checks RFC 6121 § 4: initial presence reaches subscribers and
// brings back their presence, unavailable reaches them on disconnect, and
// directed presence is followed by unavailable at disconnect.
func TestPresence(t *testing.T) {
	ts := newTestServer(t)
	for _, u := range []string{"alice", "bob", "dave"} {
		ts.addUser(t, u, "pw")
	}
	phone := login(t, ts, "alice", "pw", "phone")
	bob := login(t, ts, "bob", "pw", "desk")
	dave := login(t, ts, "dave", "pw", "pc")
	for _, c := range []*rawClient{phone, bob, dave} {
		c.sendPresence(t, "")
	}
	mutualSubscribe(t, phone, bob)
	dave.sync(t)

	t.Run("initial presence", func(t *testing.T) {
		tablet := login(t, ts, "alice", "pw", "tablet")
		tablet.sendPresence(t, "<show>away</show>")
		// The contacts' and the own resources' presence, answered locally.
		tablet.expect(t, presenceFrom(bob.full, ""), 0)
		tablet.expect(t, presenceFrom(phone.full, ""), 0)
		el := bob.expect(t, presenceFrom(tablet.full, ""), 0)
		if el.ChildText(wire.NSClient, "show") != "away" {
			t.Fatalf("presence lost its content: %s", el)
		}
		phone.expect(t, presenceFrom(tablet.full, ""), 0)
		tablet.sync(t)
		dave.expectNone(t, presenceFrom(tablet.full, ""))

		t.Run("unavailable on disconnect", func(t *testing.T) {
			tablet.cut()
			bob.expect(t, presenceFrom(tablet.full, "unavailable"), 0)
			phone.expect(t, presenceFrom(tablet.full, "unavailable"), 0)
			dave.expectNone(t, presenceFrom(tablet.full, "unavailable"))
		})
	})
	t.Run("explicit unavailable", func(t *testing.T) {
		laptop := login(t, ts, "alice", "pw", "laptop")
		laptop.sendPresence(t, "")
		bob.expect(t, presenceFrom(laptop.full, ""), 0)
		laptop.send(t, "<presence type='unavailable'><status>gone</status></presence>")
		el := bob.expect(t, presenceFrom(laptop.full, "unavailable"), 0)
		if el.ChildText(wire.NSClient, "status") != "gone" {
			t.Fatalf("unavailable lost its status: %s", el)
		}
	})
	t.Run("directed presence", func(t *testing.T) {
		watch := login(t, ts, "alice", "pw", "watch")
		watch.sendPresence(t, "")
		watch.send(t, "<presence to='"+dave.full+"'><status>psst</status></presence>")
		el := dave.expect(t, presenceFrom(watch.full, ""), 0)
		if el.ChildText(wire.NSClient, "status") != "psst" || el.Get("to") != dave.full {
			t.Fatalf("directed presence: %s", el)
		}
		watch.closeStream(t)
		dave.expect(t, presenceFrom(watch.full, "unavailable"), 0)
		bob.expect(t, presenceFrom(watch.full, "unavailable"), 0)
	})
	t.Run("probe answered locally at login", func(t *testing.T) {
		bob2 := login(t, ts, "bob", "pw", "phone")
		bob2.sendPresence(t, "")
		got := map[string]bool{}
		for _, el := range bob2.sync(t) {
			if el.Name.Local == "presence" && el.Get("type") == "" {
				got[el.Get("from")] = true
			}
		}
		if !got[phone.full] || !got[bob.full] || got[dave.full] {
			t.Fatalf("presence received at login: %v", got)
		}
	})
}
