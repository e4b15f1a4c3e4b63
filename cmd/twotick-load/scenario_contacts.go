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

// nsPhoneBook is the Quicksy address-book synchronisation protocol that
// twotick's api.DOMAIN component answers (DESIGN.md, "Rosters from address
// books"). Prosody and ejabberd do not implement it, so this scenario fails
// against them with an IQ error, as expected.
const nsPhoneBook = "im.quicksy.synchronization:0"

// uploadTimeout bounds the wait for one upload's answer.
const uploadTimeout = 10 * time.Second

// runContacts has up to cfg.concurrency sessions upload address books of
// cfg.bookSize numbers, back to back, until cfg.uploads have been answered.
// Half of each book are numbers of accounts made with --user-format, the
// rest numbers nobody registered, so that both matching paths are timed.
func runContacts(ctx context.Context, e *env, res *result) error {
	workers := min(e.cfg.concurrency, e.cfg.uploads)
	ss, failed, err := loginAll(ctx, e, span(0, workers),
		func(int) handlers { return handlers{} }, false, nil)
	defer func() { closeAll(ss, false) }()
	if failed > 0 {
		return fmt.Errorf("%d of %d uploaders could not log in: %w", failed, workers, err)
	}

	answers := make([]chan *elem, workers)
	for i, s := range ss {
		answers[i] = make(chan *elem, 1)
		s.replaceHandlers(handlers{stanza: func(_ *session, m *elem) {
			if m.name == "iq" && strings.HasPrefix(m.attr("id"), "book") {
				answers[i] <- m
			}
		}})
	}

	lat := &histogram{}
	var next, bad atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= e.cfg.uploads || ctx.Err() != nil {
					return
				}
				if err := upload(ctx, e, s, answers[i], k, lat); err != nil {
					bad.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	good := int(lat.count())
	res.add("uploads_ok", float64(good), "")
	res.add("uploads_failed", float64(bad.Load()), "")
	res.add("book_size", float64(e.cfg.bookSize), "")
	res.add("uploads_per_s", float64(good)/elapsed.Seconds(), "/s")
	res.addLatency("upload", lat)
	if err, ok := firstErr.Load().(error); ok {
		return fmt.Errorf("%d of %d uploads failed, first: %w", bad.Load(), e.cfg.uploads, err)
	}
	return ctx.Err()
}

// upload sends address book k and waits for its answer.
func upload(ctx context.Context, e *env, s *session, answer <-chan *elem, k int,
	lat *histogram) error {
	var b strings.Builder
	id := "book" + strconv.Itoa(k)
	b.WriteString("<iq type='get' id='" + id + "' to='" + e.cfg.apiHost +
		"'><phone-book xmlns='" + nsPhoneBook + "'>")
	for j := 0; j < e.cfg.bookSize; j++ {
		num := e.user((k*7919 + j) % (e.cfg.bookSize * 10))
		if j%2 == 1 {
			num = "+1202" + strconv.Itoa(5000000+(k*1000+j)%1000000) // unregistered
		}
		b.WriteString("<entry number='" + xmlEscape(num) + "'/>")
	}
	b.WriteString("</phone-book></iq>")
	t0 := time.Now()
	if _, err := s.sendStanza(b.String(), false); err != nil {
		return err
	}
	timer := time.NewTimer(uploadTimeout)
	defer timer.Stop()
	for {
		select {
		case m := <-answer:
			if m.attr("id") != id {
				continue // a late answer to an upload that timed out
			}
			if m.attr("type") != "result" {
				return fmt.Errorf("upload refused: %s", describe(m, nil))
			}
			lat.record(time.Since(t0))
			return nil
		case <-timer.C:
			return fmt.Errorf("no answer to upload %d within %v", k, uploadTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
