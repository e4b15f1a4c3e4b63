package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/wire"
)

// TestMelliumLogin logs in with mellium.im/xmpp's own negotiation for each
// mechanism, over STARTTLS and over direct TLS, and checks the bound JID.
func TestMelliumLogin(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "correct horse")
	tests := []struct {
		name   string
		mech   sasl.Mechanism
		direct bool
	}{
		{"SCRAM-SHA-1", sasl.ScramSha1, false},
		{"SCRAM-SHA-256", sasl.ScramSha256, false},
		{"SCRAM-SHA-256-PLUS over TLS 1.3", sasl.ScramSha256Plus, false},
		{"SCRAM-SHA-1-PLUS", sasl.ScramSha1Plus, false},
		{"PLAIN over TLS", sasl.Plain, false},
		{"direct TLS", sasl.ScramSha256, true},
		{"direct TLS with SCRAM-SHA-256-PLUS", sasl.ScramSha256Plus, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitTime)
			defer cancel()
			s, err := ts.melliumLogin(ctx, t, melliumOpts{local: "alice",
				password: "correct horse", mech: tt.mech, direct: tt.direct})
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			got := s.LocalAddr()
			if got.Bare().String() != "alice@example.net" || got.Resourcepart() == "" {
				t.Fatalf("bound %q", got)
			}
			if v := s.ConnectionState().Version; v == 0 {
				t.Fatal("session is not over TLS")
			}
		})
	}
}

// TestMelliumChat has a mellium client and a raw client exchange messages.
func TestMelliumChat(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw-a")
	ts.addUser(t, "bob", "pw-b")
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	s, err := ts.melliumLogin(ctx, t, melliumOpts{local: "alice", password: "pw-a"})
	if err != nil {
		t.Fatal(err)
	}
	bodies := make(chan string, 4)
	serveErr := make(chan error, 1)
	go func() {
		serveErr <- s.Serve(mxmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder,
			start *xml.StartElement) error {
			if start.Name.Local != "message" {
				return nil
			}
			// Collect the text inside <body/>; the reader ends with the stanza.
			var body strings.Builder
			inBody := false
			for {
				tok, err := r.Token()
				if err != nil {
					break
				}
				switch tok := tok.(type) {
				case xml.StartElement:
					inBody = tok.Name.Local == "body"
				case xml.EndElement:
					inBody = false
				case xml.CharData:
					if inBody {
						body.Write(tok)
					}
				}
			}
			bodies <- body.String()
			return nil
		}))
	}()
	err = s.Send(ctx, mstanza.Presence{}.Wrap(nil))
	if err != nil {
		t.Fatal(err)
	}
	b := login(t, ts, "bob", "pw-b", "desk")
	b.sendPresence(t, "")
	bob := jid.MustParse(b.full)
	err = s.Send(ctx, mstanza.Message{To: bob, Type: mstanza.ChatMessage}.Wrap(
		xmlstream.Wrap(xmlstream.Token(xml.CharData("hi bob")),
			xml.StartElement{Name: xml.Name{Local: "body"}})))
	if err != nil {
		t.Fatal(err)
	}
	b.expectMessage(t, s.LocalAddr().String(), "hi bob")
	b.sendMessage(t, s.LocalAddr().String(), "hi alice")
	select {
	case got := <-bodies:
		if got != "hi alice" {
			t.Fatalf("mellium client got %q", got)
		}
	case err := <-serveErr:
		t.Fatalf("mellium client stopped: %v", err)
	case <-time.After(waitTime):
		t.Fatal("mellium client got no message")
	}
}

