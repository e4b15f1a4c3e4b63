package xmpp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/twotick/twotick/xmpp/auth"
	"github.com/twotick/twotick/xmpp/wire"
)

// Namespaces of stream negotiation.
const (
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
	nsSASLCB  = "urn:xmpp:sasl-cb:0"
)

// maxSASLAttempts bounds failed SASL exchanges on one stream.
const maxSASLAttempts = 5

// maxRestarts bounds stream headers on one connection: the initial one, one
// after STARTTLS and one after SASL, with one to spare.
const maxRestarts = 4

// streamErr is a stream error to send before closing (RFC 6120 § 4.9).
type streamErr struct {
	cond  string
	text  string
	extra *wire.Element // application-specific condition, such as XEP-0198's
}

func (e *streamErr) Error() string { return "stream error " + e.cond + ": " + e.text }

func (e *streamErr) element() *wire.Element {
	el := (&wire.StreamError{Condition: e.cond, Text: e.text}).Element()
	if e.extra != nil {
		el.Add(e.extra)
	}
	return el
}

// conn is one client connection, from accept to close. Before the resource
// is bound it negotiates synchronously in serve's goroutine; after, it
// belongs to a Session, which may outlive it when stream management lets
// the client resume.
type conn struct {
	srv    *Server
	raw    net.Conn
	nc     net.Conn // raw, or the TLS connection over it
	rc     *readConn
	rec    *recordConn // under the TLS connection, once there is one (idleread.go)
	rd     *wire.Reader
	remote netip.Addr
	direct bool
	log    *slog.Logger

	secure        bool // TLS is established
	loopback      bool
	countedUnauth bool // guarded by srv.mu
	streamID      string
	lang          string
	local         string // authenticated localpart
	restarts      int
	lacksCB       bool // the client tried a channel binding type we lack
	registerIQs   int  // jabber:iq:register IQs before authentication
	sess          *Session
	deadline      time.Time // negotiation deadline

	wmu       sync.Mutex // serialises writes to nc
	wdeadline time.Time  // the write deadline last set by write; guarded by wmu
	closed    sync.Once
}

func (s *Server) newConn(nc net.Conn, direct bool) *conn {
	ap, _ := netip.ParseAddrPort(nc.RemoteAddr().String())
	c := &conn{
		srv:    s,
		raw:    nc,
		nc:     nc,
		remote: ap.Addr().Unmap(),
		direct: direct,
	}
	c.loopback = c.remote.IsLoopback()
	if la, err := netip.ParseAddrPort(nc.LocalAddr().String()); err == nil {
		c.loopback = c.loopback && la.Addr().Unmap().IsLoopback()
	}
	c.countedUnauth = true
	if !s.admit(c) {
		c.countedUnauth = false
		s.deps.Metrics.refused.Inc()
		s.warn(s.log, c.remote, "connection refused: too many unauthenticated connections",
			"remote_addr", c.remote)
		// A short stream error costs one write and tells a confused client why.
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(nc, streamHeader(s.domain, "", "")+
			(&streamErr{cond: "policy-violation",
				text: "too many connections from your address"}).element().String()+
			"</stream:stream>")
		nc.Close()
		return nil
	}
	c.log = s.log.With("remote_addr", c.remote.String())
	return c
}

// serve runs the connection: negotiation, then the session's read loop.
// A panic ends only this connection.
func (c *conn) serve() {
	defer c.srv.forget(c)
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic serving connection", "panic", fmt.Sprint(r))
			c.closeWithError(&streamErr{cond: "internal-server-error"})
		}
	}()
	c.srv.deps.Metrics.connections.Inc()
	defer c.srv.deps.Metrics.connections.Dec()

	c.deadline = time.Now().Add(c.srv.cfg.C2S.NegotiationTimeout.Duration)
	c.rc = &readConn{c: c}
	c.rd = wire.NewReader(c.rc, wire.Limits{
		MaxBytes:    c.srv.cfg.C2S.PreAuthMaxStanzaSize,
		MaxDepth:    8,
		MaxElements: 32,
	}, 2048)
	c.nc.SetDeadline(c.deadline)

	if c.direct {
		if err := c.handshakeTLS(); err != nil {
			c.log.Debug("tls handshake failed", "err", err)
			c.raw.Close()
			return
		}
	}
	sess, err := c.negotiate()
	if err != nil {
		c.fail(err)
		return
	}
	sess.readLoop(c)
}

