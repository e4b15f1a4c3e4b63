package xmpp

// XEP-0280 message carbons: a session that enables carbons gets a copy of
// the instant messages its account's other resources send (<sent/>) and of
// those they receive that did not reach it (<received/>). Copies are live
// only: they are never queued, since the queue already holds the original
// for the recipient (DESIGN.md, "The two checks").

import (
	"bytes"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/twotick/twotick/receipts"
	"github.com/twotick/twotick/xmpp/wire"
)

// carbonsIQ enables or disables carbons for the session (XEP-0280 § 4,
// § 5). Repeating either is not an error (§ 10.1).
func (s *Session) carbonsIQ(iq, p *wire.Element) {
	if iq.Get("type") != "set" || (p.Name.Local != "enable" && p.Name.Local != "disable") {
		s.reply(iqError(iq, "modify", "bad-request", ""))
		return
	}
	s.mu.Lock()
	s.carbons = p.Name.Local == "enable"
	s.mu.Unlock()
	s.reply(iqResult(iq, nil))
}

func (s *Session) carbonsOn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.carbons && !s.ended
}

// nsCarbonsRules advertises that the server applies exactly the rules of
// XEP-0280 § 6.1 (§ 6.2), which carbonEligible implements.
const nsCarbonsRules = "urn:xmpp:carbons:rules:0"

// Namespaces of the MUC invitations that XEP-0280 § 6.1 copies.
const (
	nsMUCUser       = "http://jabber.org/protocol/muc#user"
	nsConferenceInv = "jabber:x:conference"
)

// carbonEligible applies the rules of XEP-0280 § 6.1 (advertised as
// urn:xmpp:carbons:rules:0) to a message from a local or external sender
// to rcpt, a bare JID: chat messages, normal messages with a body, messages
// with receipts, chat states or chat markers, and XEP-0249 and mediated
// MUC invitations are copied; an error is copied when it answers a message
// that was (carbonMemory); groupchat, headlines and private messages from
// a MUC occupant are not. <private/> and a <no-copy/> hint (XEP-0334)
// keep any message from being copied, and a carbon is never copied again.
func (srv *Server) carbonEligible(msg *wire.Element, rcpt string) bool {
	typ := msg.Get("type")
	if msg.Child(nsCarbons, "private") != nil || msg.Child(nsHints, "no-copy") != nil ||
		msg.Child(nsCarbons, "sent") != nil || msg.Child(nsCarbons, "received") != nil {
		return false
	}
	switch typ {
	case "groupchat", "headline":
		return false
	case "error":
		return srv.carbonIDs.answers(msg, rcpt)
	}
	if x := msg.Child(nsMUCUser, "x"); x != nil {
		if x.Child(nsMUCUser, "invite") != nil {
			return true
		}
		// A private message from an occupant, which the MUC service
		// sends to every client of the user that joined (§ 6.1).
		if from, err := jid.Parse(msg.Get("from")); err == nil && from.Domainpart() != srv.domain &&
			from.Resourcepart() != "" {
			return false
		}
	}
	if typ == "chat" || msg.Child(nsConferenceInv, "x") != nil {
		return true
	}
	for _, c := range msg.Children() {
		switch {
		case c.Name.Local == "body" && (c.Name.Space == wire.NSClient || c.Name.Space == ""):
			return true
		case c.Name.Space == receipts.NS, c.Name.Space == nsChatStates, c.Name.Space == nsMarkers:
			return true
		}
	}
	return false
}

// carbonMemoryMax bounds the remembered messages; the oldest is forgotten
// first. An error comes back within seconds, so a few thousand are plenty.
const carbonMemoryMax = 4096

// carbonMemory remembers which carbon-eligible messages were sent lately,
// so that an error answering one is copied too (XEP-0280 § 6.1). A key is
// sender, id and recipient, all bare: an error comes from the recipient to
// the sender with the original's id (RFC 6120 § 8.3.1). Messages without
// an id cannot be matched and are not remembered. The zero value is ready.
type carbonMemory struct {
	mu    sync.Mutex // guards the fields below
	seen  map[string]struct{}
	order []string // ring of keys, oldest at next
	next  int
}

func carbonKey(sender, id, rcpt string) string { return sender + "\x00" + id + "\x00" + rcpt }

// remember notes an eligible message from sender to rcpt.
func (m *carbonMemory) remember(msg *wire.Element, sender, rcpt string) {
	id := msg.Get("id")
	if id == "" || sender == "" || rcpt == "" {
		return
	}
	k := carbonKey(sender, id, rcpt)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = make(map[string]struct{}, carbonMemoryMax)
		m.order = make([]string, carbonMemoryMax)
	}
	if _, ok := m.seen[k]; ok {
		return
	}
	delete(m.seen, m.order[m.next])
	m.order[m.next] = k
	m.next = (m.next + 1) % carbonMemoryMax
	m.seen[k] = struct{}{}
}

