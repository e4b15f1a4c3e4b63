package xmpp

import (
	"context"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/twotick/twotick/xmpp/wire"
)

// blocklistOf asks for the blocklist and returns the JIDs in it.
func (c *rawClient) blocklistOf(t *testing.T) []string {
	t.Helper()
	res := c.blockingIQ(t, "get", "<blocklist xmlns='"+nsBlocking+"'/>")
	if res.Get("type") != "result" {
		t.Fatalf("blocklist get failed: %s", res)
	}
	var out []string
	for _, it := range res.Child(nsBlocking, "blocklist").Children() {
		out = append(out, it.Get("jid"))
	}
	return out
}

// blockingIQ sends an IQ with payload to the user's server and returns
// the answer.
func (c *rawClient) blockingIQ(t *testing.T, typ, payload string) *wire.Element {
	t.Helper()
	id := c.nextID()
	c.send(t, "<iq type='"+typ+"' id='"+id+"'>"+payload+"</iq>")
	return c.expect(t, byID(id), 0)
}

// blockPush matches a blocklist push of kind (block or unblock) carrying
// exactly the given JIDs.
func blockPush(kind string, jids ...string) func(*wire.Element) bool {
	return func(el *wire.Element) bool {
		p := el.Child(nsBlocking, kind)
		if el.Name.Local != "iq" || el.Get("type") != "set" || p == nil ||
			len(p.Children()) != len(jids) {
			return false
		}
		for i, it := range p.Children() {
			if it.Get("jid") != jids[i] {
				return false
			}
		}
		return true
	}
}

// isBlockedError reports whether el is an error with not-acceptable and
// XEP-0191's <blocked/>.
func isBlockedError(el *wire.Element) bool {
	e := el.Child(wire.NSClient, "error")
	return el.Get("type") == "error" && stanzaErrorCond(el) == "not-acceptable" &&
		e.Child(nsBlockingErrors, "blocked") != nil
}

