package roster

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"
)

// The nine states of RFC 6121 Appendix A.1, named as there.
var appendixStates = map[string]state{
	"None":                   {sub: None},
	"None + Pending Out":     {sub: None, pendOut: true},
	"None + Pending In":      {sub: None, pendIn: true},
	"None + Pending Out/In":  {sub: None, pendOut: true, pendIn: true},
	"To":                     {sub: To},
	"To + Pending In":        {sub: To, pendIn: true},
	"From":                   {sub: From},
	"From + Pending Out":     {sub: From, pendOut: true},
	"Both":                   {sub: Both},
	"None, pre-approved":     {sub: None, preApprov: true},
	"None + Pending Out, pa": {sub: None, pendOut: true, preApprov: true},
	"To, pre-approved":       {sub: To, preApprov: true},
}

// row is one line of an Appendix A table: the state before, the state after
// ("" for no state change) and whether the stanza goes on (routed for
// outbound stanzas, delivered to the user for inbound ones).
type row struct {
	before, after string
	deliver       bool
}

// appendixA holds the tables of RFC 6121 A.2.1–A.2.4 and A.3.1–A.3.4,
// copied row by row, plus the pre-approval rows of § 3.4. The outbound
// tables give no delivery column; § 3 does (see transition).
var appendixA = map[event][]row{
	outSubscribe: { // A.2.1
		{"None", "None + Pending Out", true},
		{"None + Pending Out", "", true},
		{"None + Pending In", "None + Pending Out/In", true},
		{"None + Pending Out/In", "", true},
		{"To", "", true},
		{"To + Pending In", "", true},
		{"From", "From + Pending Out", true},
		{"From + Pending Out", "", true},
		{"Both", "", true},
	},
	outUnsubscribe: { // A.2.2
		{"None", "", true},
		{"None + Pending Out", "None", true},
		{"None + Pending In", "", true},
		{"None + Pending Out/In", "None + Pending In", true},
		{"To", "None", true},
		{"To + Pending In", "None + Pending In", true},
		{"From", "", true},
		{"From + Pending Out", "From", true},
		{"Both", "From", true},
	},
	outSubscribed: { // A.2.3; "no state change" rows record a pre-approval (§ 3.4)
		{"None", "None, pre-approved", false},
		{"None + Pending Out", "None + Pending Out, pa", false},
		{"None + Pending In", "From", true},
		{"None + Pending Out/In", "From + Pending Out", true},
		{"To", "To, pre-approved", false},
		{"To + Pending In", "Both", true},
		{"From", "", false},
		{"From + Pending Out", "", false},
		{"Both", "", false},
		{"None, pre-approved", "", false},
	},
	outUnsubscribed: { // A.2.4; also withdraws a pre-approval
		{"None", "", false},
		{"None + Pending Out", "", false},
		{"None + Pending In", "None", true},
		{"None + Pending Out/In", "None + Pending Out", true},
		{"To", "", false},
		{"To + Pending In", "To", true},
		{"From", "None", true},
		{"From + Pending Out", "None + Pending Out", true},
		{"Both", "To", true},
		{"None, pre-approved", "None", false},
		{"To, pre-approved", "To", false},
	},
	inSubscribe: { // A.3.1; From/From + Pending Out/Both auto-reply instead
		{"None", "None + Pending In", true},
		{"None + Pending Out", "None + Pending Out/In", true},
		{"None + Pending In", "", false},
		{"None + Pending Out/In", "", false},
		{"To", "To + Pending In", true},
		{"To + Pending In", "", false},
		{"From", "", false},
		{"From + Pending Out", "", false},
		{"Both", "", false},
		{"None, pre-approved", "From", false},
		{"None + Pending Out, pa", "From + Pending Out", false},
		{"To, pre-approved", "Both", false},
	},
	inUnsubscribe: { // A.3.2
		{"None", "", false},
		{"None + Pending Out", "", false},
		{"None + Pending In", "None", true},
		{"None + Pending Out/In", "None + Pending Out", true},
		{"To", "", false},
		{"To + Pending In", "To", true},
		{"From", "None", true},
		{"From + Pending Out", "None + Pending Out", true},
		{"Both", "To", true},
	},
	inSubscribed: { // A.3.3
		{"None", "", false},
		{"None + Pending Out", "To", true},
		{"None + Pending In", "", false},
		{"None + Pending Out/In", "To + Pending In", true},
		{"To", "", false},
		{"To + Pending In", "", false},
		{"From", "", false},
		{"From + Pending Out", "Both", true},
		{"Both", "", false},
	},
	inUnsubscribed: { // A.3.4
		{"None", "", false},
		{"None + Pending Out", "None", true},
		{"None + Pending In", "", false},
		{"None + Pending Out/In", "None + Pending In", true},
		{"To", "None", true},
		{"To + Pending In", "None + Pending In", true},
		{"From", "", false},
		{"From + Pending Out", "From", true},
		{"Both", "From", true},
	},
}