// TestSASL checks each mechanism with the raw client, on both listeners,
// and the failures.
func TestSASL(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "secret")
	tests := []struct {
		name     string
		mech     string
		direct   bool
		password string
		wantCond string // "" for success
	}{
		{"SCRAM-SHA-1", "SCRAM-SHA-1", false, "secret", ""},
		{"SCRAM-SHA-256", "SCRAM-SHA-256", false, "secret", ""},
		{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256-PLUS", false, "secret", ""},
		{"SCRAM-SHA-1-PLUS", "SCRAM-SHA-1-PLUS", false, "secret", ""},
		{"PLAIN", "PLAIN", false, "secret", ""},
		{"direct TLS", "SCRAM-SHA-256", true, "secret", ""},
		{"SCRAM wrong password", "SCRAM-SHA-256", false, "wrong", "not-authorized"},
		{"PLAIN wrong password", "PLAIN", false, "wrong", "not-authorized"},
		{"unknown user", "SCRAM-SHA-256", false, "secret", "not-authorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, ts, tt.direct)
			c.openStream(t)
			if !tt.direct {
				c.startTLS(t)
			}
			if c.features.Child(nsTLS, "starttls") != nil {
				t.Fatal("STARTTLS offered again over TLS")
			}
			local := "alice"
			if tt.name == "unknown user" {
				local = "mallory"
			}
			err := c.auth(t, tt.mech, local, tt.password)
			if tt.wantCond == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.features.Child(nsBind, "bind") == nil {
					t.Fatalf("no bind after authentication: %s", c.features)
				}
				if got := c.bind(t, "r"); got != "alice@example.net/r" {
					t.Fatalf("bound %q", got)
				}
				return
			}
			var f *saslFailure
			if !errors.As(err, &f) || f.cond != tt.wantCond {
				t.Fatalf("got %v, want failure %s", err, tt.wantCond)
			}
		})
	}
}

// TestTLSRequired checks that without allow_plaintext_loopback the server
// offers only STARTTLS, and refuses <auth/> in the clear.
func TestTLSRequired(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "secret")
	c := dialRaw(t, ts, false)
	f := c.openStream(t)
	if f.Child(nsSASL, "mechanisms") != nil {
		t.Fatalf("mechanisms offered before TLS: %s", f)
	}
	st := f.Child(nsTLS, "starttls")
	if st == nil || st.Child(nsTLS, "required") == nil {
		t.Fatalf("STARTTLS not required: %s", f)
	}
	c.send(t, "<auth xmlns='"+nsSASL+"' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>")
	c.expectStreamError(t, "policy-violation")
}

// TestPlaintextLoopback checks that allow_plaintext_loopback lets SCRAM log
// in without TLS on loopback, while PLAIN stays refused.
func TestPlaintextLoopback(t *testing.T) {
	ts := newTestServer(t, func(c *conf.Config) { c.C2S.AllowPlaintextLoopback = true })
	ts.addUser(t, "alice", "secret")

	c := dialRaw(t, ts, false)
	f := c.openStream(t)
	mechs := strings.Join(c.mechanisms(), " ")
	if strings.Contains(mechs, "PLAIN") || strings.Contains(mechs, "PLUS") ||
		!strings.Contains(mechs, "SCRAM-SHA-256") {
		t.Fatalf("mechanisms in the clear: %s", f)
	}
	var fail *saslFailure
	if err := c.auth(t, "PLAIN", "alice", "secret"); !errors.As(err, &fail) {
		t.Fatalf("PLAIN without TLS: %v", err)
	}
	if err := c.auth(t, "SCRAM-SHA-256", "alice", "secret"); err != nil {
		t.Fatal(err)
	}
	c.bind(t, "bench")
	if len(c.sync(t)) != 0 {
		t.Fatal("unexpected stanzas")
	}
}

// TestBind checks generated and requested resources and the conflict rule:
// the newest connection wins and the old one gets a conflict stream error.
func TestBind(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw-a")
	ts.addUser(t, "bob", "pw-b")

	t.Run("generated", func(t *testing.T) {
		c := login(t, ts, "alice", "pw-a", "")
		j := jid.MustParse(c.full)
		if j.Bare().String() != "alice@example.net" || j.Resourcepart() == "" {
			t.Fatalf("bound %q", c.full)
		}
		d := login(t, ts, "alice", "pw-a", "")
		if d.full == c.full {
			t.Fatalf("two generated resources are both %q", c.full)
		}
	})
	t.Run("requested", func(t *testing.T) {
		c := login(t, ts, "alice", "pw-a", "Küche phone")
		if c.full != "alice@example.net/Küche phone" {
			t.Fatalf("bound %q", c.full)
		}
	})
	t.Run("conflict", func(t *testing.T) {
		b := login(t, ts, "bob", "pw-b", "desk")
		b.sendPresence(t, "")
		old := login(t, ts, "alice", "pw-a", "same")
		old.sync(t)
		nw := login(t, ts, "alice", "pw-a", "same")
		old.expectStreamError(t, "conflict")
		nw.sendPresence(t, "")
		b.sendMessage(t, "alice@example.net/same", "to the new one")
		nw.expectMessage(t, b.full, "to the new one")
	})
}

