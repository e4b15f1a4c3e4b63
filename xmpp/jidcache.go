package xmpp

import (
	"sync"

	"mellium.im/xmpp/jid"
)

// jidCacheSize bounds the parsed addresses kept: past it the cache starts
// over, so that a client sending endless distinct addresses costs a
// re-parse, never memory.
const jidCacheSize = 1 << 14

// jidCache remembers parsed addresses. Parsing applies the PRECIS profiles
// and IDNA to every part, which cost as much as the rest of routing a chat
// message, and a server sees the same few thousand addresses again and
// again. A jid.JID is an immutable value, so one parse serves every reader.
type jidCache struct {
	mu sync.Mutex
	m  map[string]jid.JID
}

// parse is jid.Parse with the cache: errors are not cached, so a bad
// address costs its parse every time, as it did before.
func (c *jidCache) parse(s string) (jid.JID, error) {
	c.mu.Lock()
	j, ok := c.m[s]
	c.mu.Unlock()
	if ok {
		return j, nil
	}
	j, err := jid.Parse(s)
	if err != nil {
		return j, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= jidCacheSize {
		c.m = make(map[string]jid.JID, 64)
	}
	c.m[s] = j
	c.mu.Unlock()
	return j, nil
}
