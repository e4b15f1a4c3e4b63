package xmpp

import (
	"errors"
	"strconv"
	"sync"

	"github.com/twotick/twotick/offline"
)

// The commit pipeline. A session's reader does not wait for the commit of a
// queued message: it hands the message to the queue's committer and reads
// on, so that one session can have many messages in one group commit, and
// the commit's wait costs the reader nothing. A second goroutine, started
// only while commits are outstanding, finishes them in the order they were
// read: it delivers each message once it is committed and only then counts
// it in h, so that <a h/> still never covers a message that is not committed
// (the single check). An <r/> read behind outstanding commits is answered
// behind them too, so that its <a/> covers them; every other stanza waits
// until the pipeline is empty, which keeps its effects, and h, in order.

// maxInFlight bounds a session's outstanding commits: past it the reader
// waits, which in turn stops reading from a client that sends faster than
// the queue commits.
const maxInFlight = 64

// commitJob is one entry of the pipeline: a queued message, or (q nil) an
// <r/> to answer once the messages before it are counted.
type commitJob struct {
	q *queueing
}

// pipeline is a session's commit pipeline state, guarded by the session's
// mutex.
type pipeline struct {
	jobs    []commitJob // outstanding, in the order read
	running bool        // a finishCommits goroutine owns the head of jobs
	failed  bool        // a commit failed under stream management
	// cond, created on first use, is signalled as jobs empties; its
	// locker is the session's mutex.
	cond *sync.Cond
}

// startCommit waits for room in the pipeline, then starts a commit with
// start and appends it. Only the session's reader calls it.
func (s *Session) startCommit(start func() *queueing) error {
	return s.appendJob(start)
}

// requestAck answers an <r/> with the count of stanzas handled so far, or,
// while commits are outstanding, once they are finished and counted.
func (s *Session) requestAck() error {
	s.mu.Lock()
	if !s.sm.on {
		s.mu.Unlock()
		return nil
	}
	if len(s.pipe.jobs) > 0 {
		s.mu.Unlock()
		return s.appendJob(nil)
	}
	s.sendLocked(outItem{b: ackElement(s.sm.hIn)})
	s.mu.Unlock()
	return nil
}

func ackElement(h uint32) []byte {
	return []byte("<a xmlns='" + nsSM + "' h='" + strconv.FormatUint(uint64(h), 10) + "'/>")
}

// appendJob appends a job to the pipeline: a commit started by start, or
// (start nil) an <r/>. Only the session's reader appends, so the room it
// waited for is still there after start runs without the lock.
func (s *Session) appendJob(start func() *queueing) error {
	s.mu.Lock()
	for len(s.pipe.jobs) >= maxInFlight && !s.pipe.failed {
		s.pipeCondLocked().Wait()
	}
	if s.pipe.failed {
		// The stream is being closed; nothing read after the failed
		// message may be counted, so nothing more is started.
		s.mu.Unlock()
		return notStored()
	}
	var j commitJob
	if start != nil {
		s.mu.Unlock()
		j.q = start()
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	s.pipe.jobs = append(s.pipe.jobs, j)
	if !s.pipe.running {
		s.pipe.running = true
		go s.finishCommits()
	}
	return nil
}

// pipeCondLocked returns the pipeline's condition. Lock must be held.
func (s *Session) pipeCondLocked() *sync.Cond {
	if s.pipe.cond == nil {
		s.pipe.cond = sync.NewCond(&s.mu)
	}
	return s.pipe.cond
}

// waitCommits returns once every outstanding commit of the session is
// finished and counted.
func (s *Session) waitCommits() {
	s.mu.Lock()
	for len(s.pipe.jobs) > 0 {
		s.pipeCondLocked().Wait()
	}
	s.mu.Unlock()
}

// finishCommits finishes the pipeline's jobs in order until none is left.
// Under stream management, a message that could not be stored ends the
// stream uncounted, as the reader used to by returning notStored: neither it
// nor anything read after it is counted, so the client resends them all
// after resuming.
func (s *Session) finishCommits() {
	for {
		s.mu.Lock()
		if len(s.pipe.jobs) == 0 {
			s.pipe.running = false
			s.pipe.jobs = s.pipe.jobs[:0]
			s.pipeCondLocked().Broadcast()
			s.mu.Unlock()
			return
		}
		j := s.pipe.jobs[0]
		s.mu.Unlock()

		var err error
		if j.q != nil {
			err = s.srv.finishQueue(j.q, s.reply)
		}

		s.mu.Lock()
		s.pipe.jobs[0] = commitJob{}
		s.pipe.jobs = s.pipe.jobs[1:]
		var cut *conn
		switch {
		case err != nil && !errors.Is(err, offline.ErrQueueFull) && s.sm.on:
			if !s.pipe.failed {
				s.pipe.failed = true
				cut = s.c
			}
		case !s.sm.on || s.pipe.failed:
		case j.q != nil:
			s.sm.hIn++
		default:
			s.sendLocked(outItem{b: ackElement(s.sm.hIn)})
		}
		if len(s.pipe.jobs) < maxInFlight {
			s.pipeCondLocked().Broadcast()
		}
		s.mu.Unlock()
		if cut != nil {
			// The reader sees its connection end and detaches the session
			// for resumption, or ends it.
			cut.closeWithError(notStored())
		}
	}
}
