package xmpp

// Limits before and after authentication, and the stream reader's refusals
// (issue 4, items 1, 2 and 5), each driven over a real socket.

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/wire"
)

// nested returns n elements nested in one another.
func nested(n int) string {
	return strings.Repeat("<a>", n) + strings.Repeat("</a>", n)
}

// TestPreAuthLimits sends oversized, crowded and deep elements before
// authentication, on both listeners: before STARTTLS (where the server
// waits for <starttls/>) and on direct TLS (where it waits for <auth/>).
// Each is refused with policy-violation by the limit it trips, not by the
// negotiation step (the stream error text says which).
func TestPreAuthLimits(t *testing.T) {
	ts := newTestServer(t)
	w := newBystanders(t, ts)
	auth := func(inner string) string {
		return "<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + inner + "</auth>"
	}
	size := ts.cfg.C2S.PreAuthMaxStanzaSize
	tests := []struct {
		name, input, text string
	}{
		{"element above preauth_max_stanza_size", auth(strings.Repeat("A", size+1)),
			"larger than"},
		{"too many elements", auth(strings.Repeat("<x/>", 40)), "too many elements"},
		{"nesting", auth(nested(10)), "nested too deeply"},
		{"too many attributes", "<auth xmlns='" + nsSASL + "'" + manyAttrs(70) + "/>",
			"too many attributes"},
		// A client that restarts the stream at will sends a header the
		// server did not ask for: refused at the first one
		// (TestStreamRestartBound covers every stage).
		{"repeated stream headers", strings.Repeat(clientHeader[len("<?xml version='1.0'?>"):], 10),
			"stream restart not requested"},
	}
	for _, listener := range []string{"starttls", "direct_tls"} {
		for _, tt := range tests {
			t.Run(listener+"/"+tt.name, func(t *testing.T) {
				c := dialFrom(t, ts, attackerIP, listener == "direct_tls")
				c.openStream(t)
				c.send(t, tt.input)
				c.expectRefusal(t, "policy-violation", tt.text)
			})
		}
	}
	w.check(t)
}

// TestStreamRestartBound shows that stream restarts are bounded: a full
// negotiation (STARTTLS, SASL, bind) takes the three headers it calls for,
// and a header the server did not ask for, at any stage, ends the stream
// with policy-violation at once. No client can make the server read a
// fourth header or restart its parser on demand.
func TestStreamRestartBound(t *testing.T) {
	ts := newTestServer(t)
	w := newBystanders(t, ts)
	ts.addUser(t, "mallory", "pw-m")
	extra := clientHeader[len("<?xml version='1.0'?>"):]

	stages := []struct {
		name  string
		reach func(t *testing.T) *rawClient
	}{
		{"before STARTTLS", func(t *testing.T) *rawClient {
			c := dialFrom(t, ts, attackerIP, false)
			c.openStream(t)
			return c
		}},
		{"after STARTTLS", func(t *testing.T) *rawClient {
			c := dialFrom(t, ts, attackerIP, false)
			c.openStream(t)
			c.startTLS(t)
			return c
		}},
		{"after SASL, before bind", func(t *testing.T) *rawClient {
			return connectAuth(t, ts, "mallory", "pw-m")
		}},
		{"after bind", func(t *testing.T) *rawClient {
			return login(t, ts, "mallory", "pw-m", "r")
		}},
		{"on direct TLS, after SASL", func(t *testing.T) *rawClient {
			c := dialFrom(t, ts, attackerIP, true)
			c.openStream(t)
			if err := c.auth(t, "SCRAM-SHA-256", "mallory", "pw-m"); err != nil {
				t.Fatal(err)
			}
			return c
		}},
	}
	for _, st := range stages {
		t.Run(st.name, func(t *testing.T) {
			c := st.reach(t)
			c.send(t, extra)
			c.expectRefusal(t, "policy-violation", "stream restart not requested")
		})
	}
	w.check(t)
}

func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(" a" + strings.Repeat("x", i) + "='1'")
	}
	return b.String()
}

