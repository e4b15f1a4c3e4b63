package xmpp

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestStanzaMetricKinds: an element name a client makes up counts as
// "other" and never becomes a label of its own, so clients cannot grow the
// number of series.
func TestStanzaMetricKinds(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw")
	c := login(t, ts, "alice", "pw", "phone")
	c.sync(t)
	c.send(t, "<made-up-name xmlns='jabber:client'/>")
	c.expectStreamError(t, "unsupported-stanza-type")

	m := ts.deps.Metrics
	if n := testutil.CollectAndCount(m.stanzasIn); n != 4 {
		t.Fatalf("%d series of stanzas received, want 4 (message, presence, iq, other)", n)
	}
	if got := testutil.ToFloat64(m.in.other); got != 1 {
		t.Fatalf("other = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.in.iq); got < 1 {
		t.Fatalf("iq = %v, want the sync ping counted", got)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.stanzasIn)
	out, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range out {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if strings.Contains(l.GetValue(), "made-up") {
					t.Fatalf("a client's element name became a label: %s", l.GetValue())
				}
			}
		}
	}
}
