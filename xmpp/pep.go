package xmpp

// Personal eventing (XEP-0163): every account's bare JID is a pubsub
// service (a subset of XEP-0060) on which its owner publishes OMEMO device
// lists and bundles, avatars, nicknames and private data (XEP-0223).
// Nodes are created on first publish, kept in SQLite (pep_store.go), and
// their items go to the owner's resources and to contacts that receive the
// owner's presence and asked for them in their entity capabilities
// (pep_notify.go).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"weak"

	"github.com/twotick/twotick/xmpp/wire"
)

// Namespaces of XEP-0060 beyond nsPubSub (push.go).
const (
	nsPubSubEvent   = nsPubSub + "#event"
	nsPubSubOwner   = nsPubSub + "#owner"
	nsPubSubErrors  = nsPubSub + "#errors"
	nsPublishOpts   = nsPubSub + "#publish-options"
	nsNodeConfig    = nsPubSub + "#node_config"
	pepFeaturesBase = nsPubSub + "#"
)

// pepFeatures are the pubsub features of an account's PEP service
// (XEP-0060 § 10), each of which works as XEP-0060 describes it.
var pepFeatures = []string{
	"access-open", "access-presence", "access-whitelist", "auto-create",
	"auto-subscribe", "config-node", "delete-nodes", "filtered-notifications", "item-ids",
	"last-published", "persistent-items", "publish", "publish-options",
	"retract-items", "retrieve-items",
}

// pepService is the PEP state of one server: the store, the entity
// capabilities learnt from clients, and the disco#info queries waiting for
// an answer (pep_notify.go). It is safe for concurrent use.
type pepService struct {
	store *pepStore
	caps  capsCache
}

// pepServices holds the PEP service of each server, created on first use
// over the server's database. The key is weak and a cleanup removes the
// entry, so a server that is gone takes its service with it.
//
// TODO: a field of Server set up in New would be plainer; server.go
// belongs to another change, and this keeps PEP to its own files.
var pepServices struct {
	mu sync.Mutex
	m  map[weak.Pointer[Server]]*pepService
}

// pep returns the server's PEP service, or nil when the server has no
// database for it (Deps.DB nil) or its tables could not be created.
func (srv *Server) pep() *pepService {
	if srv.deps.DB == nil {
		return nil
	}
	wp := weak.Make(srv)
	pepServices.mu.Lock()
	defer pepServices.mu.Unlock()
	if ps, ok := pepServices.m[wp]; ok {
		return ps
	}
	ctx, cancel := storeCtx()
	defer cancel()
	st, err := openPEPStore(ctx, srv.deps.DB)
	if err != nil {
		srv.log.Error("pep disabled", "err", err)
		return nil
	}
	ps := &pepService{store: st}
	if pepServices.m == nil {
		pepServices.m = map[weak.Pointer[Server]]*pepService{}
	}
	pepServices.m[wp] = ps
	runtime.AddCleanup(srv, func(wp weak.Pointer[Server]) {
		pepServices.mu.Lock()
		delete(pepServices.m, wp)
		pepServices.mu.Unlock()
	}, wp)
	return ps
}

// pepOptions are the preconditions of a publish (XEP-0060 § 7.1.5): nil
// fields were not given.
type pepOptions struct {
	access   *string
	maxItems *int
	persist  *bool
	sendLast *bool
}

// apply returns c with the given options set.
func (o pepOptions) apply(c pepConfig) pepConfig {
	if o.access != nil {
		c.access = *o.access
	}
	if o.maxItems != nil {
		c.maxItems = *o.maxItems
	}
	if o.persist != nil {
		c.persist = *o.persist
	}
	if o.sendLast != nil {
		c.sendLast = *o.sendLast
	}
	return c
}

// met reports whether an existing node's configuration c meets o.
func (o pepOptions) met(c pepConfig) bool {
	return o.apply(c) == c
}

// errBadOption is a publish-options field the service cannot honour.
type errBadOption struct{ field, value string }

func (e *errBadOption) Error() string {
	return "unsupported publish option " + e.field + "=" + e.value
}

