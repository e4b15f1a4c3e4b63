package xmpp

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/twotick/twotick/xmpp/wire"
)

// nsComponent is the XEP-0114 stream namespace.
const nsComponent = "jabber:component:accept"

// maxComponentBacklog bounds what may wait to be written to one component
// before the server drops it; a component is a trusted service, but a stuck
// one must not grow the server without limit.
const maxComponentBacklog = 10000

// component is one connected XEP-0114 external component.
type component struct {
	srv    *Server
	domain string
	nc     net.Conn
	out    chan []byte // written by the component's writer goroutine
	done   chan struct{}
	once   sync.Once
}

// componentRegistry maps component domains to their connections.
type componentRegistry struct {
	mu    sync.RWMutex // guards conns
	conns map[string]*component
}

func (r *componentRegistry) get(domain string) *component {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.conns[domain]
}

// ListenComponents opens the XEP-0114 listener when components are
// configured. Serve accepts on it.
func (s *Server) ListenComponents() error {
	if s.cfg.Components.Addr == "" || len(s.cfg.Components.Service) == 0 {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Components.Addr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.compLn = ln
	s.mu.Unlock()
	s.log.Info("listening", "addr", ln.Addr().String(), "kind", "component")
	return nil
}

func (s *Server) acceptComponents(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("component accept failed", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveComponent(nc)
		}()
	}
}

// serveComponent runs the XEP-0114 handshake (§ 3) and then routes the
// component's stanzas until it disconnects.
func (s *Server) serveComponent(nc net.Conn) {
	defer nc.Close()
	log := s.log.With("remote_addr", nc.RemoteAddr().String())
	nc.SetDeadline(time.Now().Add(s.cfg.C2S.NegotiationTimeout.Duration))
	rd := wire.NewReader(nc, wire.Limits{MaxBytes: s.cfg.C2S.PreAuthMaxStanzaSize}, 0)
	h, err := rd.StreamHeader()
	if err != nil {
		return
	}
	id := randomID(12)
	header := "<?xml version='1.0'?><stream:stream xmlns='" + nsComponent +
		"' xmlns:stream='http://etherx.jabber.org/streams' id='" + id + "' from='" +
		xmlEscapeAttr(h.To) + "'>"
	fail := func(cond string) {
		io.WriteString(nc, header+(&streamErr{cond: cond}).element().String()+"</stream:stream>")
	}
	secret := ""
	for _, c := range s.cfg.Components.Service {
		if strings.EqualFold(c.Domain, h.To) {
			secret = c.Secret
		}
	}
	if h.NS != nsComponent {
		fail("invalid-namespace")
		return
	}
	if secret == "" {
		fail("host-unknown")
		return
	}
	io.WriteString(nc, header)
	hs, err := rd.Next()
	if err != nil || hs.Name.Local != "handshake" {
		fail("not-authorized")
		return
	}
	want := sha1.Sum([]byte(id + secret))
	got := strings.ToLower(strings.TrimSpace(hs.Text()))
	if subtle.ConstantTimeCompare([]byte(got), []byte(hex.EncodeToString(want[:]))) != 1 {
		log.Warn("component handshake failed", "domain", h.To)
		io.WriteString(nc, (&streamErr{cond: "not-authorized"}).element().String()+"</stream:stream>")
		return
	}
	nc.SetDeadline(time.Time{})
	rd.SetLimits(wire.Limits{MaxBytes: s.cfg.C2S.MaxStanzaSize})
	comp := &component{srv: s, domain: strings.ToLower(h.To), nc: nc,
		out: make(chan []byte, 256), done: make(chan struct{})}
	// Registered before the handshake is answered: a component that
	// reconnects at once must replace this connection, not be replaced
	// by it. Stanzas for it wait in out until the writer starts.
	s.registerComponent(comp)
	defer s.unregisterComponent(comp)
	io.WriteString(nc, "<handshake/>")
	go comp.writeLoop()
	log.Info("component connected", "domain", comp.domain)

	for {
		el, err := rd.Next()
		if err != nil {
			var we *wire.StreamError
			if errors.As(err, &we) {
				comp.closeWith(&streamErr{cond: we.Condition, text: we.Text})
			}
			log.Info("component disconnected", "domain", comp.domain)
			return
		}
		if err := comp.route(el); err != nil {
			comp.closeWith(err.(*streamErr))
			return
		}
	}
}

func (s *Server) registerComponent(c *component) {
	s.comps.mu.Lock()
	old := s.comps.conns[c.domain]
	s.comps.conns[c.domain] = c
	s.comps.mu.Unlock()
	if old != nil {
		old.closeWith(&streamErr{cond: "conflict", text: "replaced by a new connection"})
	}
}

