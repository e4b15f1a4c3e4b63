package xmpp

// XEP-0191 blocking command: the blocklist IQs and their pushes, and the
// checks that keep stanzas from passing between a user and a JID the user
// blocked. The list itself lives in roster.Blocklist.

import (
	"context"
	"errors"

	"mellium.im/xmpp/jid"

	"github.com/twotick/twotick/roster"
	"github.com/twotick/twotick/xmpp/wire"
)

const (
	nsBlocking       = "urn:xmpp:blocking"
	nsBlockingErrors = "urn:xmpp:blocking:errors"
)

// blockForms returns every item value that matches j, in the order of
// XEP-0191 § 6: user@domain/resource, user@domain, domain/resource, domain.
func blockForms(j jid.JID) []string {
	forms := make([]string, 0, 4)
	if j.Localpart() != "" {
		if j.Resourcepart() != "" {
			forms = append(forms, j.String())
		}
		forms = append(forms, j.Bare().String())
	}
	if j.Resourcepart() != "" {
		forms = append(forms, j.Domainpart()+"/"+j.Resourcepart())
	}
	return append(forms, j.Domainpart())
}

// blocks reports whether the user owner (a bare JID) has blocked j. A
// user's own resources are never blocked (XEP-0191 § 5, note). If the
// list cannot be read the stanza passes: refusing everything while the
// database is failing would look like every contact blocking the user.
func (srv *Server) blocks(owner string, j jid.JID) bool {
	if srv.deps.Blocklist == nil || srv.deps.Blocklist.KnownEmpty(owner) ||
		owner == j.Bare().String() {
		return false
	}
	ctx, cancel := storeCtx()
	defer cancel()
	ok, err := srv.deps.Blocklist.Blocks(ctx, owner, blockForms(j)...)
	if err != nil {
		srv.log.Warn("reading blocklist failed; not blocking", "err", err, "jid", owner)
		return false
	}
	return ok
}

// blockedBetween reports whether either of two users blocks the other;
// presence then passes in neither direction.
func (srv *Server) blockedBetween(a, b jid.JID) bool {
	return srv.blocks(a.Bare().String(), b) || srv.blocks(b.Bare().String(), a)
}

// blockedError is the error a user gets for a stanza to a JID the user
// blocked (XEP-0191 § 3.3): not-acceptable with <blocked/>.
func blockedError(st *wire.Element) *wire.Element {
	e := stanzaError(st, "cancel", "not-acceptable", "")
	if e == nil {
		return nil
	}
	e.Child(wire.NSClient, "error").Add(wire.New(nsBlockingErrors, "blocked"))
	return e
}

// refuseBlocked applies blocklists to a message or IQ from s to to: the
// user's own, whatever the destination (a local account, a component's
// bot or the component itself), and a local recipient's. It reports true
// if the stanza must not be routed, after answering it as XEP-0191 § 3.3
// says: not-acceptable to a user writing to a JID the user blocked;
// service-unavailable to a blocked sender, so that the user appears
// offline to it. Errors and IQ results are dropped silently.
func (s *Session) refuseBlocked(st *wire.Element, to jid.JID) bool {
	local := to.Domainpart() == s.srv.domain
	if local && to.Localpart() == "" {
		return false // the user's own server is never blocked
	}
	typ := st.Get("type")
	answer := typ != "error" && (st.Name.Local != "iq" || typ == "get" || typ == "set")
	switch {
	case s.srv.blocks(s.bare, to):
		if answer {
			if st.Name.Local == "iq" {
				e := iqError(st, "cancel", "not-acceptable", "")
				e.Child(wire.NSClient, "error").Add(wire.New(nsBlockingErrors, "blocked"))
				s.reply(e)
			} else {
				s.reply(blockedError(st))
			}
		}
		return true
	case local && s.srv.blocks(to.Bare().String(), s.jid):
		if answer {
			if st.Name.Local == "iq" {
				s.reply(iqError(st, "cancel", "service-unavailable", ""))
			} else {
				s.reply(stanzaError(st, "cancel", "service-unavailable", ""))
			}
		}
		return true
	}
	return false
}

// refuseBlockedPresence applies a blocklist to presence (directed or a
// subscription stanza) from s to to. Presence to a JID the user blocked is
// refused with not-acceptable; presence to someone who blocked the user is
// dropped without an answer (XEP-0191 § 3.3).
func (s *Session) refuseBlockedPresence(p *wire.Element, to jid.JID) bool {
	if to.Localpart() == "" {
		return false
	}
	if s.srv.blocks(s.bare, to) {
		s.reply(blockedError(p))
		return true
	}
	return s.srv.blocks(to.Bare().String(), s.jid)
}