// fail ends a connection that could not negotiate, sending the stream error
// that err carries, if any.
func (c *conn) fail(err error) {
	var se *streamErr
	var we *wire.StreamError
	switch {
	case errors.As(err, &se):
	case errors.As(err, &we):
		se = &streamErr{cond: we.Condition, text: we.Text}
	case errors.Is(err, wire.ErrStreamEnd):
		// The client gave up negotiating and closed its stream: close ours.
		c.closeWithError(nil)
		return
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		c.raw.Close()
		return
	case isTimeout(err):
		se = &streamErr{cond: "connection-timeout"}
	default:
		c.log.Debug("negotiation failed", "err", err)
		se = &streamErr{cond: "internal-server-error"}
	}
	c.closeWithError(se)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handshakeTLS upgrades the connection to TLS, within the negotiation
// deadline.
func (c *conn) handshakeTLS() error {
	c.rec = &recordConn{Conn: c.raw}
	tc := tls.Server(c.rec, c.srv.deps.TLS)
	ctx, cancel := context.WithDeadline(context.Background(), c.deadline)
	defer cancel()
	// The handshake needs tens of KiB of stack (key exchange, signature).
	// On this goroutine, which then waits for the client for hours, that
	// stack would stay allocated until several collections had halved it;
	// on its own goroutine it is freed, or reused, at once (idleread.go).
	if err := onOwnStack(func() error { return tc.HandshakeContext(ctx) }); err != nil {
		return err
	}
	c.nc = tc
	c.secure = true
	c.rd.Reset(c.rc)
	return nil
}

// write sends b at once, within a bounded time.
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// A client gets writeTimeout to take what is written. Moving the
	// deadline resets a runtime timer, so it moves only once it is less
	// than three quarters of that away: a write that blocks still ends
	// within writeTimeout, and a busy session does not reset a timer per
	// write.
	if now := time.Now(); c.wdeadline.Sub(now) < writeTimeout*3/4 {
		c.wdeadline = now.Add(writeTimeout)
		c.nc.SetWriteDeadline(c.wdeadline)
	}
	_, err := c.nc.Write(b)
	return err
}

// writeTimeout bounds how long a write to a client that does not read
// may block.
const writeTimeout = 30 * time.Second

func (c *conn) writeElement(e *wire.Element) error {
	return c.write(e.Bytes(wire.NSClient))
}

// closeWithError sends a stream error and the closing tag, then closes. It
// is safe to call more than once and from any goroutine.
func (c *conn) closeWithError(se *streamErr) {
	c.closed.Do(func() {
		c.logStreamError(se)
		var b bytes.Buffer
		if se != nil {
			se.element().Encode(&b, wire.NSClient)
		}
		b.WriteString("</stream:stream>")
		// A write blocked on a client that does not read holds wmu for
		// up to 30 s; cut it short so that the connection closes now.
		c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		c.wmu.Lock()
		c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		c.nc.Write(b.Bytes())
		c.wmu.Unlock()
		c.raw.Close()
	})
}

// hostileConditions are the stream errors (RFC 6120 § 4.9.3) that a
// client earns by what it sent; they are logged at Warn, rate-limited per
// address. The rest (timeouts, conflicts, shutdown) are routine.
var hostileConditions = map[string]bool{
	"bad-format": true, "bad-namespace-prefix": true, "improper-addressing": true,
	"invalid-from": true, "invalid-namespace": true, "invalid-xml": true,
	"not-authorized": true, "not-well-formed": true, "policy-violation": true,
	"restricted-xml": true, "unsupported-encoding": true,
	"unsupported-stanza-type": true,
}

