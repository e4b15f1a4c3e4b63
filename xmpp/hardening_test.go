package xmpp

// Hardening tests (issue 4): every hostile input goes over a real socket to
// the real listener, the exact refusal is asserted, and two bystanders on
// the same server show that everyone else keeps being served.
//
// This file holds the helpers the hardening tests share and the
// authentication tests; limits_test.go has the limits before and after
// authentication and the stream reader, identity_test.go the identity
// checks, soak_test.go the memory and leak measurements.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/wire"
)

// attackerIP is the loopback address hostile clients connect from, so that
// per-address limits they trip leave the bystanders (on 127.0.0.1) alone.
const attackerIP = "127.0.0.2"

// dialFrom connects from the local address ip to the STARTTLS listener, or
// with direct to the direct TLS listener (handshake done).
func dialFrom(t testing.TB, ts *testServer, ip string, direct bool) *rawClient {
	t.Helper()
	addr := ts.starttlsAddr
	if direct {
		addr = ts.directAddr
	}
	d := net.Dialer{Timeout: waitTime, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialing from %s: %v", ip, err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawClient{ts: ts, raw: nc, nc: nc}
	if direct {
		tc := tls.Client(nc, clientTLS())
		tc.SetDeadline(time.Now().Add(waitTime))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("direct TLS handshake: %v", err)
		}
		tc.SetDeadline(time.Time{})
		c.nc = tc
	}
	c.rd = wire.NewReader(c.nc, wire.Limits{MaxBytes: 4 << 20}, 0)
	return c
}

// sendHeader sends header (a possibly hostile stream opening) and reads the
// server's stream header, which the server sends even when it refuses the
// client's (RFC 6120 § 4.9.1.1).
func (c *rawClient) sendHeader(t testing.TB, header string) {
	t.Helper()
	c.send(t, header)
	c.nc.SetReadDeadline(time.Now().Add(waitTime))
	defer c.nc.SetReadDeadline(time.Time{})
	if _, err := c.rd.StreamHeader(); err != nil {
		t.Fatalf("reading the server's stream header: %v", err)
	}
}

// streamErrorText matches a stream error with condition cond whose text
// contains text.
func streamErrorText(cond, text string) func(*wire.Element) bool {
	return func(el *wire.Element) bool {
		return streamError(cond)(el) &&
			strings.Contains(el.ChildText(wire.NSStreams, "text"), text)
	}
}

// expectRefusal waits for the stream error cond (with text in its text, if
// text is not empty) and for the connection to close.
func (c *rawClient) expectRefusal(t testing.TB, cond, text string) {
	t.Helper()
	c.expect(t, func(el *wire.Element) bool {
		if el.Name.Space == wire.NSStream && el.Name.Local == "error" &&
			!streamErrorText(cond, text)(el) {
			t.Fatalf("got stream error %s, want %s (%q)", el, cond, text)
		}
		return streamErrorText(cond, text)(el)
	}, 0)
	c.expectClosed(t)
}

// bystanders are two ordinary users, logged in from 127.0.0.1 with
// available presence, who go on talking while a test attacks the server.
type bystanders struct {
	a, b *rawClient
	n    int
}

func newBystanders(t testing.TB, ts *testServer) *bystanders {
	t.Helper()
	ts.addUser(t, "wanda", "pw-wanda")
	ts.addUser(t, "walter", "pw-walter")
	w := &bystanders{
		a: login(t, ts, "wanda", "pw-wanda", "phone"),
		b: login(t, ts, "walter", "pw-walter", "desk"),
	}
	w.a.sendPresence(t, "")
	w.b.sendPresence(t, "")
	w.a.sync(t)
	w.b.sync(t)
	return w
}

// check sends a message each way and waits for both to arrive.
func (w *bystanders) check(t testing.TB) {
	t.Helper()
	w.n++
	body := fmt.Sprintf("still served %d", w.n)
	w.a.sendMessage(t, w.b.full, body)
	w.b.expectMessage(t, w.a.full, body)
	w.b.sendMessage(t, w.a.full, body+" too")
	w.a.expectMessage(t, w.b.full, body+" too")
}

