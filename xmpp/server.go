// Package xmpp is twotick's server: the c2s listeners, TLS, stream
// negotiation (RFC 6120: STARTTLS, SASL, resource binding), sessions and
// their XEP-0198 stream management, the router, presence and rosters
// (RFC 6121), and the small protocol services every client expects
// (XEP-0030 disco, XEP-0199 ping, XEP-0092 version, XEP-0202 time).
//
// Messages that carry content go through the durable queue of package
// offline before anything else happens to them: the queue, not the session,
// owns undelivered messages (DESIGN.md, "The two checks").
package xmpp

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/offline"
	"github.com/twotick/twotick/roster"
	"github.com/twotick/twotick/xmpp/auth"
	"github.com/twotick/twotick/xmpp/register"
)

// Version is the software version reported by XEP-0092 and metrics.
var Version = "0.1.0"

// Deps are the stores and services the server runs on. All are required
// except Book and Metrics.
type Deps struct {
	Accounts *auth.Store
	SASL     *auth.Server
	Throttle *auth.Throttle
	Roster   *roster.Store
	Queue    *offline.Queue
	TLS      *tls.Config
	Metrics  *Metrics
	// Book keeps uploaded address books (contacts.go). nil disables
	// contact discovery: api.<domain> and the sync-contacts command answer
	// service-unavailable.
	Book *roster.Book
	// DB holds the push registrations (XEP-0357); nil disables push.
	DB *sql.DB
	// Blocklist keeps XEP-0191 blocklists; nil opens one over the Roster
	// store's database with the default cap.
	Blocklist *roster.Blocklist
	// Registrar creates accounts by SMS verification (registration.go);
	// nil disables in-band registration and password change.
	Registrar *register.Registrar
}

// Server is a running XMPP server. Create it with New; Serve runs it until
// its context ends and then shuts it down.
type Server struct {
	cfg    *conf.Config
	domain string
	log    *slog.Logger
	deps   Deps
	router *router
	jids   jidCache // parsed 'to' addresses of stanzas
	sm     *smRegistry
	comps  componentRegistry
	push   *pushService
	warns  warnLimiter // warnings clients cause, per address (warnlimit.go)

	wg sync.WaitGroup // every connection goroutine

	mu        sync.Mutex // guards the fields below
	listeners []net.Listener
	compLn    net.Listener // the XEP-0114 listener, or nil
	conns     map[*conn]struct{}
	unauth    map[netip.Addr]int // unauthenticated connections per address
	closing   bool

	carbonIDs carbonMemory // eligible messages sent lately, for error carbons (carbons.go)
}

// New returns a server for cfg. It does not listen until Serve.
func New(cfg *conf.Config, deps Deps, logger *slog.Logger) (*Server, error) {
	if deps.Accounts == nil || deps.SASL == nil || deps.Roster == nil ||
		deps.Queue == nil || deps.TLS == nil {
		return nil, errors.New("xmpp: missing dependency")
	}
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics(nil)
	}
	if deps.Blocklist == nil {
		bl, err := deps.Roster.OpenBlocklist(context.Background())
		if err != nil {
			return nil, err
		}
		deps.Blocklist = bl
	}
	s := &Server{
		cfg:    cfg,
		domain: cfg.Domain,
		log:    logger.With("component", "xmpp"),
		deps:   deps,
		router: newRouter(),
		conns:  make(map[*conn]struct{}),
		unauth: make(map[netip.Addr]int),
	}
	s.sm = newSMRegistry()
	s.comps.conns = make(map[string]*component)
	if deps.DB != nil {
		p, err := newPushService(s, deps.DB)
		if err != nil {
			return nil, err
		}
		s.push = p
	}
	return s, nil
}

// Listen opens the configured listeners. It is separate from Serve so that
// a caller (or a test) learns of an address in use before serving.
func (s *Server) Listen() error {
	type spec struct {
		addr   string
		direct bool
	}
	for _, sp := range []spec{
		{s.cfg.C2S.STARTTLSAddr, false},
		{s.cfg.C2S.DirectTLSAddr, true},
	} {
		if sp.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", sp.addr)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listening on %s: %w", sp.addr, err)
		}
		s.mu.Lock()
		s.listeners = append(s.listeners, &c2sListener{Listener: ln, direct: sp.direct})
		s.mu.Unlock()
		kind := "starttls"
		if sp.direct {
			kind = "direct_tls"
		}
		s.log.Info("listening", "addr", ln.Addr().String(), "kind", kind)
	}
	return nil
}

