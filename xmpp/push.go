package xmpp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/twotick/twotick/xmpp/wire"
)

// Namespaces of XEP-0357 push notifications.
const (
	nsPush       = "urn:xmpp:push:0"
	nsPubSub     = "http://jabber.org/protocol/pubsub"
	nsDataForm   = "jabber:x:data"
	nsPushSumary = "urn:xmpp:push:summary"
)

// Bounds on what a client may register.
const (
	maxPushNode    = 1023
	maxPushOptions = 4096
)

// maxPendingPush bounds the publishes waiting for the app server's answer.
const maxPendingPush = 100000

// pushService keeps the push registrations of accounts (XEP-0357 § 5) in
// SQLite and sends notifications, coalesced per account, to app servers
// reached through components.
type pushService struct {
	srv *Server
	db  *sql.DB

	mu      sync.Mutex // guards the fields below
	state   map[string]*pushState
	pending map[string]pushKey // IQ id -> registration waiting for its answer
}

type pushKey struct{ owner, jid, node string }

// pushState coalesces notifications for one account.
type pushState struct {
	last  time.Time
	timer *time.Timer
	from  string // last sender
	body  string // last body
}

func newPushService(srv *Server, db *sql.DB) (*pushService, error) {
	_, err := db.Exec(`CREATE TABLE IF NOT EXISTS push_registrations (
		owner    TEXT NOT NULL,
		jid      TEXT NOT NULL,
		node     TEXT NOT NULL,
		options  TEXT NOT NULL DEFAULT '',
		failures INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (owner, jid, node))`)
	if err != nil {
		return nil, fmt.Errorf("creating push tables: %w", err)
	}
	return &pushService{srv: srv, db: db, state: map[string]*pushState{},
		pending: map[string]pushKey{}}, nil
}

