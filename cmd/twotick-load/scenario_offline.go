package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// offlineBatch is how many messages a sender writes at once before asking
// for an acknowledgement.
const offlineBatch = 50

// offlineRecipient counts what one recipient received in one login.
type offlineRecipient struct {
	mu   sync.Mutex
	seen map[int]int // message number → times received; guarded by mu
	done bool        // all messages arrived; guarded by mu
}

// runOffline has U senders each send M messages to a recipient who is
// offline, waits until the server has acknowledged all of them, then logs
// the recipients in and measures the time until each has received and
// acknowledged all its messages. A second login of every recipient, ended
// by an IQ round trip after initial presence, counts messages the server
// kept after they were acknowledged.
func runOffline(ctx context.Context, e *env, res *result) error {
	U, M := e.cfg.users, e.cfg.messages
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	run := hex.EncodeToString(nonce[:]) // marks this run's ids; older leftovers are ignored

	acks := make([]chan uint32, U)
	for i := range acks {
		acks[i] = make(chan uint32, 64)
	}
	senders, failed, err := loginAll(ctx, e, span(U, 2*U), func(i int) handlers {
		return handlers{ack: func(_ *session, h uint32) {
			select {
			case acks[i] <- h:
			default: // a later <a/> carries a higher h anyway
			}
		}}
	}, true, nil)
	defer func() { closeAll(senders, false) }()
	if failed > 0 {
		return fmt.Errorf("%d of %d senders could not log in: %w", failed, U, err)
	}
	t0 := time.Now()
	if err := sendOffline(ctx, e, senders, acks, run); err != nil {
		return err
	}
	stored := time.Since(t0)
	res.add("users", float64(U), "")
	res.add("messages_per_user", float64(M), "")
	res.add("store_time_s", stored.Seconds(), "s")
	res.add("store_rate", float64(U*M)/stored.Seconds(), "msg/s")

	// Phase 2: recipients log in and collect.
	recips := make([]*offlineRecipient, U)
	for i := range recips {
		recips[i] = &offlineRecipient{seen: make(map[int]int)}
	}
	deliverHist := &histogram{}
	var complete atomic.Int64
	t1 := time.Now()
	ss, failed, err := loginAll(ctx, e, span(0, U), func(i int) handlers {
		return recips[i].handlers(run, M, func() {
			deliverHist.record(time.Since(t1))
			complete.Add(1)
		})
	}, true, nil)
	if failed > 0 {
		closeAll(ss, false)
		return fmt.Errorf("%d of %d recipients could not log in: %w", failed, U, err)
	}
	all := waitFor(ctx, time.Now().Add(e.cfg.drain), func() bool {
		return complete.Load() == int64(U)
	})
	delivered := time.Since(t1)
	closeAll(ss, true)
	got, dups := 0, 0
	for _, r := range recips {
		r.mu.Lock()
		got += len(r.seen)
		for _, c := range r.seen {
			dups += c - 1
		}
		r.mu.Unlock()
	}
	res.add("delivered", float64(got), "")
	// Messages not received within the drain may still be stored (see
	// kept_after_ack), so this is not counted as a loss.
	res.add("undelivered_in_drain", float64(U*M-got), "")
	res.add("duplicated", float64(dups), "")
	if all {
		res.add("deliver_time_s", delivered.Seconds(), "s")
		res.add("deliver_rate", float64(U*M)/delivered.Seconds(), "msg/s")
	}
	res.addLatency("all_delivered_per_user", deliverHist)

	kept, err := countLeftovers(ctx, e, run)
	if err != nil {
		return err
	}
	res.add("kept_after_ack", float64(kept), "")
	if !all {
		return fmt.Errorf("only %d of %d recipients received every message within %v",
			complete.Load(), U, e.cfg.drain)
	}
	return nil
}

// sendOffline has sender i send M messages to recipient i in batches, each
// batch followed by <r/>, and waits for the <a/> covering the last.
func sendOffline(ctx context.Context, e *env, senders []*session, acks []chan uint32,
	run string) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(senders))
	for i, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- sendBatches(ctx, e, s, acks[i], e.bare(i), run)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func sendBatches(ctx context.Context, e *env, s *session, acked <-chan uint32,
	to, run string) error {
	var b strings.Builder
	var last uint32
	inBatch := 0
	for j := 0; j < e.cfg.messages; j++ {
		inBatch++
		fmt.Fprintf(&b, "<message type='chat' to='%s' id='%s-%d'><body>offline %d</body>"+
			"<request xmlns='%s'/></message>", to, run, j, j, nsReceipts)
		if inBatch < offlineBatch && j+1 != e.cfg.messages {
			continue
		}
		var err error
		if last, err = s.sendStanzas(b.String(), inBatch, true); err != nil {
			return fmt.Errorf("sending offline messages: %w", err)
		}
		b.Reset()
		inBatch = 0
	}
	if !s.smOn {
		return nil // nothing to wait for; the server gives no acknowledgement
	}
	deadline := time.NewTimer(e.cfg.drain)
	defer deadline.Stop()
	for {
		select {
		case h := <-acked:
			if int32(h-last) >= 0 {
				return nil
			}
		case <-deadline.C:
			return fmt.Errorf("server did not acknowledge offline messages from %s within %v",
				s.user, e.cfg.drain)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *offlineRecipient) handlers(run string, m int, allIn func()) handlers {
	prefix := run + "-"
	return handlers{stanza: func(s *session, e *elem) {
		id, ok := strings.CutPrefix(e.attr("id"), prefix)
		if e.name != "message" || !ok || e.child("body") == nil {
			return
		}
		j, err := strconv.Atoi(id)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.seen[j]++
		finished := !r.done && len(r.seen) == m
		r.done = r.done || finished
		r.mu.Unlock()
		if finished {
			_ = s.ack() // the acknowledgement that lets the server purge
			allIn()
		}
	}}
}

// countLeftovers logs every recipient in again and counts this run's
// messages the server delivers a second time. Initial presence and then an
// IQ to the server are sent; servers deliver stored messages while handling
// the presence, so once the IQ's answer arrives nothing more is pending.
func countLeftovers(ctx context.Context, e *env, run string) (int, error) {
	var kept atomic.Int64
	answered := make(chan struct{}, e.cfg.users)
	prefix := run + "-"
	ss, failed, err := loginAll(ctx, e, span(0, e.cfg.users), func(int) handlers {
		return handlers{stanza: func(s *session, m *elem) {
			switch {
			case m.name == "message" && strings.HasPrefix(m.attr("id"), prefix):
				kept.Add(1)
			case m.name == "iq" && m.attr("id") == "barrier":
				answered <- struct{}{}
			}
		}}
	}, true, nil)
	defer func() { closeAll(ss, true) }()
	if failed > 0 {
		return 0, fmt.Errorf("second login of recipients: %d failed: %w", failed, err)
	}
	for _, s := range ss {
		if _, err := s.sendStanza("<iq type='get' id='barrier' to='"+e.cfg.domain+
			"'><ping xmlns='urn:xmpp:ping'/></iq>", false); err != nil {
			return 0, err
		}
	}
	deadline := time.NewTimer(e.cfg.drain)
	defer deadline.Stop()
	for range ss {
		select {
		case <-answered:
		case <-deadline.C:
			return int(kept.Load()), fmt.Errorf("barrier IQ unanswered after %v", e.cfg.drain)
		case <-ctx.Done():
			return int(kept.Load()), ctx.Err()
		}
	}
	return int(kept.Load()), nil
}
