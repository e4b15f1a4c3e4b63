package xmpp

import (
	"context"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/twotick/twotick/roster"
	"github.com/twotick/twotick/xmpp/wire"
)

func storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// handlePresence handles presence from the client (RFC 6121 § 4, § 3).
func (s *Session) handlePresence(p *wire.Element) error {
	if err := s.stampFrom(p); err != nil {
		return err
	}
	typ, to := p.Get("type"), p.Get("to")
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		tj, err := jid.Parse(to)
		if err != nil || to == "" {
			s.reply(stanzaError(p, "modify", "jid-malformed", ""))
			return nil
		}
		if s.refuseBlockedPresence(p, tj) {
			return nil // XEP-0191 § 3.3
		}
		s.srv.subscription(typ, s.bare, tj.Bare().String(), p)
		return nil
	case "probe":
		return nil // the server probes on the client's behalf
	case "", "unavailable", "error":
	default:
		s.reply(stanzaError(p, "modify", "bad-request", "unknown presence type"))
		return nil
	}
	if to == "" {
		if typ == "error" {
			return nil
		}
		s.broadcast(p)
		return nil
	}
	tj, err := s.srv.jids.parse(to)
	if err != nil {
		s.reply(stanzaError(p, "modify", "jid-malformed", ""))
		return nil
	}
	if s.refuseBlockedPresence(p, tj) {
		return nil // XEP-0191 § 3.3
	}
	s.directedPresence(p, tj)
	return nil
}

// broadcast handles presence without a 'to': the user's own availability.
func (s *Session) broadcast(p *wire.Element) {
	unavailable := p.Get("type") == "unavailable"
	prio := 0
	if v, err := strconv.Atoi(p.ChildText(wire.NSClient, "priority")); err == nil &&
		v >= -128 && v <= 127 {
		prio = v
	}
	s.mu.Lock()
	first := !s.initial && !unavailable
	prev := s.presence
	var directed map[string]bool
	if unavailable {
		s.avail = false
		s.presence = nil
		directed = s.directed
		s.directed = nil
	} else {
		s.avail = true
		s.priority = prio
		s.presence = p
		if first {
			// Loading starts with initial: a queued message that arrives
			// from now on is held until the load has passed it.
			s.initial = true
			s.loading = true
		}
	}
	s.mu.Unlock()

	s.broadcastPresence(p, true, directed)
	if first {
		s.initialPresence()
	}
	if !unavailable {
		s.pepAvailable(p, prev) // pep_notify.go
	}
}

// broadcastPresence sends p to the user's subscribers (when toSubscribers),
// to the user's other resources, and to the JIDs in directed.
func (s *Session) broadcastPresence(p *wire.Element, toSubscribers bool, directed map[string]bool) {
	b := p.Bytes(wire.NSClient)
	sent := map[string]bool{}
	if toSubscribers {
		ctx, cancel := storeCtx()
		subs, err := s.srv.deps.Roster.Subscribers(ctx, s.bare)
		cancel()
		if err != nil {
			s.log.Error("loading subscribers failed", "err", err)
		}
		for _, c := range subs {
			sent[c] = true
			for _, sess := range s.srv.router.available(c) {
				if !s.srv.blockedBetween(s.jid, sess.jid) {
					sess.send(outItem{b: b, stanza: true})
				}
			}
		}
		for _, sess := range s.srv.router.available(s.bare) {
			if sess != s {
				sess.send(outItem{b: b, stanza: true})
			}
		}
	}
	for to := range directed {
		if sent[to] {
			continue
		}
		tj, err := jid.Parse(to)
		if err != nil || s.srv.blockedBetween(s.jid, tj) {
			continue
		}
		s.srv.routePresence(b, tj)
	}
}

// initialPresence completes the user's first available presence: the
// current presence of the user's contacts and other resources, pending
// subscription requests, and then the queued messages (XEP-0160).
func (s *Session) initialPresence() {
	ctx, cancel := storeCtx()
	defer cancel()
	subs, err := s.srv.deps.Roster.Subscriptions(ctx, s.bare)
	if err != nil {
		s.log.Error("loading subscriptions failed", "err", err)
	}
	// Probes are answered locally: every account lives on this server.
	for _, c := range append(subs, s.bare) {
		for _, sess := range s.srv.router.available(c) {
			if sess == s || s.srv.blockedBetween(s.jid, sess.jid) {
				continue
			}
			if pb := sess.currentPresence(); pb != nil {
				s.send(outItem{b: pb, stanza: true})
			}
		}
	}
	pending, err := s.srv.deps.Roster.PendingIn(ctx, s.bare)
	if err != nil {
		s.log.Error("loading pending subscriptions failed", "err", err)
	}
	for _, pr := range pending {
		if pj, err := jid.Parse(pr.JID); err != nil || s.srv.blocks(s.bare, pj) {
			continue
		}
		sub := wire.New(wire.NSClient, "presence", "type", "subscribe", "from", pr.JID, "to", s.bare)
		if pr.Status != "" {
			sub.AddText(wire.NSClient, "status", pr.Status)
		}
		s.reply(sub)
	}
	s.pumpQueue()
}

// currentPresence returns the session's last available presence, or nil.
func (s *Session) currentPresence() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.avail || s.presence == nil {
		return nil
	}
	return s.presence.Bytes(wire.NSClient)
}

