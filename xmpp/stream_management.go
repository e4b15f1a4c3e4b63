package xmpp

import (
	"strconv"
	"sync"
	"time"

	"github.com/twotick/twotick/xmpp/wire"
)

// nsSM is XEP-0198 stream management, version 3.
const nsSM = "urn:xmpp:sm:3"

// smState is a session's XEP-0198 state. The counts wrap at 2^32
// (XEP-0198 § 4); unsigned arithmetic does that by itself. It is guarded by
// the session's mutex.
type smState struct {
	on      bool
	id      string // resumption token; "" when resumption was not enabled
	max     time.Duration
	hIn     uint32 // stanzas handled from the client
	hOut    uint32 // stanzas sent to the client
	hAcked  uint32 // the client's last acknowledged count
	unacked []outItem
	timer   *time.Timer // runs while detached
	resumes bool        // a resumption is taking the session over
}

// smRegistry maps resumption tokens to sessions.
type smRegistry struct {
	mu       sync.Mutex // guards sessions
	sessions map[string]*Session
}

func newSMRegistry() *smRegistry {
	return &smRegistry{sessions: make(map[string]*Session)}
}

func (r *smRegistry) add(id string, s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions[id] = s
}

func (r *smRegistry) lookup(id string) *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions[id]
}

func (r *smRegistry) remove(id string, s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sessions[id] == s {
		delete(r.sessions, id)
	}
}

// closeAll ends every detached session, at shutdown.
func (r *smRegistry) closeAll() {
	r.mu.Lock()
	list := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		list = append(list, s)
	}
	r.mu.Unlock()
	for _, s := range list {
		s.mu.Lock()
		detached := s.c == nil
		s.mu.Unlock()
		if detached {
			s.end()
		}
	}
}

func smFailed(cond string, h string) *wire.Element {
	f := wire.New(nsSM, "failed")
	if h != "" {
		f.Set("h", h)
	}
	return f.Add(wire.New(wire.NSStanzas, cond))
}

// handleSM handles <enable/>, <r/> and <a/> on a bound session.
func (s *Session) handleSM(el *wire.Element) error {
	switch el.Name.Local {
	case "r":
		return s.requestAck()
	case "a":
		h, err := strconv.ParseUint(el.Get("h"), 10, 32)
		if err != nil {
			return &streamErr{cond: "invalid-xml", text: "h is not a 32-bit count"}
		}
		return s.ack(uint32(h))
	case "enable":
		// h counts only what is read after <enable/>: messages still in
		// commit from before it must not be counted.
		s.waitCommits()
		return s.enableSM(el)
	}
	return &streamErr{cond: "unsupported-stanza-type"}
}

// enableSM turns stream management on (XEP-0198 § 3) and, if asked,
// resumption with a timeout: the client's max, bounded by the configured
// cap, or the default.
func (s *Session) enableSM(el *wire.Element) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sm.on {
		s.sendLocked(outItem{b: smFailed("unexpected-request", "").Bytes(wire.NSClient)})
		return nil
	}
	s.sm.on = true
	enabled := wire.New(nsSM, "enabled")
	if r := el.Get("resume"); r == "true" || r == "1" {
		s.sm.id = randomID(18)
		s.sm.max = s.srv.cfg.SM.ResumeTimeout.Duration
		if m, err := strconv.Atoi(el.Get("max")); err == nil && m > 0 {
			s.sm.max = min(time.Duration(m)*time.Second, s.srv.cfg.SM.MaxResumeTimeout.Duration)
		}
		s.srv.sm.add(s.sm.id, s)
		enabled.Set("id", s.sm.id)
		enabled.Set("resume", "true")
		enabled.Set("max", strconv.Itoa(int(s.sm.max/time.Second)))
	}
	s.sendLocked(outItem{b: enabled.Bytes(wire.NSClient)})
	return nil
}

// ack applies the client's count h: every stanza it covers is dropped from
// the unacknowledged list, and the queued messages among them are purged.
// A count above what was sent ends the stream (XEP-0198 § 4).
func (s *Session) ack(h uint32) error {
	s.mu.Lock()
	if !s.sm.on {
		s.mu.Unlock()
		return nil
	}
	n := h - s.sm.hAcked
	if int64(n) > int64(len(s.sm.unacked)) {
		sent := s.sm.hOut
		s.mu.Unlock()
		return &streamErr{cond: "undefined-condition",
			text: "acknowledged more stanzas than were sent",
			extra: wire.New(nsSM, "handled-count-too-high",
				"h", strconv.FormatUint(uint64(h), 10),
				"send-count", strconv.FormatUint(uint64(sent), 10))}
	}
	done := s.sm.unacked[:n]
	s.sm.unacked = append([]outItem(nil), s.sm.unacked[n:]...)
	s.sm.hAcked = h
	s.resumePumpLocked()
	s.mu.Unlock()
	s.purge(queueIDs(done))
	return nil
}

