package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// chatRun holds the per-message state of one chat run. Message k is sent by
// pair k mod pairs; its XML id is its number. Times are nanoseconds since
// the schedule's start; zero means "not yet".
type chatRun struct {
	sched    schedule
	sentAt   []atomic.Int64
	ackAt    []atomic.Int64
	recvN    []atomic.Int32
	receipt  []atomic.Int64
	errors   atomic.Int64
	single   histogram // due time to the server's <a/>
	double   histogram // due time to the receipt
	delivery histogram // due time to arrival at the recipient

	lastRecv atomic.Int64
}

// sender tracks the messages of one sender that await the server's <a/>.
type sender struct {
	mu      sync.Mutex
	pending []pendingMsg // in sequence order; guarded by mu
}

type pendingMsg struct {
	seq uint32
	k   int
}

// runChat drives pairs of users at a fixed offered rate: pair p's sender
// sends message k when it is due whether or not earlier messages were
// answered (open loop), with an <r/> after each message as mobile clients
// do, and the recipient answers each with a XEP-0184 receipt.
func runChat(ctx context.Context, e *env, res *result) error {
	n := int(e.cfg.rate * e.cfg.duration.Seconds())
	if n < 1 {
		return fmt.Errorf("--rate × --duration gives no messages")
	}
	cr := &chatRun{sentAt: make([]atomic.Int64, n), ackAt: make([]atomic.Int64, n),
		recvN: make([]atomic.Int32, n), receipt: make([]atomic.Int64, n)}
	P := e.cfg.pairs
	senders := make([]*sender, P)
	for i := range senders {
		senders[i] = &sender{}
	}

	users := span(0, 2*P)
	ss, failed, err := loginAll(ctx, e, users, func(i int) handlers {
		if i%2 == 0 {
			return cr.senderHandlers(senders[i/2])
		}
		return cr.recipientHandlers()
	}, true, nil)
	defer func() { closeAll(ss, false) }()
	if failed > 0 {
		return fmt.Errorf("%d of %d chat users could not log in: %w", failed, len(users), err)
	}

	cpu0, _ := e.serverCPU()
	cr.sched = schedule{start: time.Now().Add(100 * time.Millisecond), rate: e.cfg.rate, total: n}
	var wg sync.WaitGroup
	for p := 0; p < P; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cr.send(ctx, ss[2*p], senders[p], e.bare(2*p+1), cr.sched.forSender(p, P))
		}()
	}
	wg.Wait()
	sendEnd := time.Now()

	complete := func() bool {
		for k := range n {
			if cr.sentAt[k].Load() != 0 && (cr.receipt[k].Load() == 0 || cr.ackAt[k].Load() == 0) {
				return false
			}
		}
		return true
	}
	waitFor(ctx, time.Now().Add(e.cfg.drain), complete)
	cpu1, cpuErr := e.serverCPU()
	cr.report(res, e, cpu1-cpu0, cpuErr, sendEnd)
	return ctx.Err()
}

// send sends the messages ks of one pair at their due times.
func (cr *chatRun) send(ctx context.Context, s *session, snd *sender, to string, ks []int) {
	body := strings.Repeat("x", 64)
	for _, k := range ks {
		if err := sleepUntil(ctx, cr.sched.due(k)); err != nil {
			return
		}
		id := strconv.Itoa(k)
		msg := "<message type='chat' to='" + to + "' id='" + id + "'><body>" + body +
			"</body><request xmlns='" + nsReceipts + "'/></message>"
		// The pending entry is added under snd.mu before the reader can see
		// the <a/> covering it.
		snd.mu.Lock()
		cr.sentAt[k].Store(cr.since())
		seq, err := s.sendStanza(msg, true)
		if err == nil {
			snd.pending = append(snd.pending, pendingMsg{seq, k})
		}
		snd.mu.Unlock()
		if err != nil {
			cr.sentAt[k].Store(0)
			cr.errors.Add(1)
			return
		}
	}
}

func (cr *chatRun) since() int64 { return max(1, int64(time.Since(cr.sched.start))) }

func (cr *chatRun) latency(k int) time.Duration { return time.Since(cr.sched.due(k)) }