// TestNegotiationDeadline checks that a client that does not finish
// negotiating within c2s.negotiation_timeout is closed with
// connection-timeout: silent before its header, silent after it, or
// trickling bytes to look alive.
func TestNegotiationDeadline(t *testing.T) {
	const limit = 1500 * time.Millisecond
	ts := newTestServer(t, func(c *conf.Config) {
		c.C2S.NegotiationTimeout = conf.Duration{Duration: limit}
	})
	w := newBystanders(t, ts)
	tests := []struct {
		name  string
		start func(t *testing.T, c *rawClient)
	}{
		{"silent before the stream header", func(t *testing.T, c *rawClient) {
			// Nothing is sent; the server's header comes with its error.
			c.nc.SetReadDeadline(time.Now().Add(limit + waitTime))
			if _, err := c.rd.StreamHeader(); err != nil {
				t.Fatalf("no stream header before the error: %v", err)
			}
			c.nc.SetReadDeadline(time.Time{})
		}},
		{"silent after the stream header", func(t *testing.T, c *rawClient) {
			c.openStream(t)
		}},
		{"trickling an element byte by byte", func(t *testing.T, c *rawClient) {
			c.openStream(t)
			go func() {
				for _, b := range []byte(strings.Repeat("<auth xmlns='"+nsSASL+"'>", 10)) {
					if c.trySend(string(b)) != nil {
						return
					}
					time.Sleep(20 * time.Millisecond) // the attack: a slow drip
				}
			}()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			c := dialFrom(t, ts, attackerIP, true)
			tt.start(t, c)
			c.expect(t, streamError("connection-timeout"), limit+waitTime)
			c.expectClosed(t)
			if el := time.Since(start); el < limit-100*time.Millisecond {
				t.Fatalf("closed after %v, before the %v deadline", el, limit)
			}
		})
	}
	t.Run("bystanders", func(t *testing.T) {
		t.Parallel()
		w.check(t)
	})
}

// TestUnauthPerIP checks c2s.max_unauth_per_ip: one connection too many
// from an address is refused with policy-violation, other addresses and
// authenticated users are unaffected, and the address gets a slot again
// once one of its connections closes.
func TestUnauthPerIP(t *testing.T) {
	const max = 3
	ts := newTestServer(t, func(c *conf.Config) { c.C2S.MaxUnauthPerIP = max })
	w := newBystanders(t, ts)

	var held []*rawClient
	for range max {
		c := dialFrom(t, ts, attackerIP, false)
		c.openStream(t)
		held = append(held, c)
	}
	// Refused at once, before the client says anything.
	over := dialFrom(t, ts, attackerIP, false)
	over.nc.SetReadDeadline(time.Now().Add(waitTime))
	if _, err := over.rd.StreamHeader(); err != nil {
		t.Fatalf("reading the refusal: %v", err)
	}
	over.nc.SetReadDeadline(time.Time{})
	over.expectRefusal(t, "policy-violation", "too many connections")

	// Another address still connects, and the bystanders still talk.
	other := dialRaw(t, ts, false)
	other.openStream(t)
	w.check(t)

	held[0].closeStream(t)
	addr := netip.MustParseAddr(attackerIP)
	deadline := time.Now().Add(waitTime)
	for {
		ts.srv.mu.Lock()
		n := ts.srv.unauth[addr]
		ts.srv.mu.Unlock()
		if n < max {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the closed connection still counts: %d unauthenticated", n)
		}
		time.Sleep(5 * time.Millisecond) // polling the server's count
	}
	again := dialFrom(t, ts, attackerIP, false)
	again.openStream(t)
	again.startTLS(t)
}