func TestAppendixATables(t *testing.T) {
	for ev := outSubscribe; ev <= inUnsubscribed; ev++ {
		rows := appendixA[ev]
		if len(rows) < 9 {
			t.Fatalf("%v: only %d rows", ev, len(rows))
		}
		for _, r := range rows {
			t.Run(fmt.Sprintf("%v/%s", ev, r.before), func(t *testing.T) {
				before := mustState(t, r.before)
				want := before
				if r.after != "" {
					want = mustState(t, r.after)
				}
				got := transition(ev, before)
				if got.next != want || got.deliver != r.deliver {
					t.Errorf("got %+v deliver %v, want %+v deliver %v",
						got.next, got.deliver, want, r.deliver)
				}
				checkStore(t, ev, before, want, r.deliver)
			})
		}
	}
}

func mustState(t *testing.T, name string) state {
	t.Helper()
	st, ok := appendixStates[name]
	if !ok {
		t.Fatalf("no state %q", name)
	}
	return st
}

// checkStore runs the same row through a Store: seeds the state, sends the
// stanza, and checks the stored item, the stored request, the version and
// the Change.
func checkStore(t *testing.T, ev event, before, want state, deliver bool) {
	t.Helper()
	s := openTestStore(t)
	ctx := context.Background()
	err := s.write(ctx, func(tx *sql.Tx) error {
		r := record{Item: Item{JID: bob, Subscription: before.sub, Ask: before.pendOut,
			Approved: before.preApprov}, manual: true}
		if err := save(ctx, tx, alice, r, 7); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO roster_versions (owner, ver) VALUES (?, 7)`, alice); err != nil {
			return err
		}
		if before.pendIn {
			return s.storePending(ctx, tx, alice, bob, "hello")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	methods := map[event]func() (Change, error){
		outSubscribe:    func() (Change, error) { return s.OutboundSubscribe(ctx, alice, bob) },
		outUnsubscribe:  func() (Change, error) { return s.OutboundUnsubscribe(ctx, alice, bob) },
		outSubscribed:   func() (Change, error) { return s.OutboundSubscribed(ctx, alice, bob) },
		outUnsubscribed: func() (Change, error) { return s.OutboundUnsubscribed(ctx, alice, bob) },
		inSubscribe:     func() (Change, error) { return s.InboundSubscribe(ctx, bob, alice) },
		inUnsubscribe:   func() (Change, error) { return s.InboundUnsubscribe(ctx, bob, alice) },
		inSubscribed:    func() (Change, error) { return s.InboundSubscribed(ctx, bob, alice) },
		inUnsubscribed:  func() (Change, error) { return s.InboundUnsubscribed(ctx, bob, alice) },
	}
	ch, err := methods[ev]()
	if err != nil {
		t.Fatal(err)
	}
	it, ok, err := s.Get(ctx, alice, bob)
	if err != nil || !ok {
		t.Fatalf("item gone: %v, %v", ok, err)
	}
	got := state{it.Subscription, it.Ask, it.PendingIn, it.Approved}
	if got != want {
		t.Errorf("stored %+v, want %+v", got, want)
	}
	itemChanged := before.sub != want.sub || before.pendOut != want.pendOut ||
		before.preApprov != want.preApprov
	wantVer := "7"
	if itemChanged {
		wantVer = "8"
	}
	if ch.Changed != itemChanged || ch.Ver != wantVer || ch.Deliver != deliver {
		t.Errorf("Change %+v; want Changed %v, Ver %s, Deliver %v",
			ch, itemChanged, wantVer, deliver)
	}
	if ch.Item.Subscription != want.sub || ch.Item.Ask != want.pendOut {
		t.Errorf("Change.Item %+v does not match the stored state", ch.Item)
	}
	pending, err := s.PendingIn(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if want.pendIn != (len(pending) == 1) {
		t.Errorf("stored requests %v, want pending in %v", pending, want.pendIn)
	}
	if ch.Stored != (want.pendIn && !before.pendIn) {
		t.Errorf("Stored = %v", ch.Stored)
	}
}

// TestPresenceActions checks the actions that go with the transitions, which
// the tables do not show.
func TestPresenceActions(t *testing.T) {
	tests := []struct {
		name                              string
		ev                                event
		before                            string
		autoReply, sendPresence, sendUnav bool
	}{
		{"approve sends presence", outSubscribed, "None + Pending In", false, true, false},
		{"approve to both sends presence", outSubscribed, "To + Pending In", false, true, false},
		{"deny sends nothing", outUnsubscribed, "None + Pending In", false, false, false},
		{"cancel from", outUnsubscribed, "From", false, false, true},
		{"cancel both", outUnsubscribed, "Both", false, false, true},
		{"contact unsubscribes", inUnsubscribe, "Both", false, false, true},
		{"contact withdraws request", inUnsubscribe, "None + Pending In", false, false, false},
		{"already from", inSubscribe, "From", true, false, false},
		{"already both", inSubscribe, "Both", true, false, false},
		{"pre-approved", inSubscribe, "None, pre-approved", true, true, false},
		{"new request", inSubscribe, "None", false, false, false},
		{"contact approves", inSubscribed, "None + Pending Out", false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := transition(tc.ev, mustState(t, tc.before))
			if o.autoReply != tc.autoReply || o.sendPresence != tc.sendPresence ||
				o.sendUnavail != tc.sendUnav {
				t.Errorf("%v from %s: %+v", tc.ev, tc.before, o)
			}
		})
	}
}

// TestPendingLifecycle follows stored requests through approval and denial.
func TestPendingLifecycle(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()

	ch, err := s.InboundSubscribeStatus(ctx, bob, alice, "it's Bob")
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Deliver || !ch.Stored || ch.Changed {
		t.Errorf("first request: %+v; want delivered, stored, no roster change", ch)
	}
	if _, ok, _ := s.Get(ctx, alice, bob); ok {
		t.Error("a request alone created a roster item")
	}
	ch, err = s.InboundSubscribe(ctx, bob, alice)
	if err != nil || ch.Deliver || ch.Stored {
		t.Errorf("repeated request: %+v, %v; want dropped", ch, err)
	}
	if _, err := s.InboundSubscribe(ctx, carol, alice); err != nil {
		t.Fatal(err)
	}
	p, err := s.PendingIn(ctx, alice)
	want := []Pending{{JID: bob, Status: "it's Bob"}, {JID: carol}}
	if err != nil || !slices.Equal(p, want) {
		t.Fatalf("PendingIn = %v, %v; want %v", p, err, want)
	}

	ch, err = s.OutboundSubscribed(ctx, alice, bob)
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Changed || ch.Item.Subscription != From || ch.Item.PendingIn || !ch.Deliver {
		t.Errorf("approval: %+v", ch)
	}
	ch, err = s.OutboundUnsubscribed(ctx, alice, carol)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Changed || !ch.Deliver {
		t.Errorf("denial: %+v; want routed, no roster change", ch)
	}
	if p, _ := s.PendingIn(ctx, alice); len(p) != 0 {
		t.Errorf("requests left after answering both: %v", p)
	}
	if _, ok, _ := s.Get(ctx, alice, carol); ok {
		t.Error("denial created a roster item")
	}
}
