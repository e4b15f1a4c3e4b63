package xmpp

import (
	"errors"
	"io"
	"log/slog"
	"time"

	"sync"

	"mellium.im/xmpp/jid"

	"github.com/twotick/twotick/xmpp/wire"
)

// outItem is one element waiting to be written to a client, or written and
// not yet acknowledged (XEP-0198).
type outItem struct {
	b        []byte
	stanza   bool   // counted by stream management
	h        uint32 // the client's count once it has this stanza
	queueID  int64  // > 0: a queued message, purged when acknowledged
	from     string // bare sender of a queued message
	clientID string // its id attribute, for XEP-0184 receipts
}

// Session is a bound resource. It outlives its connection while stream
// management lets the client resume it.
type Session struct {
	srv      *Server
	jid      jid.JID
	full     string
	bare     string
	local    string
	resource string
	log      *slog.Logger

	mu         sync.Mutex // guards every field below
	c          *conn      // nil while detached, waiting for resumption
	pending    []outItem  // not yet written
	writing    bool       // a flush goroutine owns c's writes
	ended      bool
	avail      bool
	priority   int
	presence   *wire.Element // the last available presence broadcast
	initial    bool          // initial presence has been handled
	loading    bool          // queued messages are being loaded
	held       []outItem     // live queued messages that arrived while loading
	pumpPaused bool          // the queue load waits for room
	pushOn     bool          // the client enabled push (XEP-0357)
	loaded     int64         // highest queue id loaded at initial presence
	roster     bool          // the client asked for the roster: it gets pushes
	directed   map[string]bool
	sm         smState
	blocklist  bool     // the client asked for the blocklist: it gets pushes
	carbons    bool     // XEP-0280 carbons are enabled
	csi        csiState // XEP-0352 client state (csi.go)
	pipe       pipeline // outstanding commits (session_commit.go)
	// reading counts the read loops running: one, or during a takeover by
	// resumption the old connection's until it ends (stream_management.go).
	// Its changes are broadcast on the pipeline's condition.
	reading int
	// closeHeld defers terminate while the session's own request (a
	// password change or removal, registration.go) is answered; heldClose
	// is the terminate that came meanwhile.
	closeHeld bool
	heldClose *streamErr
	idle      []chan struct{} // closed when the flush goroutine stops writing
}

func newSession(srv *Server, c *conn, full jid.JID) *Session {
	return &Session{
		srv:      srv,
		jid:      full,
		full:     full.String(),
		bare:     full.Bare().String(),
		local:    full.Localpart(),
		resource: full.Resourcepart(),
		log:      c.log,
		c:        c,
	}
}

func (s *Session) isAvailable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.avail && !s.ended
}

func (s *Session) prio() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.priority
}

// send queues an element for the client. It never blocks on the network.
func (s *Session) send(it outItem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sendLocked(it)
}

// ackRequestEvery is how many unacknowledged stanzas, the last of them a
// queued message, make the server ask for an ack (XEP-0198 § 4): few enough
// that acknowledged messages leave the queue soon after delivery, many
// enough that the <r/> and the client's <a/> cost little beside the stanzas.
const ackRequestEvery = 8

var ackRequest = []byte("<r xmlns='" + nsSM + "'/>")

// sendLocked queues it for writing and, for a stanza under stream
// management, keeps it until the client acknowledges it. Lock must be held.
func (s *Session) sendLocked(it outItem) {
	if s.ended {
		return
	}
	if it.stanza && s.csi.inactive && s.csiHoldLocked(it) {
		return // not sent yet, so not counted: csi.go
	}
	if it.stanza {
		s.srv.deps.Metrics.out.of(stanzaKind(it.b)).Inc()
	}
	if it.stanza && s.sm.on {
		s.sm.hOut++
		it.h = s.sm.hOut
		s.sm.unacked = append(s.sm.unacked, it)
		if len(s.sm.unacked) > s.srv.cfg.SM.MaxUnacked {
			// The client takes stanzas and never acknowledges them; its
			// queued messages stay in the queue for its next session.
			go s.terminate(&streamErr{cond: "policy-violation",
				text: "too many unacknowledged stanzas"})
			return
		}
	}
	if s.c == nil {
		return // detached: kept in unacked for the resumption
	}
	if len(s.pending) >= s.srv.cfg.C2S.MaxOutgoingQueue {
		go s.terminate(&streamErr{cond: "policy-violation", text: "not reading"})
		return
	}
	if s.pending == nil {
		s.pending = getItems()
	}
	s.pending = append(s.pending, it)
	if it.queueID > 0 && s.sm.on && len(s.sm.unacked)%ackRequestEvery == 0 {
		// Ask for an ack now and then while queued messages flow, in the
		// same write: the client's <a/> purges the queued messages it
		// covers and keeps the unacknowledged list, which a receipt's
		// purge scans, short.
		s.pending = append(s.pending, outItem{b: ackRequest})
	}
	if !s.writing {
		s.writing = true
		go s.flush(s.c)
	}
}