// Addrs returns the addresses of the open listeners: STARTTLS first.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	for _, ln := range s.listeners {
		out = append(out, ln.Addr())
	}
	return out
}

type c2sListener struct {
	net.Listener
	direct bool
}

// Serve accepts connections until ctx ends, then shuts down: every stream
// is closed with system-shutdown and Serve waits for the connections to
// finish, at most the configured shutdown timeout.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	lns := append([]net.Listener(nil), s.listeners...)
	s.mu.Unlock()
	if len(lns) == 0 {
		return errors.New("xmpp: no listeners; call Listen first")
	}
	var acceptWG sync.WaitGroup
	for _, ln := range lns {
		acceptWG.Add(1)
		go func(ln *c2sListener) {
			defer acceptWG.Done()
			s.acceptLoop(ln)
		}(ln.(*c2sListener))
	}
	s.mu.Lock()
	compLn := s.compLn
	s.mu.Unlock()
	if compLn != nil {
		acceptWG.Add(1)
		go func() {
			defer acceptWG.Done()
			s.acceptComponents(compLn)
		}()
	}
	<-ctx.Done()
	s.closeListeners()
	acceptWG.Wait()

	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Shutdown.Timeout.Duration)
	defer cancel()
	return s.shutdown(sctx)
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.listeners {
		ln.Close()
	}
	if s.compLn != nil {
		s.compLn.Close()
	}
}

// acceptLoop accepts until the listener closes. Temporary errors (out of
// file descriptors, for instance) back off instead of spinning.
func (s *Server) acceptLoop(ln *c2sListener) {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			s.log.Warn("accept failed; backing off", "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := s.newConn(nc, ln.direct)
		if c == nil {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
		}()
	}
}

// shutdown closes every stream with system-shutdown and waits for the
// connections to end, or for ctx.
func (s *Server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.log.Info("shutting down", "connections", len(conns))
	for _, c := range conns {
		c.closeWithError(&streamErr{cond: "system-shutdown"})
	}
	s.sm.closeAll()
	s.comps.mu.RLock()
	for _, c := range s.comps.conns {
		c.closeWith(&streamErr{cond: "system-shutdown"})
	}
	s.comps.mu.RUnlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.log.Info("all connections closed")
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		left := len(s.conns)
		for c := range s.conns {
			c.raw.Close()
		}
		s.mu.Unlock()
		s.log.Warn("shutdown timed out; connections cut", "connections", left)
		return ctx.Err()
	}
}

// admit registers a new connection, enforcing the per-address cap on
// unauthenticated connections. It reports false if the connection must be
// refused.
func (s *Server) admit(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if s.unauth[c.remote] >= s.cfg.C2S.MaxUnauthPerIP {
		return false
	}
	s.unauth[c.remote]++
	s.conns[c] = struct{}{}
	return true
}

// authenticated moves c out of its address's unauthenticated count.
func (s *Server) authenticated(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropUnauthLocked(c)
}

// Lock must be held.
func (s *Server) dropUnauthLocked(c *conn) {
	if c.countedUnauth {
		c.countedUnauth = false
		if s.unauth[c.remote]--; s.unauth[c.remote] <= 0 {
			delete(s.unauth, c.remote)
		}
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropUnauthLocked(c)
	delete(s.conns, c)
}

// Healthy reports nil when the server can accept and store messages.
func (s *Server) Healthy() error {
	if err := s.deps.Queue.Healthy(); err != nil {
		return fmt.Errorf("message queue: %w", err)
	}
	return nil
}

// CloseSessions ends every session of the account local (for example after
// its password changed or it was deleted) with the given stream error
// condition.
func (s *Server) CloseSessions(local, cond string) {
	bare := local + "@" + s.domain
	for _, sess := range s.router.sessions(bare) {
		sess.terminate(&streamErr{cond: cond})
	}
}
