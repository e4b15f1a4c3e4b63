package offline

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchPayload is the size of a typical small chat stanza.
var benchPayload = []byte(`<message xmlns="jabber:client" type="chat" ` +
	`id="5f1c2a9e-0b7d-4c4e-9a57-2b1f0d3c8e41" ` +
	`to="+12025550102@localhost"><body>See you at the station at eight, I will bring the ` +
	`tickets.</body><request xmlns="urn:xmpp:receipts"/><markable xmlns="urn:xmpp:chat-markers:0"/>` +
	`<origin-id xmlns="urn:xmpp:sid:0" id="5f1c2a9e-0b7d-4c4e-9a57-2b1f0d3c8e41"/></message>`)

const benchRecipients = 1000

func benchRecipient(i int64) string {
	return fmt.Sprintf("+1202555%04d@localhost", i%benchRecipients)
}

func benchMessage(i int64) *Message {
	return &Message{
		To:       benchRecipient(i),
		From:     "+13035550100@localhost",
		ClientID: fmt.Sprint("c", i),
		StanzaID: fmt.Sprint("s", i),
		Payload:  benchPayload,
	}
}

// reportRate adds a msgs/s figure for n messages over the benchmark's time.
func reportRate(b *testing.B, n int64, start time.Time) {
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkEnqueueParallel measures durable enqueue (synchronous=full) with
// many senders waiting at once, which is what group commit is for. Each
// sender waits for its commit before sending again, as a session does, so
// throughput grows with the number of senders until the committer's CPU is
// the limit.
func BenchmarkEnqueueParallel(b *testing.B) {
	for _, perCore := range []int{32, 128, 512} {
		senders := perCore * runtime.GOMAXPROCS(0)
		b.Run(fmt.Sprint("senders=", senders), func(b *testing.B) {
			benchEnqueue(b, perCore)
		})
	}
}

func benchEnqueue(b *testing.B, perCore int) {
	q, _, _ := newQueue(b, Options{Synchronous: "full", MaxPerUser: 1 << 30})
	ctx := context.Background()
	var seq atomic.Int64

	b.SetParallelism(perCore)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := q.Enqueue(ctx, benchMessage(seq.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, int64(b.N), start)
}

// BenchmarkEnqueueDelete measures a message's whole life for an online
// recipient: stored durably, then purged on acknowledgement.
func BenchmarkEnqueueDelete(b *testing.B) {
	q, _, _ := newQueue(b, Options{Synchronous: "full", MaxPerUser: 1 << 30})
	ctx := context.Background()
	var seq atomic.Int64

	b.SetParallelism(128)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := benchMessage(seq.Add(1))
			if err := q.Enqueue(ctx, m); err != nil {
				b.Error(err)
				return
			}
			if err := q.Delete(ctx, m.To, []int64{m.ID}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, int64(b.N), start)
}

// BenchmarkPendingDelete drains 100,000 queued messages of 1,000 recipients
// the way logins do: each recipient reads pages of Pending and deletes each
// page once acknowledged, 64 recipients at a time.
func BenchmarkPendingDelete(b *testing.B) {
	const total, page, drainers = 100_000, 100, 64
	q, _, _ := newQueue(b, Options{Synchronous: "full", MaxPerUser: 1 << 30})
	ctx := context.Background()

	fill := func() {
		batch := make([]*Message, 0, 1000)
		for i := range int64(total) {
			batch = append(batch, benchMessage(i))
			if len(batch) == cap(batch) {
				if err := q.EnqueueBatch(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
	}

	var drained atomic.Int64
	var elapsed time.Duration
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		fill()
		b.StartTimer()
		start := time.Now()

		next := make(chan string, benchRecipients)
		for i := range int64(benchRecipients) {
			next <- benchRecipient(i)
		}
		close(next)
		var wg sync.WaitGroup
		for range drainers {
			wg.Go(func() {
				for to := range next {
					drained.Add(drain(b, q, to, page))
				}
			})
		}
		wg.Wait()
		elapsed += time.Since(start)
	}
	b.ReportMetric(float64(drained.Load())/elapsed.Seconds(), "msgs/s")
	if n, _ := q.Count(ctx, benchRecipient(0)); n != 0 {
		b.Errorf("%d messages left after draining", n)
	}
}

// drain delivers and purges every message of to, a page at a time.
func drain(b *testing.B, q *Queue, to string, page int) int64 {
	ctx := context.Background()
	var n int64
	for {
		ms, err := q.Pending(ctx, to, 0, page)
		if err != nil {
			b.Error(err)
			return n
		}
		if len(ms) == 0 {
			return n
		}
		if err := q.Delete(ctx, to, ids(ms)); err != nil {
			b.Error(err)
			return n
		}
		n += int64(len(ms))
	}
}