// parsePublishOptions reads the data form of <publish-options/>. Unknown
// fields and values the service cannot give a node are refused, as
// XEP-0060 § 7.1.5 requires.
func parsePublishOptions(po *wire.Element) (pepOptions, error) {
	if po == nil {
		return pepOptions{}, nil
	}
	return parseNodeForm(po.Child(nsDataForm, "x"), nsPublishOpts)
}

// parseNodeForm reads the node configuration fields of a data form whose
// FORM_TYPE must be formType: publish-options or a node configuration
// (XEP-0060 § 8.2.4). A nil form gives no options.
func parseNodeForm(x *wire.Element, formType string) (pepOptions, error) {
	var o pepOptions
	if x == nil {
		return o, nil
	}
	for _, f := range x.Children() {
		if f.Name.Space != nsDataForm || f.Name.Local != "field" {
			continue
		}
		name, v := f.Get("var"), f.ChildText(nsDataForm, "value")
		bad := &errBadOption{name, v}
		switch name {
		case "FORM_TYPE":
			if v != formType {
				return o, bad
			}
		case "pubsub#access_model":
			if v != pepOpen && v != pepPresence && v != pepWhitelist {
				return o, bad
			}
			o.access = &v
		case "pubsub#max_items":
			n, err := strconv.Atoi(v)
			if v == "max" {
				n, err = pepMaxItems, nil
			}
			if err != nil || n < 1 || n > pepMaxItems {
				return o, bad
			}
			o.maxItems = &n
		case "pubsub#persist_items", "pubsub#send_last_published_item":
			b, ok := formBool(v)
			if name == "pubsub#send_last_published_item" {
				b, ok = v != "never", v == "never" || v == "on_sub" ||
					v == "on_sub_and_presence"
			}
			if !ok {
				return o, bad
			}
			if name == "pubsub#persist_items" {
				o.persist = &b
			} else {
				o.sendLast = &b
			}
		default:
			return o, bad
		}
	}
	return o, nil
}

