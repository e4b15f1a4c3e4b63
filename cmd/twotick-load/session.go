package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Namespaces the client negotiates.
const (
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsSM       = "urn:xmpp:sm:3"
	nsReceipts = "urn:xmpp:receipts"
)

// negotiationTimeout bounds one login from connect to a bound, SM-enabled
// session.
const negotiationTimeout = 60 * time.Second

// clientConfig is what every session of one run shares.
type clientConfig struct {
	domain   string
	password string
	startTLS bool   // use STARTTLS when offered; false logs in over plaintext
	mech     string // SASL mechanism to use; "" picks SCRAM-SHA-256 over -1
	resource string
	sm       bool // enable XEP-0198 when offered
	cache    *scramCache
}

// handlers receive what a session's reader sees. They run on the session's
// reader goroutine and must not block for long.
type handlers struct {
	stanza func(s *session, e *elem)
	ack    func(s *session, h uint32) // the server's <a h=…/>
}

// session is one logged-in XMPP client stream. Writes are safe for
// concurrent use; reading happens on the goroutine started by start.
type session struct {
	user string
	jid  string
	conn net.Conn
	rd   *elemReader
	smOn bool

	wmu sync.Mutex
	out uint32 // stanzas sent since SM was enabled; guarded by wmu

	hs      atomic.Pointer[handlers]
	in      atomic.Uint32 // stanzas received since SM was enabled
	started bool          // start was called; set before any close
	done    chan struct{}
	err     error // why the reader stopped; read after done is closed
}

// login connects and negotiates a session: STARTTLS, SASL SCRAM, resource
// binding and stream management. It does not send presence.
func login(ctx context.Context, d *dialer, cfg *clientConfig, user string) (*session, error) {
	conn, err := d.dial(ctx)
	if err != nil {
		return nil, err
	}
	s := &session{user: user, conn: conn, done: make(chan struct{})}
	_ = conn.SetDeadline(time.Now().Add(negotiationTimeout))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	err = s.negotiate(cfg)
	stopped := stop()
	if err != nil || !stopped {
		conn.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("logging in %s: %w", user, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return s, nil
}

// negotiate runs RFC 6120's stream negotiation in order; it reads best as
// one sequence.
func (s *session) negotiate(cfg *clientConfig) error {
	feats, err := s.restart(cfg.domain, bufio.NewReader(s.conn))
	if err != nil {
		return err
	}
	if st := feats.child("starttls"); st != nil && cfg.startTLS {
		if err := s.write("<starttls xmlns='" + nsTLS + "'/>"); err != nil {
			return err
		}
		if e, err := s.rd.next(); err != nil || e.name != "proceed" {
			return fmt.Errorf("starttls refused: %v", describe(e, err))
		}
		tc := tls.Client(s.conn, &tls.Config{InsecureSkipVerify: true, ServerName: cfg.domain})
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
		s.conn = tc
		if feats, err = s.restart(cfg.domain, bufio.NewReader(tc)); err != nil {
			return err
		}
	}
	if err := s.authenticate(cfg, feats); err != nil {
		return err
	}
	if feats, err = s.restart(cfg.domain, bufio.NewReader(s.conn)); err != nil {
		return err
	}
	if err := s.bind(cfg.resource); err != nil {
		return err
	}
	if sess := feats.child("session"); sess != nil && sess.child("optional") == nil {
		req := "<iq type='set' id='sess'><session xmlns='" + nsSession + "'/></iq>"
		if _, err := s.iq(req); err != nil {
			return err
		}
	}
	if cfg.sm && feats.child("sm") != nil {
		if err := s.write("<enable xmlns='" + nsSM + "'/>"); err != nil {
			return err
		}
		if e, err := s.rd.next(); err != nil || e.name != "enabled" {
			return fmt.Errorf("enabling stream management: %v", describe(e, err))
		}
		s.smOn = true
	}
	return nil
}

// restart opens a new stream over br and returns the server's features.
// The reader is new at every restart but the buffered reader is kept for
// the life of one transport (TCP or TLS).
func (s *session) restart(domain string, br *bufio.Reader) (*elem, error) {
	s.rd = newElemReader(br)
	err := s.write("<?xml version='1.0'?><stream:stream to='" + xmlEscape(domain) +
		"' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
	if err != nil {
		return nil, err
	}
	if _, err := s.rd.streamHeader(); err != nil {
		return nil, err
	}
	e, err := s.rd.next()
	if err != nil || e.name != "features" {
		return nil, fmt.Errorf("expected stream features: %v", describe(e, err))
	}
	return e, nil
}

func (s *session) authenticate(cfg *clientConfig, feats *elem) error {
	mech, err := pickMech(cfg.mech, feats)
	if err != nil {
		return err
	}
	sc := newSCRAMClient(mech, cfg.cache, s.user, cfg.password)
	first := base64.StdEncoding.EncodeToString([]byte(sc.first()))
	auth := "<auth xmlns='" + nsSASL + "' mechanism='" + mech.name + "'>" + first + "</auth>"
	if err := s.write(auth); err != nil {
		return err
	}
	e, err := s.rd.next()
	if err != nil || e.name != "challenge" {
		return fmt.Errorf("sasl: %v", describe(e, err))
	}
	serverFirst, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.text))
	if err != nil {
		return fmt.Errorf("sasl challenge: %w", err)
	}
	final, err := sc.final(string(serverFirst))
	if err != nil {
		return err
	}
	resp := base64.StdEncoding.EncodeToString([]byte(final))
	if err := s.write("<response xmlns='" + nsSASL + "'>" + resp + "</response>"); err != nil {
		return err
	}
	if e, err = s.rd.next(); err != nil || (e.name != "success" && e.name != "challenge") {
		return fmt.Errorf("sasl: %v", describe(e, err))
	}
	serverFinal, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.text))
	if err != nil {
		return fmt.Errorf("sasl final: %w", err)
	}
	if err := sc.verify(string(serverFinal)); err != nil {
		return err
	}
	if e.name == "challenge" { // RFC 6120 § 6.3.10: older servers want an empty response
		if err := s.write("<response xmlns='" + nsSASL + "'/>"); err != nil {
			return err
		}
		if e, err = s.rd.next(); err != nil || e.name != "success" {
			return fmt.Errorf("sasl: %v", describe(e, err))
		}
	}
	return nil
}