// flush writes pending elements to c in batches until none are left. One
// flush goroutine runs per session at a time, and only while there is
// something to write, so an idle session costs no goroutine for writing.
func (s *Session) flush(c *conn) {
	bp := writeBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= maxPooledWrite {
			*bp = buf[:0]
			writeBufs.Put(bp)
		}
	}()
	for {
		s.mu.Lock()
		if s.c != c {
			// Resumed on another connection, whose own flush owns the
			// pending writes and the writing flag now.
			s.mu.Unlock()
			return
		}
		batch := s.pending
		s.pending = nil
		if len(batch) == 0 {
			s.writing = false
			s.wakeIdleLocked()
			s.resumePumpLocked()
			s.mu.Unlock()
			return
		}
		smOn := s.sm.on
		s.mu.Unlock()

		buf = buf[:0]
		for _, it := range batch {
			buf = append(buf, it.b...)
		}
		if err := c.write(buf); err != nil {
			c.closeQuietly()
			s.mu.Lock()
			if s.c == c {
				s.writing = false
				s.pending = nil
				s.wakeIdleLocked()
			}
			s.mu.Unlock()
			return
		}
		if !smOn {
			// Without stream management there is no acknowledgement: a
			// queued message written to the socket is delivered.
			s.purge(queueIDs(batch))
		}
		putItems(batch) // what stream management keeps is in sm.unacked
	}
}

// Buffers for the write path, shared by all sessions so that an idle
// session holds none: a flush goroutine's write buffer, and the lists of
// items waiting to be written.
var (
	writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}
	itemLists = sync.Pool{New: func() any { l := make([]outItem, 0, 16); return &l }}
)

// maxPooledWrite and maxPooledItems bound what goes back to the pools, so
// that one large burst does not keep large buffers alive.
const (
	maxPooledWrite = 64 << 10
	maxPooledItems = 256
)

func getItems() []outItem { return (*itemLists.Get().(*[]outItem))[:0] }

func putItems(l []outItem) {
	if cap(l) > maxPooledItems {
		return
	}
	clear(l) // drop the references to the stanzas
	l = l[:0]
	itemLists.Put(&l)
}

func queueIDs(items []outItem) []int64 {
	var ids []int64
	for _, it := range items {
		if it.queueID > 0 {
			ids = append(ids, it.queueID)
		}
	}
	return ids
}

// purge deletes delivered messages from the queue without waiting for the
// deletion to commit: nobody needs it to be durable (a lost deletion only
// sends the messages once more, and the client drops them as duplicates by
// their stanza-id), and a reader that waited for it could not read the
// client's next message meanwhile.
func (s *Session) purge(ids []int64) {
	s.srv.deps.Queue.DeleteLater(s.bare, ids)
}

// readLoop reads and handles the client's elements until the connection
// ends.
func (s *Session) readLoop(c *conn) {
	s.mu.Lock()
	s.reading++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.reading--
		s.pipeCondLocked().Broadcast()
		s.mu.Unlock()
	}()
	s.csiActive() // a new or resumed stream starts active (XEP-0352 § 5.2)
	for {
		el, err := c.rd.Next()
		if err != nil {
			s.connEnded(c, err)
			return
		}
		if err := s.handle(el); err != nil {
			s.connEnded(c, err)
			return
		}
	}
}

