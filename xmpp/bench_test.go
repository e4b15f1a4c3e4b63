package xmpp

// Benchmarks of store and forward through real sockets (TLS, SCRAM, the
// router, the queue with synchronous=FULL):
//
//	go test -run '^$' -bench BenchmarkChatSM -benchtime 20000x ./xmpp/
//	GOMAXPROCS=1 go test -run '^$' -bench BenchmarkChatSM -benchtime 20000x ./xmpp/
//	go test -run '^$' -bench BenchmarkOfflineDrain -benchtime 1x ./xmpp/
//
// BenchmarkChatSM reports messages/s and the time to the single check
// (send to the <a/> that covers the message) at p50 and p99.
// BenchmarkOfflineDrain reports how long 1,000 users take, from their
// initial presence, to receive and acknowledge 100 queued messages each
// until the queue is empty.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/offline"
	"github.com/twotick/twotick/receipts"
	"github.com/twotick/twotick/xmpp/wire"
)

const (
	benchPairs  = 32 // sender and receiver pairs chatting at once
	benchWindow = 8  // messages a sender has sent and not seen acknowledged
)

// durable makes the test server sync every commit, as production does.
func durable(c *conf.Config) { c.Storage.Synchronous = "full" }

// benchPair is a sender and a receiver, both under stream management.
type benchPair struct {
	from, to *rawClient
	base     uint32 // the sender's count before the benchmark
}

