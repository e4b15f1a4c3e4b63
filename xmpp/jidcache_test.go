package xmpp

import (
	"fmt"
	"testing"

	"mellium.im/xmpp/jid"
)

// TestJIDCache: a cached parse equals jid.Parse, a bad address stays an
// error every time, and the cache never holds more than its bound.
func TestJIDCache(t *testing.T) {
	var c jidCache
	for _, s := range []string{"Alice@Example.COM/Phone", "+12025550001@localhost", "localhost"} {
		want := jid.MustParse(s)
		for range 2 { // the second answer comes from the cache
			got, err := c.parse(s)
			if err != nil || !got.Equal(want) || got.String() != want.String() {
				t.Fatalf("parse(%q) = %v, %v; want %v", s, got, err, want)
			}
		}
	}
	for range 2 {
		if _, err := c.parse("a@b@c"); err == nil {
			t.Fatal("a malformed address parsed")
		}
	}
	for i := range jidCacheSize + 10 {
		if _, err := c.parse(fmt.Sprintf("u%d@localhost", i)); err != nil {
			t.Fatal(err)
		}
		if len(c.m) > jidCacheSize {
			t.Fatalf("cache holds %d addresses, more than %d", len(c.m), jidCacheSize)
		}
	}
}
