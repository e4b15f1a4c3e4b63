package xmpp

// The in-process test harness: a real Server on loopback listeners with a
// temporary database, and two kinds of client.
//
// Server:
//
//	ts := newTestServer(t, opts...)   // started; stopped by t.Cleanup
//	    opts are func(*conf.Config), applied to the test configuration
//	    (see testConfig) before the server is built.
//	ts.addUser(t, "alice", "pw")      // account through the auth store
//	ts.jid("alice")                   // "alice@example.net"
//	ts.stop(t)                        // cancel Serve and wait; idempotent
//	ts.srv, ts.deps, ts.db, ts.cfg    // the server, its stores, its database
//	ts.starttlsAddr, ts.directAddr    // listener addresses
//
// Raw client, for precise protocol tests (every step fails t on error):
//
//	c := login(t, ts, "alice", "pw", "phone")  // TLS, SCRAM-SHA-256, bind
//	c := connectAuth(t, ts, "alice", "pw")     // stops after SASL and the
//	    stream restart: c.features holds the features; bind or resume next
//	c := dialRaw(t, ts, direct)                // a bare TCP (or TLS) conn
//	c.openStream(t) / c.startTLS(t) / c.auth(mech, local, pw) / c.bind(t, res)
//	c.send(t, xml) / c.sendRaw(t, bytes) / c.cut() / c.closeStream(t)
//	c.expect(t, match, timeout) *wire.Element  // first element matching;
//	    earlier non-matching elements are skipped. timeout 0 = waitTime.
//	c.expectStreamError(t, cond) / c.expectClosed(t)
//	c.sync(t) []*wire.Element  // ping the server, return what came before
//	    the reply: proves that nothing else is on its way to this client
//	    from this client's own earlier stanzas
//	c.sendPresence(t, extra) / c.expectMessage(t, from, body)
//	c.rosterGet(t, ver) *wire.Element / c.enableSM(t, resume) *wire.Element
//	c.stanzaCount() // message, presence and iq elements read so far
//
// Matchers: named(local), stanza(local, attr=value pairs...), streamError(cond)
// and byID(id) build the func(*wire.Element) bool that expect takes.
//
// mellium client, for "a real library logs in":
//
//	s, err := ts.melliumLogin(ctx, t, melliumOpts{...})
//
// Set TWOTICK_TEST_LOG=1 to see the server's debug log on standard error.

import (
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/auth"
	"github.com/twotick/twotick/xmpp/storage"
	"github.com/twotick/twotick/xmpp/wire"
)

// testDomain is the domain every test server serves.
const testDomain = "example.net"

// waitTime bounds every wait in the harness: long enough for a loaded
// machine under -race, short enough that a hang fails quickly.
const waitTime = 10 * time.Second

// testServer is a running server for one test.
type testServer struct {
	srv          *Server
	cfg          *conf.Config
	deps         Deps
	db           *sql.DB
	starttlsAddr string
	directAddr   string

	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
	stopErr  error
}

// testConfig is the configuration tests start from: loopback listeners on
// free ports, a temporary data directory, unsynchronised SQLite (a test
// need not survive a power cut) and no byte-rate limit.
func testConfig(t testing.TB) *conf.Config {
	cfg := conf.Default()
	cfg.Domain = testDomain
	cfg.DataDir = t.TempDir()
	cfg.C2S.STARTTLSAddr = "127.0.0.1:0"
	cfg.C2S.DirectTLSAddr = "127.0.0.1:0"
	cfg.C2S.NegotiationTimeout = conf.Duration{Duration: 10 * time.Second}
	cfg.C2S.RateBytesPerSecond = 0
	cfg.Storage.Synchronous = "off"
	cfg.Auth.SCRAMIterations = 4096
	cfg.Metrics.Addr = ""
	cfg.Shutdown.Timeout = conf.Duration{Duration: 5 * time.Second}
	return cfg
}

