package xmpp

// XEP-0352 client state indication. While a client says it is inactive
// (a phone with its screen off), the server holds back what can wait:
// presence updates, of which only the latest per contact resource matters,
// and messages that carry nothing but chat states. Anything else that is
// sent to the session (a message with content, an IQ, a subscription
// request) first releases what is held, in the order it arrived, so the
// client sees every contact's traffic in order and loses nothing.
//
// Held stanzas have not been sent: stream management counts them (and
// keeps them for resumption) only once they are released.

import (
	"github.com/twotick/twotick/xmpp/wire"
)

const nsCSI = "urn:xmpp:csi:0"

// csiState is a session's client state. It is guarded by the session's
// mutex. The zero value is active, as every stream begins (XEP-0352 § 4.2).
type csiState struct {
	inactive bool
	held     []heldItem
	presence map[string]bool // presence senders with a held presence
}

// heldItem is a held stanza; key is its sender for presence, "" for a chat
// state, which is never replaced.
type heldItem struct {
	it  outItem
	key string
}

// maxHeld bounds what an inactive session holds. Past it everything held
// is released: a client that stays inactive for long still gets its
// contacts' updates in bounded batches, and a release is small beside the
// limits on unwritten and unacknowledged stanzas, which the queue loading
// may already fill to three quarters.
func (s *Session) maxHeld() int {
	return max(1, min(100, s.srv.cfg.C2S.MaxOutgoingQueue/8, s.srv.cfg.SM.MaxUnacked/8))
}

// handleCSI handles <active/> and <inactive/>. They are not stanzas:
// stream management does not count them, and they have no answer.
func (s *Session) handleCSI(el *wire.Element) error {
	switch el.Name.Local {
	case "active":
		s.csiActive()
	case "inactive":
		s.mu.Lock()
		s.csi.inactive = true
		s.mu.Unlock()
	default:
		return &streamErr{cond: "unsupported-stanza-type"}
	}
	return nil
}

// csiActive makes the session active and releases what it held. A resumed
// stream starts active too (XEP-0352 § 5.2).
func (s *Session) csiActive() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.csi.inactive = false
	s.csiReleaseLocked()
}

// csiHoldLocked decides what happens to a stanza about to be sent to an
// inactive session. It reports true if the stanza is held; otherwise it
// has released everything held before, and the caller sends the stanza
// next. Lock must be held.
func (s *Session) csiHoldLocked(it outItem) bool {
	if it.queueID > 0 {
		s.csiReleaseLocked() // queued messages carry content
		return false
	}
	key, ok := csiDeferrable(it.b)
	if !ok {
		s.csiReleaseLocked()
		return false
	}
	if key != "" && s.csi.presence[key] {
		// Only the newest presence of a resource matters. Dropping the
		// older one keeps every other item in order.
		for i, h := range s.csi.held {
			if h.key == key {
				s.csi.held = append(s.csi.held[:i], s.csi.held[i+1:]...)
				break
			}
		}
	}
	s.csi.held = append(s.csi.held, heldItem{it: it, key: key})
	if key != "" {
		if s.csi.presence == nil {
			s.csi.presence = map[string]bool{}
		}
		s.csi.presence[key] = true
	}
	if len(s.csi.held) >= s.maxHeld() {
		s.csiReleaseLocked()
	}
	return true
}

// csiReleaseLocked sends every held stanza in the order it was held. Lock
// must be held.
func (s *Session) csiReleaseLocked() {
	if len(s.csi.held) == 0 {
		return
	}
	held := s.csi.held
	s.csi.held = nil
	s.csi.presence = nil
	inactive := s.csi.inactive
	s.csi.inactive = false // so that sendLocked sends instead of holding
	for _, h := range held {
		s.sendLocked(h.it)
	}
	s.csi.inactive = inactive
}

// csiDeferrable reports whether a serialised stanza may wait while the
// client is inactive, and for presence the key under which a newer
// presence replaces it: its sender. Available and unavailable presence
// may wait; subscription requests and errors may not. A message may wait
// if all it carries is a chat state (also inside a carbon copy).
func csiDeferrable(b []byte) (key string, ok bool) {
	if !hasPrefix(b, "<presence") && !hasPrefix(b, "<message") {
		return "", false
	}
	el, err := parseOwn(b)
	if err != nil {
		return "", false
	}
	if el.Name.Local == "presence" {
		switch el.Get("type") {
		case "", "unavailable":
			return "p " + el.Get("from"), true
		}
		return "", false
	}
	return "", chatStateOnly(el)
}

// chatStateOnly reports whether a message carries a chat state and nothing
// a user would see or a client must act on.
func chatStateOnly(msg *wire.Element) bool {
	if msg.Get("type") == "error" {
		return false
	}
	state := false
	for _, c := range msg.Children() {
		switch {
		case c.Name.Space == nsChatStates:
			state = true
		case c.Name.Space == nsHints:
		case c.Name.Space == wire.NSClient && c.Name.Local == "thread":
		case c.Name.Space == nsCarbons && (c.Name.Local == "sent" || c.Name.Local == "received"):
			fwd := c.Child(nsForward, "forwarded")
			if fwd == nil || len(msg.Children()) != 1 {
				return false
			}
			inner := fwd.Child(wire.NSClient, "message")
			return inner != nil && chatStateOnly(inner)
		default:
			return false
		}
	}
	return state
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}