func (s *Server) unregisterComponent(c *component) {
	s.comps.mu.Lock()
	if s.comps.conns[c.domain] == c {
		delete(s.comps.conns, c.domain)
	}
	s.comps.mu.Unlock()
	c.once.Do(func() { close(c.done) })
}

// send queues a stanza for the component. A component that falls too far
// behind is disconnected.
func (c *component) send(b []byte) {
	select {
	case c.out <- b:
	case <-c.done:
	default:
		if len(c.out) >= cap(c.out) {
			c.srv.log.Warn("component not reading; disconnecting", "domain", c.domain)
			c.closeWith(&streamErr{cond: "policy-violation", text: "not reading"})
		}
	}
}

func (c *component) writeLoop() {
	for {
		select {
		case b := <-c.out:
			c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.nc.Write(b); err != nil {
				c.nc.Close()
				return
			}
		case <-c.done:
			return
		}
	}
}

func (c *component) closeWith(se *streamErr) {
	c.once.Do(func() {
		close(c.done)
		c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(c.nc, se.element().String()+"</stream:stream>")
		c.nc.Close()
	})
}

// toClientNS moves an element from the component namespace to jabber:client
// so that it is routed and stored like a client's stanza.
func toClientNS(e *wire.Element) {
	if e.Name.Space == nsComponent {
		e.Name.Space = wire.NSClient
	}
	for _, ch := range e.Children() {
		toClientNS(ch)
	}
}

// route handles one stanza from the component. Its from must be in the
// component's domain (XEP-0114 § 3.1).
func (c *component) route(el *wire.Element) error {
	toClientNS(el)
	if el.Name.Space != wire.NSClient {
		return &streamErr{cond: "unsupported-stanza-type"}
	}
	from, err := jid.Parse(el.Get("from"))
	if err != nil || !strings.EqualFold(from.Domainpart(), c.domain) {
		return &streamErr{cond: "invalid-from"}
	}
	to, err := jid.Parse(el.Get("to"))
	if err != nil {
		return nil
	}
	srv := c.srv
	if other := srv.comps.get(to.Domainpart()); other != nil {
		other.send(el.Bytes(wire.NSClient))
		return nil
	}
	if to.Domainpart() != srv.domain {
		return nil // no federation; a component gets no bounce for this
	}
	// A user who blocked the component's JID (a bot, a gateway contact)
	// gets nothing from it; the component is answered as a blocked user
	// would be (XEP-0191 § 3.4), so that the user seems offline.
	if to.Localpart() != "" && srv.blocks(to.Bare().String(), from) {
		if el.Name.Local != "presence" && answerable(el) {
			c.bounce(el, "service-unavailable")
		}
		return nil
	}
	switch el.Name.Local {
	case "iq":
		if to.Localpart() == "" {
			srv.componentIQResult(el)
			return nil
		}
		if to.Resourcepart() != "" {
			if sess := srv.router.session(to.Bare().String(), to.Resourcepart()); sess != nil {
				sess.send(outItem{b: el.Bytes(wire.NSClient), stanza: true})
				return nil
			}
		}
		// An IQ to a user's bare JID, or to a resource that is not
		// connected, has nobody to answer it (RFC 6121 § 8.5.2.1.3,
		// § 8.5.3.1).
		if answerable(el) {
			c.bounce(el, "service-unavailable")
		}
	case "presence":
		srv.routePresence(el.Bytes(wire.NSClient), to)
	case "message":
		if to.Localpart() == "" || !srv.accountExists(to.Bare().String()) {
			if t := el.Get("type"); t != "error" && t != "headline" && to.Localpart() != "" {
				c.bounce(el, "service-unavailable")
			}
			return nil
		}
		stripForged(el)
		if !shouldQueue(el) {
			srv.deliverLive(el, to)
			return nil
		}
		// A full queue or a failing store is the component's to know:
		// it may retry later, as a client would.
		srv.queueFrom(from.Bare().String(), el, to, func(e *wire.Element) {
			if e != nil {
				c.send(e.Bytes(wire.NSClient))
			}
		})
	}
	return nil
}

// answerable reports whether a stanza that cannot be delivered is answered
// with an error: errors and IQ results never are.
func answerable(el *wire.Element) bool {
	typ := el.Get("type")
	return typ != "error" && (el.Name.Local != "iq" || typ == "get" || typ == "set")
}

// bounce answers one of the component's stanzas with a cancel error.
func (c *component) bounce(el *wire.Element, cond string) {
	var e *wire.Element
	if el.Name.Local == "iq" {
		e = iqError(el, "cancel", cond, "")
	} else {
		e = stanzaError(el, "cancel", cond, "")
	}
	if e != nil {
		c.send(e.Bytes(wire.NSClient))
	}
}