func testLogger() *slog.Logger {
	if os.Getenv("TWOTICK_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newTestServer builds the server as cmd/twotick serve does, listens, and
// serves until the test ends.
func newTestServer(t testing.TB, opts ...func(*conf.Config)) *testServer {
	t.Helper()
	cfg := testConfig(t)
	for _, o := range opts {
		o(cfg)
	}
	logger := testLogger()
	ctx := context.Background()
	db, err := storage.Open(ctx, filepath.Join(cfg.DataDir, cfg.Storage.Path), cfg.Storage.Synchronous)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	deps, err := OpenDeps(ctx, cfg, db, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deps.Queue.Close() })
	deps.Metrics = NewMetrics(nil)
	accounts := deps.Accounts
	if cfg.SMS.LogFile != "" {
		deps.Registrar = newTestRegistrar(t, db, accounts, cfg.SMS.LogFile) // registration_test.go
	}
	srv, err := New(cfg, deps, logger)
	if err != nil {
		t.Fatal(err)
	}
	accounts.OnChange = func(local string, c auth.Change) {
		srv.CloseSessions(local, "not-authorized")
	}
	if err := srv.ListenComponents(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, cfg: cfg, deps: deps, db: db, done: make(chan error, 1)}
	addrs := srv.Addrs()
	if len(addrs) > 0 && cfg.C2S.STARTTLSAddr != "" {
		ts.starttlsAddr = addrs[0].String()
		addrs = addrs[1:]
	}
	if len(addrs) > 0 && cfg.C2S.DirectTLSAddr != "" {
		ts.directAddr = addrs[0].String()
	}
	sctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	go func() { ts.done <- srv.Serve(sctx) }()
	t.Cleanup(func() {
		if err := ts.stop(t); err != nil {
			t.Errorf("stopping the server: %v", err)
		}
	})
	return ts
}

// stop cancels Serve and waits for it to return, at most the shutdown
// timeout and a margin. It returns Serve's error; later calls return the
// same.
func (ts *testServer) stop(t testing.TB) error {
	ts.stopOnce.Do(func() {
		ts.cancel()
		select {
		case ts.stopErr = <-ts.done:
		case <-time.After(ts.cfg.Shutdown.Timeout.Duration + waitTime):
			ts.stopErr = errors.New("Serve did not return after the shutdown timeout")
		}
	})
	return ts.stopErr
}

// addUser creates an account: a phone account if local starts with '+',
// otherwise a bot account.
func (ts *testServer) addUser(t testing.TB, local, password string) {
	t.Helper()
	kind := auth.KindBot
	if strings.HasPrefix(local, "+") {
		kind = auth.KindPhone
	}
	if err := ts.deps.Accounts.Create(context.Background(), local, kind, password); err != nil {
		t.Fatal(err)
	}
}

// jid returns the bare JID of local.
func (ts *testServer) jid(local string) string { return local + "@" + testDomain }

// clientTLS is the client's TLS configuration: the certificate is
// self-signed.
func clientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: testDomain, MinVersion: tls.VersionTLS12}
}

// rawClient is a hand-driven client connection. Until its first expect (or
// sync) it reads synchronously, so that the stream can restart; after that
// a goroutine reads elements into a channel, so that waits can time out
// without breaking the XML decoder.
type rawClient struct {
	ts    *testServer
	raw   net.Conn // the TCP connection
	nc    net.Conn // raw or TLS over it
	rd    *wire.Reader
	full  string // bound full JID
	bare  string
	local string

	features *wire.Element // the last stream features received

	startOnce sync.Once
	in        chan readResult
	stanzas   atomic.Int64
	ids       atomic.Int64
	eof       error // set once the reader goroutine reported an error
}

type readResult struct {
	el  *wire.Element
	err error
}

// dialRaw connects to the STARTTLS listener, or with direct to the direct
// TLS listener (TLS handshake done).
func dialRaw(t testing.TB, ts *testServer, direct bool) *rawClient {
	t.Helper()
	addr := ts.starttlsAddr
	if direct {
		addr = ts.directAddr
	}
	nc, err := net.DialTimeout("tcp", addr, waitTime)
	if err != nil {
		t.Fatal(err)
	}
	c := &rawClient{ts: ts, raw: nc, nc: nc}
	t.Cleanup(func() { nc.Close() })
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

// sendRaw writes b as it is.
func (c *rawClient) sendRaw(t testing.TB, b []byte) {
	t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(waitTime))
	if _, err := c.nc.Write(b); err != nil {
		t.Fatalf("sending: %v", err)
	}
}

// send writes an XML string as it is.
func (c *rawClient) send(t testing.TB, s string) {
	t.Helper()
	c.sendRaw(t, []byte(s))
}

// trySend writes s and reports the error, for writes that may race with
// the server closing the connection.
func (c *rawClient) trySend(s string) error {
	c.nc.SetWriteDeadline(time.Now().Add(waitTime))
	_, err := c.nc.Write([]byte(s))
	return err
}

