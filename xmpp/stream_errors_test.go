package xmpp

import (
	"strings"
	"testing"
	"time"

	"github.com/twotick/twotick/conf"
)

// TestStreamErrors sends broken and hostile input over real sockets at each
// stage of a stream and checks the stream error; after each, a bystander
// session on the same server still gets its messages.
func TestStreamErrors(t *testing.T) {
	ts := newTestServer(t, func(c *conf.Config) { c.C2S.MaxStanzaSize = 8192 })
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	ts.addUser(t, "eve", "pw")
	alice := login(t, ts, "alice", "pw", "bystander")
	bob := login(t, ts, "bob", "pw", "bystander")
	alice.sendPresence(t, "")
	bob.sendPresence(t, "")

	header := func(attrs string) string {
		return "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' " +
			attrs + ">"
	}
	const good = "xmlns='jabber:client' to='example.net' version='1.0'"
	big := "<message to='alice@example.net' type='chat'><body>" + strings.Repeat("x", 12000) +
		"</body></message>"

	tests := []struct {
		name  string
		stage string // "header": send instead of a header; "open": after features; "bound": after login
		input string
		cond  string
	}{
		{"wrong to", "header", header("xmlns='jabber:client' to='example.org' version='1.0'"),
			"host-unknown"},
		{"no to", "header", header("xmlns='jabber:client' version='1.0'"), "host-unknown"},
		{"wrong namespace", "header", header("xmlns='jabber:server' to='example.net' version='1.0'"),
			"invalid-namespace"},
		{"wrong stream namespace", "header",
			"<stream:stream xmlns:stream='urn:example:wrong' " + good + ">",
			"invalid-namespace"},
		{"version 0.9", "header", header("xmlns='jabber:client' to='example.net' version='0.9'"),
			"unsupported-version"},
		{"DOCTYPE", "header", "<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY x 'y'>]>" + header(good),
			"restricted-xml"},
		{"malformed before auth", "open", "<starttls xmlns='" + nsTLS + "'><x></starttls>",
			"not-well-formed"},
		{"comment before auth", "open", "<!-- hello -->", "restricted-xml"},
		{"processing instruction before auth", "open", "<?evil stuff?>", "restricted-xml"},
		{"oversized before auth", "open", "<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" +
			strings.Repeat("A", 12000) + "</auth>", "policy-violation"},
		{"malformed after bind", "bound", "<message to='alice@example.net'><body>x</message>",
			"not-well-formed"},
		{"undeclared prefix", "bound", "<message><foo:bar/></message>", "bad-namespace-prefix"},
		{"comment after bind", "bound", "<message to='alice@example.net'><!-- c --></message>",
			"restricted-xml"},
		{"processing instruction after bind", "bound", "<?evil stuff?>", "restricted-xml"},
		{"DOCTYPE after bind", "bound", "<!DOCTYPE x>", "restricted-xml"},
		{"oversized stanza", "bound", big, "policy-violation"},
		{"unknown top-level element", "bound", "<foo xmlns='jabber:client'/>", "unsupported-stanza-type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *rawClient
			switch tt.stage {
			case "header":
				c = dialRaw(t, ts, false)
				c.send(t, tt.input)
				// The server answers inside a stream of its own.
				c.nc.SetReadDeadline(time.Now().Add(waitTime))
				if _, err := c.rd.StreamHeader(); err != nil {
					t.Fatalf("server header: %v", err)
				}
				c.nc.SetReadDeadline(time.Time{})
			case "open":
				c = dialRaw(t, ts, false)
				c.openStream(t)
				c.send(t, tt.input)
			case "bound":
				c = login(t, ts, "eve", "pw", "")
				c.sync(t)
				c.send(t, tt.input)
			}
			c.expectStreamError(t, tt.cond)

			body := "still here after " + tt.name
			bob.sendMessage(t, alice.full, body)
			alice.expectMessage(t, bob.full, body)
		})
	}
	alice.expectNone(t, named("message"))
}