// TestStreamReaderRefusals sends what RFC 6120 § 11 forbids in a stream:
// before authentication (on direct TLS, where <auth/> is awaited) and
// after binding (inside and between stanzas). Each gets its stream error.
func TestStreamReaderRefusals(t *testing.T) {
	ts := newTestServer(t)
	w := newBystanders(t, ts)
	ts.addUser(t, "mallory", "pw-m")

	bareHeader := clientHeader[len("<?xml version='1.0'?>"):]
	tests := []struct {
		name   string
		header string // replaces the stream header, if set
		top    string // sent between stanzas
		inner  string // sent inside a stanza
		cond   string
	}{
		{name: "DOCTYPE with an entity before the header",
			header: "<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY boom 'x'>]>" + bareHeader,
			cond:   "restricted-xml"},
		{name: "entity declaration", top: "<!ENTITY boom 'x'>", cond: "restricted-xml"},
		{name: "DOCTYPE in the stream", top: "<!DOCTYPE stream>", cond: "restricted-xml"},
		{name: "undeclared entity reference", inner: "&boom;", cond: "not-well-formed"},
		{name: "comment between stanzas", top: "<!-- hello -->", cond: "restricted-xml"},
		{name: "comment in a stanza", inner: "<!-- hello -->", cond: "restricted-xml"},
		{name: "processing instruction", top: "<?evil x?>", cond: "restricted-xml"},
		{name: "processing instruction in a stanza", inner: "<?evil x?>", cond: "restricted-xml"},
		{name: "XML declaration mid-stream", top: "<?xml version='1.0'?>", cond: "restricted-xml"},
		{name: "deep nesting", inner: nested(40), cond: "policy-violation"},
		{name: "invalid UTF-8", inner: "<body>\xff\xfe</body>", cond: "not-well-formed"},
		{name: "overlong UTF-8", inner: "<body>\xc0\xaf</body>", cond: "not-well-formed"},
		{name: "U+0001 as a byte", inner: "<body>a\x01b</body>", cond: "not-well-formed"},
		{name: "NUL as a byte", inner: "<body>a\x00b</body>", cond: "not-well-formed"},
		{name: "U+0001 as a reference", inner: "<body>a&#1;b</body>", cond: "not-well-formed"},
		{name: "U+FFFE as a reference", inner: "<body>&#xFFFE;</body>", cond: "not-well-formed"},
		{name: "U+0001 in an attribute", inner: "<body xml:lang='&#x1;'>x</body>",
			cond: "not-well-formed"},
		{name: "surrogate as a hex reference", inner: "<body>&#xD800;</body>",
			cond: "not-well-formed"},
		{name: "surrogate as a decimal reference", inner: "<body>&#55296;</body>",
			cond: "not-well-formed"},
		{name: "NUL as a reference", inner: "<body>&#0;</body>", cond: "not-well-formed"},
		{name: "surrogate reference in an attribute", inner: "<body xml:lang='&#xDC00;'>x</body>",
			cond: "not-well-formed"},
		{name: "undeclared prefix", inner: "<evil:x/>", cond: "bad-namespace-prefix"},
		{name: "text between stanzas", top: "hello<message/>", cond: "not-well-formed"},
	}
	phases := []struct {
		name  string
		open  func(t *testing.T, header string) *rawClient
		wrap  func(inner string) string
		other bool // header cases apply
	}{
		{"before authentication", func(t *testing.T, header string) *rawClient {
			c := dialFrom(t, ts, attackerIP, true)
			if header != "" {
				c.sendHeader(t, header)
			} else {
				c.openStream(t)
			}
			return c
		}, func(inner string) string {
			return "<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + inner + "</auth>"
		}, true},
		{"after binding", func(t *testing.T, header string) *rawClient {
			return login(t, ts, "mallory", "pw-m", "")
		}, func(inner string) string {
			return "<message to='walter@example.net' type='chat'>" + inner + "</message>"
		}, false},
	}
	for _, ph := range phases {
		for _, tt := range tests {
			if tt.header != "" && !ph.other {
				continue
			}
			t.Run(ph.name+"/"+tt.name, func(t *testing.T) {
				c := ph.open(t, tt.header)
				switch {
				case tt.top != "":
					c.send(t, tt.top)
				case tt.inner != "":
					c.send(t, ph.wrap(tt.inner))
				}
				c.expectRefusal(t, tt.cond, "")
			})
		}
	}
	w.check(t)
	w.b.expectNone(t, func(el *wire.Element) bool {
		return el.Name.Local == "message" && strings.HasPrefix(el.Get("from"), "mallory@")
	})
}

