package xmpp

import (
	"bytes"
	"context"
	"errors"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/twotick/twotick/offline"
	"github.com/twotick/twotick/receipts"
	"github.com/twotick/twotick/xmpp/wire"
)

// Namespaces of message payloads the queue policy looks at.
const (
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsHints      = "urn:xmpp:hints"
	nsMarkers    = "urn:xmpp:chat-markers:0"
	nsSID        = "urn:xmpp:sid:0"
	nsDelay      = "urn:xmpp:delay"
	nsCarbons    = "urn:xmpp:carbons:2"
	nsForward    = "urn:xmpp:forward:0"
	nsOMEMO      = "eu.siacs.conversations.axolotl"
	nsOMEMO2     = "urn:xmpp:omemo:2"
	nsOpenPGP    = "urn:xmpp:openpgp:0"
	nsEME        = "urn:xmpp:eme:0"
)

// shouldQueue decides whether a message carries content and so goes through
// the durable queue (DESIGN.md, "The two checks"): chat and normal messages
// with a body, an encrypted payload, a receipt, a chat marker or a <store/>
// hint. Chat states alone, headlines and <no-store/> are only delivered
// live.
func shouldQueue(msg *wire.Element) bool {
	typ := msg.Get("type")
	if typ != "" && typ != "chat" && typ != "normal" {
		return false
	}
	if msg.Child(nsHints, "no-store") != nil {
		return false
	}
	if msg.Child(nsHints, "store") != nil {
		return true
	}
	for _, c := range msg.Children() {
		switch {
		case c.Name.Space == wire.NSClient && c.Name.Local == "body":
			return true
		case c.Name.Space == nsOMEMO || c.Name.Space == nsOMEMO2 || c.Name.Space == nsOpenPGP:
			return true
		case c.Name.Space == receipts.NS && c.Name.Local == "received":
			return true
		case c.Name.Space == nsMarkers:
			return true
		}
	}
	return false
}

// stripForged removes what only the server may say: stanza-ids (XEP-0359
// § 5) and carbon wrappers (XEP-0280 § 11) a client added itself.
func stripForged(msg *wire.Element) {
	msg.RemoveChildren(func(c *wire.Element) bool {
		return c.Name.Space == nsSID && c.Name.Local == "stanza-id" ||
			c.Name.Space == nsCarbons && (c.Name.Local == "sent" || c.Name.Local == "received")
	})
}

// handleMessage routes a message from the client (RFC 6121 § 8.5). It
// reports queued when the message went into the session's commit pipeline,
// which counts it for stream management once it is committed.
func (s *Session) handleMessage(msg *wire.Element) (queued bool, err error) {
	if err := s.stampFrom(msg); err != nil {
		return false, err
	}
	to := msg.Get("to")
	if to == "" {
		to = s.bare
		msg.Set("to", to)
	}
	tj, err := s.srv.jids.parse(to)
	if err != nil {
		s.reply(stanzaError(msg, "modify", "jid-malformed", ""))
		return false, nil
	}
	typ := msg.Get("type")
	stripForged(msg)
	receipts.Sanitize(msg)
	if tj.Domainpart() != s.srv.domain {
		if comp := s.srv.comps.get(tj.Domainpart()); comp != nil {
			if s.refuseBlocked(msg, tj) {
				return false, nil // XEP-0191 § 3.3: a bot or gateway JID too
			}
			comp.send(msg.Bytes(wire.NSClient))
			// The user's other resources see what went to a bot as they
			// see what went to a user (XEP-0280 § 6.1).
			s.srv.carbonCopies(msg, tj, nil)
			return false, nil
		}
		s.reply(stanzaError(msg, "cancel", "remote-server-not-found",
			"this server does not federate"))
		return false, nil
	}
	if tj.Localpart() == "" {
		if typ != "error" {
			s.reply(stanzaError(msg, "cancel", "service-unavailable", ""))
		}
		return false, nil
	}
	bare := tj.Bare().String()
	if !s.srv.accountExists(bare) {
		if typ != "error" && typ != "headline" {
			s.reply(stanzaError(msg, "cancel", "service-unavailable", ""))
		}
		return false, nil
	}
	if s.refuseBlocked(msg, tj) {
		return false, nil // XEP-0191 § 3.3
	}
	if typ == "groupchat" {
		s.reply(stanzaError(msg, "cancel", "service-unavailable", ""))
		return false, nil
	}
	if id, ok := receipts.Received(msg); ok {
		s.srv.purgeReceipt(s.bare, bare, id)
	}
	if !shouldQueue(msg) {
		s.srv.deliverLive(msg, tj)
		return false, nil
	}
	return true, s.startCommit(func() *queueing { return s.srv.startQueue(s.bare, msg, tj) })
}