// logStreamError logs the stream error the connection ends with. The text
// is the server's own, never client data.
func (c *conn) logStreamError(se *streamErr) {
	if se == nil {
		return
	}
	log := c.log
	if log == nil {
		log = c.srv.log
	}
	if hostileConditions[se.cond] {
		c.srv.warn(log, c.remote, "stream error", "condition", se.cond, "text", se.text)
		return
	}
	log.Debug("stream error", "condition", se.cond, "text", se.text)
}

// closeQuietly closes without a stream error, for a connection that is
// already broken or is being replaced.
func (c *conn) closeQuietly() {
	c.closed.Do(func() { c.raw.Close() })
}

func streamHeader(domain, id, lang string) string {
	if lang == "" {
		lang = "en"
	}
	h := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
		"xmlns:stream='http://etherx.jabber.org/streams' from='" + domain + "'"
	if id != "" {
		h += " id='" + id + "'"
	}
	return h + " version='1.0' xml:lang='" + xmlEscapeAttr(lang) + "'>"
}

func xmlEscapeAttr(s string) string {
	var b bytes.Buffer
	e := wire.New("", "x", "v", s)
	e.Encode(&b, "")
	out := b.String()
	// <x v='...'/> : keep only the escaped value.
	return out[len("<x v='") : len(out)-len("'/>")]
}

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// openStream reads the client's stream header and answers with ours and
// the features. RFC 6120 § 4.7 and § 4.9.3 give the errors.
func (c *conn) openStream() error {
	c.restarts++
	if c.restarts > maxRestarts {
		return &streamErr{cond: "policy-violation", text: "too many stream restarts"}
	}
	h, err := c.rd.StreamHeader()
	c.streamID = randomID(12)
	if err != nil {
		var we *wire.StreamError
		if errors.As(err, &we) || isTimeout(err) {
			// The error goes inside a stream of our own (RFC 6120 § 4.9.1.1).
			c.write([]byte(streamHeader(c.srv.domain, c.streamID, "")))
		}
		return err
	}
	if h.Lang != "" && len(h.Lang) <= 35 {
		c.lang = h.Lang
	}
	if err := c.write([]byte(streamHeader(c.srv.domain, c.streamID, c.lang))); err != nil {
		return err
	}
	switch {
	case h.NS != wire.NSClient:
		return &streamErr{cond: "invalid-namespace"}
	case h.To == "":
		return &streamErr{cond: "host-unknown", text: "the stream header has no 'to'"}
	case !strings.EqualFold(h.To, c.srv.domain):
		return &streamErr{cond: "host-unknown"}
	case h.Version == "" || !strings.HasPrefix(h.Version, "1."):
		return &streamErr{cond: "unsupported-version"}
	}
	return nil
}

// negotiate runs stream negotiation up to a bound resource (or a resumed
// session) and returns the session. The steps read best as one sequence.
func (c *conn) negotiate() (*Session, error) {
	for {
		if err := c.openStream(); err != nil {
			return nil, err
		}
		feats := wire.New(wire.NSStream, "features")
		switch {
		case c.local != "":
			return c.negotiateBind(feats)
		case !c.secure && !c.plaintextAllowed():
			feats.Add(wire.New(nsTLS, "starttls").Add(wire.New(nsTLS, "required")))
			if err := c.writeElement(feats); err != nil {
				return nil, err
			}
			if err := c.startTLS(); err != nil {
				return nil, err
			}
		default:
			feats.Add(c.mechanisms())
			if rf := c.registerFeature(); rf != nil { // registration.go
				feats.Add(rf)
			}
			if !c.secure {
				feats.Add(wire.New(nsTLS, "starttls"))
			}
			if c.secure {
				feats.Add(wire.New(nsSASLCB, "sasl-channel-binding").Add(
					wire.New(nsSASLCB, "channel-binding", "type", "tls-exporter")))
			}
			if err := c.writeElement(feats); err != nil {
				return nil, err
			}
			if err := c.authenticate(); err != nil {
				return nil, err
			}
		}
	}
}

