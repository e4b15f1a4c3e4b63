package xmpp

import (
	"strconv"

	"github.com/twotick/twotick/xmpp/wire"
)

// pepConfigure handles <configure/> by the owner (XEP-0060 § 8.2): get
// returns the node's configuration form, set changes it. Clients such as
// Conversations reconfigure a node this way when a publish fails on
// <precondition-not-met/>, and then publish again.
func (s *Session) pepConfigure(ps *pepService, iq, op *wire.Element, set bool) {
	node := op.Get("node")
	if node == "" {
		s.reply(pepError(iq, "modify", "bad-request", "nodeid-required", ""))
		return
	}
	ctx, cancel := storeCtx()
	defer cancel()
	if !set {
		cfg, ok, err := ps.store.node(ctx, s.bare, node)
		switch {
		case err != nil:
			s.reply(s.pepStoreError(iq, err))
		case !ok:
			s.reply(iqError(iq, "cancel", "item-not-found", ""))
		default:
			s.reply(iqResult(iq, wire.New(nsPubSubOwner, "pubsub").Add(
				wire.New(nsPubSubOwner, "configure", "node", node).Add(nodeConfigForm(cfg)))))
		}
		return
	}
	x := op.Child(nsDataForm, "x")
	if x != nil && x.Get("type") == "cancel" {
		s.reply(iqResult(iq, nil))
		return
	}
	opts, err := parseNodeForm(x, nsNodeConfig)
	if err != nil {
		s.reply(iqError(iq, "modify", "not-acceptable", err.Error()))
		return
	}
	if err := ps.store.configure(ctx, s.bare, node, opts); err != nil {
		s.reply(s.pepStoreError(iq, err))
		return
	}
	s.reply(iqResult(iq, nil))
}

// nodeConfigForm is the configuration form of a node (XEP-0060 § 8.2.3):
// the fields this service supports, with their current values.
func nodeConfigForm(cfg pepConfig) *wire.Element {
	field := func(name, typ, value string, options ...string) *wire.Element {
		f := wire.New(nsDataForm, "field", "var", name, "type", typ)
		for _, o := range options {
			f.Add(wire.New(nsDataForm, "option").Add(wire.New(nsDataForm, "value").Add(o)))
		}
		return f.Add(wire.New(nsDataForm, "value").Add(value))
	}
	sendLast := "never"
	if cfg.sendLast {
		sendLast = "on_sub_and_presence"
	}
	return wire.New(nsDataForm, "x", "type", "form").Add(
		field("FORM_TYPE", "hidden", nsNodeConfig),
		field("pubsub#access_model", "list-single", cfg.access,
			pepOpen, pepPresence, pepWhitelist),
		field("pubsub#max_items", "text-single", strconv.Itoa(cfg.maxItems)),
		field("pubsub#persist_items", "boolean", strconv.FormatBool(cfg.persist)),
		field("pubsub#send_last_published_item", "list-single", sendLast,
			"never", "on_sub", "on_sub_and_presence"),
	)
}
