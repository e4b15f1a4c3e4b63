package roster

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Subscription is the presence subscription state of a roster item, as in
// the 'subscription' attribute of RFC 6121 § 2.1.2.5.
type Subscription string

// The four subscription states a stored item can be in, and the value that a
// roster push uses for a removed item (RFC 6121 § 2.1.2.5, § 2.5.2).
const (
	None   Subscription = "none" // neither party receives the other's presence
	To     Subscription = "to"   // the owner receives the contact's presence
	From   Subscription = "from" // the contact receives the owner's presence
	Both   Subscription = "both" // presence flows both ways
	Remove Subscription = "remove"
)

// hasFrom reports whether the contact receives the owner's presence.
func (s Subscription) hasFrom() bool { return s == From || s == Both }

// hasTo reports whether the owner receives the contact's presence.
func (s Subscription) hasTo() bool { return s == To || s == Both }

// withHalves builds a state from its two halves: whether the owner receives
// the contact's presence (to) and whether the contact receives the owner's
// (from). The transitions of RFC 6121 Appendix A switch one half at a time.
func withHalves(to, from bool) Subscription {
	switch {
	case to && from:
		return Both
	case to:
		return To
	case from:
		return From
	}
	return None
}

// Origin says how an item came to be in a roster.
type Origin int

const (
	// OriginManual marks an item the owner added or edited (roster set) or
	// that a subscription exchange created. Address-book changes never
	// remove it.
	OriginManual Origin = iota
	// OriginBook marks an item that exists only because the contact's
	// number is in the owner's uploaded address book; it leaves the roster
	// when the number leaves the book or the account is deleted.
	OriginBook
)

func (o Origin) String() string {
	if o == OriginBook {
		return "book"
	}
	return "manual"
}

// Item is one roster entry of an owner (RFC 6121 § 2.1.2). The zero value is
// not a valid item: JID is required.
type Item struct {
	JID          string // bare JID of the contact
	Name         string // the owner's name for the contact; "" for none
	Subscription Subscription
	Ask          bool     // an outbound subscription request is pending (ask='subscribe')
	Groups       []string // in the order the owner gave them
	Origin       Origin
	// Approved marks a subscription pre-approved by the owner (RFC 6121
	// § 3.4): the contact's next request is accepted without asking.
	Approved bool
	// PendingIn reports a stored inbound subscription request from the
	// contact that the owner has not answered (RFC 6121 § 3.1.3). It is
	// server state, never sent in a roster push; Remove reports it so that
	// the server knows to send 'unsubscribed' (RFC 6121 § 2.5.2).
	PendingIn bool
}

// CancelOnRemove says which presence stanzas the server sends to the contact
// when the owner removes this item (RFC 6121 § 2.5.2): 'unsubscribe' if the
// owner had or asked for the contact's presence, 'unsubscribed' if the contact
// had or asked for the owner's.
func (it Item) CancelOnRemove() (unsubscribe, unsubscribed bool) {
	return it.Subscription.hasTo() || it.Ask, it.Subscription.hasFrom() || it.PendingIn
}

// Limits on what a client may store in one item. RFC 6121 sets none; these
// keep one roster from holding megabytes.
const (
	maxNameBytes  = 1023
	maxGroups     = 64
	maxJIDBytes   = 3071 // RFC 7622 § 3.1: three parts of up to 1023 bytes
	maxStatusText = 1023
)

// ErrInvalidItem is wrapped by errors about an item a client may not store
// (RFC 6121 § 2.3.3: the server answers bad-request or not-acceptable).
var ErrInvalidItem = errors.New("invalid roster item")

// validate checks what a roster set may store.
func (it Item) validate() error {
	if it.JID == "" || len(it.JID) > maxJIDBytes || !utf8.ValidString(it.JID) {
		return fmt.Errorf("item JID %q: %w", it.JID, ErrInvalidItem)
	}
	if len(it.Name) > maxNameBytes || !utf8.ValidString(it.Name) {
		return fmt.Errorf("name of %s longer than %d bytes or not UTF-8: %w",
			it.JID, maxNameBytes, ErrInvalidItem)
	}
	if len(it.Groups) > maxGroups {
		return fmt.Errorf("%s has %d groups, more than %d: %w",
			it.JID, len(it.Groups), maxGroups, ErrInvalidItem)
	}
	seen := make(map[string]bool, len(it.Groups))
	for _, g := range it.Groups {
		// RFC 6121 § 2.3.3: an empty group and the same group twice are
		// both errors, not something to tidy up silently.
		switch {
		case g == "":
			return fmt.Errorf("%s has an empty group name: %w", it.JID, ErrInvalidItem)
		case len(g) > maxNameBytes || !utf8.ValidString(g):
			return fmt.Errorf("group of %s longer than %d bytes or not UTF-8: %w",
				it.JID, maxNameBytes, ErrInvalidItem)
		case seen[g]:
			return fmt.Errorf("%s lists group %q twice: %w", it.JID, g, ErrInvalidItem)
		}
		seen[g] = true
	}
	return nil
}

// Pending is an inbound subscription request that the owner has not yet
// answered (RFC 6121 § 3.1.3).
type Pending struct {
	JID    string // bare JID of the contact who asked
	Status string // the <status/> text of the request, "" if none
}
