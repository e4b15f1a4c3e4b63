package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// nsPhoneBook is the Quicksy address-book synchronisation protocol that
// twotick's api.DOMAIN component answers (DESIGN.md, "Rosters from address
// books"). Prosody and ejabberd do not implement it, so compare.sh runs
// this scenario against twotick only.
const nsPhoneBook = "im.quicksy.synchronization:0"

// uploadTimeout bounds the wait for one upload's answer.
const uploadTimeout = 10 * time.Second

// maxUploaders bounds the sessions the scenario holds: one per upload, all
// logged in before the first upload, under the 20,000 open files a process
// may have here.
const maxUploaders = 18000

// runContacts uploads cfg.uploads address books, each from its own account
// (account k of the population uploads book k), so that every upload is a
// new book, as when users install the app: up to cfg.concurrency uploads
// are in flight at once, or, with cfg.uploadRate, each is sent when it is
// due at that rate. All uploaders log in first; only the uploads are
// timed. Each book holds cfg.bookSize distinct numbers: a cfg.matchShare
// share of accounts of the population, the rest numbers after it that
// nobody registered (see bookNumbers).
func runContacts(ctx context.Context, e *env, res *result) error {
	n := e.cfg.uploads
	ss, failed, err := loginAll(ctx, e, span(0, n),
		func(int) handlers { return handlers{} }, false, nil)
	defer func() { closeAll(ss, false) }()
	if failed > 0 {
		return fmt.Errorf("%d of %d uploaders could not log in: %w", failed, n, err)
	}

	answers := make([]chan *elem, n)
	for i, s := range ss {
		answers[i] = make(chan *elem, 1)
		s.replaceHandlers(handlers{stanza: func(_ *session, m *elem) {
			if m.name == "iq" && strings.HasPrefix(m.attr("id"), "book") {
				select {
				case answers[i] <- m:
				default: // a late duplicate; the upload already failed
				}
			}
		}})
	}
	// The books are built before the clock starts, so that the generator's
	// own work does not count in the server's latency.
	stanzas := make([]string, n)
	want := make([]int, n)
	for k := range stanzas {
		stanzas[k], want[k] = bookStanza(e, k)
	}

	lat := &histogram{}
	var bad, matched, short atomic.Int64
	var firstErr atomic.Value
	one := func(k int, from time.Time) {
		got, err := upload(ctx, ss[k], answers[k], k, stanzas[k], from, lat)
		if err != nil {
			bad.Add(1)
			firstErr.CompareAndSwap(nil, err)
			return
		}
		matched.Add(int64(got))
		if got != want[k] {
			short.Add(1)
			firstErr.CompareAndSwap(nil, fmt.Errorf(
				"upload %d: %d numbers matched, want %d", k, got, want[k]))
		}
	}
	var wg sync.WaitGroup
	cpu0, _ := e.serverCPU()
	t0 := time.Now()
	if r := e.cfg.uploadRate; r > 0 {
		// Open loop: upload k is due at t0 + k/r whatever happened to the
		// others, and its latency runs from then (no coordinated omission).
		sched := schedule{start: t0, rate: r, total: n}
		for k := range n {
			wg.Go(func() {
				if sleepUntil(ctx, sched.due(k)) == nil {
					one(k, sched.due(k))
				}
			})
		}
	} else {
		var next atomic.Int64
		for range min(e.cfg.concurrency, n) {
			wg.Go(func() {
				for {
					k := int(next.Add(1) - 1)
					if k >= n || ctx.Err() != nil {
						return
					}
					one(k, time.Time{})
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(t0)
	cpu1, cpuErr := e.serverCPU()
	good := int(lat.count())
	res.add("uploads_ok", float64(good), "")
	res.add("uploads_failed", float64(bad.Load()), "")
	res.add("uploads_mismatched", float64(short.Load()), "")
	res.add("book_size", float64(e.cfg.bookSize), "")
	res.add("population", float64(e.cfg.population), "")
	if e.cfg.uploadRate > 0 {
		res.add("offered_rate", e.cfg.uploadRate, "/s")
	} else {
		res.add("concurrency", float64(min(e.cfg.concurrency, n)), "")
	}
	if good > 0 {
		res.add("matches_per_upload", float64(matched.Load())/float64(good), "")
	}
	res.add("uploads_per_s", float64(good)/elapsed.Seconds(), "/s")
	if e.cfg.serverPID > 0 && cpuErr == nil && good > 0 {
		res.add("server_cpu_ms_per_upload",
			float64((cpu1-cpu0).Microseconds())/1000/float64(good), "ms")
	}
	res.addLatency("upload", lat)
	if err, ok := firstErr.Load().(error); ok {
		return fmt.Errorf("%d of %d uploads failed and %d matched wrongly, first: %w",
			bad.Load(), n, short.Load(), err)
	}
	return ctx.Err()
}

// bookNumbers returns the population indexes of book k: round(share ×
// size) distinct accounts of the population other than the uploader k, and
// the rest distinct indexes of the cfg.unreg numbers that follow the
// population, which nobody registered. With --user-format '+1202%07d' all
// are numbers of the uploader's own area, as in a real address book. The
// same seed and k give the same book.
func bookNumbers(c *config, k int) (registered, unregistered []int) {
	r := rand.New(rand.NewPCG(uint64(c.seed), uint64(k)))
	m := int(float64(c.bookSize)*c.matchShare + 0.5)
	m = min(m, c.population-1)
	seen := map[int]bool{k: true}
	for len(registered) < m {
		i := r.IntN(c.population)
		if !seen[i] {
			seen[i] = true
			registered = append(registered, i)
		}
	}
	rest := min(c.bookSize-m, c.unreg)
	for len(unregistered) < rest {
		i := c.population + r.IntN(c.unreg)
		if !seen[i] {
			seen[i] = true
			unregistered = append(unregistered, i)
		}
	}
	return registered, unregistered
}

// bookStanza returns the upload of book k and how many of its numbers are
// accounts. Registered and unregistered numbers are interleaved.
func bookStanza(e *env, k int) (string, int) {
	reg, unreg := bookNumbers(e.cfg, k)
	var b strings.Builder
	b.Grow(64 + 40*(len(reg)+len(unreg)))
	b.WriteString("<iq type='get' id='book" + strconv.Itoa(k) + "' to='" + e.cfg.apiHost +
		"'><phone-book xmlns='" + nsPhoneBook + "'>")
	entry := func(i int) {
		b.WriteString("<entry number='" + xmlEscape(e.user(i)) + "'/>")
	}
	for j := 0; j < len(reg) || j < len(unreg); j++ {
		if j < len(reg) {
			entry(reg[j])
		}
		if j < len(unreg) {
			entry(unreg[j])
		}
	}
	b.WriteString("</phone-book></iq>")
	return b.String(), len(reg)
}

// upload sends book k and waits for its answer; it returns the number of
// matches the answer lists. Its latency runs from from, or from the send
// when from is zero.
func upload(ctx context.Context, s *session, answer <-chan *elem, k int, stanza string,
	from time.Time, lat *histogram) (int, error) {
	id := "book" + strconv.Itoa(k)
	t0 := from
	if t0.IsZero() {
		t0 = time.Now()
	}
	if _, err := s.sendStanza(stanza, false); err != nil {
		return 0, err
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
				return 0, fmt.Errorf("upload refused: %s", describe(m, nil))
			}
			lat.record(time.Since(t0))
			got := 0
			if pb := m.child("phone-book"); pb != nil {
				for _, c := range pb.children {
					if c.name == "entry" {
						got++
					}
				}
			}
			return got, nil
		case <-timer.C:
			return 0, fmt.Errorf("no answer to upload %d within %v", k, uploadTimeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