// logBuffer collects a server's log output; it is safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// withLogger starts a second server on the stores of ts, with its own
// listeners and logger, for tests that read what the server logs. The
// harness's server keeps running beside it.
func withLogger(t testing.TB, ts *testServer, logger *slog.Logger) *testServer {
	t.Helper()
	cfg := *ts.cfg
	cfg.C2S.STARTTLSAddr = "127.0.0.1:0"
	cfg.C2S.DirectTLSAddr = "127.0.0.1:0"
	srv, err := New(&cfg, ts.deps, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	addrs := srv.Addrs()
	out := &testServer{srv: srv, cfg: &cfg, deps: ts.deps, db: ts.db,
		starttlsAddr: addrs[0].String(), directAddr: addrs[1].String(),
		done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	out.cancel = cancel
	go func() { out.done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		if err := out.stop(t); err != nil {
			t.Errorf("stopping the second server: %v", err)
		}
	})
	return out
}

// plainAuth runs one PLAIN exchange with the given authorization identity
// and returns the SASL failure condition, or "" on success (the stream is
// then restarted).
func (c *rawClient) plainAuth(t testing.TB, authzid, authcid, password string) string {
	t.Helper()
	msg := base64.StdEncoding.EncodeToString([]byte(authzid + "\x00" + authcid + "\x00" + password))
	c.send(t, "<auth xmlns='"+nsSASL+"' mechanism='PLAIN'>"+msg+"</auth>")
	el := c.nextSync(t)
	switch el.Name.Local {
	case "success":
		c.rd.Reset(c.nc)
		c.openStream(t)
		return ""
	case "failure":
		for _, ch := range el.Children() {
			if ch.Name.Local != "text" {
				return ch.Name.Local
			}
		}
		t.Fatalf("failure without a condition: %s", el)
	}
	t.Fatalf("unexpected answer to <auth/>: %s", el)
	return ""
}

// TestAuthzid checks that PLAIN with an authorization identity naming
// another account is refused with invalid-authzid (RFC 6120 § 6.4.6), even
// with the right password, while the account's own JID is accepted.
func TestAuthzid(t *testing.T) {
	ts := newTestServer(t)
	w := newBystanders(t, ts)
	ts.addUser(t, "alice", "pw-a")
	ts.addUser(t, "bob", "pw-b")

	tests := []struct {
		name    string
		authzid string
		want    string
	}{
		{"another account's bare JID", "bob@example.net", "invalid-authzid"},
		{"another account's localpart", "bob", "invalid-authzid"},
		{"own full JID", "alice@example.net/phone", "invalid-authzid"},
		{"a JID of another domain", "alice@example.org", "invalid-authzid"},
		{"own bare JID", "alice@example.net", ""},
		{"own localpart", "alice", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialFrom(t, ts, attackerIP, true)
			c.openStream(t)
			if got := c.plainAuth(t, tt.authzid, "alice", "pw-a"); got != tt.want {
				t.Fatalf("authzid %q: got %q, want %q", tt.authzid, got, tt.want)
			}
			if tt.want == "" {
				if got := c.bind(t, "r"); got != "alice@example.net/r" {
					t.Fatalf("bound %q", got)
				}
			}
		})
	}
	w.check(t)
}