// answers reports whether the error message errMsg, to rcpt, answers a
// remembered message that rcpt sent to the error's sender.
func (m *carbonMemory) answers(errMsg *wire.Element, rcpt string) bool {
	from, err := jid.Parse(errMsg.Get("from"))
	if err != nil || errMsg.Get("id") == "" {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.seen[carbonKey(rcpt, errMsg.Get("id"), from.Bare().String())]
	return ok
}

// carbonCopies sends the carbons of a message that was just delivered to
// targets under RFC 6121 § 8.5 (the caller's delivery): <sent/> copies to
// the sender's other carbon-enabled sessions when the sender is a local
// resource, and <received/> copies to the recipient's carbon-enabled
// sessions that were not among the targets.
func (srv *Server) carbonCopies(msg *wire.Element, to jid.JID, targets []*Session) {
	rcpt := to.Bare().String()
	if !srv.carbonEligible(msg, rcpt) {
		return
	}
	inner := msg.Clone()
	inner.RemoveChildren(func(c *wire.Element) bool {
		return c.Name.Space == nsSID // the recipient's archive id, not the sender's
	})
	sentInner := inner.Bytes("")

	from, err := jid.Parse(msg.Get("from"))
	if err == nil && from.Domainpart() == srv.domain && from.Localpart() != "" {
		sender := from.Bare().String()
		if msg.Get("type") != "error" {
			srv.carbonIDs.remember(msg, sender, rcpt)
		}
		for _, sess := range srv.router.sessions(sender) {
			if sess.full == from.String() || contains(targets, sess) || !sess.carbonsOn() {
				continue
			}
			sess.send(outItem{b: carbon("sent", sess, msg.Get("type"), sentInner), stanza: true})
		}
		if sender == rcpt {
			// Between a user's own resources the sent copies are enough.
			return
		}
	}

	var receivedInner []byte
	for _, sess := range srv.router.sessions(rcpt) {
		if contains(targets, sess) || !sess.carbonsOn() {
			continue
		}
		if receivedInner == nil {
			receivedInner = msg.Bytes("")
		}
		sess.send(outItem{b: carbon("received", sess, msg.Get("type"), receivedInner), stanza: true})
	}
}

// carbonCopiesOf is carbonCopies for a message that the queue serialised,
// read back only if some session could want a copy.
func (srv *Server) carbonCopiesOf(payload []byte, to jid.JID, targets []*Session) {
	if !srv.anyCarbons(to.Bare().String(), targets) &&
		!srv.anyCarbons(payloadSender(payload), targets) {
		return
	}
	msg, err := parseOwn(payload)
	if err != nil {
		srv.log.Warn("reading a queued message for carbons failed", "err", err)
		return
	}
	srv.carbonCopies(msg, to, targets)
}

// parseOwn reads back a stanza the server serialised for a client (without
// its jabber:client declaration), with its content in jabber:client again.
func parseOwn(b []byte) (*wire.Element, error) {
	el, err := wire.NewReader(bytes.NewReader(b), wire.Limits{MaxBytes: len(b) + 1}, len(b)).Next()
	if err != nil {
		return nil, err
	}
	setClientNS(el)
	return el, nil
}

// anyCarbons reports whether bare has a carbon-enabled session that is not
// among targets.
func (srv *Server) anyCarbons(bare string, targets []*Session) bool {
	if bare == "" {
		return false
	}
	for _, sess := range srv.router.sessions(bare) {
		if !contains(targets, sess) && sess.carbonsOn() {
			return true
		}
	}
	return false
}

// payloadSender returns the bare JID in a serialised message's from
// attribute, or "". The server wrote the payload itself, with from as a
// single-quoted attribute of the outer element holding a JID it had
// already parsed; a bare JID's parts cannot hold the characters XML
// escapes, so the text before any '/' is the bare JID as it is.
func payloadSender(payload []byte) string {
	end := bytes.IndexByte(payload, '>')
	if end < 0 {
		return ""
	}
	head := payload[:end]
	i := bytes.Index(head, []byte(" from='"))
	if i < 0 {
		return ""
	}
	v := head[i+len(" from='"):]
	if j := bytes.IndexByte(v, '\''); j >= 0 {
		v = v[:j]
	}
	if j := bytes.IndexByte(v, '/'); j >= 0 {
		v = v[:j]
	}
	return string(v)
}

// setClientNS puts elements that a serialisation without xmlns left in no
// namespace back into jabber:client, where a stanza's content belongs.
func setClientNS(el *wire.Element) {
	if el.Name.Space == "" {
		el.Name.Space = wire.NSClient
	}
	for _, c := range el.Children() {
		setClientNS(c)
	}
}

// carbon wraps a serialised message (with its namespace declared) in a
// XEP-0280 <sent/> or <received/> copy for sess: from the account's bare
// JID, to the session, with the original's type (§ 7, § 8).
func carbon(kind string, sess *Session, typ string, inner []byte) []byte {
	w := wire.New(wire.NSClient, "message", "from", sess.bare, "to", sess.full)
	if typ != "" {
		w.Set("type", typ)
	}
	head := w.Bytes(wire.NSClient)
	head = head[:len(head)-2] // drop "/>": children follow
	var b bytes.Buffer
	b.Grow(len(head) + len(inner) + 160)
	b.Write(head)
	b.WriteString("><" + kind + " xmlns='" + nsCarbons + "'><forwarded xmlns='" + nsForward + "'>")
	b.Write(inner)
	b.WriteString("</forwarded></" + kind + "></message>")
	return b.Bytes()
}

func contains(list []*Session, s *Session) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