// blockingIQ answers the blocklist IQs of XEP-0191 § 3: get, block, and
// unblock (of some items, or of all when none are given).
func (s *Session) blockingIQ(iq, p *wire.Element) {
	if s.srv.deps.Blocklist == nil {
		s.reply(iqError(iq, "cancel", "service-unavailable", ""))
		return
	}
	typ := iq.Get("type")
	switch {
	case typ == "get" && p.Name.Local == "blocklist":
		s.blocklistGet(iq)
	case typ == "set" && (p.Name.Local == "block" || p.Name.Local == "unblock"):
		s.blocklistSet(iq, p)
	default:
		s.reply(iqError(iq, "modify", "bad-request", ""))
	}
}

func (s *Session) blocklistGet(iq *wire.Element) {
	ctx, cancel := storeCtx()
	defer cancel()
	list, err := s.srv.deps.Blocklist.List(ctx, s.bare)
	if err != nil {
		s.log.Error("loading blocklist failed", "err", err)
		s.reply(iqError(iq, "wait", "internal-server-error", ""))
		return
	}
	s.mu.Lock()
	s.blocklist = true
	s.mu.Unlock()
	q := wire.New(nsBlocking, "blocklist")
	for _, j := range list {
		q.Add(wire.New(nsBlocking, "item", "jid", j))
	}
	s.reply(iqResult(iq, q))
}

// blocklistSet blocks or unblocks the items of p, answers, pushes the
// change to every session that asked for the blocklist, and then sends
// the presence that the change calls for.
func (s *Session) blocklistSet(iq, p *wire.Element) {
	block := p.Name.Local == "block"
	var jids []string
	for _, it := range p.Children() {
		if it.Name.Space != nsBlocking || it.Name.Local != "item" {
			continue
		}
		j, err := jid.Parse(it.Get("jid"))
		if err != nil {
			s.reply(iqError(iq, "modify", "jid-malformed", "invalid item jid"))
			return
		}
		jids = append(jids, j.String())
	}
	if block && len(jids) == 0 {
		s.reply(iqError(iq, "modify", "bad-request", "block needs at least one item"))
		return
	}

	ctx, cancel := storeCtx()
	defer cancel()
	var changed []string
	var err error
	switch {
	case block:
		changed, err = s.srv.deps.Blocklist.Block(ctx, s.bare, jids)
	case len(jids) == 0:
		changed, err = s.srv.deps.Blocklist.UnblockAll(ctx, s.bare)
	default:
		changed, err = s.srv.deps.Blocklist.Unblock(ctx, s.bare, jids)
	}
	switch {
	case errors.Is(err, roster.ErrTooManyBlocked):
		s.reply(iqError(iq, "cancel", "resource-constraint", "too many blocked JIDs"))
		return
	case err != nil:
		s.log.Error("changing blocklist failed", "err", err)
		s.reply(iqError(iq, "wait", "internal-server-error", ""))
		return
	}
	s.reply(iqResult(iq, nil))

	// The push repeats the request (an empty unblock stays empty: unblock
	// all), as § 3.3 to § 3.5 show.
	push := wire.New(nsBlocking, p.Name.Local)
	for _, j := range jids {
		push.Add(wire.New(nsBlocking, "item", "jid", j))
	}
	s.srv.pushBlocklist(s.bare, push)
	s.blockPresence(changed, block)
}

// pushBlocklist sends a blocklist push to every session of owner that
// asked for the blocklist.
func (srv *Server) pushBlocklist(owner string, payload *wire.Element) {
	for _, sess := range srv.router.sessions(owner) {
		sess.mu.Lock()
		asked := sess.blocklist
		sess.mu.Unlock()
		if !asked {
			continue
		}
		iq := wire.New(wire.NSClient, "iq", "type", "set", "id", "push-"+randomID(6),
			"to", sess.full).Add(payload.Clone())
		sess.send(outItem{b: iq.Bytes(wire.NSClient), stanza: true})
	}
}