func (cr *chatRun) senderHandlers(snd *sender) handlers {
	return handlers{
		ack: func(_ *session, h uint32) {
			snd.mu.Lock()
			i := 0
			for ; i < len(snd.pending) && int32(snd.pending[i].seq-h) <= 0; i++ {
				k := snd.pending[i].k
				cr.ackAt[k].Store(cr.since())
				cr.single.record(cr.latency(k))
			}
			snd.pending = snd.pending[i:]
			snd.mu.Unlock()
		},
		stanza: func(_ *session, m *elem) {
			if m.name != "message" {
				return
			}
			if m.attr("type") == "error" {
				cr.errors.Add(1)
				return
			}
			if r := m.child("received"); r != nil {
				k, ok := cr.index(r.attr("id"))
				if ok && cr.sentAt[k].Load() != 0 && cr.receipt[k].CompareAndSwap(0, cr.since()) {
					cr.double.record(cr.latency(k))
				}
			}
		},
	}
}

func (cr *chatRun) recipientHandlers() handlers {
	return handlers{stanza: func(s *session, m *elem) {
		if m.name != "message" || m.child("body") == nil {
			return
		}
		id := m.attr("id")
		k, ok := cr.index(id)
		if !ok || cr.sentAt[k].Load() == 0 {
			return // not sent in this run: left queued by an earlier one
		}
		if cr.recvN[k].Add(1) == 1 {
			cr.delivery.record(cr.latency(k))
			cr.lastRecv.Store(cr.since())
		}
		if m.child("request") != nil {
			_, _ = s.sendStanza("<message to='"+xmlEscape(m.attr("from"))+"' id='r"+id+
				"'><received xmlns='"+nsReceipts+"' id='"+id+"'/></message>", false)
		}
	}}
}

// index returns the message number of an id. Messages that a server kept
// from an earlier run against the same accounts carry the same ids; the
// handlers count only numbers whose sentAt is set, which also orders their
// reads of sched after its write.
func (cr *chatRun) index(id string) (int, bool) {
	k, err := strconv.Atoi(id)
	return k, err == nil && k >= 0 && k < len(cr.sentAt)
}

func (cr *chatRun) report(res *result, e *env, cpu time.Duration, cpuErr error, sendEnd time.Time) {
	var sent, received, dups, acked, receipts int
	for k := range cr.sentAt {
		if cr.sentAt[k].Load() == 0 {
			continue
		}
		sent++
		if c := cr.recvN[k].Load(); c > 0 {
			received++
			dups += int(c - 1)
		}
		if cr.ackAt[k].Load() != 0 {
			acked++
		}
		if cr.receipt[k].Load() != 0 {
			receipts++
		}
	}
	window := max(time.Duration(cr.lastRecv.Load()), sendEnd.Sub(cr.sched.start))
	res.add("pairs", float64(e.cfg.pairs), "")
	res.add("offered_rate", e.cfg.rate, "msg/s")
	res.add("achieved_rate", float64(received)/window.Seconds(), "msg/s")
	res.add("scheduled", float64(len(cr.sentAt)), "")
	res.add("sent", float64(sent), "")
	// A message not received before the drain ended may still be in flight
	// or queued for a later session: the run cannot tell it from a loss.
	res.add("undelivered_in_drain", float64(sent-received), "")
	res.add("duplicated", float64(dups), "")
	res.add("unacked", float64(sent-acked), "")
	res.add("missing_receipts", float64(sent-receipts), "")
	res.add("errors", float64(cr.errors.Load()), "")
	if e.cfg.serverPID > 0 && cpuErr == nil && received > 0 {
		res.add("server_cpu_s", cpu.Seconds(), "s")
		res.add("server_cpu_ms_per_1000_msgs", float64(cpu.Milliseconds())/(float64(received)/1000), "ms")
	}
	res.addLatency("single_check", &cr.single)
	res.addLatency("double_check", &cr.double)
	res.addLatency("delivery", &cr.delivery)
}

// serverCPU reads the server's CPU time, or 0 when no PID was given.
func (e *env) serverCPU() (time.Duration, error) {
	if e.cfg.serverPID == 0 {
		return 0, nil
	}
	return cpuTime(e.cfg.serverPID)
}
