package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzPlain feeds PLAIN messages (RFC 4616) to a server with one account.
// Whatever arrives, the exchange either fails with a *Failure of a known
// condition or authenticates that account with its password. The seed
// corpus is in testdata/fuzz/FuzzPlain; FuzzSCRAMClientFirst and
// FuzzSCRAMClientFinal (scram_test.go) cover SCRAM's messages.
//
//	go test ./xmpp/auth/ -run '^$' -fuzz FuzzPlain -fuzztime 5m
func FuzzPlain(f *testing.F) {
	store := newTestStore(f)
	store.Iterations = 1 // keep each PBKDF2 cheap: the parser is the subject
	ctx := context.Background()
	if err := store.Create(ctx, "+12025550101", KindPhone, "pw"); err != nil {
		f.Fatal(err)
	}
	srv := NewServer(store, nil)
	state, _ := tlsPair(f, tls.VersionTLS13)
	for _, s := range []string{"\x00+12025550101\x00pw", "+12025550101\x00+12025550101\x00pw",
		"\x00+12025550101@example.net\x00pw", "\x00+12025550101\x00wrong", "\x00\x00",
		"a\x00b", "\x00weather\x00pw", ""} {
		f.Add([]byte(s))
	}
	known := []string{CondNotAuthorized, CondMalformedRequest, CondInvalidAuthzid}
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := srv.Start(ctx, MechPlain, &state, testAddr)
		if err != nil {
			t.Fatal(err)
		}
		_, done, err := x.Step(ctx, data)
		if len(data) == 0 {
			return // an empty challenge asks for the message
		}
		var fl *Failure
		switch {
		case done:
			if x.Username() != "+12025550101" || !strings.HasSuffix(string(data), "\x00pw") {
				t.Fatalf("%q authenticated as %q", data, x.Username())
			}
		case !errors.As(err, &fl):
			t.Fatalf("%q: error %v is not a *Failure", data, err)
		case !slices.Contains(known, fl.Condition):
			t.Fatalf("%q: condition %q", data, fl.Condition)
		}
	})
}
