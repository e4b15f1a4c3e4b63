package xmpp

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twotick/twotick/xmpp/wire"
)

// smBarrier asks for an acknowledgement and returns every element that
// arrived before the server's <a/>. <r/> and <a/> are not stanzas, so
// unlike sync they do not make an inactive session release what it holds.
func (c *rawClient) smBarrier(t *testing.T) []*wire.Element {
	t.Helper()
	c.send(t, "<r xmlns='"+nsSM+"'/>")
	var before []*wire.Element
	for {
		el, err := c.next(0)
		if err != nil {
			t.Fatalf("%s: waiting for <a/>: %v", c.who(), err)
		}
		if el.Name.Space == nsSM && el.Name.Local == "a" {
			return before
		}
		before = append(before, el)
	}
}

// goInactive sends <inactive/> and waits until the server has handled it.
func goInactive(t *testing.T, c *rawClient) {
	t.Helper()
	c.send(t, "<inactive xmlns='"+nsCSI+"'/>")
	if got := c.smBarrier(t); len(got) != 0 {
		t.Fatalf("before going inactive: %s", describe(got))
	}
}

// collectUntil returns the elements received up to and including the first
// that matches.
func (c *rawClient) collectUntil(t *testing.T, match func(*wire.Element) bool) []*wire.Element {
	t.Helper()
	var out []*wire.Element
	for {
		el, err := c.next(0)
		if err != nil {
			t.Fatalf("%s: %v; received %s", c.who(), err, describe(out))
		}
		out = append(out, el)
		if match(el) {
			return out
		}
	}
}

// describe is a compact trace of stanzas for comparisons: the kind, the
// sender's resource, and the status, chat state or body.
func describe(els []*wire.Element) string {
	var parts []string
	for _, el := range els {
		from := el.Get("from")
		if i := strings.IndexByte(from, '/'); i >= 0 {
			from = from[i+1:]
		}
		switch {
		case el.Name.Local == "presence":
			parts = append(parts, "presence "+from+" "+el.Get("type")+el.ChildText(wire.NSClient, "status"))
		case el.Name.Local == "message" && el.Child(nsChatStates, "") != nil:
			parts = append(parts, "state "+from+" "+el.Child(nsChatStates, "").Name.Local)
		case el.Name.Local == "message":
			parts = append(parts, "message "+from+" "+el.ChildText(wire.NSClient, "body"))
		default:
			parts = append(parts, el.Name.Local)
		}
	}
	return strings.Join(parts, "; ")
}

// csiSession returns the server's session for c.
func csiSession(t *testing.T, ts *testServer, c *rawClient) *Session {
	t.Helper()
	res := strings.TrimPrefix(c.full, c.bare+"/")
	s := ts.srv.router.session(c.bare, res)
	if s == nil {
		t.Fatalf("no session for %s", c.full)
	}
	return s
}