// nextID returns a fresh stanza id.
func (c *rawClient) nextID() string {
	return fmt.Sprintf("t%d", c.ids.Add(1))
}

// clientHeader is a well-formed client stream header to the test domain.
const clientHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
	"xmlns:stream='http://etherx.jabber.org/streams' to='" + testDomain + "' version='1.0'>"

// nextSync reads one element synchronously, within waitTime.
func (c *rawClient) nextSync(t testing.TB) *wire.Element {
	t.Helper()
	if c.in != nil {
		t.Fatal("nextSync after the reader goroutine started")
	}
	c.nc.SetReadDeadline(time.Now().Add(waitTime))
	defer c.nc.SetReadDeadline(time.Time{})
	el, err := c.rd.Next()
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	return el
}

// openStream sends a stream header, reads the server's header and its
// features, and returns them.
func (c *rawClient) openStream(t testing.TB) *wire.Element {
	t.Helper()
	c.send(t, clientHeader)
	c.nc.SetReadDeadline(time.Now().Add(waitTime))
	h, err := c.rd.StreamHeader()
	c.nc.SetReadDeadline(time.Time{})
	if err != nil {
		t.Fatalf("reading the server's stream header: %v", err)
	}
	if h.From != testDomain || h.ID == "" {
		t.Fatalf("server stream header: %+v", h)
	}
	f := c.nextSync(t)
	if f.Name.Space != wire.NSStream || f.Name.Local != "features" {
		t.Fatalf("expected stream features, got %s", f)
	}
	c.features = f
	return f
}

// startTLS runs STARTTLS from the features just received, then restarts
// the stream.
func (c *rawClient) startTLS(t testing.TB) *wire.Element {
	t.Helper()
	c.send(t, "<starttls xmlns='"+nsTLS+"'/>")
	if el := c.nextSync(t); el.Name.Local != "proceed" {
		t.Fatalf("expected <proceed/>, got %s", el)
	}
	tc := tls.Client(c.raw, clientTLS())
	tc.SetDeadline(time.Now().Add(waitTime))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	c.nc = tc
	c.rd.Reset(c.nc)
	return c.openStream(t)
}

// mechanisms lists the SASL mechanisms in the current features.
func (c *rawClient) mechanisms() []string {
	var out []string
	if m := c.features.Child(nsSASL, "mechanisms"); m != nil {
		for _, e := range m.Children() {
			out = append(out, e.Text())
		}
	}
	return out
}

// saslMechs maps mechanism names to mellium's client mechanisms.
var saslMechs = map[string]sasl.Mechanism{
	"SCRAM-SHA-1":        sasl.ScramSha1,
	"SCRAM-SHA-256":      sasl.ScramSha256,
	"SCRAM-SHA-1-PLUS":   sasl.ScramSha1Plus,
	"SCRAM-SHA-256-PLUS": sasl.ScramSha256Plus,
	"PLAIN":              sasl.Plain,
}

// auth runs one SASL exchange with mech. It returns nil on <success/>
// (after checking the server's final message) and restarts the stream; a
// <failure/> is returned as a *saslFailure. Transport errors fail t.
func (c *rawClient) auth(t testing.TB, mech, local, password string) error {
	t.Helper()
	m, ok := saslMechs[mech]
	if !ok {
		t.Fatalf("unknown mechanism %s", mech)
	}
	opts := []sasl.Option{
		sasl.Credentials(func() ([]byte, []byte, []byte) {
			return []byte(local), []byte(password), nil
		}),
		sasl.RemoteMechanisms(c.mechanisms()...),
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		opts = append(opts, sasl.TLSState(tc.ConnectionState()))
	}
	client := sasl.NewClient(m, opts...)
	_, resp, err := client.Step(nil)
	if err != nil {
		t.Fatalf("SASL client start: %v", err)
	}
	c.send(t, "<auth xmlns='"+nsSASL+"' mechanism='"+mech+"'>"+encodeSASL(resp)+"</auth>")
	for {
		el := c.nextSync(t)
		switch el.Name.Local {
		case "challenge", "success":
			data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text()))
			if err != nil {
				t.Fatalf("bad base64 from server: %v", err)
			}
			if el.Name.Local == "success" {
				if len(data) > 0 {
					if _, _, err := client.Step(data); err != nil {
						t.Fatalf("server's final SCRAM message rejected: %v", err)
					}
				}
				c.local = local
				c.rd.Reset(c.nc)
				c.openStream(t)
				return nil
			}
			_, resp, err := client.Step(data)
			if err != nil {
				t.Fatalf("SASL client step: %v", err)
			}
			c.send(t, "<response xmlns='"+nsSASL+"'>"+encodeSASL(resp)+"</response>")
		case "failure":
			f := &saslFailure{}
			for _, ch := range el.Children() {
				if ch.Name.Local == "text" {
					f.text = ch.Text()
				} else {
					f.cond = ch.Name.Local
				}
			}
			return f
		default:
			t.Fatalf("unexpected element during SASL: %s", el)
		}
	}
}