func pickMech(want string, feats *elem) (scramMech, error) {
	offered := map[string]bool{}
	if ms := feats.child("mechanisms"); ms != nil {
		for _, m := range ms.children {
			offered[strings.TrimSpace(m.text)] = true
		}
	}
	for _, m := range []scramMech{scramSHA256, scramSHA1} {
		if offered[m.name] && (want == "" || want == m.name) {
			return m, nil
		}
	}
	return scramMech{}, fmt.Errorf("no usable SCRAM mechanism offered (want %q, offered %v)",
		want, offered)
}

func (s *session) bind(resource string) error {
	e, err := s.iq("<iq type='set' id='bind'><bind xmlns='" + nsBind + "'><resource>" +
		xmlEscape(resource) + "</resource></bind></iq>")
	if err != nil {
		return fmt.Errorf("binding: %w", err)
	}
	if b := e.child("bind"); b != nil && b.child("jid") != nil {
		s.jid = strings.TrimSpace(b.child("jid").text)
	}
	return nil
}

// iq sends an IQ during negotiation and waits for its result.
func (s *session) iq(x string) (*elem, error) {
	if err := s.write(x); err != nil {
		return nil, err
	}
	for {
		e, err := s.rd.next()
		if err != nil {
			return nil, err
		}
		if e.name != "iq" {
			continue
		}
		if e.attr("type") != "result" {
			return nil, fmt.Errorf("iq refused: %s", describe(e, nil))
		}
		return e, nil
	}
}

// write sends raw XML that is not a stanza (nonzas, stream headers).
func (s *session) write(x string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := io.WriteString(s.conn, x)
	return err
}

