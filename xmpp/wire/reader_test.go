package wire

import (
	"errors"
	"io"
	"strings"
	"testing"
)

const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' ` +
	`xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`

func readAll(t *testing.T, in string, l Limits) ([]*Element, error) {
	t.Helper()
	r := NewReader(strings.NewReader(in), l, 0)
	if _, err := r.StreamHeader(); err != nil {
		return nil, err
	}
	var out []*Element
	for {
		e, err := r.Next()
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

func condition(err error) string {
	var se *StreamError
	if errors.As(err, &se) {
		return se.Condition
	}
	return ""
}

func TestReaderRefuses(t *testing.T) {
	tests := []struct {
		name, body string
		limits     Limits
		want       string
	}{
		{name: "comment", body: `<message><!-- x --></message>`, want: "restricted-xml"},
		{name: "processing instruction", body: `<?php x?>`, want: "restricted-xml"},
		{name: "doctype", body: `<!DOCTYPE x [<!ENTITY a "b">]>`, want: "restricted-xml"},
		{name: "undefined entity", body: `<message>&a;</message>`, want: "not-well-formed"},
		{name: "invalid utf-8", body: "<message>\xff\xfe</message>", want: "not-well-formed"},
		{name: "control character", body: "<message>&#1;</message>", want: "not-well-formed"},
		{name: "forbidden char raw", body: "<message>\x01</message>", want: "not-well-formed"},
		{name: "mismatched tags", body: `<message></iq>`, want: "not-well-formed"},
		{name: "text between stanzas", body: `hello`, want: "not-well-formed"},
		{name: "too big", body: `<message>` + strings.Repeat("a", 2000) + `</message>`,
			limits: Limits{MaxBytes: 1000}, want: "policy-violation"},
		{name: "too deep", body: strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40),
			want: "policy-violation"},
		{name: "too many elements", body: `<m>` + strings.Repeat("<a/>", 20) + `</m>`,
			limits: Limits{MaxElements: 10}, want: "policy-violation"},
		{name: "undeclared prefix", body: `<foo:message/>`, want: "bad-namespace-prefix"},
		{name: "surrogate reference hex", body: `<m>&#xD800;</m>`, want: "not-well-formed"},
		{name: "surrogate reference upper hex", body: `<m>&#xdFfF;</m>`, want: "not-well-formed"},
		{name: "surrogate reference decimal", body: `<m>&#55296;</m>`, want: "not-well-formed"},
		{name: "surrogate reference leading zeros", body: `<m>&#x0000000DC00;</m>`,
			want: "not-well-formed"},
		{name: "surrogate reference in attribute", body: `<m a='x&#xDBFF;'/>`,
			want: "not-well-formed"},
		{name: "NUL reference", body: `<m>&#0;</m>`, want: "not-well-formed"},
		{name: "U+FFFF reference", body: `<m>&#65535;</m>`, want: "not-well-formed"},
		{name: "reference beyond Unicode", body: `<m>&#x110000;</m>`, want: "not-well-formed"},
		{name: "huge reference", body: `<m>&#99999999999999999999999;</m>`,
			want: "not-well-formed"},
		{name: "surrogate reference after CDATA", body: `<m><![CDATA[x]]>&#xD800;</m>`,
			want: "not-well-formed"},
		{name: "prefixed name with a digit first", body: `<a xmlns:o='urn:o'><o:0/></a>`,
			want: "not-well-formed"},
		{name: "prefixed attribute with a digit first", body: `<a xmlns:o='urn:o' o:1='x'/>`,
			want: "not-well-formed"},
		{name: "empty local part", body: `<a xmlns:o='urn:o'><o:/></a>`, want: "not-well-formed"},
		{name: "stream header inside the stream", body: header[len("<?xml version='1.0'?>"):],
			want: "policy-violation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAll(t, header+tc.body, tc.limits)
			if got := condition(err); got != tc.want {
				t.Fatalf("error %v (condition %q), want %q", err, got, tc.want)
			}
		})
	}
}