// pushIQ handles enable and disable (XEP-0357 § 5, § 6) sent to the user's
// own bare JID.
func (s *Session) pushIQ(iq, p *wire.Element) {
	ps := s.srv.push
	if ps == nil || iq.Get("type") != "set" {
		s.reply(iqError(iq, "cancel", "service-unavailable", ""))
		return
	}
	j, err := jid.Parse(p.Get("jid"))
	if err != nil || p.Get("jid") == "" {
		s.reply(iqError(iq, "modify", "bad-request", "a push service jid is required"))
		return
	}
	node := p.Get("node")
	ctx, cancel := storeCtx()
	defer cancel()
	switch p.Name.Local {
	case "enable":
		if node == "" || len(node) > maxPushNode {
			s.reply(iqError(iq, "modify", "bad-request", "a node of at most 1023 bytes is required"))
			return
		}
		var opts string
		if x := p.Child(nsDataForm, "x"); x != nil {
			opts = string(x.Bytes(""))
			if len(opts) > maxPushOptions {
				s.reply(iqError(iq, "modify", "not-acceptable", "publish options too large"))
				return
			}
		}
		if err := ps.enable(ctx, s.bare, j.String(), node, opts); err != nil {
			if errors.Is(err, errTooManyPush) {
				s.reply(iqError(iq, "cancel", "not-allowed", "too many push registrations"))
				return
			}
			s.log.Error("storing push registration failed", "err", err)
			s.reply(iqError(iq, "wait", "internal-server-error", ""))
			return
		}
		s.mu.Lock()
		s.pushOn = true
		s.mu.Unlock()
	case "disable":
		if _, err := ps.db.ExecContext(ctx, `DELETE FROM push_registrations
			WHERE owner = ? AND jid = ? AND (? = '' OR node = ?)`,
			s.bare, j.String(), node, node); err != nil {
			s.log.Error("removing push registration failed", "err", err)
			s.reply(iqError(iq, "wait", "internal-server-error", ""))
			return
		}
		// With no device left to wake, the session's resumption window
		// is the ordinary one again.
		var left int
		if err := ps.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM push_registrations
			WHERE owner = ?`, s.bare).Scan(&left); err == nil && left == 0 {
			s.mu.Lock()
			s.pushOn = false
			s.mu.Unlock()
		}
	default:
		s.reply(iqError(iq, "modify", "bad-request", ""))
		return
	}
	s.reply(iqResult(iq, nil))
}

var errTooManyPush = errors.New("too many push registrations")

func (ps *pushService) enable(ctx context.Context, owner, j, node, opts string) error {
	tx, err := ps.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM push_registrations
		WHERE owner = ? AND NOT (jid = ? AND node = ?)`, owner, j, node).Scan(&n); err != nil {
		return err
	}
	if n >= ps.srv.cfg.Push.MaxPerAccount {
		return errTooManyPush
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO push_registrations (owner, jid, node, options)
		VALUES (?, ?, ?, ?) ON CONFLICT (owner, jid, node)
		DO UPDATE SET options = excluded.options, failures = 0`, owner, j, node, opts); err != nil {
		return err
	}
	return tx.Commit()
}

// forget drops every push registration of owner and its pending
// notification, for a deleted account.
func (ps *pushService) forget(ctx context.Context, owner string) error {
	ps.mu.Lock()
	if st := ps.state[owner]; st != nil && st.timer != nil {
		st.timer.Stop()
	}
	delete(ps.state, owner)
	ps.mu.Unlock()
	if _, err := ps.db.ExecContext(ctx, `DELETE FROM push_registrations WHERE owner = ?`,
		owner); err != nil {
		return fmt.Errorf("deleting push registrations of %s: %w", owner, err)
	}
	return nil
}

// notifyPush is called after a message for owner was queued. Devices are
// woken when the account has no connected session, or a session waiting to
// be resumed (XEP-0357 § 5). Notifications are coalesced: at most one per
// push.coalesce per account.
func (srv *Server) notifyPush(owner, sender string, msg *wire.Element) {
	ps := srv.push
	if ps == nil {
		return
	}
	wake := true
	for _, sess := range srv.router.sessions(owner) {
		sess.mu.Lock()
		connected := sess.c != nil
		sess.mu.Unlock()
		if connected {
			wake = false
		}
	}
	if !wake {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	st := ps.state[owner]
	if st == nil {
		st = &pushState{}
		ps.state[owner] = st
	}
	st.from = sender
	st.body = msg.ChildText(wire.NSClient, "body")
	if st.timer != nil {
		return // a notification is already due; it will count this one
	}
	wait := time.Until(st.last.Add(srv.cfg.Push.Coalesce.Duration))
	if wait < 0 {
		wait = 0
	}
	st.timer = time.AfterFunc(wait, func() { ps.fire(owner) })
}

// fire publishes one notification to each of owner's app servers.
func (ps *pushService) fire(owner string) {
	ps.mu.Lock()
	st := ps.state[owner]
	if st == nil {
		ps.mu.Unlock()
		return // the account was deleted while the notification was due
	}
	from, body := st.from, st.body
	st.timer = nil
	st.last = time.Now()
	// Once the window has passed, the state says nothing a fresh one
	// would not: drop it, so that the map holds only accounts notified
	// lately rather than every account ever notified.
	time.AfterFunc(ps.srv.cfg.Push.Coalesce.Duration, func() {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		if ps.state[owner] == st && st.timer == nil &&
			time.Since(st.last) >= ps.srv.cfg.Push.Coalesce.Duration {
			delete(ps.state, owner)
		}
	})
	ps.mu.Unlock()

	ctx, cancel := storeCtx()
	defer cancel()
	count, err := ps.srv.deps.Queue.Count(ctx, owner)
	if err != nil {
		count = 1
	}
	rows, err := ps.db.QueryContext(ctx, `SELECT jid, node, options FROM push_registrations
		WHERE owner = ?`, owner)
	if err != nil {
		ps.srv.log.Error("loading push registrations failed", "err", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var k pushKey
		var opts string
		if err := rows.Scan(&k.jid, &k.node, &opts); err != nil {
			return
		}
		k.owner = owner
		ps.publish(k, opts, count, from, body)
	}
}

// publish sends the XEP-0357 § 5 notification. Body and sender are only
// included when the administrator allows it.
func (ps *pushService) publish(k pushKey, opts string, count int, from, body string) {
	srv := ps.srv
	form := wire.New(nsDataForm, "x", "type", "submit")
	field := func(v, val string) {
		form.Add(wire.New(nsDataForm, "field", "var", v).AddText(nsDataForm, "value", val))
	}
	field("FORM_TYPE", nsPushSumary)
	field("message-count", strconv.Itoa(count))
	if srv.cfg.Push.IncludeSender && from != "" {
		field("last-message-sender", from)
	}
	if srv.cfg.Push.IncludeBody && body != "" {
		field("last-message-body", body)
	}
	pub := wire.New(nsPubSub, "publish", "node", k.node).Add(
		wire.New(nsPubSub, "item").Add(wire.New(nsPush, "notification").Add(form)))
	pubsub := wire.New(nsPubSub, "pubsub").Add(pub)
	if opts != "" {
		if x := parseStored(opts); x != nil {
			pubsub.Add(wire.New(nsPubSub, "publish-options").Add(x))
		}
	}
	id := "push-" + randomID(9)
	iq := wire.New(wire.NSClient, "iq", "type", "set", "id", id,
		"from", srv.domain, "to", k.jid).Add(pubsub)

	j, err := jid.Parse(k.jid)
	if err != nil {
		return
	}
	comp := srv.comps.get(j.Domainpart())
	if comp == nil {
		// TODO: app servers on other domains need server-to-server
		// federation, which twotick does not have yet.
		srv.log.Warn("push app server unreachable", "app_server", k.jid)
		return
	}
	ps.mu.Lock()
	if len(ps.pending) >= maxPendingPush {
		// App servers that never answer filled the table. Forgetting
		// those unanswered publishes loses nothing but their outcome;
		// refusing to track new ones would stop counting failures.
		clear(ps.pending)
	}
	ps.pending[id] = k
	ps.mu.Unlock()
	comp.send(iq.Bytes(wire.NSClient))
}

// parseStored reads back a stored publish-options form, which the server
// wrote itself when the client enabled push.
func parseStored(s string) *wire.Element {
	rd := wire.NewReader(strings.NewReader("<stream:stream xmlns='jabber:client' "+
		"xmlns:stream='"+wire.NSStream+"'>"+s), wire.Limits{}, 0)
	if _, err := rd.StreamHeader(); err != nil {
		return nil
	}
	el, err := rd.Next()
	if err != nil {
		return nil
	}
	return el
}

// componentIQResult handles an IQ from a component to the server: the
// answers of app servers to notifications. An error other than 'wait'
// counts against the registration, which is disabled after
// push.max_failures in a row.
func (srv *Server) componentIQResult(iq *wire.Element) {
	ps := srv.push
	if ps == nil {
		return
	}
	typ := iq.Get("type")
	if typ != "result" && typ != "error" {
		return
	}
	ps.mu.Lock()
	k, ok := ps.pending[iq.Get("id")]
	delete(ps.pending, iq.Get("id"))
	ps.mu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := storeCtx()
	defer cancel()
	if typ == "result" {
		ps.db.ExecContext(ctx, `UPDATE push_registrations SET failures = 0
			WHERE owner = ? AND jid = ? AND node = ?`, k.owner, k.jid, k.node)
		return
	}
	if e := iq.Child(wire.NSClient, "error"); e != nil && e.Get("type") == "wait" {
		return
	}
	ps.db.ExecContext(ctx, `UPDATE push_registrations SET failures = failures + 1
		WHERE owner = ? AND jid = ? AND node = ?`, k.owner, k.jid, k.node)
	res, err := ps.db.ExecContext(ctx, `DELETE FROM push_registrations
		WHERE owner = ? AND jid = ? AND node = ? AND failures >= ?`,
		k.owner, k.jid, k.node, srv.cfg.Push.MaxFailures)
	if err == nil {
		if n, _ := res.RowsAffected(); n > 0 {
			srv.log.Info("push registration disabled after repeated errors",
				"jid", k.owner, "app_server", k.jid)
		}
	}
}