// blockPresence updates presence after items were blocked (block) or
// unblocked. A newly blocked JID that may see the user's presence gets
// unavailable presence from each of the user's resources (XEP-0191
// § 3.3), and the user's sessions get unavailable from its resources, so
// that no stale presence remains on either side. After unblocking, current
// presence flows again where subscriptions allow it and no other block
// stands in the way (§ 3.4).
func (s *Session) blockPresence(items []string, block bool) {
	if len(items) == 0 {
		return
	}
	ctx, cancel := storeCtx()
	defer cancel()
	subscribers, err := s.srv.deps.Roster.Subscribers(ctx, s.bare)
	if err != nil {
		s.log.Error("loading subscribers for a blocklist change failed", "err", err)
		return
	}
	subscriptions, err := s.srv.deps.Roster.Subscriptions(ctx, s.bare)
	if err != nil {
		s.log.Error("loading subscriptions for a blocklist change failed", "err", err)
		return
	}
	s.blockPresenceTo(items, block, subscribers, subscriptions)
}

// blockPresenceTo does blockPresence's work for the user's subscribers
// (who may see the user's presence) and subscriptions (whose presence the
// user may see).
func (s *Session) blockPresenceTo(items []string, block bool, subscribers, subscriptions []string) {
	set := make(map[string]bool, len(items))
	for _, it := range items {
		set[it] = true
	}
	matches := func(j jid.JID) bool {
		for _, f := range blockForms(j) {
			if set[f] {
				return true
			}
		}
		return false
	}
	canSee := map[string]bool{} // contacts that may see the user's presence
	for _, c := range subscribers {
		canSee[c] = true
	}
	sees := map[string]bool{} // contacts whose presence the user may see
	for _, c := range subscriptions {
		sees[c] = true
	}
	mine := s.srv.router.available(s.bare)
	if block {
		for _, me := range mine {
			me.unavailableToDirected(matches)
		}
	}

	contacts := append(append([]string(nil), subscribers...), subscriptions...)
	done := map[string]bool{}
	for _, c := range contacts {
		if done[c] {
			continue
		}
		done[c] = true
		for _, theirs := range s.srv.router.available(c) {
			if !matches(theirs.jid) {
				continue
			}
			if !block && s.srv.blockedBetween(s.jid, theirs.jid) {
				continue // another item, or the contact's own list, still blocks
			}
			for _, me := range mine {
				if canSee[c] {
					sendPresenceOf(me, theirs, block)
				}
				if sees[c] {
					sendPresenceOf(theirs, me, block)
				}
			}
		}
	}
}

// sendPresenceOf sends from's presence to the session to: unavailable, or
// its current presence if it has one.
func sendPresenceOf(from, to *Session, unavailable bool) {
	var b []byte
	if unavailable {
		b = wire.New(wire.NSClient, "presence", "type", "unavailable",
			"from", from.full, "to", to.full).Bytes(wire.NSClient)
	} else if b = from.currentPresence(); b == nil {
		return
	}
	to.send(outItem{b: b, stanza: true})
}

// blocksSender reports whether owner blocks from, a bare JID as the queue
// records senders. Messages queued before the block stay queued but are
// not delivered while it lasts (XEP-0191 § 3.3: nothing from the JID).
func (srv *Server) blocksSender(owner, from string) bool {
	j, err := jid.Parse(from)
	return err == nil && srv.blocks(owner, j)
}

// unavailableToDirected sends unavailable presence to the JIDs the session
// sent directed presence to that match a new block, and forgets them: they
// were allowed to see the session's presence (XEP-0191 § 3.3).
func (s *Session) unavailableToDirected(matches func(jid.JID) bool) {
	var gone []jid.JID
	s.mu.Lock()
	for to := range s.directed {
		if j, err := jid.Parse(to); err == nil && matches(j) {
			gone = append(gone, j)
			delete(s.directed, to)
		}
	}
	s.mu.Unlock()
	for _, j := range gone {
		p := wire.New(wire.NSClient, "presence", "type", "unavailable",
			"from", s.full, "to", j.String())
		s.srv.routePresence(p.Bytes(wire.NSClient), j)
	}
}

// ForgetAccount removes what the server keeps for a deleted account
// outside the account and roster stores: its blocklist and its push
// registrations. local is the account's localpart. A later account with
// the same JID (a recycled phone number) must start without them.
func (srv *Server) ForgetAccount(ctx context.Context, local string) error {
	owner := local + "@" + srv.domain
	var errs []error
	if srv.deps.Blocklist != nil {
		if err := srv.deps.Blocklist.DeleteOwner(ctx, owner); err != nil {
			errs = append(errs, err)
		}
	}
	if srv.push != nil {
		if err := srv.push.forget(ctx, owner); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