// TestLoginThrottle checks that repeated failures from one address are
// throttled with temporary-auth-failure, the right password included, while
// the owner logs in from another address; and that each failure is logged
// at Warn without the password.
func TestLoginThrottle(t *testing.T) {
	base := newTestServer(t, func(c *conf.Config) {
		c.Auth.MaxFailuresPerIP = 3
		c.Auth.MaxFailuresPerAccount = 3
	})
	var logs logBuffer
	ts := withLogger(t, base, slog.New(slog.NewTextHandler(&logs,
		&slog.HandlerOptions{Level: slog.LevelDebug})))
	w := newBystanders(t, ts)
	ts.addUser(t, "alice", "pw-alice-real")
	ts.addUser(t, "bob", "pw-bob-real")

	guesses := []string{"hunter2-guess-one", "hunter2-guess-two", "hunter2-guess-three"}
	c := dialFrom(t, ts, attackerIP, true)
	c.openStream(t)
	for _, g := range guesses {
		if got := c.plainAuth(t, "", "alice", g); got != "not-authorized" {
			t.Fatalf("wrong password %q: got %q", g, got)
		}
	}
	// The limit is reached: even the right password is refused from here,
	// for this account and for any other.
	if got := c.plainAuth(t, "", "alice", "pw-alice-real"); got != "temporary-auth-failure" {
		t.Fatalf("right password after %d failures: got %q, want temporary-auth-failure",
			len(guesses), got)
	}
	d := dialFrom(t, ts, attackerIP, true)
	d.openStream(t)
	if got := d.plainAuth(t, "", "bob", "pw-bob-real"); got != "temporary-auth-failure" {
		t.Fatalf("another account from the throttled address: got %q", got)
	}

	// The owner, elsewhere, is not locked out; nor are the bystanders.
	owner := login(t, ts, "alice", "pw-alice-real", "phone")
	owner.sendPresence(t, "")
	w.a.sendMessage(t, owner.full, "you are in")
	owner.expectMessage(t, w.a.full, "you are in")
	w.check(t)

	out := logs.String()
	var warns []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `msg="authentication failed"`) {
			if !strings.Contains(line, "level=WARN") {
				t.Errorf("failure not logged at Warn: %s", line)
			}
			warns = append(warns, line)
		}
	}
	if len(warns) != len(guesses)+2 {
		t.Errorf("%d failures logged, want %d:\n%s", len(warns), len(guesses)+2, out)
	}
	if n := strings.Count(out, "condition=temporary-auth-failure"); n != 2 {
		t.Errorf("%d throttled attempts logged, want 2", n)
	}
	for _, secret := range append(guesses, "pw-alice-real", "pw-bob-real") {
		plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + secret))
		if strings.Contains(out, secret) || strings.Contains(out, plain) {
			t.Errorf("the log holds the password %q", secret)
		}
	}
	if !strings.Contains(out, "remote_addr="+attackerIP) {
		t.Errorf("failures logged without the client address:\n%s", out)
	}
}

// TestHostileInputLogged checks that streams ended for what a client sent
// are logged at Warn with the condition and the client address, never with
// what the client sent, and that one address cannot flood the log: past
// warnBurst warnings in a window its warnings are held back, while another
// address's still get through.
func TestHostileInputLogged(t *testing.T) {
	var logs logBuffer
	ts := withLogger(t, newTestServer(t), slog.New(slog.NewTextHandler(&logs,
		&slog.HandlerOptions{Level: slog.LevelInfo})))
	w := newBystanders(t, ts)
	const secret = "s3cret-in-a-comment"

	send := func(ip, input string) {
		t.Helper()
		c := dialFrom(t, ts, ip, true)
		c.openStream(t)
		c.send(t, input)
		c.expectRefusal(t, "restricted-xml", "")
	}
	for range warnBurst + 5 {
		send(attackerIP, "<!-- "+secret+" -->")
	}
	send("127.0.0.3", "<?evil "+secret+"?>")

	count := func(addr string) int {
		n := 0
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `msg="stream error"`) &&
				strings.Contains(line, "remote_addr="+addr) {
				if !strings.Contains(line, "level=WARN") ||
					!strings.Contains(line, "condition=restricted-xml") {
					t.Errorf("logged as %s", line)
				}
				n++
			}
		}
		return n
	}
	if n := count(attackerIP); n != warnBurst {
		t.Errorf("%d warnings from the flooding address, want %d", n, warnBurst)
	}
	if n := count("127.0.0.3"); n != 1 {
		t.Errorf("%d warnings from another address, want 1", n)
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the log holds what the client sent:\n%s", logs.String())
	}
	w.check(t)
}