func encodeSASL(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// saslFailure is a SASL <failure/> from the server.
type saslFailure struct{ cond, text string }

func (f *saslFailure) Error() string { return "SASL failure " + f.cond + ": " + f.text }

// bind binds resource ("" lets the server choose) and records the full JID.
func (c *rawClient) bind(t testing.TB, resource string) string {
	t.Helper()
	r := ""
	if resource != "" {
		r = "<resource>" + xmlEscapeAttr(resource) + "</resource>"
	}
	c.send(t, "<iq type='set' id='bind1'><bind xmlns='"+nsBind+"'>"+r+"</bind></iq>")
	el := c.nextSync(t)
	if el.Name.Local != "iq" || el.Get("type") != "result" || el.Get("id") != "bind1" {
		t.Fatalf("bind failed: %s", el)
	}
	full := el.Child(nsBind, "bind").ChildText(nsBind, "jid")
	j, err := jid.Parse(full)
	if err != nil {
		t.Fatalf("bound JID %q: %v", full, err)
	}
	c.full, c.bare = full, j.Bare().String()
	return full
}

// connectAuth connects with STARTTLS and authenticates with SCRAM-SHA-256;
// the stream has restarted and c.features offers bind.
func connectAuth(t testing.TB, ts *testServer, local, password string) *rawClient {
	t.Helper()
	c := dialRaw(t, ts, false)
	c.openStream(t)
	c.startTLS(t)
	if err := c.auth(t, "SCRAM-SHA-256", local, password); err != nil {
		t.Fatalf("authenticating %s: %v", local, err)
	}
	return c
}

// login connects, authenticates and binds resource ("" for a generated
// one). It sends no presence.
func login(t testing.TB, ts *testServer, local, password, resource string) *rawClient {
	t.Helper()
	c := connectAuth(t, ts, local, password)
	c.bind(t, resource)
	return c
}

// startReader starts the reading goroutine once; from then on elements
// arrive on c.in.
func (c *rawClient) startReader() {
	c.startOnce.Do(func() {
		c.in = make(chan readResult, 1024)
		go func() {
			for {
				el, err := c.rd.Next()
				if err != nil {
					c.in <- readResult{err: err}
					close(c.in)
					return
				}
				switch el.Name.Local {
				case "message", "presence", "iq":
					if el.Name.Space == wire.NSClient {
						c.stanzas.Add(1)
					}
				}
				c.in <- readResult{el: el}
			}
		}()
	})
}

// stanzaCount is the number of message, presence and iq elements read so
// far (skipped ones included), for XEP-0198 counts.
func (c *rawClient) stanzaCount() int64 { return c.stanzas.Load() }

// next returns the next element, or the read error (a *wire.StreamError is
// not reported this way: the server's <stream:error/> is an element), or a
// timeout error.
func (c *rawClient) next(timeout time.Duration) (*wire.Element, error) {
	c.startReader()
	if c.eof != nil {
		return nil, c.eof
	}
	if timeout <= 0 {
		timeout = waitTime
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r, ok := <-c.in:
		if !ok {
			return nil, c.eof
		}
		if r.err != nil {
			c.eof = r.err
			return nil, r.err
		}
		return r.el, nil
	case <-timer.C:
		return nil, errTimeout
	}
}

var errTimeout = errors.New("timed out waiting for the server")

// expect returns the first element for which match is true, skipping
// others, and fails t if none comes within timeout (0: waitTime) or the
// stream ends first.
func (c *rawClient) expect(t testing.TB, match func(*wire.Element) bool,
	timeout time.Duration) *wire.Element {
	t.Helper()
	if timeout <= 0 {
		timeout = waitTime
	}
	deadline := time.Now().Add(timeout)
	var skipped []string
	for {
		el, err := c.next(time.Until(deadline))
		if err != nil {
			t.Fatalf("%s: expected element not received (%v); skipped: %s", c.who(), err,
				strings.Join(skipped, " "))
		}
		if match(el) {
			return el
		}
		skipped = append(skipped, el.String())
	}
}

func (c *rawClient) who() string {
	if c.full != "" {
		return c.full
	}
	return "client"
}

// expectStreamError waits for a stream error with condition cond and then
// for the connection to close.
func (c *rawClient) expectStreamError(t testing.TB, cond string) {
	t.Helper()
	c.expect(t, streamError(cond), 0)
	c.expectClosed(t)
}

// expectClosed waits for the server to end the stream and the connection.
func (c *rawClient) expectClosed(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for {
		el, err := c.next(time.Until(deadline))
		switch {
		case err == nil:
			if el.Name.Space == wire.NSStream && el.Name.Local == "error" {
				t.Fatalf("%s: unexpected stream error %s", c.who(), el)
			}
			continue
		case errors.Is(err, errTimeout):
			t.Fatalf("%s: connection still open", c.who())
		}
		return
	}
}

// sync sends an IQ ping to the server and waits for the result. Every
// stanza the server had queued for this client before it handled the ping
// is returned, in order.
func (c *rawClient) sync(t testing.TB) []*wire.Element {
	t.Helper()
	id := "sync-" + c.nextID()
	c.send(t, "<iq type='get' id='"+id+"'><ping xmlns='"+nsPing+"'/></iq>")
	var before []*wire.Element
	deadline := time.Now().Add(waitTime)
	for {
		el, err := c.next(time.Until(deadline))
		if err != nil {
			t.Fatalf("%s: sync: %v", c.who(), err)
		}
		if el.Name.Local == "iq" && el.Get("id") == id {
			if el.Get("type") != "result" {
				t.Fatalf("%s: ping failed: %s", c.who(), el)
			}
			return before
		}
		before = append(before, el)
	}
}

// expectNone syncs and fails t if any element received meanwhile matches.
func (c *rawClient) expectNone(t testing.TB, match func(*wire.Element) bool) {
	t.Helper()
	for _, el := range c.sync(t) {
		if match(el) {
			t.Fatalf("%s: unexpected %s", c.who(), el)
		}
	}
}

// sendPresence sends available presence with extra children (such as
// "<priority>5</priority>").
func (c *rawClient) sendPresence(t testing.TB, extra string) {
	t.Helper()
	c.send(t, "<presence>"+extra+"</presence>")
}

// sendMessage sends a chat message with body to to and returns its id.
func (c *rawClient) sendMessage(t testing.TB, to, body string) string {
	t.Helper()
	id := c.nextID()
	c.send(t, "<message type='chat' id='"+id+"' to='"+xmlEscapeAttr(to)+"'><body>"+
		xmlEscapeAttr(body)+"</body></message>")
	return id
}

// expectMessage waits for a message from from (full or bare JID: a bare
// JID matches any of its resources) with the given body.
func (c *rawClient) expectMessage(t testing.TB, from, body string) *wire.Element {
	t.Helper()
	return c.expect(t, func(el *wire.Element) bool {
		return el.Name.Local == "message" && el.Get("type") != "error" &&
			jidMatches(el.Get("from"), from) && el.ChildText(wire.NSClient, "body") == body
	}, 0)
}

// jidMatches reports whether got is want, or a full JID of the bare want.
func jidMatches(got, want string) bool {
	return got == want || (!strings.Contains(want, "/") && strings.HasPrefix(got, want+"/"))
}

// rosterGet asks for the roster (with ver if not "-": "" sends ver=”) and
// returns the result IQ.
func (c *rawClient) rosterGet(t testing.TB, ver string) *wire.Element {
	t.Helper()
	id := c.nextID()
	q := "<query xmlns='" + nsRoster + "'/>"
	if ver != "-" {
		q = "<query xmlns='" + nsRoster + "' ver='" + xmlEscapeAttr(ver) + "'/>"
	}
	c.send(t, "<iq type='get' id='"+id+"'>"+q+"</iq>")
	res := c.expect(t, byID(id), 0)
	if res.Get("type") != "result" {
		t.Fatalf("roster get failed: %s", res)
	}
	return res
}

// enableSM sends <enable/> and returns <enabled/>.
func (c *rawClient) enableSM(t testing.TB, resume bool) *wire.Element {
	t.Helper()
	if resume {
		c.send(t, "<enable xmlns='"+nsSM+"' resume='true'/>")
	} else {
		c.send(t, "<enable xmlns='"+nsSM+"'/>")
	}
	el := c.expect(t, func(el *wire.Element) bool {
		return el.Name.Space == nsSM && (el.Name.Local == "enabled" || el.Name.Local == "failed")
	}, 0)
	if el.Name.Local != "enabled" {
		t.Fatalf("enabling stream management: %s", el)
	}
	return el
}

// closeStream ends the stream cleanly and waits for the server's close.
func (c *rawClient) closeStream(t testing.TB) {
	t.Helper()
	c.send(t, "</stream:stream>")
	c.expectClosed(t)
	c.raw.Close()
}

// cut drops the TCP connection at once, without closing the stream or TLS:
// what a phone losing its network looks like to the server.
func (c *rawClient) cut() {
	if tc, ok := c.raw.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.raw.Close()
}

// named matches elements with the given local name.
func named(local string) func(*wire.Element) bool {
	return func(el *wire.Element) bool { return el.Name.Local == local }
}

// stanza matches elements named local whose attributes have the given
// name/value pairs.
func stanza(local string, attrs ...string) func(*wire.Element) bool {
	return func(el *wire.Element) bool {
		if el.Name.Local != local {
			return false
		}
		for i := 0; i+1 < len(attrs); i += 2 {
			if el.Get(attrs[i]) != attrs[i+1] {
				return false
			}
		}
		return true
	}
}

// byID matches stanzas with the given id.
func byID(id string) func(*wire.Element) bool {
	return func(el *wire.Element) bool { return el.Get("id") == id }
}

// streamError matches a stream error with condition cond.
func streamError(cond string) func(*wire.Element) bool {
	return func(el *wire.Element) bool {
		return el.Name.Space == wire.NSStream && el.Name.Local == "error" &&
			el.Child(wire.NSStreams, cond) != nil
	}
}

// stanzaErrorCond returns the defined condition of a stanza's <error/>, or
// "".
func stanzaErrorCond(el *wire.Element) string {
	e := el.Child(wire.NSClient, "error")
	if e == nil {
		return ""
	}
	for _, c := range e.Children() {
		if c.Name.Space == wire.NSStanzas && c.Name.Local != "text" {
			return c.Name.Local
		}
	}
	return ""
}

// melliumOpts says how a mellium client logs in.
type melliumOpts struct {
	local, password string
	mech            sasl.Mechanism // default ScramSha256
	direct          bool           // XEP-0368 direct TLS instead of STARTTLS
	tlsConfig       *tls.Config    // default clientTLS()
}

// melliumLogin logs in with mellium.im/xmpp's negotiator (STARTTLS or
// direct TLS, SASL, resource binding) and returns its session. The
// session is closed at the end of the test.
func (ts *testServer) melliumLogin(ctx context.Context, t testing.TB,
	o melliumOpts) (*mxmpp.Session, error) {
	t.Helper()
	if o.mech.Name == "" {
		o.mech = sasl.ScramSha256
	}
	if o.tlsConfig == nil {
		o.tlsConfig = clientTLS()
	}
	origin, err := jid.New(o.local, testDomain, "")
	if err != nil {
		return nil, err
	}
	var nc net.Conn
	var state mxmpp.SessionState
	if o.direct {
		nc, err = (&tls.Dialer{Config: o.tlsConfig}).DialContext(ctx, "tcp", ts.directAddr)
		state = mxmpp.Secure
	} else {
		nc, err = (&net.Dialer{}).DialContext(ctx, "tcp", ts.starttlsAddr)
	}
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { nc.Close() })
	features := []mxmpp.StreamFeature{
		mxmpp.SASL("", o.password, o.mech),
		mxmpp.BindResource(),
	}
	if !o.direct {
		features = append([]mxmpp.StreamFeature{mxmpp.StartTLS(o.tlsConfig)}, features...)
	}
	s, err := mxmpp.NewSession(ctx, origin.Domain(), origin, nc, state,
		mxmpp.NewNegotiator(func(*mxmpp.Session, *mxmpp.StreamConfig) mxmpp.StreamConfig {
			return mxmpp.StreamConfig{Features: features}
		}))
	if err != nil {
		nc.Close()
		return nil, err
	}
	t.Cleanup(func() { s.Close() })
	return s, nil
}