// plaintextAllowed reports whether this listener may authenticate without
// TLS: only when the operator allowed it and both ends are loopback.
func (c *conn) plaintextAllowed() bool {
	return c.srv.cfg.C2S.AllowPlaintextLoopback && c.loopback && !c.direct
}

func (c *conn) tlsState() *tls.ConnectionState {
	if tc, ok := c.nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		return &st
	}
	return nil
}

func (c *conn) mechanisms() *wire.Element {
	m := wire.New(nsSASL, "mechanisms")
	for _, name := range auth.Mechanisms(c.tlsState()) {
		m.AddText(nsSASL, "mechanism", name)
	}
	return m
}

// startTLS handles the client's next element, which must be <starttls/>
// (RFC 6120 § 5.4.2).
func (c *conn) startTLS() error {
	el, err := c.rd.Next()
	if err != nil {
		return err
	}
	if el.Name.Space != nsTLS || el.Name.Local != "starttls" {
		return &streamErr{cond: "policy-violation", text: "STARTTLS is required"}
	}
	if c.rd.Buffered() > 0 {
		// Data sent after <starttls/> before the handshake could be injected
		// in the clear (RFC 6120 § 5.4.3.3).
		return &streamErr{cond: "policy-violation", text: "data after starttls"}
	}
	if err := c.write([]byte("<proceed xmlns='" + nsTLS + "'/>")); err != nil {
		return err
	}
	if err := c.handshakeTLS(); err != nil {
		c.log.Debug("tls handshake failed", "err", err)
		return io.EOF
	}
	return nil
}

// authenticate runs SASL (RFC 6120 § 6.4) until success, or until too many
// failures.
func (c *conn) authenticate() error {
	srv := c.srv
	for attempt := 1; ; attempt++ {
		el, err := c.rd.Next()
		if err != nil {
			return err
		}
		switch {
		case el.Name.Space == nsTLS && el.Name.Local == "starttls" && !c.secure:
			if c.rd.Buffered() > 0 {
				return &streamErr{cond: "policy-violation", text: "data after starttls"}
			}
			if err := c.write([]byte("<proceed xmlns='" + nsTLS + "'/>")); err != nil {
				return err
			}
			if err := c.handshakeTLS(); err != nil {
				return io.EOF
			}
			return nil
		case isRegisterIQ(el):
			// In-band registration (registration.go) is no SASL attempt.
			attempt--
			if err := c.preAuthRegister(el); err != nil {
				return err
			}
			continue
		case el.Name.Space != nsSASL || el.Name.Local != "auth":
			return &streamErr{cond: "not-authorized", text: "authenticate first"}
		}
		local, f, err := c.saslExchange(el)
		if err != nil {
			return err
		}
		if f == nil {
			c.local = local
			srv.authenticated(c)
			c.log = c.log.With("jid", local+"@"+srv.domain)
			c.log.Debug("authenticated")
			c.rd.Restart()
			return nil
		}
		srv.deps.Metrics.authFailures.WithLabelValues(f.Condition).Inc()
		if f.UnsupportedBinding {
			// A client trying tls-unique before falling back: routine.
			c.log.Debug("authentication failed", "condition", f.Condition, "reason", f.Reason)
		} else {
			srv.warn(c.log, c.remote, "authentication failed",
				"condition", f.Condition, "reason", f.Reason)
		}
		fe := wire.New(nsSASL, "failure").Add(wire.New(nsSASL, f.Condition))
		if f.Text != "" {
			fe.Add(wire.New(nsSASL, "text").Add(f.Text))
		}
		if err := c.writeElement(fe); err != nil {
			return err
		}
		if attempt >= maxSASLAttempts {
			return &streamErr{cond: "policy-violation", text: "too many failed authentication attempts"}
		}
	}
}

