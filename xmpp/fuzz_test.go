package xmpp

// Fuzz targets for the parsers of untrusted input that live in this
// package and are not fuzzed beside their code: the ad-hoc command's and
// the text upload's number lines, and the push publish-options form. The
// seed corpora are in testdata/fuzz/<target>. docs/security.md lists every
// fuzz target in the tree.

import (
	"strings"
	"testing"

	"github.com/twotick/twotick/xmpp/wire"
)

// FuzzParseNumberLines feeds address book lines as the ad-hoc command's
// form and the text/plain upload deliver them. Every entry comes from one
// line that is neither blank nor a comment, its number is trimmed and not
// empty, and a line without a separator is the number alone.
//
//	go test ./xmpp/ -run '^$' -fuzz FuzzParseNumberLines -fuzztime 5m
func FuzzParseNumberLines(f *testing.F) {
	for _, s := range []string{"+49 30 1234567, Anna\nAnna: 030 1234567",
		"# comment\n\n  \n+1 (202) 555-0101", "a,b;c:d\te", "Bob\t+44 20 7946 0000",
		",\n;\n:", "1,2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		lines := strings.Split(text, "\n")
		entries := ParseNumberLines(lines)
		counted := 0
		for _, l := range lines {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				counted++
			}
		}
		if len(entries) != counted {
			t.Fatalf("%d entries from %d lines", len(entries), counted)
		}
		for _, e := range entries {
			if e.Number != strings.TrimSpace(e.Number) || e.Name != strings.TrimSpace(e.Name) {
				t.Fatalf("untrimmed entry %+v", e)
			}
			if strings.ContainsRune(e.Number, '\n') {
				t.Fatalf("number spans lines: %q", e.Number)
			}
		}
	})
}

// FuzzPushOptions feeds the publish-options form of a XEP-0357 <enable/>
// the way the server handles it: the element the stream reader built is
// serialised for storage, and read back with parseStored when a
// notification is published. What was stored must read back to the same
// form, whatever the client put in it.
//
//	go test ./xmpp/ -run '^$' -fuzz FuzzPushOptions -fuzztime 5m
func FuzzPushOptions(f *testing.F) {
	for _, s := range []string{
		`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>` +
			`<value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
			`<field var='secret'><value>eruio234vzxc2kla-91</value></field></x>`,
		`<x xmlns='jabber:x:data'><field var='a' xmlns:p='urn:p' p:q='&amp;&lt;'/></x>`,
		`<x xmlns='jabber:x:data'><field><value>&#x1F600; ]]&gt; '"</value></field></x>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, form string) {
		rd := wire.NewReader(strings.NewReader(
			"<stream:stream xmlns='jabber:client' xmlns:stream='"+wire.NSStream+"'>"+form),
			wire.Limits{MaxBytes: maxPushOptions, MaxDepth: 30}, 0)
		if _, err := rd.StreamHeader(); err != nil {
			t.Fatal(err)
		}
		x, err := rd.Next()
		if err != nil {
			return // the stream reader refused it: the session would end
		}
		if x.Name.Space != nsDataForm || x.Name.Local != "x" {
			return // pushIQ stores only a jabber:x:data <x/>
		}
		stored := string(x.Bytes(""))
		if len(stored) > maxPushOptions {
			return // refused with not-acceptable
		}
		back := parseStored(stored)
		if back == nil {
			t.Fatalf("stored options %q do not read back", stored)
		}
		if again := string(back.Bytes("")); again != stored {
			t.Fatalf("stored %q reads back as %q", stored, again)
		}
	})
}
