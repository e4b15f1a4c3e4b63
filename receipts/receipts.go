// Package receipts implements XEP-0184 message delivery receipts as
// twotick uses them: recognising requests and receipts, keeping a receipt
// from requesting another, and deciding which queued message a receipt
// purges (DESIGN.md, "The two checks", step 4).
//
// It depends only on the element tree of xmpp/wire, a leaf package with no
// knowledge of the server.
package receipts

import "github.com/twotick/twotick/xmpp/wire"

// NS is the XEP-0184 namespace.
const NS = "urn:xmpp:receipts"

// Requested reports whether msg asks for a receipt (XEP-0184 § 5.1).
func Requested(msg *wire.Element) bool {
	return msg.Child(NS, "request") != nil
}

// Received returns the id named by a receipt in msg, if msg is one.
func Received(msg *wire.Element) (id string, ok bool) {
	r := msg.Child(NS, "received")
	if r == nil {
		return "", false
	}
	return r.Get("id"), true
}

// Sanitize removes a request for a receipt from a message that is itself a
// receipt: a receipt never requests a receipt (XEP-0184 § 5.4), and a
// client that asks for one would start a loop between two clients.
func Sanitize(msg *wire.Element) {
	if msg.Child(NS, "received") == nil {
		return
	}
	msg.RemoveChildren(func(c *wire.Element) bool {
		return c.Name.Space == NS && c.Name.Local == "request"
	})
}

// Delivered is a queued message that was sent to a recipient and not yet
// purged.
type Delivered struct {
	QueueID  int64
	From     string // bare JID of the original sender
	ClientID string // the original message's id attribute
}

// Purges returns the queue ids that a receipt for id, sent by the recipient
// to receiptTo (the original sender's JID, bare), removes. Only messages
// that were delivered to the recipient, came from that sender and carry
// that id qualify: a receipt for an id the recipient never got, or for
// another sender's message, removes nothing.
func Purges(delivered []Delivered, receiptTo, id string) []int64 {
	if id == "" {
		return nil
	}
	var out []int64
	for _, d := range delivered {
		if d.ClientID == id && d.From == receiptTo {
			out = append(out, d.QueueID)
		}
	}
	return out
}
