package xmpp

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestPipelinedCommitsAndH sends a burst of queued messages in one write,
// each followed by <r/> as mobile clients do, so that the reader starts
// many commits before the first one finishes. Every <a h/> must cover only
// messages already committed (the single check), and the last one all of
// them, in order.
func TestPipelinedCommitsAndH(t *testing.T) {
	for _, n := range []int{1, 10, 3 * maxInFlight} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			ts := newTestServer(t)
			ts.addUser(t, "alice", "pw-a")
			ts.addUser(t, "bob", "pw-b") // offline: his messages stay queued
			alice := login(t, ts, "alice", "pw-a", "phone")
			alice.enableSM(t, false)

			var burst strings.Builder
			for i := range n {
				fmt.Fprintf(&burst, "<message type='chat' to='%s' id='m%d'><body>%d</body></message>"+
					"<r xmlns='%s'/>", ts.jid("bob"), i, i, nsSM)
			}
			alice.send(t, burst.String())

			ctx := context.Background()
			for last := -1; last < n; {
				a := alice.expect(t, isSM("a"), 0)
				h, err := strconv.Atoi(a.Get("h"))
				if err != nil || h < last || h > n {
					t.Fatalf("<a h='%s'/> after h=%d of %d messages", a.Get("h"), last, n)
				}
				stored, err := ts.deps.Queue.Count(ctx, ts.jid("bob"))
				if err != nil {
					t.Fatal(err)
				}
				if stored < h {
					t.Fatalf("<a h='%d'/> covers messages not committed: %d stored", h, stored)
				}
				last = h
			}
			got, err := ts.deps.Queue.Pending(ctx, ts.jid("bob"), 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range got {
				if m.ClientID != "m"+strconv.Itoa(i) {
					t.Fatalf("message %d stored as %q: out of order", i, m.ClientID)
				}
			}
		})
	}
}