// saslExchange runs one exchange started by el. It returns the localpart on
// success, a *auth.Failure to report, or an error that ends the stream.
func (c *conn) saslExchange(el *wire.Element) (string, *auth.Failure, error) {
	ctx, cancel := context.WithDeadline(context.Background(), c.deadline)
	defer cancel()
	mech := el.Get("mechanism")
	var opts []auth.StartOption
	if c.lacksCB {
		opts = append(opts, auth.ClientLacksBinding())
	}
	x, err := c.srv.deps.SASL.Start(ctx, mech, c.tlsState(), c.remote, opts...)
	if err != nil {
		return "", asFailure(err), nil
	}
	data, ok := decodeSASL(el.Text())
	if !ok {
		return "", &auth.Failure{Condition: "incorrect-encoding", Reason: "bad base64"}, nil
	}
	for {
		challenge, done, err := x.Step(ctx, data)
		if err != nil {
			f := asFailure(err)
			c.lacksCB = c.lacksCB || f.UnsupportedBinding
			return "", f, nil
		}
		if done {
			succ := wire.New(nsSASL, "success")
			if len(challenge) > 0 {
				succ.Add(base64.StdEncoding.EncodeToString(challenge))
			}
			return x.Username(), nil, c.writeElement(succ)
		}
		ch := wire.New(nsSASL, "challenge").Add(base64.StdEncoding.EncodeToString(challenge))
		if err := c.writeElement(ch); err != nil {
			return "", nil, err
		}
		resp, err := c.rd.Next()
		if err != nil {
			return "", nil, err
		}
		switch {
		case resp.Name.Space == nsSASL && resp.Name.Local == "abort":
			return "", &auth.Failure{Condition: "aborted", Reason: "client aborted"}, nil
		case resp.Name.Space != nsSASL || resp.Name.Local != "response":
			return "", nil, &streamErr{cond: "not-authorized", text: "expected a SASL response"}
		}
		if data, ok = decodeSASL(resp.Text()); !ok {
			return "", &auth.Failure{Condition: "incorrect-encoding", Reason: "bad base64"}, nil
		}
	}
}

func asFailure(err error) *auth.Failure {
	var f *auth.Failure
	if errors.As(err, &f) {
		return f
	}
	return &auth.Failure{Condition: "temporary-auth-failure", Reason: err.Error()}
}

// decodeSASL decodes SASL data: "=" is empty data (RFC 6120 § 6.4.2).
func decodeSASL(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	if s == "" || s == "=" {
		return nil, true
	}
	b, err := base64.StdEncoding.DecodeString(s)
	return b, err == nil
}

// negotiateBind offers bind and stream management and waits for the client
// to bind a resource or resume a session (RFC 6120 § 7, XEP-0198 § 5).
func (c *conn) negotiateBind(feats *wire.Element) (*Session, error) {
	feats.Add(wire.New(nsBind, "bind"),
		wire.New(nsSM, "sm"),
		wire.New(nsCSI, "csi"),
		wire.New(nsSession, "session").Add(wire.New(nsSession, "optional")),
		wire.New(nsRosterVer, "ver"),
		wire.New("urn:xmpp:features:pre-approval", "sub"),
		wire.New(nsCaps, "c", "hash", "sha-1", "node", capsNode, "ver", capsVer()))
	if err := c.writeElement(feats); err != nil {
		return nil, err
	}
	// Limits after authentication (RFC 6120 § 13.12).
	c.rd.SetLimits(wire.Limits{MaxBytes: c.srv.cfg.C2S.MaxStanzaSize})
	for {
		el, err := c.rd.Next()
		if err != nil {
			return nil, err
		}
		switch {
		case el.Name.Space == nsSM && el.Name.Local == "resume":
			sess, err := c.resume(el)
			if err != nil || sess != nil {
				return sess, err
			}
		case el.Name.Space == nsSM && el.Name.Local == "enable":
			c.writeElement(smFailed("unexpected-request", ""))
		case el.Name.Space == wire.NSClient && el.Name.Local == "iq":
			sess, err := c.bind(el)
			if err != nil || sess != nil {
				return sess, err
			}
		default:
			return nil, &streamErr{cond: "not-authorized", text: "bind a resource first"}
		}
	}
}