// formBool reads an XEP-0004 boolean.
func formBool(v string) (b, ok bool) {
	switch v {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

// pepError is an IQ error with a pubsub-specific condition (XEP-0060 § 7,
// § 6.5.9); pubsubCond may be empty.
func pepError(iq *wire.Element, typ, cond, pubsubCond, text string) *wire.Element {
	ee := wire.New(wire.NSClient, "error", "type", typ).Add(wire.New(wire.NSStanzas, cond))
	if text != "" {
		ee.Add(wire.New(wire.NSStanzas, "text").Add(text))
	}
	if pubsubCond != "" {
		ee.Add(wire.New(nsPubSubErrors, pubsubCond))
	}
	return iqErrorWith(iq, ee)
}

// pepIQ answers a pubsub IQ to owner's bare JID: from owner itself (the
// session's user), or from anyone else, who may only retrieve items.
func (s *Session) pepIQ(iq, p *wire.Element, owner string) {
	ps := s.srv.pep()
	if ps == nil {
		s.reply(iqError(iq, "cancel", "service-unavailable", ""))
		return
	}
	// The request is the first child other than publish-options, which
	// accompanies <publish/> (XEP-0060 § 7.1.5) in either order.
	var op *wire.Element
	for _, c := range p.Children() {
		if c.Name.Local != "publish-options" {
			op = c
			break
		}
	}
	if op == nil {
		s.reply(iqError(iq, "modify", "bad-request", "empty pubsub request"))
		return
	}
	set := iq.Get("type") == "set"
	switch {
	case p.Name.Space == nsPubSub && op.Name.Local == "items" && !set:
		s.pepItems(ps, iq, op, owner)
	case owner != s.bare:
		s.reply(iqError(iq, "auth", "forbidden", "only the owner changes or configures its nodes"))
	case p.Name.Space == nsPubSub && op.Name.Local == "publish" && set:
		s.pepPublish(ps, iq, op, p.Child(nsPubSub, "publish-options"))
	case p.Name.Space == nsPubSub && op.Name.Local == "retract" && set:
		s.pepRetract(ps, iq, op)
	case p.Name.Space == nsPubSubOwner && op.Name.Local == "delete" && set:
		s.pepDelete(ps, iq, op)
	case p.Name.Space == nsPubSubOwner && op.Name.Local == "configure":
		s.pepConfigure(ps, iq, op, set) // pep_config.go
	default:
		s.reply(pepError(iq, "cancel", "feature-not-implemented", "unsupported",
			"this pubsub request is not supported by PEP here"))
	}
}

// pepPublish handles <publish/> (XEP-0060 § 7.1) by the owner.
func (s *Session) pepPublish(ps *pepService, iq, pub, po *wire.Element) {
	node := pub.Get("node")
	if node == "" || len(node) > pepMaxNodeName {
		s.reply(pepError(iq, "modify", "bad-request", "nodeid-required", ""))
		return
	}
	items := pub.Children()
	if len(items) != 1 || items[0].Name.Space != nsPubSub || items[0].Name.Local != "item" {
		s.reply(pepError(iq, "modify", "bad-request", "item-required",
			"publish one item at a time"))
		return
	}
	payloads := items[0].Children()
	if len(payloads) != 1 {
		s.reply(pepError(iq, "modify", "bad-request", "invalid-payload",
			"an item carries exactly one payload element"))
		return
	}
	id := items[0].Get("id")
	if id == "" {
		id = randomItemID()
	}
	if len(id) > pepMaxItemID {
		s.reply(iqError(iq, "modify", "not-acceptable", "item id too long"))
		return
	}
	payload := payloads[0].Bytes("")
	if len(payload) > pepMaxItemBytes {
		s.reply(pepError(iq, "modify", "not-acceptable", "payload-too-big",
			"an item payload is at most "+strconv.Itoa(pepMaxItemBytes)+" bytes"))
		return
	}
	opts, err := parsePublishOptions(po)
	if err != nil {
		s.reply(pepError(iq, "cancel", "conflict", "precondition-not-met", err.Error()))
		return
	}

	ctx, cancel := storeCtx()
	defer cancel()
	it := pepItem{node: node, id: id, payload: payload}
	cfg, err := ps.store.publish(ctx, s.bare, opts, it)
	if err != nil {
		s.reply(s.pepStoreError(iq, err))
		return
	}
	res := wire.New(nsPubSub, "pubsub").Add(wire.New(nsPubSub, "publish", "node", node).
		Add(wire.New(nsPubSub, "item", "id", id)))
	s.reply(iqResult(iq, res))
	s.srv.pepNotify(s.jid, cfg, it, payloads[0])
}

// pepStoreError is the error reply for a failed store operation.
func (s *Session) pepStoreError(iq *wire.Element, err error) *wire.Element {
	switch {
	case errors.Is(err, errPEPPrecondition):
		return pepError(iq, "cancel", "conflict", "precondition-not-met",
			"the node's configuration differs from the publish-options")
	case errors.Is(err, errPEPTooManyNodes):
		return pepError(iq, "cancel", "policy-violation", "max-nodes-exceeded",
			"an account has at most "+strconv.Itoa(pepMaxNodes)+" nodes")
	case errors.Is(err, errPEPQuota):
		return pepError(iq, "cancel", "policy-violation", "",
			"an account keeps at most "+strconv.Itoa(pepMaxAccountBytes)+" bytes of items")
	case errors.Is(err, errPEPNoNode), errors.Is(err, errPEPNoItem):
		return iqError(iq, "cancel", "item-not-found", "")
	}
	s.log.Error("pep storage failed", "err", err)
	return iqError(iq, "wait", "internal-server-error", "")
}

// randomItemID is an item id for a publish that gave none (XEP-0060
// § 7.1.1): unique without coordination.
func randomItemID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// pepItems handles <items/> (XEP-0060 § 6.5): by the owner, or by anyone
// the node's access model lets in.
func (s *Session) pepItems(ps *pepService, iq, op *wire.Element, owner string) {
	node := op.Get("node")
	if node == "" {
		s.reply(pepError(iq, "modify", "bad-request", "nodeid-required", ""))
		return
	}
	max := 0
	if v := op.Get("max_items"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.reply(iqError(iq, "modify", "bad-request", "max_items is a positive number"))
			return
		}
		max = n
	}
	var ids []string
	for _, it := range op.Children() {
		if it.Name.Space == nsPubSub && it.Name.Local == "item" && it.Get("id") != "" {
			ids = append(ids, it.Get("id"))
		}
	}

	ctx, cancel := storeCtx()
	defer cancel()
	cfg, ok, err := ps.store.node(ctx, owner, node)
	if err != nil {
		s.reply(s.pepStoreError(iq, err))
		return
	}
	if !ok {
		s.reply(iqError(iq, "cancel", "item-not-found", ""))
		return
	}
	if e := s.pepAccess(ctx, iq, owner, cfg); e != nil {
		s.reply(e)
		return
	}
	items, err := ps.store.items(ctx, owner, node, max, ids)
	if err != nil {
		s.reply(s.pepStoreError(iq, err))
		return
	}
	if len(ids) > 0 && len(items) == 0 {
		s.reply(iqError(iq, "cancel", "item-not-found", ""))
		return
	}
	el := wire.New(nsPubSub, "items", "node", node)
	for _, it := range items {
		if x := pepItemElement(nsPubSub, it); x != nil {
			el.Add(x)
		}
	}
	s.reply(iqResult(iq, wire.New(nsPubSub, "pubsub").Add(el)))
}

// pepAccess returns the error for a retrieval the node's access model
// refuses (XEP-0060 § 6.5.9), or nil when the session's user may read it.
func (s *Session) pepAccess(ctx context.Context, iq *wire.Element, owner string,
	cfg pepConfig) *wire.Element {
	if owner == s.bare || cfg.access == pepOpen {
		return nil
	}
	if cfg.access == pepPresence {
		it, ok, err := s.srv.deps.Roster.Get(ctx, owner, s.bare)
		if err != nil {
			return s.pepStoreError(iq, err)
		}
		if ok && (it.Subscription == "from" || it.Subscription == "both") {
			return nil
		}
		return pepError(iq, "auth", "not-authorized", "presence-subscription-required", "")
	}
	return pepError(iq, "cancel", "not-allowed", "closed-node", "")
}

// pepItemElement rebuilds a stored item as <item/> in namespace ns
// (pubsub for retrieval, pubsub#event for notifications). A payload that
// does not read back, which only a damaged database holds, gives nil.
func pepItemElement(ns string, it pepItem) *wire.Element {
	rd := wire.NewReader(bytes.NewReader(it.payload),
		wire.Limits{MaxBytes: len(it.payload) + 1}, len(it.payload)+1)
	payload, err := rd.Next()
	if err != nil {
		return nil
	}
	return wire.New(ns, "item", "id", it.id).Add(payload)
}

// pepRetract handles <retract/> (XEP-0060 § 7.2) by the owner.
func (s *Session) pepRetract(ps *pepService, iq, op *wire.Element) {
	node, it := op.Get("node"), op.Child(nsPubSub, "item")
	if node == "" {
		s.reply(pepError(iq, "modify", "bad-request", "nodeid-required", ""))
		return
	}
	if it == nil || it.Get("id") == "" {
		s.reply(pepError(iq, "modify", "bad-request", "item-required", ""))
		return
	}
	ctx, cancel := storeCtx()
	defer cancel()
	if err := ps.store.retract(ctx, s.bare, node, it.Get("id")); err != nil {
		s.reply(s.pepStoreError(iq, err))
		return
	}
	s.reply(iqResult(iq, nil))
}

// pepDelete handles <delete/> (XEP-0060 § 8.4) by the owner.
func (s *Session) pepDelete(ps *pepService, iq, op *wire.Element) {
	node := op.Get("node")
	if node == "" {
		s.reply(pepError(iq, "modify", "bad-request", "nodeid-required", ""))
		return
	}
	ctx, cancel := storeCtx()
	defer cancel()
	if err := ps.store.deleteNode(ctx, s.bare, node); err != nil {
		s.reply(s.pepStoreError(iq, err))
		return
	}
	s.reply(iqResult(iq, nil))
}

// forgetPEP removes the PEP nodes of a deleted account (bare JID).
//
// TODO: ForgetAccount (blocking.go) should call this, so that a recycled
// phone number does not inherit the old owner's OMEMO keys and avatar;
// blocking.go belongs to another change.
func (srv *Server) forgetPEP(ctx context.Context, bare string) error {
	ps := srv.pep()
	if ps == nil {
		return nil
	}
	return ps.store.forget(ctx, bare)
}
