package xmpp

import (
	"errors"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/twotick/twotick/roster"
	"github.com/twotick/twotick/xmpp/wire"
)

// itemElement renders a roster item for a result or a push (RFC 6121
// § 2.1.2).
func itemElement(it roster.Item) *wire.Element {
	e := wire.New(nsRoster, "item", "jid", it.JID)
	if it.Name != "" {
		e.Set("name", it.Name)
	}
	sub := string(it.Subscription)
	if sub == "" {
		sub = "none"
	}
	e.Set("subscription", sub)
	if it.Ask {
		e.Set("ask", "subscribe")
	}
	if it.Approved {
		e.Set("approved", "true")
	}
	for _, g := range it.Groups {
		e.AddText(nsRoster, "group", g)
	}
	return e
}

// rosterIQ handles roster get and set (RFC 6121 § 2, XEP-0237).
func (s *Session) rosterIQ(iq, q *wire.Element) {
	ctx, cancel := storeCtx()
	defer cancel()
	st := s.srv.deps.Roster
	if iq.Get("type") == "get" {
		s.mu.Lock()
		s.roster = true
		s.mu.Unlock()
		if q.Has("ver") {
			cur, pushes, ok, err := st.Since(ctx, s.bare, q.Get("ver"))
			if err != nil {
				s.log.Error("loading roster failed", "err", err)
				s.reply(iqError(iq, "wait", "internal-server-error", ""))
				return
			}
			if ok {
				// XEP-0237 § 2.4: an empty result, then the changes as pushes.
				s.reply(iqResult(iq, nil))
				for _, it := range pushes {
					s.reply(pushElement(s.full, it, cur))
				}
				return
			}
		}
		ver, items, err := st.Items(ctx, s.bare)
		if err != nil {
			s.log.Error("loading roster failed", "err", err)
			s.reply(iqError(iq, "wait", "internal-server-error", ""))
			return
		}
		res := wire.New(nsRoster, "query", "ver", ver)
		for _, it := range items {
			res.Add(itemElement(it))
		}
		s.reply(iqResult(iq, res))
		return
	}
	s.rosterSet(iq, q)
}

// rosterSet handles a roster set: exactly one item, to update or remove
// (RFC 6121 § 2.3, § 2.5).
func (s *Session) rosterSet(iq, q *wire.Element) {
	items := q.Children()
	if len(items) != 1 || items[0].Name.Local != "item" {
		s.reply(iqError(iq, "modify", "bad-request", "a roster set has exactly one item"))
		return
	}
	item := items[0]
	cj, err := jid.Parse(item.Get("jid"))
	if err != nil {
		s.reply(iqError(iq, "modify", "bad-request", "invalid item JID"))
		return
	}
	contact := cj.Bare().String()
	ctx, cancel := storeCtx()
	defer cancel()
	st := s.srv.deps.Roster
	if item.Get("subscription") == "remove" {
		ver, removed, err := st.Remove(ctx, s.bare, contact)
		if err != nil {
			if errors.Is(err, roster.ErrNotFound) {
				s.reply(iqError(iq, "cancel", "item-not-found", ""))
				return
			}
			s.log.Error("removing roster item failed", "err", err)
			s.reply(iqError(iq, "wait", "internal-server-error", ""))
			return
		}
		s.reply(iqResult(iq, nil))
		s.srv.pushRoster(s.bare, roster.Item{JID: contact, Subscription: roster.Remove}, ver)
		unsub, unsubd := removed.CancelOnRemove()
		if unsub {
			s.srv.subscription("unsubscribe", s.bare, contact, nil)
		}
		if unsubd {
			s.srv.subscription("unsubscribed", s.bare, contact, nil)
		}
		return
	}
	it := roster.Item{JID: contact, Name: item.Get("name")}
	for _, g := range item.Children() {
		if g.Name.Local == "group" {
			name := strings.TrimSpace(g.Text())
			if name == "" {
				s.reply(iqError(iq, "modify", "not-acceptable", "empty group name"))
				return
			}
			it.Groups = append(it.Groups, name)
		}
	}
	ver, err := st.Set(ctx, s.bare, it)
	switch {
	case errors.Is(err, roster.ErrTooManyItems):
		s.reply(iqError(iq, "cancel", "not-allowed", "the roster is full"))
		return
	case errors.Is(err, roster.ErrInvalidItem):
		s.reply(iqError(iq, "modify", "not-acceptable", ""))
		return
	case err != nil:
		s.log.Error("storing roster item failed", "err", err)
		s.reply(iqError(iq, "wait", "internal-server-error", ""))
		return
	}
	s.reply(iqResult(iq, nil))
	stored, _, err := st.Get(ctx, s.bare, contact)
	if err != nil {
		stored = it
	}
	s.srv.pushRoster(s.bare, stored, ver)
}

func pushElement(to string, it roster.Item, ver string) *wire.Element {
	q := wire.New(nsRoster, "query")
	if ver != "" {
		q.Set("ver", ver)
	}
	q.Add(itemElement(it))
	return wire.New(wire.NSClient, "iq", "type", "set", "id", "push-"+randomID(6),
		"to", to).Add(q)
}

// pushRoster sends a roster push to every session of owner that asked for
// the roster (RFC 6121 § 2.1.6).
func (srv *Server) pushRoster(owner string, it roster.Item, ver string) {
	for _, sess := range srv.router.sessions(owner) {
		sess.mu.Lock()
		interested := sess.roster
		sess.mu.Unlock()
		if interested {
			sess.send(outItem{b: pushElement(sess.full, it, ver).Bytes(wire.NSClient), stanza: true})
		}
	}
}