// TestBlocking checks XEP-0191 between a phone account and a bot account
// with a mutual subscription: pushes to every session that asked for the
// list, stanzas refused both ways with the prescribed errors, presence cut
// both ways, and unblock all restoring everything.
func TestBlocking(t *testing.T) {
	ts := newTestServer(t)
	const alice, bot = "+12025550101", "weather"
	ts.addUser(t, alice, "pw")
	ts.addUser(t, bot, "pw")
	phone := login(t, ts, alice, "pw", "phone")
	desk := login(t, ts, alice, "pw", "desk")
	b := login(t, ts, bot, "pw", "svc")
	for _, c := range []*rawClient{phone, desk, b} {
		c.sendPresence(t, "")
	}
	mutualSubscribe(t, phone, b)
	desk.sync(t)

	for _, c := range []*rawClient{phone, desk} {
		if got := c.blocklistOf(t); len(got) != 0 {
			t.Fatalf("new account's blocklist: %v", got)
		}
	}

	t.Run("block", func(t *testing.T) {
		res := phone.blockingIQ(t, "set",
			"<block xmlns='"+nsBlocking+"'><item jid='"+b.bare+"'/></block>")
		if res.Get("type") != "result" {
			t.Fatalf("block: %s", res)
		}
		for _, c := range []*rawClient{phone, desk} {
			c.expect(t, blockPush("block", b.bare), 0)
		}
		// § 3.3: the blocked JID sees the user go offline, and the user's
		// sessions stop showing it.
		b.expect(t, presenceFrom(phone.full, "unavailable"), 0)
		b.expect(t, presenceFrom(desk.full, "unavailable"), 0)
		phone.expect(t, presenceFrom(b.full, "unavailable"), 0)
		if got := desk.blocklistOf(t); len(got) != 1 || got[0] != b.bare {
			t.Fatalf("blocklist after block: %v", got)
		}
	})

	t.Run("message from the blocked JID", func(t *testing.T) {
		id := b.sendMessage(t, phone.bare, "let me in")
		e := b.expect(t, byID(id), 0)
		if e.Get("type") != "error" || stanzaErrorCond(e) != "service-unavailable" {
			t.Fatalf("blocked sender got %s", e)
		}
		for _, c := range []*rawClient{phone, desk} {
			c.expectNone(t, named("message"))
		}
	})

	t.Run("message to the blocked JID", func(t *testing.T) {
		id := phone.sendMessage(t, b.full, "hello?")
		if e := phone.expect(t, byID(id), 0); !isBlockedError(e) {
			t.Fatalf("user got %s", e)
		}
		b.expectNone(t, named("message"))
	})

	t.Run("iq both ways", func(t *testing.T) {
		id := b.nextID()
		b.send(t, "<iq type='get' id='"+id+"' to='"+phone.full+"'><ping xmlns='"+nsPing+"'/></iq>")
		if e := b.expect(t, byID(id), 0); stanzaErrorCond(e) != "service-unavailable" {
			t.Fatalf("blocked sender's IQ: %s", e)
		}
		id = phone.nextID()
		phone.send(t, "<iq type='get' id='"+id+"' to='"+b.full+"'><ping xmlns='"+nsPing+"'/></iq>")
		if e := phone.expect(t, byID(id), 0); !isBlockedError(e) {
			t.Fatalf("user's IQ to the blocked JID: %s", e)
		}
		phone.expectNone(t, stanza("iq", "from", b.full))
		b.expectNone(t, stanza("iq", "from", phone.full))
	})

	t.Run("presence both ways", func(t *testing.T) {
		b.sendPresence(t, "<status>still here</status>")
		b.sync(t)
		phone.expectNone(t, named("presence"))
		desk.expectNone(t, named("presence"))
		phone.sendPresence(t, "<status>busy</status>")
		phone.sync(t)
		b.expectNone(t, named("presence"))
		// Directed presence to the blocked JID is refused too.
		phone.send(t, "<presence to='"+b.full+"'/>")
		if e := phone.expect(t, stanza("presence", "type", "error"), 0); !isBlockedError(e) {
			t.Fatalf("directed presence: %s", e)
		}
		b.expectNone(t, named("presence"))
	})

	t.Run("a new session does not see the blocked contact", func(t *testing.T) {
		laptop := login(t, ts, alice, "pw", "laptop")
		laptop.sendPresence(t, "")
		laptop.expectNone(t, presenceFrom(b.bare, ""))
		b.expectNone(t, presenceFrom(laptop.full, ""))
		laptop.closeStream(t)
	})

	t.Run("unblock all", func(t *testing.T) {
		res := desk.blockingIQ(t, "set", "<unblock xmlns='"+nsBlocking+"'/>")
		if res.Get("type") != "result" {
			t.Fatalf("unblock all: %s", res)
		}
		for _, c := range []*rawClient{phone, desk} {
			c.expect(t, blockPush("unblock"), 0)
		}
		// § 3.4: presence flows again.
		b.expect(t, presenceFrom(phone.full, ""), 0)
		phone.expect(t, presenceFrom(b.full, ""), 0)
		if got := phone.blocklistOf(t); len(got) != 0 {
			t.Fatalf("blocklist after unblock all: %v", got)
		}
		b.sendMessage(t, phone.full, "back again")
		phone.expectMessage(t, b.full, "back again")
		phone.sendMessage(t, b.full, "welcome")
		b.expectMessage(t, phone.full, "welcome")
	})
}

