package roster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Change is what one subscription stanza did to a user's roster and what the
// server must do next (RFC 6121 § 3 and Appendix A). It always describes
// the roster of the user whose server processes the stanza: the sender for
// Outbound methods, the recipient for Inbound ones.
type Change struct {
	// Item is the user's item for the contact after the stanza. If the
	// user has no item (a stored request alone creates none), it holds
	// only JID, Subscription None and PendingIn.
	Item Item
	// Ver is the roster version after the stanza; unchanged if Changed is
	// false.
	Ver string
	// Changed: the item was created or its subscription, ask or approved
	// changed. Push Item with Ver to the user's interested resources
	// (RFC 6121 § 2.1.6).
	Changed bool
	// Deliver: for Outbound methods, route the stanza to the contact; for
	// Inbound ones, deliver it to the user's available resources that
	// requested the roster. A false value means drop it silently.
	Deliver bool
	// AutoReply (inbound subscribe only): answer the contact with
	// 'subscribed' from the user's bare JID, because the contact already
	// has the user's presence or the user pre-approved it (RFC 6121
	// § 3.1.3, § 3.4).
	AutoReply bool
	// Stored (inbound subscribe only): the request was kept for the user;
	// PendingIn returns it at every login until the user answers it.
	Stored bool
	// SendPresence: the contact just gained the user's presence; send the
	// user's current presence from each available resource to the contact
	// (RFC 6121 § 3.1.5).
	SendPresence bool
	// SendUnavailable: the contact just lost the user's presence; send
	// unavailable presence from each available resource of the user to the
	// contact (RFC 6121 § 3.2.2, § 3.3.3).
	SendUnavailable bool
}

// event is one of the eight subscription stanzas, seen from the side of the
// user whose roster changes.
type event int

const (
	outSubscribe event = iota
	outUnsubscribe
	outSubscribed
	outUnsubscribed
	inSubscribe
	inUnsubscribe
	inSubscribed
	inUnsubscribed
)

var eventNames = [...]string{"outbound subscribe", "outbound unsubscribe",
	"outbound subscribed", "outbound unsubscribed", "inbound subscribe",
	"inbound unsubscribe", "inbound subscribed", "inbound unsubscribed"}

func (e event) String() string { return eventNames[e] }

// state is the subscription state of RFC 6121 Appendix A.1 ("To + Pending
// In" and the rest) with the pre-approval flag of § 3.4.
type state struct {
	sub       Subscription
	pendOut   bool // ask='subscribe'
	pendIn    bool // a stored inbound request
	preApprov bool
}

// outcome is a transition's next state and the actions that go with it.
type outcome struct {
	next                                          state
	deliver, autoReply, sendPresence, sendUnavail bool
}

// transition applies one event to a state. It is the whole of RFC 6121
// Appendix A (A.2 for outbound stanzas, A.3 for inbound) written as rules on
// the two halves of a subscription rather than as nine-row tables; the
// tests walk the tables row by row against it. Routing of outbound stanzas
// follows § 3: subscribe and unsubscribe always go out, subscribed and
// unsubscribed only when they answer or cancel something.
func transition(ev event, st state) outcome {
	to, from := st.sub.hasTo(), st.sub.hasFrom()
	o := outcome{next: st}
	n := &o.next
	switch ev {
	case outSubscribe: // A.2.1
		o.deliver = true
		if !to {
			n.pendOut = true
		}
	case outUnsubscribe: // A.2.2
		o.deliver = true
		n.pendOut = false
		n.sub = withHalves(false, from)
	case outSubscribed: // A.2.3 and pre-approval, § 3.4
		switch {
		case st.pendIn:
			n.pendIn, n.preApprov = false, false
			n.sub = withHalves(to, true)
			o.deliver, o.sendPresence = true, true
		case !from:
			n.preApprov = true
		}
	case outUnsubscribed: // A.2.4; also cancels a pre-approval
		n.preApprov = false
		if st.pendIn || from {
			o.deliver = true
			o.sendUnavail = from
			n.pendIn = false
			n.sub = withHalves(to, false)
		}
	case inSubscribe: // A.3.1
		switch {
		case from:
			o.autoReply = true
		case st.preApprov:
			n.preApprov, n.pendIn = false, false
			n.sub = withHalves(to, true)
			o.autoReply, o.sendPresence = true, true
		case !st.pendIn:
			n.pendIn = true
			o.deliver = true
		}
	case inUnsubscribe: // A.3.2
		if st.pendIn || from {
			o.deliver = true
			o.sendUnavail = from
			n.pendIn = false
			n.sub = withHalves(to, false)
		}
	case inSubscribed: // A.3.3
		if st.pendOut {
			o.deliver = true
			n.pendOut = false
			n.sub = withHalves(true, from)
		}
	case inUnsubscribed: // A.3.4
		if st.pendOut || to {
			o.deliver = true
			n.pendOut = false
			n.sub = withHalves(false, from)
		}
	}
	return o
}

// OutboundSubscribe processes a 'subscribe' that user sends to contact (RFC
// 6121 § 3.1.2). It creates the item if needed; ErrTooManyItems if that
// would pass the cap.
func (s *Store) OutboundSubscribe(ctx context.Context, user, contact string) (Change, error) {
	return s.apply(ctx, user, contact, outSubscribe, "")
}

// OutboundUnsubscribe processes an 'unsubscribe' that user sends to contact
// (RFC 6121 § 3.3.2).
func (s *Store) OutboundUnsubscribe(ctx context.Context, user, contact string) (Change, error) {
	return s.apply(ctx, user, contact, outUnsubscribe, "")
}