// sendStanza writes one stanza, optionally followed by an SM <r/>, and
// returns the stanza's XEP-0198 sequence number (the h that will cover it).
func (s *session) sendStanza(x string, requestAck bool) (uint32, error) {
	return s.sendStanzas(x, 1, requestAck)
}

// sendStanzas writes n stanzas at once, optionally followed by <r/>, and
// returns the sequence number of the last.
func (s *session) sendStanzas(x string, n int, requestAck bool) (uint32, error) {
	if requestAck && s.smOn {
		x += "<r xmlns='" + nsSM + "'/>"
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if _, err := io.WriteString(s.conn, x); err != nil {
		return 0, err
	}
	s.out += uint32(n)
	return s.out, nil
}

// ack tells the server how many stanzas this session has handled.
func (s *session) ack() error {
	if !s.smOn {
		return nil
	}
	return s.write("<a xmlns='" + nsSM + "' h='" + strconv.FormatUint(uint64(s.in.Load()), 10) + "'/>")
}

// start runs the reader goroutine. It ends when the stream ends or the
// connection is closed; done is closed then.
func (s *session) start(h handlers) {
	s.started = true
	s.hs.Store(&h)
	go func() {
		defer close(s.done)
		s.err = s.readLoop()
	}()
}

// replaceHandlers swaps the handlers of a started session.
func (s *session) replaceHandlers(h handlers) { s.hs.Store(&h) }

func (s *session) readLoop() error {
	for {
		e, err := s.rd.next()
		if err != nil {
			return err
		}
		// Loaded after the read: handlers installed while it blocked apply
		// to the element that ended the wait.
		h := s.hs.Load()
		switch e.name {
		case "r":
			if err := s.ack(); err != nil {
				return err
			}
		case "a":
			n, _ := strconv.ParseUint(e.attr("h"), 10, 32)
			if h.ack != nil {
				h.ack(s, uint32(n))
			}
		case "message", "presence", "iq":
			s.in.Add(1)
			if e.name == "iq" {
				s.answerIQ(e)
			}
			if h.stanza != nil {
				h.stanza(s, e)
			}
		case "error":
			return fmt.Errorf("stream error: %s", describe(e, nil))
		}
	}
}

// answerIQ answers requests from the server (XEP-0199 pings among them) so
// that it does not drop an idle session.
func (s *session) answerIQ(e *elem) {
	typ := e.attr("type")
	if typ != "get" && typ != "set" {
		return
	}
	reply := "<iq type='result' id='" + xmlEscape(e.attr("id")) + "'"
	if from := e.attr("from"); from != "" {
		reply += " to='" + xmlEscape(from) + "'"
	}
	if e.child("ping") == nil {
		reply += "><error type='cancel'>" +
			"<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
		reply = strings.Replace(reply, "type='result'", "type='error'", 1)
	} else {
		reply += "/>"
	}
	_, _ = s.sendStanza(reply, false)
}

// close acknowledges what was received, ends the stream and closes the
// connection, waiting briefly for the server to close its side.
func (s *session) close() {
	if !s.started {
		s.conn.Close()
		return
	}
	_ = s.ack()
	_ = s.write("</stream:stream>")
	select {
	case <-s.done:
	case <-time.After(2 * time.Second):
	}
	s.conn.Close()
	<-s.done
}

// kill closes the connection at once without ending the stream.
func (s *session) kill() {
	s.conn.Close()
	if s.started {
		<-s.done
	}
}

func describe(e *elem, err error) string {
	if err != nil {
		if errors.Is(err, io.EOF) {
			return "stream closed"
		}
		return err.Error()
	}
	if e == nil {
		return "nothing"
	}
	var b strings.Builder
	b.WriteString("<" + e.name)
	for _, c := range e.children {
		b.WriteString(" " + c.name)
		if c.text != "" {
			b.WriteString("=" + strings.TrimSpace(c.text))
		}
	}
	b.WriteString(">")
	return b.String()
}
