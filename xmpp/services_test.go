package xmpp

import (
	"testing"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/wire"
)

// TestServices checks the IQ services of the domain and of account bare
// JIDs, and the IQ rules every request goes through.
func TestServices(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	c := login(t, ts, "alice", "pw", "phone")

	hasFeature := func(q *wire.Element, v string) bool {
		for _, f := range q.Children() {
			if f.Name.Local == "feature" && f.Get("var") == v {
				return true
			}
		}
		return false
	}
	tests := []struct {
		name    string
		to      string
		payload string
		check   func(t *testing.T, res *wire.Element)
	}{
		{"disco#info of the domain", "example.net", "<query xmlns='" + nsDiscoInfo + "'/>",
			func(t *testing.T, res *wire.Element) {
				q := res.Child(nsDiscoInfo, "query")
				id := q.Child(nsDiscoInfo, "identity")
				if id == nil || id.Get("category") != "server" || id.Get("type") != "im" {
					t.Fatalf("identity: %s", res)
				}
				for _, f := range []string{nsDiscoInfo, nsDiscoItems, nsPing, nsVersion, nsTime,
					nsRosterVer, "urn:xmpp:sm:3"} {
					if !hasFeature(q, f) {
						t.Errorf("feature %s missing: %s", f, res)
					}
				}
			}},
		{"disco#info with the caps node", "example.net",
			"<query xmlns='" + nsDiscoInfo + "' node='" + capsNode + "#" + capsVer() + "'/>",
			func(t *testing.T, res *wire.Element) {
				q := res.Child(nsDiscoInfo, "query")
				if q.Get("node") != capsNode+"#"+capsVer() || !hasFeature(q, nsPing) {
					t.Fatalf("caps node: %s", res)
				}
			}},
		{"disco#items of the domain", "example.net", "<query xmlns='" + nsDiscoItems + "'/>",
			func(t *testing.T, res *wire.Element) {
				if res.Child(nsDiscoItems, "query") == nil {
					t.Fatalf("items: %s", res)
				}
			}},
		{"disco#info of an account", "bob@example.net", "<query xmlns='" + nsDiscoInfo + "'/>",
			func(t *testing.T, res *wire.Element) {
				id := res.Child(nsDiscoInfo, "query").Child(nsDiscoInfo, "identity")
				if id == nil || id.Get("category") != "account" || id.Get("type") != "registered" ||
					res.Get("from") != "bob@example.net" {
					t.Fatalf("account identity: %s", res)
				}
			}},
		{"disco#info of one's own account", "alice@example.net",
			"<query xmlns='" + nsDiscoInfo + "'/>",
			func(t *testing.T, res *wire.Element) {
				id := res.Child(nsDiscoInfo, "query").Child(nsDiscoInfo, "identity")
				if id == nil || id.Get("category") != "account" {
					t.Fatalf("account identity: %s", res)
				}
			}},
		{"ping", "example.net", "<ping xmlns='" + nsPing + "'/>",
			func(t *testing.T, res *wire.Element) {}},
		{"ping without to", "", "<ping xmlns='" + nsPing + "'/>",
			func(t *testing.T, res *wire.Element) {}},
		{"version", "example.net", "<query xmlns='" + nsVersion + "'/>",
			func(t *testing.T, res *wire.Element) {
				q := res.Child(nsVersion, "query")
				if q.ChildText(nsVersion, "name") != "twotick" ||
					q.ChildText(nsVersion, "version") != Version {
					t.Fatalf("version: %s", res)
				}
			}},
		{"time", "example.net", "<time xmlns='" + nsTime + "'/>",
			func(t *testing.T, res *wire.Element) {
				tm := res.Child(nsTime, "time")
				utc, err := time.Parse(time.RFC3339, tm.ChildText(nsTime, "utc"))
				if err != nil || time.Since(utc).Abs() > time.Minute ||
					tm.ChildText(nsTime, "tzo") != "+00:00" {
					t.Fatalf("time: %s (%v)", res, err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := c.nextID()
			to := ""
			if tt.to != "" {
				to = " to='" + tt.to + "'"
			}
			c.send(t, "<iq type='get' id='"+id+"'"+to+">"+tt.payload+"</iq>")
			res := c.expect(t, byID(id), 0)
			if res.Get("type") != "result" {
				t.Fatalf("got %s", res)
			}
			if res.Get("to") != c.full {
				t.Errorf("result to %q, want %q", res.Get("to"), c.full)
			}
			tt.check(t, res)
		})
	}

	errTests := []struct {
		name, iq, cond string
	}{
		{"unknown namespace", "<iq type='get' id='e1' to='example.net'>" +
			"<query xmlns='urn:example:nothing'/></iq>", "service-unavailable"},
		{"unknown namespace to an account", "<iq type='get' id='e2' to='bob@example.net'>" +
			"<query xmlns='urn:example:nothing'/></iq>", "service-unavailable"},
		{"no such account", "<iq type='get' id='e3' to='nobody@example.net'>" +
			"<query xmlns='" + nsDiscoInfo + "'/></iq>", "service-unavailable"},
		{"two payloads", "<iq type='get' id='e4'><ping xmlns='urn:xmpp:ping'/>" +
			"<ping xmlns='urn:xmpp:ping'/></iq>", "bad-request"},
		{"unknown type", "<iq type='fetch' id='e5'><ping xmlns='urn:xmpp:ping'/></iq>",
			"bad-request"},
		{"another server", "<iq type='get' id='e6' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>",
			"remote-server-not-found"},
		{"bind again", "<iq type='set' id='e7'><bind xmlns='" + nsBind + "'/></iq>", "not-allowed"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			c.send(t, tt.iq)
			res := c.expect(t, named("iq"), 0)
			if res.Get("type") != "error" || stanzaErrorCond(res) != tt.cond {
				t.Fatalf("got %s, want error %s", res, tt.cond)
			}
		})
	}
	t.Run("IQ without id", func(t *testing.T) {
		c.send(t, "<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
		res := c.expect(t, named("iq"), 0)
		if res.Get("type") != "error" || stanzaErrorCond(res) != "bad-request" {
			t.Fatalf("got %s", res)
		}
	})
	t.Run("caps in stream features", func(t *testing.T) {
		d := connectAuth(t, ts, "bob", "pw")
		caps := d.features.Child(nsCaps, "c")
		if caps == nil || caps.Get("ver") != capsVer() || caps.Get("hash") != "sha-1" {
			t.Fatalf("features: %s", d.features)
		}
	})
}

// TestKeepalive checks that whitespace keeps a stream alive, and that a
// silent client is pinged (or asked for an ack under stream management)
// after idle_timeout and disconnected after another.
func TestKeepalive(t *testing.T) {
	const idle = 300 * time.Millisecond
	ts := newTestServer(t, func(c *conf.Config) { c.C2S.IdleTimeout = conf.Duration{Duration: idle} })
	ts.addUser(t, "alice", "pw")

	t.Run("whitespace", func(t *testing.T) {
		// A server of its own with a longer timeout: under a loaded -race
		// run a 300 ms gap between two ticks is not rare.
		const idle = 2 * time.Second
		ts := newTestServer(t, func(c *conf.Config) { c.C2S.IdleTimeout = conf.Duration{Duration: idle} })
		ts.addUser(t, "alice", "pw")
		c := login(t, ts, "alice", "pw", "ws")
		c.sync(t)
		// Whitespace every tenth of the timeout for two timeouts: the
		// server must never ping or close.
		tick := time.NewTicker(idle / 10)
		defer tick.Stop()
		end := time.Now().Add(2 * idle)
		for time.Now().Before(end) {
			<-tick.C
			c.send(t, " \n")
		}
		for _, el := range c.sync(t) {
			t.Fatalf("unexpected %s", el)
		}
	})
	t.Run("ping then timeout", func(t *testing.T) {
		c := login(t, ts, "alice", "pw", "silent")
		start := time.Now()
		ping := c.expect(t, named("iq"), 0)
		if ping.Get("type") != "get" || ping.Child(nsPing, "ping") == nil ||
			ping.Get("from") != testDomain || ping.Get("to") != c.full {
			t.Fatalf("keepalive: %s", ping)
		}
		if waited := time.Since(start); waited < idle/2 {
			t.Fatalf("pinged after %v, before the idle timeout", waited)
		}
		c.expectStreamError(t, "connection-timeout")
	})
	t.Run("answered ping keeps the session", func(t *testing.T) {
		c := login(t, ts, "alice", "pw", "answers")
		ping := c.expect(t, named("iq"), 0)
		c.send(t, "<iq type='result' id='"+ping.Get("id")+"' to='"+testDomain+"'/>")
		// The answer resets the timer: the next event is another ping, not
		// a stream error.
		el := c.expect(t, func(*wire.Element) bool { return true }, 0)
		if el.Name.Local != "iq" || el.Child(nsPing, "ping") == nil {
			t.Fatalf("after answering: %s", el)
		}
	})
	t.Run("ack request under stream management", func(t *testing.T) {
		c := login(t, ts, "alice", "pw", "sm")
		c.enableSM(t, false)
		c.expect(t, func(el *wire.Element) bool {
			return el.Name.Space == nsSM && el.Name.Local == "r"
		}, 0)
		c.expectStreamError(t, "connection-timeout")
	})
}

// TestShutdown checks that cancelling Serve closes every stream with
// system-shutdown and that Serve returns within the shutdown timeout.
func TestShutdown(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw")
	a := login(t, ts, "alice", "pw", "one")
	b := login(t, ts, "alice", "pw", "two")
	b.sendPresence(t, "")
	b.sync(t)
	pre := dialRaw(t, ts, false)
	pre.openStream(t) // negotiating, not yet authenticated

	start := time.Now()
	if err := ts.stop(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if d := time.Since(start); d > ts.cfg.Shutdown.Timeout.Duration {
		t.Fatalf("shutdown took %v", d)
	}
	for _, c := range []*rawClient{a, b, pre} {
		c.expectStreamError(t, "system-shutdown")
	}
}