// OutboundSubscribed processes a 'subscribed' that user sends to contact:
// approving the contact's stored request (RFC 6121 § 3.1.5) or, with none
// stored, pre-approving a future one (§ 3.4), which is not routed.
func (s *Store) OutboundSubscribed(ctx context.Context, user, contact string) (Change, error) {
	return s.apply(ctx, user, contact, outSubscribed, "")
}

// OutboundUnsubscribed processes an 'unsubscribed' that user sends to
// contact: denying a stored request, cancelling the contact's subscription
// (RFC 6121 § 3.2.2) or withdrawing a pre-approval.
func (s *Store) OutboundUnsubscribed(ctx context.Context, user, contact string) (Change, error) {
	return s.apply(ctx, user, contact, outUnsubscribed, "")
}

// InboundSubscribe processes a 'subscribe' from contact to user (RFC 6121
// § 3.1.3) carrying no status text. See InboundSubscribeStatus.
func (s *Store) InboundSubscribe(ctx context.Context, contact, user string) (Change, error) {
	return s.apply(ctx, user, contact, inSubscribe, "")
}

// InboundSubscribeStatus processes a 'subscribe' from contact to user whose
// <status/> text is status. The request is stored (Change.Stored) with that
// text until the user answers it, answered for the user (Change.AutoReply),
// or dropped as a duplicate. A new request past the cap of stored requests
// is refused with ErrTooManyItems; the server drops it.
func (s *Store) InboundSubscribeStatus(ctx context.Context, contact, user, status string) (
	Change, error) {
	if len(status) > maxStatusText {
		status = status[:maxStatusText]
	}
	return s.apply(ctx, user, contact, inSubscribe, status)
}

// InboundUnsubscribe processes an 'unsubscribe' from contact to user: the
// contact no longer wants the user's presence (RFC 6121 § 3.3.3).
func (s *Store) InboundUnsubscribe(ctx context.Context, contact, user string) (Change, error) {
	return s.apply(ctx, user, contact, inUnsubscribe, "")
}

// InboundSubscribed processes a 'subscribed' from contact to user: the
// contact approved the user's request (RFC 6121 § 3.1.6).
func (s *Store) InboundSubscribed(ctx context.Context, contact, user string) (Change, error) {
	return s.apply(ctx, user, contact, inSubscribed, "")
}

// InboundUnsubscribed processes an 'unsubscribed' from contact to user: the
// contact denied or cancelled the user's subscription (RFC 6121 § 3.2.3).
func (s *Store) InboundUnsubscribed(ctx context.Context, contact, user string) (Change, error) {
	return s.apply(ctx, user, contact, inUnsubscribed, "")
}

// apply runs one event against user's roster in one transaction.
func (s *Store) apply(ctx context.Context, user, contact string, ev event, status string) (
	Change, error) {
	var ch Change
	err := s.write(ctx, func(tx *sql.Tx) error {
		r, found, err := load(ctx, tx, user, contact)
		if err != nil {
			return err
		}
		if !found {
			r = record{Item: Item{JID: contact, Subscription: None}, manual: true}
			if r.PendingIn, err = hasPending(ctx, tx, user, contact); err != nil {
				return err
			}
		}
		st := state{r.Subscription, r.Ask, r.PendingIn, r.Approved}
		o := transition(ev, st)
		ch.Deliver, ch.AutoReply = o.deliver, o.autoReply
		ch.SendPresence, ch.SendUnavailable = o.sendPresence, o.sendUnavail

		switch {
		case o.next.pendIn && !st.pendIn:
			if err := s.storePending(ctx, tx, user, contact, status); err != nil {
				return err
			}
			ch.Stored = true
		case !o.next.pendIn && st.pendIn:
			if err := clearPending(ctx, tx, user, contact); err != nil {
				return err
			}
		}
		r.PendingIn = o.next.pendIn

		if o.next.sub == st.sub && o.next.pendOut == st.pendOut && o.next.preApprov == st.preApprov {
			v, err := version(ctx, tx, user)
			ch.Ver, ch.Item = formatVer(v), r.item()
			return err
		}
		if !found {
			if err := s.checkRoom(ctx, tx, "roster_items", user); err != nil {
				return err
			}
		}
		r.Subscription, r.Ask, r.Approved = o.next.sub, o.next.pendOut, o.next.preApprov
		v, err := bump(ctx, tx, user)
		if err != nil {
			return err
		}
		ch.Ver, ch.Item, ch.Changed = formatVer(v), r.item(), true
		return save(ctx, tx, user, r, v)
	})
	if err != nil {
		return Change{}, fmt.Errorf("%v from %s to %s: %w", ev, sender(ev, user, contact),
			recipient(ev, user, contact), err)
	}
	return ch, nil
}

func sender(ev event, user, contact string) string {
	if ev >= inSubscribe {
		return contact
	}
	return user
}

func recipient(ev event, user, contact string) string {
	if ev >= inSubscribe {
		return user
	}
	return contact
}

func hasPending(ctx context.Context, tx *sql.Tx, owner, contact string) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM roster_pending
		WHERE owner = ? AND contact = ?`, owner, contact).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading subscription request of %s to %s: %w", contact, owner, err)
	}
	return true, nil
}

func (s *Store) storePending(ctx context.Context, tx *sql.Tx, owner, contact, status string) error {
	if err := s.checkRoom(ctx, tx, "roster_pending", owner); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO roster_pending (owner, contact, status, created)
		VALUES (?, ?, ?, ?)`, owner, contact, status, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("storing subscription request of %s to %s: %w", contact, owner, err)
	}
	return nil
}
