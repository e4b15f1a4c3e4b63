package wire

// interned holds the names, namespaces and short attribute values that
// nearly every stanza repeats, so that reading them costs no allocation:
// a map lookup keyed by string(b) does not copy b.
var interned = map[string]string{}

func init() {
	for _, s := range []string{
		// stanzas and their common children
		"message", "presence", "iq", "body", "subject", "thread", "error", "query",
		"item", "x", "show", "status", "priority", "c", "delay", "request",
		"received", "markable", "displayed", "active", "composing", "paused",
		"inactive", "gone", "origin-id", "stanza-id", "store", "no-store",
		"ping", "enable", "enabled", "resume", "resumed", "r", "a", "stream",
		"stream:stream", "features", "bind", "resource", "jid", "session",
		"private", "sent", "forwarded", "encrypted", "header", "key", "payload",
		// attributes and their common values
		"to", "from", "id", "type", "xmlns", "h", "lang", "ver", "node", "hash",
		"chat", "normal", "headline", "groupchat", "get", "set", "result",
		"unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed",
		"probe", "away", "xa", "dnd", "true", "false", "1", "0", "sha-1",
		"localhost", "version", "1.0",
		// namespaces
		NSClient, NSServer, NSStream, NSStreams, NSStanzas,
		"urn:xmpp:sm:3", "urn:xmpp:receipts", "urn:xmpp:chat-markers:0",
		"http://jabber.org/protocol/chatstates", "urn:xmpp:sid:0", "urn:xmpp:delay",
		"jabber:iq:roster", "urn:xmpp:ping", "http://jabber.org/protocol/caps",
		"urn:xmpp:hints", "urn:xmpp:carbons:2", "urn:xmpp:forward:0",
		"urn:ietf:params:xml:ns:xmpp-bind", "urn:ietf:params:xml:ns:xmpp-session",
		"urn:ietf:params:xml:ns:xmpp-sasl", "urn:ietf:params:xml:ns:xmpp-tls",
		"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items",
		"eu.siacs.conversations.axolotl", "urn:xmpp:csi:0", "urn:xmpp:blocking",
	} {
		interned[s] = s
	}
}

// intern returns b as a string, shared when it is one of the common ones.
func intern(b []byte) string {
	if s, ok := interned[string(b)]; ok {
		return s
	}
	return string(b)
}