// TestBlockingRequests checks the IQ forms: several items at once,
// unblocking some, a bare JID blocking every resource, and malformed
// requests.
func TestBlockingRequests(t *testing.T) {
	ts := newTestServer(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		ts.addUser(t, u, "pw")
	}
	a := login(t, ts, "alice", "pw", "phone")
	bob := login(t, ts, "bob", "pw", "desk")
	carol := login(t, ts, "carol", "pw", "pc")
	a.sendPresence(t, "")
	// a has not asked for the blocklist: it gets no pushes.
	res := a.blockingIQ(t, "set", "<block xmlns='"+nsBlocking+"'><item jid='"+bob.bare+
		"'/><item jid='"+carol.full+"'/></block>")
	if res.Get("type") != "result" {
		t.Fatalf("block two: %s", res)
	}
	a.expectNone(t, blockPush("block", bob.bare, carol.full))

	// A full-JID item blocks that resource only.
	carol2 := login(t, ts, "carol", "pw", "other")
	carol.sendMessage(t, a.full, "from the blocked resource")
	e := carol.expect(t, stanza("message", "type", "error"), 0)
	if stanzaErrorCond(e) != "service-unavailable" {
		t.Fatalf("blocked resource: %s", e)
	}
	carol2.sendMessage(t, a.full, "from another resource")
	a.expectMessage(t, carol2.full, "from another resource")
	// A bare item blocks every resource.
	bob.sendMessage(t, a.full, "hi")
	bob.expect(t, stanza("message", "type", "error"), 0)

	if got := a.blocklistOf(t); len(got) != 2 {
		t.Fatalf("blocklist: %v", got)
	}
	res = a.blockingIQ(t, "set",
		"<unblock xmlns='"+nsBlocking+"'><item jid='"+bob.bare+"'/></unblock>")
	if res.Get("type") != "result" {
		t.Fatalf("unblock one: %s", res)
	}
	a.expect(t, blockPush("unblock", bob.bare), 0)
	bob.sendMessage(t, a.full, "unblocked")
	a.expectMessage(t, bob.full, "unblocked")
	if got := a.blocklistOf(t); len(got) != 1 || got[0] != carol.full {
		t.Fatalf("blocklist after unblocking bob: %v", got)
	}

	bad := []struct {
		name, typ, payload, cond string
	}{
		{"block without items", "set", "<block xmlns='" + nsBlocking + "'/>", "bad-request"},
		{"malformed jid", "set", "<block xmlns='" + nsBlocking + "'><item jid='@@'/></block>",
			"jid-malformed"},
		{"get of block", "get", "<block xmlns='" + nsBlocking + "'/>", "bad-request"},
		{"set of blocklist", "set", "<blocklist xmlns='" + nsBlocking + "'/>", "bad-request"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			res := a.blockingIQ(t, c.typ, c.payload)
			if res.Get("type") != "error" || stanzaErrorCond(res) != c.cond {
				t.Fatalf("got %s, want %s", res, c.cond)
			}
		})
	}
}

func TestBlockForms(t *testing.T) {
	cases := []struct{ jid, want string }{
		{"u@d/r", "u@d/r u@d d/r d"},
		{"u@d", "u@d d"},
		{"d/r", "d/r d"},
		{"d", "d"},
	}
	for _, c := range cases {
		t.Run(c.jid, func(t *testing.T) {
			var got string
			j, err := jid.Parse(c.jid)
			if err != nil {
				t.Fatal(err)
			}
			for i, f := range blockForms(j) {
				if i > 0 {
					got += " "
				}
				got += f
			}
			if got != c.want {
				t.Fatalf("forms %q, want %q", got, c.want)
			}
		})
	}
}

// TestBlockingQueued checks that a message queued before the block is not
// delivered while the block lasts, and is delivered once it is lifted.
func TestBlockingQueued(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	bob := login(t, ts, "bob", "pw", "pc")
	bob.sendMessage(t, ts.jid("alice"), "while you were out")
	bob.sync(t)

	a := login(t, ts, "alice", "pw", "phone")
	res := a.blockingIQ(t, "set", "<block xmlns='"+nsBlocking+"'><item jid='"+bob.bare+"'/></block>")
	if res.Get("type") != "result" {
		t.Fatalf("block: %s", res)
	}
	a.sendPresence(t, "")
	a.expectNone(t, named("message"))

	res = a.blockingIQ(t, "set", "<unblock xmlns='"+nsBlocking+"'/>")
	if res.Get("type") != "result" {
		t.Fatalf("unblock: %s", res)
	}
	a2 := login(t, ts, "alice", "pw", "desk")
	a2.sendPresence(t, "")
	a2.expectMessage(t, bob.full, "while you were out")
}

