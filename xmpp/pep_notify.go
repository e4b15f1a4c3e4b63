package xmpp

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/twotick/twotick/xmpp/wire"
)

// Bounds of the entity capabilities the server learns (XEP-0115 § 8.4).
const (
	// capsCacheSize is how many verification strings are remembered.
	capsCacheSize = 4096
	// capsMaxPending is how many disco#info queries may wait at once.
	capsMaxPending = 1024
	// capsQueryTimeout is how long a query waits before it is forgotten.
	capsQueryTimeout = time.Minute
)

// capsCache maps verified XEP-0115 verification strings to the features
// they stand for, and tracks the disco#info queries sent to learn new ones.
type capsCache struct {
	mu      sync.Mutex                 // guards the fields below
	known   map[string]map[string]bool // "hash ver" -> features
	pending map[string]*capsQuery      // IQ id -> query
	seq     uint64                     // numbers query ids
}

// capsQuery is one disco#info query to a client whose caps were unknown.
type capsQuery struct {
	sess    *Session
	key     string // "hash ver"
	ver     string
	hash    string
	node    string // node#ver, as asked
	started time.Time
}

// features returns the features of a verified key, or nil.
func (c *capsCache) features(key string) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.known[key]
}

// remember caches a verified key, dropping an arbitrary one when full.
func (c *capsCache) remember(key string, f map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known == nil {
		c.known = map[string]map[string]bool{}
	}
	if len(c.known) >= capsCacheSize {
		for k := range c.known {
			delete(c.known, k)
			break
		}
	}
	c.known[key] = f
}

// ask registers a query and returns its id, or "" when too many wait.
func (c *capsCache) ask(q *capsQuery) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[string]*capsQuery{}
	}
	for id, old := range c.pending {
		if q.started.Sub(old.started) > capsQueryTimeout {
			delete(c.pending, id)
		}
	}
	if len(c.pending) >= capsMaxPending {
		return ""
	}
	c.seq++
	id := "caps" + strconv.FormatUint(c.seq, 10)
	c.pending[id] = q
	return id
}

// take removes and returns the query with id, or nil.
func (c *capsCache) take(id string) *capsQuery {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.pending[id]
	delete(c.pending, id)
	return q
}

// presenceCaps returns the XEP-0115 <c/> of a presence: its node, ver and
// hash, or empty strings when it has none or uses the legacy form.
func presenceCaps(p *wire.Element) (node, ver, hashName string) {
	if p == nil {
		return "", "", ""
	}
	c := p.Child(nsCaps, "c")
	if c == nil || c.Get("hash") == "" {
		return "", "", ""
	}
	return c.Get("node"), c.Get("ver"), c.Get("hash")
}

// sessionFeatures returns the verified features of the session's current
// presence, or nil when they are unknown.
func (ps *pepService) sessionFeatures(sess *Session) map[string]bool {
	sess.mu.Lock()
	p := sess.presence
	avail := sess.avail && !sess.ended
	sess.mu.Unlock()
	if !avail {
		return nil
	}
	_, ver, h := presenceCaps(p)
	if ver == "" {
		return nil
	}
	return ps.caps.features(h + " " + ver)
}

// pepAvailable runs after the session broadcast available presence p
// (prev is the one before, nil if none): when the client came online or
// changed its capabilities, it gets the last item of the nodes it wants,
// after a disco#info query when its capabilities are new (XEP-0163 § 4.3.2,
// XEP-0115 § 6.2).
func (s *Session) pepAvailable(p, prev *wire.Element) {
	node, ver, h := presenceCaps(p)
	if ver == "" {
		return
	}
	if _, pver, ph := presenceCaps(prev); prev != nil && pver == ver && ph == h {
		return
	}
	ps := s.srv.pep()
	if ps == nil {
		return
	}
	key := h + " " + ver
	if ps.caps.features(key) != nil {
		s.srv.pepSendLast(ps, s)
		return
	}
	if h != "sha-1" && h != "sha-256" {
		return // a hash the server cannot verify: no notifications
	}
	q := &capsQuery{sess: s, key: key, ver: ver, hash: h, node: node + "#" + ver,
		started: time.Now()}
	id := ps.caps.ask(q)
	if id == "" {
		s.log.Debug("too many caps queries pending; not asking")
		return
	}
	s.reply(wire.New(wire.NSClient, "iq", "type", "get", "id", id, "from", s.srv.domain,
		"to", s.full).Add(wire.New(nsDiscoInfo, "query", "node", q.node)))
}