// TestStanzaSizeLimit sends a stanza far above c2s.max_stanza_size and
// checks that the policy-violation comes while the client is still
// sending: the server counts bytes as they arrive and never buffers the
// whole stanza.
func TestStanzaSizeLimit(t *testing.T) {
	const limit = 64 << 10
	const total = 32 << 20
	ts := newTestServer(t, func(c *conf.Config) { c.C2S.MaxStanzaSize = limit })
	w := newBystanders(t, ts)
	ts.addUser(t, "mallory", "pw-m")
	c := login(t, ts, "mallory", "pw-m", "")

	var written atomic.Int64
	writerDone := make(chan error, 1)
	go func() {
		chunk := []byte(strings.Repeat("A", 32<<10))
		head := "<message to='walter@example.net' type='chat'><body>"
		if err := c.trySend(head); err != nil {
			writerDone <- err
			return
		}
		written.Add(int64(len(head)))
		for written.Load() < total {
			c.nc.SetWriteDeadline(time.Now().Add(waitTime))
			n, err := c.nc.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				writerDone <- err
				return
			}
		}
		writerDone <- nil
	}()
	c.expect(t, streamErrorText("policy-violation", "larger than"), 0)
	atError := written.Load()
	c.expectClosed(t)
	if err := <-writerDone; err == nil {
		t.Fatalf("the client sent all %d bytes without the server stopping it", total)
	}
	if atError >= total {
		t.Fatalf("the error came after the whole stanza was sent")
	}
	t.Logf("refused after the client had written %d of %d bytes (limit %d)",
		atError, total, limit)
	w.check(t)
}

// TestRateLimit floods the server with IQs above c2s.rate_bytes_per_second
// and checks that the session is slowed to about that rate, stays open,
// and has every stanza answered; the bystanders meanwhile are served.
func TestRateLimit(t *testing.T) {
	const rate = 16 << 10
	ts := newTestServer(t, func(c *conf.Config) { c.C2S.RateBytesPerSecond = rate })
	w := newBystanders(t, ts)
	ts.addUser(t, "mallory", "pw-m")
	c := login(t, ts, "mallory", "pw-m", "")

	// 40 pings of 1 KiB each: 2.5 seconds' worth at the rate, of which the
	// first second's worth is the burst the limiter allows.
	var flood strings.Builder
	var ids []string
	for i := range 40 {
		pad := strings.Repeat("x",
			1024-len("<iq type='get' id='f00-'><ping xmlns='urn:xmpp:ping'/></iq>"))
		id := "f" + string(rune('a'+i/26)) + string(rune('a'+i%26)) + "-" + pad
		ids = append(ids, id)
		flood.WriteString("<iq type='get' id='" + id + "'><ping xmlns='" + nsPing + "'/></iq>")
	}
	start := time.Now()
	sent := make(chan error, 1)
	go func() { sent <- c.trySend(flood.String()) }()
	w.check(t)
	for _, id := range ids {
		res := c.expect(t, byID(id), 2*waitTime)
		if res.Get("type") != "result" {
			t.Fatalf("ping %s: %s", id[:4], res)
		}
	}
	elapsed := time.Since(start)
	if err := <-sent; err != nil {
		t.Fatalf("the flooding client was cut off: %v", err)
	}
	c.sync(t) // the connection is still open and served

	n := float64(flood.Len())
	steady := (n - rate) / elapsed.Seconds() // bytes per second beyond the burst
	t.Logf("%d bytes handled in %v: %.0f B/s beyond the %d B burst (limit %d B/s)",
		flood.Len(), elapsed.Round(time.Millisecond), steady, rate, rate)
	if steady > 1.25*rate {
		t.Fatalf("flood handled at %.0f B/s, above the %d B/s limit", steady, rate)
	}
}