// TestBlockingDirected checks that blocking a JID that had directed
// presence (and no subscription) tells it the user went offline.
func TestBlockingDirected(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	a := login(t, ts, "alice", "pw", "phone")
	bob := login(t, ts, "bob", "pw", "pc")
	a.sendPresence(t, "")
	bob.sendPresence(t, "")
	a.send(t, "<presence to='"+bob.full+"'/>")
	bob.expect(t, presenceFrom(a.full, ""), 0)
	a.blockingIQ(t, "set", "<block xmlns='"+nsBlocking+"'><item jid='"+bob.bare+"'/></block>")
	bob.expect(t, presenceFrom(a.full, "unavailable"), 0)
}

// TestBlockingCarbonsDisco checks that the domain advertises blocking and
// carbons (XEP-0191 § 3.1, XEP-0280 § 3).
func TestBlockingCarbonsDisco(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw")
	a := login(t, ts, "alice", "pw", "phone")
	a.send(t, "<iq type='get' id='d1' to='"+testDomain+"'><query xmlns='"+nsDiscoInfo+"'/></iq>")
	res := a.expect(t, byID("d1"), 0)
	have := map[string]bool{}
	for _, f := range res.Child(nsDiscoInfo, "query").Children() {
		have[f.Get("var")] = true
	}
	for _, want := range []string{nsBlocking, nsCarbons} {
		if !have[want] {
			t.Errorf("disco#info lacks %s: %s", want, res)
		}
	}
}

// TestForgetAccount: deleting an account forgets its blocklist and its
// push registrations, and leaves other accounts' alone.
func TestForgetAccount(t *testing.T) {
	ts := newTestServer(t, withPushComponent)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	for _, local := range []string{"alice", "bob"} {
		c := login(t, ts, local, "pw", "phone")
		c.send(t, "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'>"+
			"<item jid='spam@example.org'/></block></iq>")
		c.expect(t, stanza("iq", "id", "b1", "type", "result"), 0)
		c.send(t, "<iq type='set' id='e1'>"+enablePush("node-"+local, "")+"</iq>")
		c.expect(t, stanza("iq", "id", "e1", "type", "result"), 0)
		c.closeStream(t)
	}
	ctx := context.Background()
	if err := ts.srv.ForgetAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		local   string
		blocked int
		push    int
	}{
		{"alice", 0, 0},
		{"bob", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.local, func(t *testing.T) {
			list, err := ts.srv.deps.Blocklist.List(ctx, ts.jid(tt.local))
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != tt.blocked {
				t.Errorf("blocklist %v, want %d items", list, tt.blocked)
			}
			if regs := pushRegistrations(t, ts, ts.jid(tt.local)); len(regs) != tt.push {
				t.Errorf("push registrations %v, want %d", regs, tt.push)
			}
		})
	}
}

// TestBlockingComponentJID: a user who blocked a component's JID cannot
// write to it either (XEP-0191 § 3.3).
func TestBlockingComponentJID(t *testing.T) {
	ts := newTestServer(t, withPushComponent)
	ts.addUser(t, "alice", "pw")
	dialComponent(t, ts, testPushSecret)
	alice := login(t, ts, "alice", "pw", "phone")
	bot := "bot@" + testPushDomain
	alice.send(t, "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'>"+
		"<item jid='"+bot+"'/></block></iq>")
	alice.expect(t, stanza("iq", "id", "b1", "type", "result"), 0)
	tests := []struct{ name, xml, id string }{
		{"message", "<message type='chat' id='k2' to='" + bot + "'><body>x</body></message>", "k2"},
		{"iq", "<iq type='get' id='k3' to='" + bot + "'><ping xmlns='urn:xmpp:ping'/></iq>", "k3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alice.send(t, tt.xml)
			el := alice.expect(t, byID(tt.id), 0)
			if stanzaErrorCond(el) != "not-acceptable" {
				t.Fatalf("got %s, want not-acceptable", el)
			}
		})
	}
}