// TestRouting checks message and IQ routing (RFC 6121 § 8.5) between
// alice's three resources (priorities 5, 0 and -1) and bob.
func TestRouting(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw-a")
	ts.addUser(t, "bob", "pw-b")
	phone := login(t, ts, "alice", "pw-a", "phone")
	laptop := login(t, ts, "alice", "pw-a", "laptop")
	hidden := login(t, ts, "alice", "pw-a", "hidden")
	bob := login(t, ts, "bob", "pw-b", "desk")
	phone.sendPresence(t, "<priority>5</priority>")
	laptop.sendPresence(t, "")
	hidden.sendPresence(t, "<priority>-1</priority>")
	bob.sendPresence(t, "")
	for _, c := range []*rawClient{phone, laptop, hidden, bob} {
		c.sync(t)
	}
	alice := []*rawClient{phone, laptop, hidden}
	msgWith := func(body string) func(*wire.Element) bool {
		return func(el *wire.Element) bool {
			return el.Name.Local == "message" && el.ChildText(wire.NSClient, "body") == body
		}
	}

	tests := []struct {
		name string
		to   string
		want []bool // phone, laptop, hidden
	}{
		{"full JID", "alice@example.net/laptop", []bool{false, true, false}},
		{"full JID of a negative priority resource", "alice@example.net/hidden",
			[]bool{false, false, true}},
		{"bare JID", "alice@example.net", []bool{true, true, false}},
		{"offline full JID falls back to bare", "alice@example.net/gone",
			[]bool{true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := "msg " + tt.name
			bob.sendMessage(t, tt.to, body)
			bob.expectNone(t, named("message"))
			for i, c := range alice {
				if tt.want[i] {
					el := c.expectMessage(t, bob.full, body)
					if el.Get("to") != tt.to {
						t.Errorf("%s: to=%q, want %q", c.full, el.Get("to"), tt.to)
					}
				} else {
					c.expectNone(t, msgWith(body))
				}
			}
		})
	}

	t.Run("no such account", func(t *testing.T) {
		id := bob.sendMessage(t, "nobody@example.net", "hello?")
		el := bob.expect(t, byID(id), 0)
		if el.Get("type") != "error" || stanzaErrorCond(el) != "service-unavailable" ||
			el.Get("from") != "nobody@example.net" {
			t.Fatalf("got %s", el)
		}
	})
	t.Run("from is stamped", func(t *testing.T) {
		bob.send(t, "<message to='alice@example.net/phone' from='bob@example.net' type='chat'>"+
			"<body>stamped</body></message>")
		el := phone.expectMessage(t, "bob@example.net", "stamped")
		if el.Get("from") != bob.full {
			t.Fatalf("from=%q, want %q", el.Get("from"), bob.full)
		}
	})
	t.Run("IQ to a full JID and its result", func(t *testing.T) {
		bob.send(t, "<iq type='get' id='v1' to='alice@example.net/phone'>"+
			"<query xmlns='jabber:iq:version'/></iq>")
		req := phone.expect(t, stanza("iq", "id", "v1"), 0)
		if req.Get("from") != bob.full || req.Get("type") != "get" ||
			req.Child(nsVersion, "query") == nil {
			t.Fatalf("routed IQ: %s", req)
		}
		phone.send(t, "<iq type='result' id='v1' to='"+bob.full+"'>"+
			"<query xmlns='jabber:iq:version'><name>test</name></query></iq>")
		res := bob.expect(t, stanza("iq", "id", "v1"), 0)
		if res.Get("type") != "result" || res.Get("from") != phone.full ||
			res.Child(nsVersion, "query").ChildText(nsVersion, "name") != "test" {
			t.Fatalf("routed result: %s", res)
		}
		laptop.expectNone(t, stanza("iq", "id", "v1"))
	})
	t.Run("IQ to an unknown full JID", func(t *testing.T) {
		bob.send(t, "<iq type='get' id='v2' to='alice@example.net/gone'>"+
			"<ping xmlns='urn:xmpp:ping'/></iq>")
		res := bob.expect(t, stanza("iq", "id", "v2"), 0)
		if res.Get("type") != "error" || stanzaErrorCond(res) != "service-unavailable" {
			t.Fatalf("got %s", res)
		}
	})
	t.Run("forged from", func(t *testing.T) {
		bob.send(t, "<message to='alice@example.net' from='alice@example.net/phone' type='chat'>"+
			"<body>forged</body></message>")
		bob.expectStreamError(t, "invalid-from")
		phone.expectNone(t, msgWith("forged"))
	})
}