// TestCSI checks XEP-0352: the stream feature, presence and chat states
// held while inactive (only the latest presence per resource), released in
// order before a message with content and on <active/>, and stream
// management counting only what was actually sent.
func TestCSI(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	ac := connectAuth(t, ts, "alice", "pw")
	if ac.features.Child(nsCSI, "csi") == nil {
		t.Fatalf("no csi stream feature after authentication: %s", ac.features)
	}
	ac.bind(t, "phone")
	ac.enableSM(t, false)
	ac.sendPresence(t, "")
	bob := login(t, ts, "bob", "pw", "a")
	bob.sendPresence(t, "")
	mutualSubscribe(t, ac, bob)
	bob2 := login(t, ts, "bob", "pw", "b")
	bob2.sendPresence(t, "")
	ac.expect(t, presenceFrom(bob2.full, ""), 0)
	ac.sync(t)
	sess := csiSession(t, ts, ac)

	// countsAgree checks that the server numbered exactly the stanzas the
	// client has read: nothing held has an h yet.
	countsAgree := func(t *testing.T) {
		t.Helper()
		sess.mu.Lock()
		out := sess.sm.hOut
		sess.mu.Unlock()
		if int64(out) != ac.stanzaCount() {
			t.Fatalf("server counted %d stanzas, client read %d", out, ac.stanzaCount())
		}
	}

	t.Run("held and released before a message with a body", func(t *testing.T) {
		goInactive(t, ac)
		// Each sender syncs before the other sends, so that the server
		// handles the stanzas in the order written here.
		bob.sendPresence(t, "<status>1</status>")
		bob.sync(t)
		bob2.sendPresence(t, "<status>3</status>")
		bob2.sync(t)
		bob.send(t, "<message type='chat' to='"+ac.full+"'>"+
			"<composing xmlns='"+nsChatStates+"'/></message>")
		bob.sendPresence(t, "<status>2</status>")
		bob.sync(t)
		if got := ac.smBarrier(t); len(got) != 0 {
			t.Fatalf("inactive session got %s", describe(got))
		}
		countsAgree(t)

		bob.sendMessage(t, ac.full, "wake up")
		got := describe(ac.collectUntil(t, func(el *wire.Element) bool {
			return el.ChildText(wire.NSClient, "body") == "wake up"
		}))
		// bob/a's first presence was replaced by its second; everything
		// else keeps the order it was sent in.
		want := "presence b 3; state a composing; presence a 2; message a wake up"
		if got != want {
			t.Fatalf("released\n got: %s\nwant: %s", got, want)
		}
		ac.sync(t)
		countsAgree(t)
	})

	t.Run("released on active", func(t *testing.T) {
		goInactive(t, ac)
		bob.sendPresence(t, "<status>away</status>")
		bob.sync(t)
		if got := ac.smBarrier(t); len(got) != 0 {
			t.Fatalf("inactive session got %s", describe(got))
		}
		ac.send(t, "<active xmlns='"+nsCSI+"'/>")
		// XEP-0352 § 5.1: what was held goes out before anything the
		// server answers after <active/>.
		if got := describe(ac.sync(t)); got != "presence a away" {
			t.Fatalf("released on active: %s", got)
		}
		bob.sendPresence(t, "<status>active again</status>")
		ac.expect(t, presenceFrom(bob.full, ""), 0)
		countsAgree(t)
	})

	t.Run("a subscription request is not held", func(t *testing.T) {
		ts.addUser(t, "carol", "pw")
		carol := login(t, ts, "carol", "pw", "c")
		carol.sendPresence(t, "")
		goInactive(t, ac)
		bob.sendPresence(t, "<status>held</status>")
		bob.sync(t)
		carol.send(t, "<presence type='subscribe' to='"+ac.bare+"'/>")
		carol.sync(t)
		got := describe(ac.smBarrier(t))
		if got != "presence a held; presence carol@example.net subscribe" {
			t.Fatalf("got %s", got)
		}
		ac.send(t, "<active xmlns='"+nsCSI+"'/>")
		ac.sync(t)
		countsAgree(t)
	})

	t.Run("many updates are released in bounded batches", func(t *testing.T) {
		goInactive(t, ac)
		n := sess.maxHeld() + 3
		for i := range n {
			bob.send(t, "<message type='chat' to='"+ac.full+"'><active xmlns='"+nsChatStates+
				"'/><thread>"+fmt.Sprint(i)+"</thread></message>")
		}
		bob.sync(t)
		got := ac.smBarrier(t)
		if len(got) != sess.maxHeld() {
			t.Fatalf("released %d chat states at the cap, want %d", len(got), sess.maxHeld())
		}
		ac.send(t, "<active xmlns='"+nsCSI+"'/>")
		if rest := ac.sync(t); len(rest) != 3 {
			t.Fatalf("released %d on active, want 3", len(rest))
		}
		countsAgree(t)
	})
}

func TestCSIDeferrable(t *testing.T) {
	carbon := func(inner string) string {
		return "<message from='a@d' to='a@d/r'><received xmlns='urn:xmpp:carbons:2'>" +
			"<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>" + inner +
			"</message></forwarded></received></message>"
	}
	const composing = "<composing xmlns='http://jabber.org/protocol/chatstates'/>"
	cases := []struct {
		name string
		xml  string
		key  string
		ok   bool
	}{
		{"available", "<presence from='b@d/r'><show>away</show></presence>", "p b@d/r", true},
		{"unavailable", "<presence from='b@d/r' type='unavailable'/>", "p b@d/r", true},
		{"subscribe", "<presence from='b@d' type='subscribe'/>", "", false},
		{"chat state", "<message type='chat'>" + composing + "<thread>t</thread></message>", "", true},
		{"chat state with body", "<message type='chat'>" + composing + "<body>x</body></message>",
			"", false},
		{"empty message", "<message type='chat'/>", "", false},
		{"carbon of a chat state", carbon(composing), "", true},
		{"carbon of a body", carbon("<body>x</body>"), "", false},
		{"iq", "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key, ok := csiDeferrable([]byte(c.xml))
			if key != c.key || ok != c.ok {
				t.Fatalf("csiDeferrable = %q, %v; want %q, %v", key, ok, c.key, c.ok)
			}
		})
	}
}