// detachLocked keeps the session for resumption after its connection was
// lost. Lock must be held.
func (s *Session) detachLocked() {
	s.c = nil
	s.pending = nil
	s.writing = false
	wait := s.sm.max
	if s.pushOn {
		// A phone with push enabled sleeps; its session waits for it
		// longer (XEP-0357 § 7), and notifications wake it meanwhile.
		wait = max(wait, s.srv.cfg.Push.ResumeTimeout.Duration)
	}
	s.sm.timer = time.AfterFunc(wait, func() {
		s.mu.Lock()
		expired := s.c == nil && !s.sm.resumes
		s.mu.Unlock()
		if expired {
			s.log.Debug("resumption timed out")
			s.end()
		}
	})
}

// resume handles <resume/> before binding (XEP-0198 § 5). It returns the
// resumed session, or nil after answering <failed/> so that the client can
// bind a new resource instead.
func (c *conn) resume(el *wire.Element) (*Session, error) {
	h, err := strconv.ParseUint(el.Get("h"), 10, 32)
	if err != nil {
		return nil, c.writeElement(smFailed("bad-request", ""))
	}
	s := c.srv.sm.lookup(el.Get("previd"))
	// Another account's token is treated exactly like an unknown one, and
	// the session it names is not touched.
	if s == nil || s.local != c.local {
		return nil, c.writeElement(smFailed("item-not-found", ""))
	}

	s.mu.Lock()
	// Of two resumptions racing for one session exactly one wins: the
	// other finds s.sm.resumes set and fails.
	if s.ended || s.sm.resumes {
		h := strconv.FormatUint(uint64(s.sm.hIn), 10)
		s.mu.Unlock()
		return nil, c.writeElement(smFailed("item-not-found", h))
	}
	s.sm.resumes = true
	old := s.c
	s.c = nil
	if s.sm.timer != nil {
		s.sm.timer.Stop()
	}
	s.mu.Unlock()
	if old != nil {
		// The client came back before the server noticed its old
		// connection die, as a phone does after changing networks: the
		// old stream gets a conflict and closes (XEP-0198 § 5), and its
		// reader finishes the element it was handling before the counts
		// below are read, so that nothing it counts is sent again. Only
		// the same account can name the session, and it can already
		// replace a session by binding its resource.
		go old.closeWithError(&streamErr{cond: "conflict",
			text: "the session was resumed on another connection"})
		s.mu.Lock()
		for s.reading > 0 {
			s.pipeCondLocked().Wait()
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	if n := uint32(h) - s.sm.hAcked; int64(n) > int64(len(s.sm.unacked)) {
		s.sm.resumes = false
		if !s.ended {
			s.detachLocked() // still resumable, as before this attempt
		}
		s.mu.Unlock()
		return nil, &streamErr{cond: "undefined-condition",
			text: "acknowledged more stanzas than were sent",
			extra: wire.New(nsSM, "handled-count-too-high", "h", el.Get("h"),
				"send-count", strconv.FormatUint(uint64(s.sm.hOut), 10))}
	}
	s.mu.Unlock()

	if err := s.ack(uint32(h)); err != nil {
		return nil, err
	}
	// <resumed h/> counts the messages the old connection left in commit,
	// so that the client does not send them again.
	s.waitCommits()
	s.mu.Lock()
	s.pipe.failed = false // the failed message is resent on this stream
	s.c = c
	// s.log stays the first connection's: it is read without the lock.
	s.pending = nil
	resumed := wire.New(nsSM, "resumed", "previd", s.sm.id,
		"h", strconv.FormatUint(uint64(s.sm.hIn), 10))
	// XEP-0198 § 5: resend exactly what the client has not acknowledged,
	// in the order it was first sent, after <resumed/>.
	s.pending = append(s.pending, outItem{b: resumed.Bytes(wire.NSClient)})
	s.pending = append(s.pending, s.sm.unacked...)
	s.writing = true
	s.sm.resumes = false
	go s.flush(c)
	s.mu.Unlock()

	c.sess = s
	c.srv.deps.Metrics.resumptions.Inc()
	c.nc.SetReadDeadline(time.Time{}) // the write deadline is write's (conn.go)
	c.rc.idle = c.srv.cfg.C2S.IdleTimeout.Duration
	c.rc.bytesPerSec = c.srv.cfg.C2S.RateBytesPerSecond
	c.rd.SetWait(c.waitInput) // idleread.go: a resumed session idles small too
	c.log.Debug("session resumed")
	return s, nil
}

// keepalivePing asks a silent client for a sign of life: an ack request
// under stream management, otherwise a XEP-0199 ping.
func (s *Session) keepalivePing() {
	s.mu.Lock()
	on := s.sm.on
	s.mu.Unlock()
	if on {
		s.send(outItem{b: []byte("<r xmlns='" + nsSM + "'/>")})
		return
	}
	ping := wire.New(wire.NSClient, "iq", "type", "get", "id", "keepalive-"+randomID(6),
		"from", s.srv.domain, "to", s.full).Add(wire.New(nsPing, "ping"))
	s.send(outItem{b: ping.Bytes(wire.NSClient), stanza: true})
}