func BenchmarkChatSM(b *testing.B) {
	ts := newTestServer(b, durable)
	pairs := make([]benchPair, benchPairs)
	for i := range pairs {
		s, r := fmt.Sprintf("s%d", i), fmt.Sprintf("r%d", i)
		ts.addUser(b, s, "pw")
		ts.addUser(b, r, "pw")
		p := &pairs[i]
		p.from = login(b, ts, s, "pw", "bench")
		p.to = login(b, ts, r, "pw", "bench")
		for _, c := range []*rawClient{p.from, p.to} {
			c.enableSM(b, false)
			c.sendPresence(b, "")
			c.sync(b)
		}
		p.from.send(b, "<r xmlns='urn:xmpp:sm:3'/>")
		a := p.from.expect(b, isSM("a"), 0)
		h, _ := strconv.ParseUint(a.Get("h"), 10, 32)
		p.base = uint32(h)
	}

	share := make([]int, benchPairs)
	for i := range b.N {
		share[i%benchPairs]++
	}
	lat := make([][]time.Duration, benchPairs)
	errs := make(chan error, 2*benchPairs)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range pairs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			l, err := benchSend(&pairs[i], ts.jid(fmt.Sprintf("r%d", i)), share[i])
			lat[i] = l
			if err != nil {
				errs <- fmt.Errorf("sender %d: %w", i, err)
			}
		}()
		go func() {
			defer wg.Done()
			if err := benchReceive(pairs[i].to, ts.jid(fmt.Sprintf("s%d", i)), share[i]); err != nil {
				errs <- fmt.Errorf("receiver %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}

	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		b.ReportMetric(ms(all[len(all)/2]), "p50-ms")
		b.ReportMetric(ms(all[len(all)*99/100]), "p99-ms")
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchSend sends n messages with receipt requests, each followed by <r/>,
// keeping benchWindow in flight, and returns the time from each send to
// the <a/> that covered it. It returns once every message is acknowledged
// and its receipt has come back.
func benchSend(p *benchPair, to string, n int) ([]time.Duration, error) {
	c := p.from
	sentAt := make([]time.Time, n)
	lat := make([]time.Duration, 0, n)
	sent, acked, receipted := 0, 0, 0
	var buf []byte
	for acked < n || receipted < n {
		buf = buf[:0]
		for sent < n && sent-acked < benchWindow {
			buf = fmt.Appendf(buf, "<message type='chat' to='%s' id='m%d'><body>message %d</body>"+
				"<request xmlns='%s'/></message><r xmlns='%s'/>", to, sent, sent, receipts.NS, nsSM)
			sentAt[sent] = time.Now()
			sent++
		}
		if len(buf) > 0 {
			if err := c.trySend(string(buf)); err != nil {
				return lat, err
			}
		}
		el, err := c.next(waitTime)
		if err != nil {
			return lat, fmt.Errorf("%d sent, %d acknowledged, %d receipts: %w",
				sent, acked, receipted, err)
		}
		switch {
		case isSM("a")(el):
			h, err := strconv.ParseUint(el.Get("h"), 10, 32)
			if err != nil {
				return lat, err
			}
			now := time.Now()
			for ; acked < int(uint32(h)-p.base); acked++ {
				lat = append(lat, now.Sub(sentAt[acked]))
			}
		case el.Name.Local == "message" && el.Child(receipts.NS, "received") != nil:
			// Receipts are queued messages too: acknowledge them so that
			// they leave the queue, in batches as clients do.
			if receipted++; receipted%16 == 0 || receipted == n {
				err := c.trySend("<a xmlns='urn:xmpp:sm:3' h='" +
					strconv.FormatInt(c.stanzaCount(), 10) + "'/>")
				if err != nil {
					return lat, err
				}
			}
		case el.Name.Local == "message" && el.Get("type") == "error":
			return lat, fmt.Errorf("message refused: %s", el)
		}
	}
	return lat, nil
}

// benchReceive answers each of n messages with a receipt and an <a/>, in
// one write, as a phone that got it would.
func benchReceive(c *rawClient, from string, n int) error {
	for got := 0; got < n; {
		el, err := c.next(waitTime)
		if err != nil {
			return fmt.Errorf("%d of %d received: %w", got, n, err)
		}
		if el.Name.Local != "message" || el.Child(receipts.NS, "request") == nil {
			continue
		}
		got++
		err = c.trySend("<message to='" + from + "' id='r-" + el.Get("id") + "'><received xmlns='" +
			receipts.NS + "' id='" + el.Get("id") + "'/></message><a xmlns='urn:xmpp:sm:3' h='" +
			strconv.FormatInt(c.stanzaCount(), 10) + "'/>")
		if err != nil {
			return err
		}
	}
	return nil
}

const (
	drainUsers   = 1000
	drainPerUser = 100
)

// BenchmarkOfflineDrain queues 100 messages for each of 1,000 users, logs
// them in (not timed), and times from their initial presence until every
// message has been delivered, acknowledged and purged.
func BenchmarkOfflineDrain(b *testing.B) {
	for range b.N {
		b.StopTimer()
		ts := newTestServer(b, durable)
		ctx := context.Background()
		ts.addUser(b, "sender", "pw")
		users := make([]string, drainUsers)
		for i := range users {
			users[i] = fmt.Sprintf("u%d", i)
			ts.addUser(b, users[i], "pw")
		}
		fillQueue(b, ts, users)

		loginStart := time.Now()
		clients := make([]*rawClient, drainUsers)
		for i, u := range users {
			clients[i] = login(b, ts, u, "pw", "phone")
			clients[i].enableSM(b, false)
		}
		b.ReportMetric(float64(drainUsers)/time.Since(loginStart).Seconds(), "logins/s")

		b.StartTimer()
		start := time.Now()
		errs := make(chan error, drainUsers)
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := drainOne(c); err != nil {
					errs <- fmt.Errorf("%s: %w", c.full, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		// Delivered and acknowledged; wait for the purge to commit.
		deadline := time.Now().Add(time.Minute)
		for {
			var left int
			if err := ts.db.QueryRowContext(ctx,
				"SELECT COUNT(*) FROM offline_messages").Scan(&left); err != nil {
				b.Fatal(err)
			}
			if left == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d messages still queued a minute after delivery", left)
			}
			time.Sleep(2 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(elapsed.Seconds(), "s/drain")
		b.ReportMetric(drainUsers*drainPerUser/elapsed.Seconds(), "msgs/s")
		ts.stop(b)
	}
}

// fillQueue queues drainPerUser messages for each user, as the server
// would have stored them, in batches.
func fillQueue(b *testing.B, ts *testServer, users []string) {
	b.Helper()
	ctx := context.Background()
	from := ts.jid("sender")
	for k := range drainPerUser {
		batch := make([]*offline.Message, 0, len(users))
		for _, u := range users {
			to := ts.jid(u)
			id := "q" + strconv.Itoa(k)
			sid := randomID(12)
			msg := wire.New(wire.NSClient, "message", "type", "chat", "id", id,
				"from", from+"/bench", "to", to)
			msg.AddText(wire.NSClient, "body", "queued message "+id)
			msg.Add(wire.New(nsSID, "stanza-id", "id", sid, "by", to))
			batch = append(batch, &offline.Message{To: to, From: from, ClientID: id,
				StanzaID: sid, Payload: msg.Bytes(wire.NSClient)})
		}
		if err := ts.srv.deps.Queue.EnqueueBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

// drainOne sends initial presence, reads the user's queued messages and
// acknowledges them every 25 and at the end.
func drainOne(c *rawClient) error {
	if err := c.trySend("<presence/>"); err != nil {
		return err
	}
	for got := 0; got < drainPerUser; {
		el, err := c.next(time.Minute)
		if err != nil {
			return fmt.Errorf("%d of %d messages: %w", got, drainPerUser, err)
		}
		if el.Name.Local != "message" {
			continue
		}
		if got++; got%25 == 0 {
			err := c.trySend("<a xmlns='urn:xmpp:sm:3' h='" +
				strconv.FormatInt(c.stanzaCount(), 10) + "'/>")
			if err != nil {
				return err
			}
		}
	}
	return nil
}
