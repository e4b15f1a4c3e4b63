package offline

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
)

// holdCommitter blocks the committer until the returned function is called,
// so that everything started meanwhile lands in one group commit.
func holdCommitter(t *testing.T, q *Queue) (release func()) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	go q.withWriter(context.Background(), func(context.Context, *sql.Conn) error {
		close(entered)
		<-gate
		return nil
	})
	<-entered
	return func() { close(gate) }
}

// TestStartGroupsInOrder starts many messages without waiting, so that they
// share one commit and its multi-row inserts, and checks that every message
// gets its own ID in the order started, with its own fields.
func TestStartGroupsInOrder(t *testing.T) {
	for _, n := range []int{1, 2, 3, 255, 256, 257, 700} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			q, _, _ := newQueue(t, Options{})
			ctx := context.Background()
			release := holdCommitter(t, q)
			recipients := []string{bob, carol}
			ps := make([]*Pending, n)
			ms := make([]*Message, n)
			for i := range n {
				ms[i] = msg(alice, recipients[i%2], fmt.Sprint(i))
				ps[i] = q.Start(ms[i])
			}
			release()
			for i, p := range ps {
				if err := p.Wait(ctx); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if i > 0 && ms[i].ID <= ms[i-1].ID {
					t.Fatalf("message %d has ID %d after %d", i, ms[i].ID, ms[i-1].ID)
				}
			}
			for _, to := range recipients {
				got, err := q.Pending(ctx, to, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range got {
					var i int
					fmt.Sscan(m.ClientID, &i)
					if ms[i].ID != m.ID || ms[i].To != to || m.StanzaID != "sid-"+m.ClientID {
						t.Fatalf("stored %+v, started %+v", m, *ms[i])
					}
				}
			}
		})
	}
}

// TestStartRespectsCap checks that messages started in one group still
// count against the recipient's cap one by one.
func TestStartRespectsCap(t *testing.T) {
	q, _, _ := newQueue(t, Options{MaxPerUser: 3})
	ctx := context.Background()
	release := holdCommitter(t, q)
	var ps []*Pending
	for i := range 5 {
		ps = append(ps, q.Start(msg(alice, bob, fmt.Sprint(i))))
	}
	release()
	for i, p := range ps {
		err := p.Wait(ctx)
		if full := i >= 3; full != (err != nil) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if n, _ := q.Count(ctx, bob); n != 3 {
		t.Fatalf("%d queued, want 3", n)
	}
}

// TestDeleteLater checks that lazy deletions, of one ID and of many, are
// applied without anyone waiting, and only to the recipient's messages.
func TestDeleteLater(t *testing.T) {
	q, _, _ := newQueue(t, Options{})
	ctx := context.Background()
	var bobs []int64
	for i := range 6 {
		m := msg(alice, bob, fmt.Sprint(i))
		if err := q.Enqueue(ctx, m); err != nil {
			t.Fatal(err)
		}
		bobs = append(bobs, m.ID)
	}
	other := msg(alice, carol, "c")
	if err := q.Enqueue(ctx, other); err != nil {
		t.Fatal(err)
	}

	q.DeleteLater(bob, bobs[:1])
	q.DeleteLater(bob, append([]int64{other.ID}, bobs[1:4]...))
	waitFor(t, "the deletions", func() bool {
		n, err := q.Count(ctx, bob)
		return err == nil && n == 2
	})
	if n, _ := q.Count(ctx, carol); n != 1 {
		t.Fatalf("carol has %d messages, want 1: another recipient's delete touched hers", n)
	}
	q.Close()
	q.DeleteLater(bob, bobs[4:]) // after Close: dropped, no panic
}
