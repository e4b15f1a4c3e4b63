package receipts

import (
	"slices"
	"testing"

	"github.com/twotick/twotick/xmpp/wire"
)

func TestPurges(t *testing.T) {
	delivered := []Delivered{
		{QueueID: 1, From: "+1@d", ClientID: "a"},
		{QueueID: 2, From: "+2@d", ClientID: "a"},
		{QueueID: 3, From: "+1@d", ClientID: "b"},
	}
	tests := []struct {
		name, to, id string
		want         []int64
	}{
		{name: "matching", to: "+1@d", id: "a", want: []int64{1}},
		{name: "other sender's id", to: "+3@d", id: "a", want: nil},
		{name: "never received", to: "+1@d", id: "zzz", want: nil},
		{name: "empty id", to: "+1@d", id: "", want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Purges(delivered, tc.to, tc.id); !slices.Equal(got, tc.want) {
				t.Fatalf("Purges = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	m := wire.New(wire.NSClient, "message").Add(
		wire.New(NS, "received", "id", "x"), wire.New(NS, "request"))
	Sanitize(m)
	if Requested(m) {
		t.Fatal("a receipt still requests a receipt")
	}
	if id, ok := Received(m); !ok || id != "x" {
		t.Fatalf("Received = %q, %v", id, ok)
	}
	plain := wire.New(wire.NSClient, "message").Add(wire.New(NS, "request"))
	Sanitize(plain)
	if !Requested(plain) {
		t.Fatal("Sanitize removed a request from a message that is not a receipt")
	}
}