// bind answers one IQ before binding. It returns the session once a
// resource is bound.
func (c *conn) bind(iq *wire.Element) (*Session, error) {
	b := iq.Child(nsBind, "bind")
	if iq.Get("type") != "set" || b == nil {
		return nil, c.writeElement(iqError(iq, "cancel", "not-allowed", "bind a resource first"))
	}
	res := strings.TrimSpace(b.ChildText(nsBind, "resource"))
	if res == "" {
		res = "tt-" + randomID(6)
	}
	full, err := jid.New(c.local, c.srv.domain, res)
	if err != nil || len(res) > 256 {
		return nil, c.writeElement(iqError(iq, "modify", "bad-request", "invalid resource"))
	}
	sess := newSession(c.srv, c, full)
	// Conflict: the newest connection wins and the old one is told why
	// (RFC 6120 § 7.7.2.2), which is what a reconnecting phone needs.
	if old := c.srv.router.bind(sess); old != nil {
		old.terminate(&streamErr{cond: "conflict", text: "replaced by a new connection"})
	}
	c.srv.deps.Metrics.sessions.Inc()
	c.log = c.log.With("jid", full.String())
	c.log.Debug("resource bound")
	res1 := wire.New(wire.NSClient, "iq", "type", "result", "id", iq.Get("id"))
	res1.Add(wire.New(nsBind, "bind").AddText(nsBind, "jid", full.String()))
	c.sess = sess
	// Bound: the negotiation deadline gives way to the idle timeout; the
	// write deadline stays write's to keep.
	c.nc.SetReadDeadline(time.Time{})
	c.rc.idle = c.srv.cfg.C2S.IdleTimeout.Duration
	c.rc.bytesPerSec = c.srv.cfg.C2S.RateBytesPerSecond
	c.rd.SetWait(c.waitInput) // idleread.go
	return sess, c.writeElement(res1)
}

// readConn adapts the connection for the reader: it applies the idle
// timeout (pinging once before giving up), and the per-session byte rate
// after binding. It exists because encoding/xml treats any read error,
// a timeout included, as the end of the document.
type readConn struct {
	c           *conn
	idle        time.Duration // 0 before binding: the negotiation deadline applies
	pinged      bool
	drained     bool      // the last read left nothing buffered in nc
	deadline    time.Time // set by waitInput for the next read, or zero
	bytesPerSec int
	tokens      float64
	last        time.Time
}

func (r *readConn) Read(p []byte) (int, error) {
	for {
		if r.idle > 0 {
			d := r.deadline
			if d.IsZero() {
				d = time.Now().Add(r.idle)
			}
			r.deadline = time.Time{}
			r.c.nc.SetReadDeadline(d)
		}
		if r.drained && r.c.rec != nil && r.c.rec.empty() {
			// Nothing is buffered below: wait in this shallow frame
			// rather than deep in crypto/tls (idleread.go).
			waitReadable(r.c.raw)
		}
		n, err := r.c.nc.Read(p)
		// Less than asked for: the TLS connection holds no plaintext.
		r.drained = n < len(p)
		if n > 0 {
			r.pinged = false
			r.throttle(n)
			return n, nil
		}
		if err != nil && isTimeout(err) && r.idle > 0 && !r.pinged && r.c.sess != nil {
			r.pinged = true
			r.c.sess.keepalivePing()
			continue
		}
		return n, err
	}
}

// throttle sleeps long enough to hold the reader to bytesPerSec on
// average, with a burst of one second's worth. Slowing the reader slows
// the client through TCP flow control without disconnecting it.
func (r *readConn) throttle(n int) {
	if r.bytesPerSec <= 0 {
		return
	}
	now := time.Now()
	rate := float64(r.bytesPerSec)
	if r.last.IsZero() {
		r.tokens = rate
	} else {
		r.tokens += now.Sub(r.last).Seconds() * rate
		if r.tokens > rate {
			r.tokens = rate
		}
	}
	r.last = now
	r.tokens -= float64(n)
	if r.tokens < 0 {
		wait := time.Duration(-r.tokens / rate * float64(time.Second))
		time.Sleep(wait)
		r.last = time.Now()
		r.tokens = 0
	}
}
