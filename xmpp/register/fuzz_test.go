package register

import (
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzParseAuthorization feeds the Quicksy API's Authorization header
// parser, which reads what any HTTP client sends before anything is
// checked. An accepted header yields a number and a code that are not
// empty, hold no NUL, and are shorter together than maxAuthorization.
// The seed corpus is in testdata/fuzz/FuzzParseAuthorization.
//
//	go test ./xmpp/register/ -run '^$' -fuzz FuzzParseAuthorization -fuzztime 5m
func FuzzParseAuthorization(f *testing.F) {
	b64 := base64.StdEncoding.EncodeToString
	for _, s := range []string{
		b64([]byte("\x00+12025550101\x00123456")),
		"Basic " + b64([]byte("+12025550101:123456")),
		b64([]byte("+12025550101\x00123456")),
		"basic  " + base64.RawStdEncoding.EncodeToString([]byte("a:b")),
		"", "Basic ", "!!!", b64([]byte("\x00\x00\x00")),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		number, code, err := parseAuthorization(header)
		if err != nil {
			if number != "" || code != "" {
				t.Fatalf("error %v with number %q, code %q", err, number, code)
			}
			return
		}
		if number == "" || code == "" || strings.ContainsRune(code, 0) {
			t.Fatalf("accepted number %q, code %q", number, code)
		}
		// Decoded base64 is shorter than the text, which is bounded.
		if len(number)+len(code) >= maxAuthorization {
			t.Fatalf("accepted %d bytes of credentials", len(number)+len(code))
		}
	})
}