// pepCapsAnswer takes the client's answer to a caps query: a result whose
// hash matches the ver is remembered, and the client gets the last items
// it asked for. Other answers are dropped.
func (s *Session) pepCapsAnswer(iq *wire.Element) {
	ps := s.srv.pep()
	if ps == nil {
		return
	}
	q := ps.caps.take(iq.Get("id"))
	if q == nil || q.sess != s || iq.Get("type") != "result" {
		return
	}
	query := iq.Child(nsDiscoInfo, "query")
	if query == nil || capsHash(q.hash, query) != q.ver {
		s.log.Debug("caps answer does not match its ver; ignored")
		return
	}
	f := map[string]bool{}
	for _, el := range query.Children() {
		if el.Name.Space == nsDiscoInfo && el.Name.Local == "feature" {
			f[el.Get("var")] = true
		}
	}
	ps.caps.remember(q.key, f)
	s.srv.pepSendLast(ps, s)
}

// capsHash computes the XEP-0115 § 5.1 verification string of a disco#info
// result with the named hash function; "" for an unknown function or a
// result that § 5.4 calls ill-formed (an identity, a feature or a form's
// FORM_TYPE twice), which then matches no ver. Everything is sorted by its
// own octets before the "<" separators are added: "shim" comes before
// "shim#SubID", although "shim<" would not.
func capsHash(name string, q *wire.Element) string {
	var h hash.Hash
	switch name {
	case "sha-1":
		h = sha1.New()
	case "sha-256":
		h = sha256.New()
	default:
		return ""
	}
	var ids [][4]string
	var feats []string
	var forms [][2]string // FORM_TYPE, the rest of the form's string
	for _, el := range q.Children() {
		switch {
		case el.Name.Space == nsDiscoInfo && el.Name.Local == "identity":
			ids = append(ids, [4]string{el.Get("category"), el.Get("type"), el.Lang(),
				el.Get("name")})
		case el.Name.Space == nsDiscoInfo && el.Name.Local == "feature":
			feats = append(feats, el.Get("var"))
		case el.Name.Space == nsDataForm && el.Name.Local == "x":
			f, ok, bad := capsForm(el)
			if bad {
				return ""
			}
			if ok {
				forms = append(forms, f)
			}
		}
	}
	slices.SortFunc(ids, func(a, b [4]string) int { return slices.Compare(a[:], b[:]) })
	sort.Strings(feats)
	slices.SortFunc(forms, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	if sortedDup(ids, func(a, b [4]string) bool { return a == b }) ||
		sortedDup(feats, func(a, b string) bool { return a == b }) ||
		sortedDup(forms, func(a, b [2]string) bool { return a[0] == b[0] }) {
		return ""
	}
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(id[0] + "/" + id[1] + "/" + id[2] + "/" + id[3] + "<")
	}
	for _, f := range feats {
		sb.WriteString(f + "<")
	}
	for _, f := range forms {
		sb.WriteString(f[0] + "<" + f[1])
	}
	h.Write([]byte(sb.String()))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// sortedDup reports whether a sorted slice holds two equal neighbours.
func sortedDup[T any](s []T, eq func(a, b T) bool) bool {
	for i := 1; i < len(s); i++ {
		if eq(s[i-1], s[i]) {
			return true
		}
	}
	return false
}

// capsForm returns the FORM_TYPE of one extended form and the rest of the
// part of the verification string it gives (XEP-0115 § 5.4, step 3.6):
// its fields sorted by var, each with its values sorted. ok is false for
// a form to leave out (no FORM_TYPE, or one not of type hidden); bad is
// true for a FORM_TYPE with different values, which makes the whole
// result ill-formed.
func capsForm(x *wire.Element) (f [2]string, ok, bad bool) {
	var formType []string
	found := false
	type field struct {
		name string
		vals []string
	}
	var fields []field
	for _, fe := range x.Children() {
		if fe.Name.Space != nsDataForm || fe.Name.Local != "field" {
			continue
		}
		var vals []string
		for _, v := range fe.Children() {
			if v.Name.Space == nsDataForm && v.Name.Local == "value" {
				vals = append(vals, v.Text())
			}
		}
		if fe.Get("var") == "FORM_TYPE" {
			if fe.Get("type") != "hidden" {
				return f, false, false
			}
			found = true
			formType = slices.Compact(slices.Sorted(slices.Values(vals)))
			continue
		}
		sort.Strings(vals)
		fields = append(fields, field{fe.Get("var"), vals})
	}
	switch {
	case !found || len(formType) == 0:
		return f, false, false
	case len(formType) > 1:
		return f, false, true
	}
	slices.SortFunc(fields, func(a, b field) int { return strings.Compare(a.name, b.name) })
	var sb strings.Builder
	for _, fl := range fields {
		sb.WriteString(fl.name + "<")
		for _, v := range fl.vals {
			sb.WriteString(v + "<")
		}
	}
	return [2]string{formType[0], sb.String()}, true, false
}

// wantsNotify reports whether features ask for notifications of node
// (XEP-0163 § 4.3.3: the "+notify" feature).
func wantsNotify(features map[string]bool, node string) bool {
	return features[node+"+notify"]
}

// pepEvent is the headline message carrying item from owner to the full
// JID to (XEP-0163 § 4.3).
func pepEvent(owner, to, node string, item *wire.Element) []byte {
	return wire.New(wire.NSClient, "message", "type", "headline", "from", owner, "to", to,
		"id", randomItemID()).
		Add(wire.New(nsPubSubEvent, "event").Add(
			wire.New(nsPubSubEvent, "items", "node", node).Add(item))).Bytes(wire.NSClient)
}

// pepNotify sends a newly published item to the owner's available
// resources and, unless the node is the owner's alone, to the available
// resources of contacts that receive the owner's presence, ask for the
// node with +notify and neither block nor are blocked by the owner.
func (srv *Server) pepNotify(owner jid.JID, cfg pepConfig, it pepItem, payload *wire.Element) {
	ps := srv.pep()
	if ps == nil {
		return
	}
	bare := owner.Bare().String()
	item := wire.New(nsPubSubEvent, "item", "id", it.id).Add(payload)
	// Contacts first: once the owner has the event, every contact's copy
	// is on its way, which is what the tests rely on.
	defer func() {
		for _, sess := range srv.router.available(bare) {
			sess.send(outItem{b: pepEvent(bare, sess.full, it.node, item), stanza: true})
		}
	}()
	if cfg.access == pepWhitelist {
		return
	}
	ctx, cancel := storeCtx()
	subs, err := srv.deps.Roster.Subscribers(ctx, bare)
	cancel()
	if err != nil {
		srv.log.Error("loading subscribers for pep failed", "err", err, "jid", bare)
		return
	}
	for _, c := range subs {
		for _, sess := range srv.router.available(c) {
			if !wantsNotify(ps.sessionFeatures(sess), it.node) ||
				srv.blockedBetween(owner, sess.jid) {
				continue
			}
			sess.send(outItem{b: pepEvent(bare, sess.full, it.node, item), stanza: true})
		}
	}
}

// pepSendLast sends sess the last item of each node it asks for with
// +notify, of its own account and of every account whose presence it
// receives (XEP-0163 § 4.3.2, "last-published").
func (srv *Server) pepSendLast(ps *pepService, sess *Session) {
	features := ps.sessionFeatures(sess)
	if len(features) == 0 {
		return
	}
	ctx, cancel := storeCtx()
	owners, err := srv.deps.Roster.Subscriptions(ctx, sess.bare)
	cancel()
	if err != nil {
		srv.log.Error("loading subscriptions for pep failed", "err", err, "jid", sess.bare)
		return
	}
	for _, owner := range append(owners, sess.bare) {
		srv.pepSendLastOf(ps, owner, sess, features)
	}
}

// pepSendLastOf sends sess the last item of each of owner's nodes that
// features ask for, unless one blocks the other.
func (srv *Server) pepSendLastOf(ps *pepService, owner string, sess *Session,
	features map[string]bool) {
	oj, err := jid.Parse(owner)
	if err != nil || srv.blockedBetween(oj, sess.jid) {
		return
	}
	ctx, cancel := storeCtx()
	last, err := ps.store.lastItems(ctx, owner)
	cancel()
	if err != nil {
		srv.log.Error("loading last pep items failed", "err", err, "jid", owner)
		return
	}
	for _, l := range last {
		if !l.cfg.sendLast || !wantsNotify(features, l.node) ||
			(l.cfg.access == pepWhitelist && owner != sess.bare) {
			continue
		}
		if item := pepItemElement(nsPubSubEvent, l.pepItem); item != nil {
			sess.send(outItem{b: pepEvent(owner, sess.full, l.node, item), stanza: true})
		}
	}
}

// pepSubscribed runs after owner approved contact's subscription to its
// presence: the contact's resources get the last items they ask for
// (XEP-0163 § 4.3.2), as they would at their next login.
func (srv *Server) pepSubscribed(owner, contact string) {
	ps := srv.pep()
	if ps == nil {
		return
	}
	ctx, cancel := storeCtx()
	it, ok, err := srv.deps.Roster.Get(ctx, owner, contact)
	cancel()
	if err != nil || !ok || (it.Subscription != "from" && it.Subscription != "both") {
		return
	}
	for _, sess := range srv.router.available(contact) {
		if f := ps.sessionFeatures(sess); len(f) > 0 {
			srv.pepSendLastOf(ps, owner, sess, f)
		}
	}
}
