package xmpp

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/twotick/twotick/xmpp/wire"
)

// rosterItems returns the items of a roster result or push as
// "jid subscription[ ask][ name=…][ groups=a,b]" strings, sorted.
func rosterItems(iq *wire.Element) []string {
	q := iq.Child(nsRoster, "query")
	if q == nil {
		return nil
	}
	var out []string
	for _, it := range q.Children() {
		s := it.Get("jid") + " " + it.Get("subscription")
		if it.Get("ask") != "" {
			s += " ask"
		}
		if n := it.Get("name"); n != "" {
			s += " name=" + n
		}
		var groups []string
		for _, g := range it.Children() {
			groups = append(groups, g.Text())
		}
		if len(groups) > 0 {
			sort.Strings(groups)
			s += " groups=" + strings.Join(groups, ",")
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// isPush matches a roster push whose single item is want (in rosterItems'
// form).
func isPush(want string) func(*wire.Element) bool {
	return func(el *wire.Element) bool {
		if el.Name.Local != "iq" || el.Get("type") != "set" || el.Child(nsRoster, "query") == nil {
			return false
		}
		items := rosterItems(el)
		return len(items) == 1 && items[0] == want
	}
}

// anyPush matches any roster push.
func anyPush(el *wire.Element) bool {
	return el.Name.Local == "iq" && el.Get("type") == "set" && el.Child(nsRoster, "query") != nil
}

func rosterSet(t *testing.T, c *rawClient, item string) {
	t.Helper()
	id := c.nextID()
	c.send(t, "<iq type='set' id='"+id+"'><query xmlns='"+nsRoster+"'>"+item+"</query></iq>")
	if res := c.expect(t, byID(id), 0); res.Get("type") != "result" {
		t.Fatalf("roster set %s: %s", item, res)
	}
}

// TestRosterManual checks get, set with name and groups, pushes to the
// sessions that asked for the roster, and remove (RFC 6121 § 2).
func TestRosterManual(t *testing.T) {
	ts := newTestServer(t)
	for _, u := range []string{"alice", "carol"} {
		ts.addUser(t, u, "pw")
	}
	phone := login(t, ts, "alice", "pw", "phone")
	laptop := login(t, ts, "alice", "pw", "laptop")
	quiet := login(t, ts, "alice", "pw", "quiet") // never asks for the roster

	res := phone.rosterGet(t, "-")
	q := res.Child(nsRoster, "query")
	if q == nil || len(q.Children()) != 0 || !q.Has("ver") {
		t.Fatalf("empty roster: %s", res)
	}
	laptop.rosterGet(t, "-")

	rosterSet(t, phone, "<item jid='carol@example.net' name='Carol'><group>Friends</group>"+
		"<group>Work</group></item>")
	want := "carol@example.net none name=Carol groups=Friends,Work"
	for _, c := range []*rawClient{phone, laptop} {
		push := c.expect(t, isPush(want), 0)
		if push.Get("to") != c.full || push.Child(nsRoster, "query").Get("ver") == "" {
			t.Fatalf("push to %s: %s", c.full, push)
		}
	}
	quiet.expectNone(t, anyPush)
	if got := rosterItems(phone.rosterGet(t, "-")); len(got) != 1 || got[0] != want {
		t.Fatalf("roster after set: %v", got)
	}
	stored, ok, err := ts.deps.Roster.Get(context.Background(),
		"alice@example.net", "carol@example.net")
	if err != nil || !ok || stored.Name != "Carol" || len(stored.Groups) != 2 {
		t.Fatalf("stored item: %+v %v %v", stored, ok, err)
	}

	t.Run("update", func(t *testing.T) {
		rosterSet(t, laptop, "<item jid='carol@example.net' name='Carol B'/>")
		phone.expect(t, isPush("carol@example.net none name=Carol B"), 0)
	})
	t.Run("bad sets", func(t *testing.T) {
		for _, item := range []string{
			"<item jid='a@example.net'/><item jid='b@example.net'/>",
			"<item jid='a@example.net'><group></group></item>",
			"<item jid='@@bad'/>",
		} {
			id := phone.nextID()
			phone.send(t, "<iq type='set' id='"+id+"'><query xmlns='"+nsRoster+"'>"+item+"</query></iq>")
			if res := phone.expect(t, byID(id), 0); res.Get("type") != "error" {
				t.Errorf("set %s: %s", item, res)
			}
		}
	})
	t.Run("remove", func(t *testing.T) {
		rosterSet(t, phone, "<item jid='carol@example.net' subscription='remove'/>")
		for _, c := range []*rawClient{phone, laptop} {
			c.expect(t, isPush("carol@example.net remove"), 0)
		}
		if got := rosterItems(phone.rosterGet(t, "-")); len(got) != 0 {
			t.Fatalf("roster after remove: %v", got)
		}
		id := phone.nextID()
		phone.send(t, "<iq type='set' id='"+id+"'><query xmlns='"+nsRoster+"'>"+
			"<item jid='carol@example.net' subscription='remove'/></query></iq>")
		if res := phone.expect(t, byID(id), 0); stanzaErrorCond(res) != "item-not-found" {
			t.Fatalf("removing a missing item: %s", res)
		}
	})
}

// TestRosterVersioning checks XEP-0237: the current version gets an empty
// result, an older one the changes since as pushes.
func TestRosterVersioning(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw")
	c := login(t, ts, "alice", "pw", "phone")
	if c.features.Child(nsRosterVer, "ver") == nil {
		t.Fatalf("roster versioning not advertised: %s", c.features)
	}
	ver := func(iq *wire.Element) string { return iq.Child(nsRoster, "query").Get("ver") }

	v0 := ver(c.rosterGet(t, ""))
	rosterSet(t, c, "<item jid='carol@example.net'/>")
	v1 := ver(c.expect(t, isPush("carol@example.net none"), 0))
	rosterSet(t, c, "<item jid='dave@example.net'/>")
	c.expect(t, isPush("dave@example.net none"), 0)
	rosterSet(t, c, "<item jid='carol@example.net' subscription='remove'/>")
	v3 := ver(c.expect(t, isPush("carol@example.net remove"), 0))
	if v0 == v1 || v1 == v3 || v3 == "" {
		t.Fatalf("versions did not change: %q %q %q", v0, v1, v3)
	}

	t.Run("current", func(t *testing.T) {
		res := c.rosterGet(t, v3)
		if len(res.Children()) != 0 {
			t.Fatalf("result for the current version: %s", res)
		}
		c.expectNone(t, anyPush)
	})
	t.Run("older", func(t *testing.T) {
		res := c.rosterGet(t, v1)
		if len(res.Children()) != 0 {
			t.Fatalf("result for an older version: %s", res)
		}
		var got []string
		for _, el := range c.sync(t) {
			if anyPush(el) {
				got = append(got, rosterItems(el)...)
				if ver(el) == "" {
					t.Errorf("push without ver: %s", el)
				}
			}
		}
		sort.Strings(got)
		want := []string{"carol@example.net remove", "dave@example.net none"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("pushes since %s: %v, want %v", v1, got, want)
		}
	})
	t.Run("empty ver gets the whole roster", func(t *testing.T) {
		res := c.rosterGet(t, "")
		if got := rosterItems(res); len(got) != 1 || got[0] != "dave@example.net none" ||
			ver(res) != v3 {
			t.Fatalf("roster: %s", res)
		}
	})
}

// TestSubscriptionHandshake runs RFC 6121 § 3 between two online users
// until both items are 'both', checking the pushes and presence at each
// step, and checks that a request to an offline user waits for its login.
func TestSubscriptionHandshake(t *testing.T) {
	ts := newTestServer(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		ts.addUser(t, u, "pw")
	}
	a := login(t, ts, "alice", "pw", "phone")
	b := login(t, ts, "bob", "pw", "desk")
	for _, c := range []*rawClient{a, b} {
		c.rosterGet(t, "-")
		c.sendPresence(t, "")
	}
	ab, ba := "bob@example.net", "alice@example.net"

	a.send(t, "<presence type='subscribe' to='bob@example.net'><status>it is me</status></presence>")
	a.expect(t, isPush(ab+" none ask"), 0)
	req := b.expect(t, presenceFrom(ba, "subscribe"), 0)
	if req.Get("from") != ba || req.ChildText(wire.NSClient, "status") != "it is me" {
		t.Fatalf("subscription request: %s", req)
	}

	b.send(t, "<presence type='subscribed' to='alice@example.net'/>")
	b.expect(t, isPush(ba+" from"), 0)
	a.expect(t, isPush(ab+" to"), 0)
	a.expect(t, presenceFrom(ab, "subscribed"), 0)
	a.expect(t, presenceFrom(b.full, ""), 0)

	b.send(t, "<presence type='subscribe' to='alice@example.net'/>")
	b.expect(t, isPush(ba+" from ask"), 0)
	a.expect(t, presenceFrom(ab, "subscribe"), 0)

	a.send(t, "<presence type='subscribed' to='bob@example.net'/>")
	a.expect(t, isPush(ab+" both"), 0)
	b.expect(t, isPush(ba+" both"), 0)
	b.expect(t, presenceFrom(a.full, ""), 0)

	for _, c := range []struct {
		cl   *rawClient
		want string
	}{{a, ab + " both"}, {b, ba + " both"}} {
		if got := rosterItems(c.cl.rosterGet(t, "-")); len(got) != 1 || got[0] != c.want {
			t.Fatalf("%s roster: %v", c.cl.full, got)
		}
	}

	t.Run("request to an offline user", func(t *testing.T) {
		a.send(t, "<presence type='subscribe' to='carol@example.net'>"+
			"<status>hi carol</status></presence>")
		a.expect(t, isPush("carol@example.net none ask"), 0)
		c := login(t, ts, "carol", "pw", "pc")
		c.sendPresence(t, "")
		req := c.expect(t, presenceFrom(ba, "subscribe"), 0)
		if req.ChildText(wire.NSClient, "status") != "hi carol" {
			t.Fatalf("pending request: %s", req)
		}
	})
	t.Run("request to a missing account", func(t *testing.T) {
		a.send(t, "<presence type='subscribe' to='nobody@example.net'/>")
		a.expect(t, presenceFrom("nobody@example.net", "unsubscribed"), 0)
	})
}