// handle dispatches one top-level element from the client.
func (s *Session) handle(el *wire.Element) error {
	if el.Name.Space == nsCSI {
		return s.handleCSI(el)
	}
	if el.Name.Space == nsSM {
		return s.handleSM(el)
	}
	if el.Name.Space != wire.NSClient {
		return &streamErr{cond: "unsupported-stanza-type"}
	}
	s.srv.deps.Metrics.in.of(el.Name.Local).Inc()
	var err error
	switch el.Name.Local {
	case "message":
		var queued bool
		if queued, err = s.handleMessage(el); queued {
			return err // counted once committed: session_commit.go
		}
	case "presence":
		s.waitCommits() // keeps its effects after the messages before it
		err = s.handlePresence(el)
	case "iq":
		s.waitCommits()
		err = s.handleIQ(el)
	default:
		return &streamErr{cond: "unsupported-stanza-type"}
	}
	if err != nil {
		return err
	}
	// h counts in order: not before the commits read earlier are counted.
	s.waitCommits()
	s.mu.Lock()
	if s.sm.on && !s.pipe.failed {
		// Counted only now: the stanza has been handled.
		s.sm.hIn++
	}
	s.mu.Unlock()
	return nil
}

// connEnded handles the end of c, by error or by the client closing its
// stream. A session with resumable stream management is kept for the
// resumption timeout; any other ends now.
func (s *Session) connEnded(c *conn, err error) {
	var we *wire.StreamError
	var se *streamErr
	clean := errors.Is(err, wire.ErrStreamEnd)
	switch {
	case clean:
		c.closeWithError(nil)
	case errors.As(err, &se):
		c.closeWithError(se)
	case errors.As(err, &we):
		c.closeWithError(&streamErr{cond: we.Condition, text: we.Text})
	case isTimeout(err):
		c.closeWithError(&streamErr{cond: "connection-timeout"})
	default:
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			s.log.Debug("connection ended", "err", err)
		}
		c.closeQuietly()
	}

	s.mu.Lock()
	if s.c != c {
		// Already resumed on another connection.
		s.mu.Unlock()
		return
	}
	if !clean && s.sm.on && s.sm.id != "" && !s.ended {
		s.detachLocked()
		s.mu.Unlock()
		s.log.Debug("session detached; waiting for resumption")
		return
	}
	s.mu.Unlock()
	s.end()
}

// wakeIdleLocked tells awaitWritten that nothing is being written. Lock
// must be held.
func (s *Session) wakeIdleLocked() {
	for _, ch := range s.idle {
		close(ch)
	}
	s.idle = nil
}

// awaitWritten waits, at most d, until everything queued for the client so
// far has been written or the connection has failed.
func (s *Session) awaitWritten(d time.Duration) {
	s.mu.Lock()
	if !s.writing || s.c == nil {
		s.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	s.idle = append(s.idle, ch)
	s.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// holdTerminate defers terminate until releaseTerminate. A request that
// closes its own session (a password change ends every session of the
// account) uses it so that its answer reaches the client before the
// stream error does.
func (s *Session) holdTerminate() {
	s.mu.Lock()
	s.closeHeld = true
	s.mu.Unlock()
}

// releaseTerminate ends the hold. If a terminate came meanwhile, it waits
// (at most 5 s, for a client that does not read) until the answers queued
// so far are written, then terminates as asked.
func (s *Session) releaseTerminate() {
	s.mu.Lock()
	se := s.heldClose
	s.closeHeld, s.heldClose = false, nil
	s.mu.Unlock()
	if se != nil {
		s.awaitWritten(5 * time.Second)
		s.terminate(se)
	}
}

// terminate ends the session and closes its connection with se, or, while
// holdTerminate is in effect, leaves that to releaseTerminate.
func (s *Session) terminate(se *streamErr) {
	s.mu.Lock()
	if s.closeHeld {
		if s.heldClose == nil {
			s.heldClose = se
		}
		s.mu.Unlock()
		return
	}
	c := s.c
	s.mu.Unlock()
	s.end()
	if c != nil {
		c.closeWithError(se)
	}
}

// end removes the session: unavailable presence goes to everyone who had
// its presence. Queued messages it had not acknowledged stay queued.
func (s *Session) end() {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	wasAvail := s.avail
	s.avail = false
	directed := s.directed
	s.directed = nil
	smID := s.sm.id
	if s.sm.timer != nil {
		s.sm.timer.Stop()
	}
	s.sm.unacked = nil
	s.mu.Unlock()

	s.srv.router.unbind(s)
	if smID != "" {
		s.srv.sm.remove(smID, s)
	}
	s.srv.deps.Metrics.sessions.Dec()
	if wasAvail || len(directed) > 0 {
		unavail := wire.New(wire.NSClient, "presence", "type", "unavailable", "from", s.full)
		s.broadcastPresence(unavail, wasAvail, directed)
	}
	s.log.Debug("session ended")
}