// notStored is the stream error that ends a stream under stream
// management after one of its messages could not be stored (the sender
// already has its wait error): <a h/> must never cover a message that is not
// committed (the single check), and h counts every stanza in order, so the
// stream cannot go on past it. The client resumes, <resumed h/> shows the
// message unhandled, and the client resends it; the wait error, if not
// written before the close, is resent with the other unacknowledged stanzas.
func notStored() *streamErr {
	return &streamErr{cond: "internal-server-error",
		text: "the message could not be stored; resend it"}
}

// queueing is a message on its way into the queue: started, and not yet
// known to be committed.
type queueing struct {
	p      *offline.Pending
	m      *offline.Message
	msg    *wire.Element
	to     jid.JID
	sender string
}

// queueFrom commits a message from sender (a bare JID) to the queue, then
// delivers it and wakes the recipient's devices. A failure is answered
// through reply (nil: not answered) with a wait error, never acknowledged as
// stored, and returned.
func (srv *Server) queueFrom(sender string, msg *wire.Element, to jid.JID,
	reply func(*wire.Element)) error {
	return srv.finishQueue(srv.startQueue(sender, msg, to), reply)
}

// startQueue hands a message from sender to the queue's committer and
// returns without waiting for the commit; finishQueue completes it.
func (srv *Server) startQueue(sender string, msg *wire.Element, to jid.JID) *queueing {
	bare := to.Bare().String()
	sid := randomID(12)
	msg.Add(wire.New(nsSID, "stanza-id", "id", sid, "by", bare))
	m := &offline.Message{
		To:       bare,
		From:     sender,
		ClientID: msg.Get("id"),
		StanzaID: sid,
		Stamp:    time.Now().UTC(),
		Payload:  msg.Bytes(wire.NSClient),
	}
	return &queueing{p: srv.deps.Queue.Start(m), m: m, msg: msg, to: to, sender: sender}
}

// finishQueue waits for q's commit, then delivers the message and wakes the
// recipient's devices, or answers a failure through reply as queueFrom does.
//
// It waits without a deadline: the committer answers every request, each of
// its SQLite calls being bounded by the busy timeout and Close answering
// what is left, and a timer per message cost 5% of the CPU of a chat load.
func (srv *Server) finishQueue(q *queueing, reply func(*wire.Element)) error {
	if err := q.p.Wait(context.Background()); err != nil {
		var e *wire.Element
		if errors.Is(err, offline.ErrQueueFull) {
			e = stanzaError(q.msg, "wait", "resource-constraint",
				"the recipient has too many undelivered messages")
		} else {
			srv.log.Error("queueing message failed", "err", err)
			e = stanzaError(q.msg, "wait", "internal-server-error",
				"the message could not be stored; try again")
		}
		if reply != nil {
			reply(e)
		}
		return err
	}
	srv.deliverQueued(q.m, q.to)
	srv.notifyPush(q.m.To, q.sender, q.msg)
	return nil
}

// deliverLive sends a message that is not queued to the recipient's
// sessions now, or drops it.
func (srv *Server) deliverLive(msg *wire.Element, to jid.JID) {
	b := msg.Bytes(wire.NSClient)
	targets := srv.messageTargets(to, msg.Get("type"))
	for _, sess := range targets {
		sess.send(outItem{b: b, stanza: true})
	}
	srv.carbonCopies(msg, to, targets)
}

// messageTargets applies RFC 6121 § 8.5.2 and § 8.5.3: a full JID reaches
// that resource if it is bound, otherwise chat and normal messages fall back
// to the bare JID; a bare JID reaches every available resource with
// non-negative priority.
func (srv *Server) messageTargets(to jid.JID, typ string) []*Session {
	bare := to.Bare().String()
	if res := to.Resourcepart(); res != "" {
		if sess := srv.router.session(bare, res); sess != nil {
			return []*Session{sess}
		}
		if typ == "error" || typ == "headline" {
			return nil
		}
	}
	var out []*Session
	for _, sess := range srv.router.available(bare) {
		if sess.prio() >= 0 {
			out = append(out, sess)
		}
	}
	return out
}

// deliverQueued sends a committed message to the recipient's sessions that
// have loaded their queue; the others get it from the queue when they do.
func (srv *Server) deliverQueued(m *offline.Message, to jid.JID) {
	it := outItem{b: m.Payload, stanza: true, queueID: m.ID, from: m.From, clientID: m.ClientID}
	targets := srv.messageTargets(to, "chat")
	for _, sess := range targets {
		sess.deliverQueuedItem(it)
	}
	srv.carbonCopiesOf(m.Payload, to, targets)
}

// deliverQueuedItem sends a queued message unless the session is loading
// its queue, in which case it is held and sent after the load if the load
// did not already include it.
func (s *Session) deliverQueuedItem(it outItem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.initial:
		return
	case s.loading:
		s.held = append(s.held, it)
	case it.queueID <= s.loaded:
		return
	default:
		s.sendLocked(it)
	}
}