func TestReaderElements(t *testing.T) {
	in := header + ` <message to='a@b' id='1'><body>hi &amp; &lt;you&gt;</body>` +
		`<x xmlns='urn:test' xmlns:p='urn:p' p:attr='v'/></message>` + "\n \t" +
		`<presence/></stream:stream>`
	els, err := readAll(t, in, Limits{})
	if !errors.Is(err, ErrStreamEnd) {
		t.Fatalf("got %v, want ErrStreamEnd", err)
	}
	if len(els) != 2 {
		t.Fatalf("got %d elements, want 2", len(els))
	}
	m := els[0]
	if m.Name.Space != NSClient || m.Get("id") != "1" {
		t.Fatalf("message = %s", m)
	}
	if got := m.ChildText(NSClient, "body"); got != "hi & <you>" {
		t.Fatalf("body %q", got)
	}
	want := `<message to='a@b' id='1'><body>hi &amp; &lt;you&gt;</body>` +
		`<x xmlns='urn:test' xmlns:a0='urn:p' a0:attr='v'/></message>`
	if got := string(m.Bytes(NSClient)); got != want {
		t.Fatalf("encoded\n%s\nwant\n%s", got, want)
	}
}

// TestReaderCharRefs checks the references the reader accepts, and that
// what looks like a reference inside CDATA is literal text.
func TestReaderCharRefs(t *testing.T) {
	tests := []struct{ name, body, text string }{
		{"tab", `<m>&#9;</m>`, "\t"},
		{"last before surrogates", `<m>&#xD7FF;</m>`, "\uD7FF"},
		{"first after surrogates", `<m>&#xE000;</m>`, "\uE000"},
		{"U+FFFD", `<m>&#65533;</m>`, "\uFFFD"},
		{"astral", `<m>&#x1F600;</m>`, "\U0001F600"},
		{"last code point", `<m>&#x10FFFD;</m>`, "\U0010FFFD"},
		{"ampersands before a reference", `<m>&amp;&#x41;&amp;</m>`, "&A&"},
		{"CDATA holds literal text", `<m><![CDATA[&#xD800; &#0;]]></m>`, "&#xD800; &#0;"},
		{"CDATA with brackets", `<m><![CDATA[]]]]><![CDATA[>]]>&#x42;</m>`, "]]>B"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			els, err := readAll(t, header+tc.body+`</stream:stream>`, Limits{})
			if !errors.Is(err, ErrStreamEnd) || len(els) != 1 {
				t.Fatalf("got %d elements, %v", len(els), err)
			}
			if got := els[0].Text(); got != tc.text {
				t.Fatalf("text %q, want %q", got, tc.text)
			}
		})
	}
}

func TestReaderTruncated(t *testing.T) {
	_, err := readAll(t, header+`<message><body>`, Limits{})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want unexpected EOF", err)
	}
}

// FuzzReader checks that no input makes the reader panic, produce text
// outside XML's Char production, or produce an element that does not read
// back to the same serialisation. The seed corpus in testdata/fuzz holds
// each kind of refusal.
//
//	go test ./xmpp/wire/ -run '^$' -fuzz FuzzReader -fuzztime 5m
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		`<message to='a@b'><body>x</body></message>`,
		`<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>`,
		`<a xmlns:p='urn:p' p:x='1'><p:b/></a>`, `<!-- c -->`, "<a>\xff</a>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		els, _ := readAll(t, header+body, Limits{MaxBytes: 4096})
		for _, e := range els {
			if !ValidText(e.Text()) {
				t.Fatalf("accepted forbidden text %q", e.Text())
			}
			once := e.Bytes(NSClient)
			again, err := readAll(t, header+string(once), Limits{})
			if len(again) != 1 {
				t.Fatalf("re-reading %q: %d elements, %v", once, len(again), err)
			}
			if twice := again[0].Bytes(NSClient); string(twice) != string(once) {
				t.Fatalf("not stable:\n%s\n%s", once, twice)
			}
		}
	})
}

// TestReaderRestartKeepsBuffered: after SASL the client may send its new
// stream header right behind the data it answers with; Restart must not
// lose it, while Reset (after STARTTLS) must.
func TestReaderRestartKeepsBuffered(t *testing.T) {
	in := header + `<auth/>` + header + `<iq id='1'/>`
	r := NewReader(strings.NewReader(in), Limits{}, 0)
	if _, err := r.StreamHeader(); err != nil {
		t.Fatal(err)
	}
	if e, err := r.Next(); err != nil || e.Name.Local != "auth" {
		t.Fatalf("Next = %v, %v", e, err)
	}
	r.Restart()
	if _, err := r.StreamHeader(); err != nil {
		t.Fatalf("header after Restart: %v", err)
	}
	if e, err := r.Next(); err != nil || e.Get("id") != "1" {
		t.Fatalf("Next after Restart = %v, %v", e, err)
	}
}