// directedPresence sends presence to one JID (RFC 6121 § 4.6) and
// remembers it, so that the JID learns when the user goes offline.
func (s *Session) directedPresence(p *wire.Element, to jid.JID) {
	comp := s.srv.comps.get(to.Domainpart())
	if to.Domainpart() != s.srv.domain && comp == nil {
		s.reply(stanzaError(p, "cancel", "remote-server-not-found", "this server does not federate"))
		return
	}
	if p.Get("type") != "error" {
		s.mu.Lock()
		if p.Get("type") == "unavailable" {
			delete(s.directed, to.String())
		} else if len(s.directed) < 1000 {
			if s.directed == nil {
				s.directed = map[string]bool{}
			}
			s.directed[to.String()] = true
		}
		s.mu.Unlock()
	}
	if comp != nil {
		comp.send(p.Bytes(wire.NSClient))
		return
	}
	s.srv.routePresence(p.Bytes(wire.NSClient), to)
}

// routePresence delivers presence to a full JID's session, or to every
// available session of a bare JID. Presence is never queued.
func (srv *Server) routePresence(b []byte, to jid.JID) {
	bare := to.Bare().String()
	if res := to.Resourcepart(); res != "" {
		if sess := srv.router.session(bare, res); sess != nil {
			sess.send(outItem{b: b, stanza: true})
		}
		return
	}
	for _, sess := range srv.router.available(bare) {
		sess.send(outItem{b: b, stanza: true})
	}
}

// subscription processes a subscription stanza of type typ from user to
// contact, on both sides, since both accounts are local (RFC 6121 § 3 and
// Appendix A).
func (srv *Server) subscription(typ, user, contact string, orig *wire.Element) {
	ctx, cancel := storeCtx()
	defer cancel()
	r := srv.deps.Roster
	var out roster.Change
	var err error
	switch typ {
	case "subscribe":
		out, err = r.OutboundSubscribe(ctx, user, contact)
	case "subscribed":
		out, err = r.OutboundSubscribed(ctx, user, contact)
	case "unsubscribe":
		out, err = r.OutboundUnsubscribe(ctx, user, contact)
	case "unsubscribed":
		out, err = r.OutboundUnsubscribed(ctx, user, contact)
	}
	if err != nil {
		srv.log.Error("subscription change failed", "err", err, "jid", user)
		return
	}
	// The user's presence follows the stanza that caused it (RFC 6121
	// § 3.1.5, § 3.2.2): a client that sees presence before 'subscribed'
	// may drop it as coming from someone it is not subscribed to.
	presence := roster.Change{SendPresence: out.SendPresence, SendUnavailable: out.SendUnavailable}
	out.SendPresence, out.SendUnavailable = false, false
	srv.applyChange(user, contact, out)
	defer srv.applyChange(user, contact, presence)
	if !out.Deliver {
		return
	}
	if !srv.accountExists(contact) {
		if typ == "subscribe" {
			// RFC 6121 § 3.1.3: no such contact; the request is refused
			// as if the contact had answered unsubscribed. The missing
			// account has no roster to update: only the user's side changes.
			in, err := r.InboundUnsubscribed(ctx, contact, user)
			if err != nil {
				srv.log.Error("subscription change failed", "err", err, "jid", user)
				return
			}
			srv.applyChange(user, contact, in)
			b := wire.New(wire.NSClient, "presence", "type", "unsubscribed",
				"from", contact, "to", user).Bytes(wire.NSClient)
			for _, sess := range srv.router.available(user) {
				sess.send(outItem{b: b, stanza: true})
			}
		}
		return
	}

	status := ""
	if orig != nil {
		status = orig.ChildText(wire.NSClient, "status")
	}
	var in roster.Change
	switch typ {
	case "subscribe":
		in, err = r.InboundSubscribeStatus(ctx, user, contact, status)
	case "subscribed":
		in, err = r.InboundSubscribed(ctx, user, contact)
	case "unsubscribe":
		in, err = r.InboundUnsubscribe(ctx, user, contact)
	case "unsubscribed":
		in, err = r.InboundUnsubscribed(ctx, user, contact)
	}
	if err != nil {
		srv.log.Error("subscription change failed", "err", err, "jid", contact)
		return
	}
	srv.applyChange(contact, user, in)
	if in.Deliver {
		p := wire.New(wire.NSClient, "presence", "type", typ, "from", user, "to", contact)
		if status != "" {
			p.AddText(wire.NSClient, "status", status)
		}
		b := p.Bytes(wire.NSClient)
		for _, sess := range srv.router.available(contact) {
			sess.send(outItem{b: b, stanza: true})
		}
	}
	if in.AutoReply {
		srv.subscription("subscribed", contact, user, nil)
	}
	if typ == "subscribed" && in.Changed {
		srv.pepSubscribed(user, contact) // pep_notify.go
	}
}

// applyChange carries out what a roster change asks of the server for the
// roster of owner and its contact.
func (srv *Server) applyChange(owner, contact string, ch roster.Change) {
	if ch.Changed {
		srv.pushRoster(owner, ch.Item, ch.Ver)
	}
	if ch.SendPresence || ch.SendUnavailable {
		cj, err := jid.Parse(contact)
		if err != nil {
			return
		}
		for _, sess := range srv.router.available(owner) {
			var b []byte
			if ch.SendPresence {
				b = sess.currentPresence()
			} else {
				b = wire.New(wire.NSClient, "presence", "type", "unavailable",
					"from", sess.full, "to", contact).Bytes(wire.NSClient)
			}
			if b != nil && !srv.blockedBetween(sess.jid, cj) {
				srv.routePresence(b, cj)
			}
		}
	}
}