// pumpPage is the most queued messages loaded at once.
const pumpPage = 500

// pumpQueue sends every queued message after initial presence (XEP-0160),
// in the order sent, each with a XEP-0203 delay stamp; the caller has set
// s.loading. It sends page by page while the session has room:
// the outgoing queue and, under stream management, the unacknowledged list
// must stay within their limits, or a recipient with thousands of waiting
// messages would be disconnected for having them. When room runs out it
// pauses; the flush of written data and the client's acks resume it.
//
// Live queued messages that arrive meanwhile are held and sent after the
// last page if the pages did not already include them.
func (s *Session) pumpQueue() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		s.mu.Lock()
		if s.ended || s.c == nil && !s.sm.on {
			s.pumpPaused = false
			s.mu.Unlock()
			return
		}
		room := s.srv.cfg.C2S.MaxOutgoingQueue - len(s.pending)
		if s.sm.on {
			room = min(room, s.srv.cfg.SM.MaxUnacked-len(s.sm.unacked))
		}
		room = min(room-room/4, pumpPage)
		// A small c2s.max_outgoing_queue allows pages under 50, or none.
		if room < min(pumpPage, 50, max(1, s.srv.cfg.C2S.MaxOutgoingQueue/4)) {
			s.pumpPaused = true
			s.mu.Unlock()
			return
		}
		after := s.loaded
		s.pumpPaused = false
		s.mu.Unlock()

		batch, err := s.srv.deps.Queue.Pending(ctx, s.bare, after, room)
		if err != nil {
			s.log.Error("loading queued messages failed", "err", err)
			batch = nil
		}
		s.mu.Lock()
		for _, m := range batch {
			if s.srv.blocksSender(s.bare, m.From) {
				s.loaded = m.ID // kept queued, not delivered: blocking.go
				continue
			}
			s.sendLocked(outItem{b: withDelay(m.Payload, s.srv.domain, m.Stamp),
				stanza: true, queueID: m.ID, from: m.From, clientID: m.ClientID})
			s.loaded = m.ID
		}
		if len(batch) == room && err == nil {
			s.mu.Unlock()
			continue
		}
		// The last page: what arrived live while loading goes out now, in
		// the atomic step that ends loading.
		for _, it := range s.held {
			if it.queueID > s.loaded {
				s.sendLocked(it)
				s.loaded = it.queueID
			}
		}
		s.held = nil
		s.loading = false
		s.mu.Unlock()
		return
	}
}

// resumePump continues a paused queue load. Lock must be held.
func (s *Session) resumePumpLocked() {
	if s.pumpPaused && s.loading {
		s.pumpPaused = false
		go s.pumpQueue()
	}
}

// withDelay inserts a XEP-0203 <delay/> before the closing tag of a stored
// message. The payload was serialised by the server, so its last element is
// the message's own end tag.
func withDelay(payload []byte, domain string, stamp time.Time) []byte {
	d := wire.New(nsDelay, "delay", "from", domain,
		"stamp", stamp.UTC().Format("2006-01-02T15:04:05.000Z"))
	db := d.Bytes(wire.NSClient)
	end := []byte("</message>")
	if !bytes.HasSuffix(payload, end) {
		// A message with no children ends in "/>"; it carries no content
		// and is never queued, but stay correct anyway.
		if bytes.HasSuffix(payload, []byte("/>")) {
			out := append([]byte(nil), payload[:len(payload)-2]...)
			out = append(out, '>')
			out = append(out, db...)
			return append(out, end...)
		}
		return payload
	}
	out := make([]byte, 0, len(payload)+len(db))
	out = append(out, payload[:len(payload)-len(end)]...)
	out = append(out, db...)
	return append(out, end...)
}

// purgeReceipt removes the queued message a receipt acknowledges: one that
// was delivered to the receipt's sender (recipient) by sender with that id.
func (srv *Server) purgeReceipt(recipient, sender, id string) {
	for _, sess := range srv.router.sessions(recipient) {
		sess.mu.Lock()
		var delivered []receipts.Delivered
		for _, it := range sess.sm.unacked {
			// Only the receipt's id can match; testing it first keeps a long
			// unacknowledged list from costing an allocation per entry.
			if it.queueID > 0 && it.clientID == id {
				delivered = append(delivered, receipts.Delivered{
					QueueID: it.queueID, From: it.from, ClientID: it.clientID})
			}
		}
		sess.mu.Unlock()
		sess.purge(receipts.Purges(delivered, sender, id))
	}
}

// accountExists reports whether bare names a local account.
func (srv *Server) accountExists(bare string) bool {
	if len(srv.router.sessions(bare)) > 0 {
		return true
	}
	j, err := jid.Parse(bare)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = srv.deps.Accounts.Lookup(ctx, j.Localpart())
	return err == nil
}