// TestOutgoingQueueBound has a client stop reading while messages for it
// pile up: once c2s.max_outgoing_queue stanzas wait, the server drops the
// connection instead of holding more, and the messages stay queued for the
// next login. With stream management every one of them stays queued;
// without it, those written to the socket count as delivered (DESIGN.md).
func TestOutgoingQueueBound(t *testing.T) {
	const maxQueue = 20
	for _, sm := range []bool{true, false} {
		name := "without stream management"
		if sm {
			name = "with stream management"
		}
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, func(c *conf.Config) { c.C2S.MaxOutgoingQueue = maxQueue })
			w := newBystanders(t, ts)
			ts.addUser(t, "alice", "pw-a")
			ts.addUser(t, "bob", "pw-b")
			alice := login(t, ts, "alice", "pw-a", "phone")

			// Bob's socket takes in little, and bob never reads.
			bob := connectAuthSmallBuffer(t, ts, "bob", "pw-b")
			bob.bind(t, "desk") // read synchronously: no reading goroutine starts
			if sm {
				bob.send(t, "<enable xmlns='"+nsSM+"'/>")
			}
			bob.sendPresence(t, "")
			sess := waitSession(t, ts, "bob@example.net", "desk", sm)
			sess.mu.Lock()
			bobConn := sess.c
			sess.mu.Unlock()

			body := strings.Repeat("m", 100<<10)
			sent := 0
			for ; sent < 400 && len(ts.srv.router.sessions("bob@example.net")) > 0; sent++ {
				alice.sendMessage(t, "bob@example.net", body)
				if sent%10 == 9 {
					alice.sync(t) // let the server catch up, so the count is exact
				}
			}
			alice.sync(t)
			if len(ts.srv.router.sessions("bob@example.net")) > 0 {
				t.Fatalf("bob's session survived %d unread messages of 100 KiB", sent)
			}
			waitConnGone(t, ts, bobConn)

			n, err := ts.deps.Queue.Count(context.Background(), "bob@example.net")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("dropped after %d messages; %d still queued", sent, n)
			if sm && n != sent {
				t.Fatalf("%d of %d messages queued after the drop", n, sent)
			}
			if !sm && n < maxQueue {
				t.Fatalf("%d messages queued after the drop, want at least %d", n, maxQueue)
			}
			w.check(t)

			// The next login gets them all.
			again := login(t, ts, "bob", "pw-b", "desk")
			again.sendPresence(t, "")
			for range n {
				again.expectMessage(t, alice.full, body)
			}
			alice.sync(t)
		})
	}
}

// connectAuthSmallBuffer is connectAuth with a 4 KiB socket receive
// buffer, set before connecting so that the TCP window stays small.
func connectAuthSmallBuffer(t *testing.T, ts *testServer, local, password string) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: waitTime, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	nc, err := d.Dial("tcp", ts.starttlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawClient{ts: ts, raw: nc, nc: nc}
	c.rd = wire.NewReader(c.nc, wire.Limits{MaxBytes: 4 << 20}, 0)
	c.openStream(t)
	c.startTLS(t)
	if err := c.auth(t, "SCRAM-SHA-256", local, password); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitSession waits until bare/resource is bound and available (and, with
// sm, has stream management on) and returns the session.
func waitSession(t *testing.T, ts *testServer, bare, resource string, sm bool) *Session {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for {
		if s := ts.srv.router.session(bare, resource); s != nil {
			s.mu.Lock()
			ok := s.avail && s.initial && !s.loading && (!sm || s.sm.on)
			s.mu.Unlock()
			if ok {
				return s
			}
		}
		if time.Now().After(deadline) {
			s := ts.srv.router.session(bare, resource)
			if s == nil {
				t.Fatalf("%s/%s is not bound", bare, resource)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("%s/%s never became ready: available %v, initial %v, loading %v, sm %v",
				bare, resource, s.avail, s.initial, s.loading, s.sm.on)
		}
		time.Sleep(5 * time.Millisecond) // polling the router
	}
}

// waitConnGone waits until the server has let go of c entirely.
func waitConnGone(t *testing.T, ts *testServer, c *conn) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for {
		ts.srv.mu.Lock()
		_, open := ts.srv.conns[c]
		ts.srv.mu.Unlock()
		if !open {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the connection of a client that does not read is still open after %v", waitTime)
		}
		time.Sleep(5 * time.Millisecond) // polling the server's connections
	}
}
