package main

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// elem is one parsed XML element with its subtree. The load generator only
// looks at a handful of names and attributes, so it keeps raw local names and
// reads namespaces from the xmlns attribute where one is written; this avoids
// the namespace bookkeeping of xml.Decoder.Token, which would cost more CPU
// than the server under test spends on the same stanza.
type elem struct {
	name     string
	attrs    []xml.Attr
	children []*elem
	text     string
}

// attr returns the value of the attribute with the given local name, or "".
func (e *elem) attr(local string) string {
	for _, a := range e.attrs {
		if a.Name.Local == local && (a.Name.Space == "" || local == "lang") {
			return a.Value
		}
	}
	return ""
}

// child returns the first child with the given local name, or nil.
func (e *elem) child(local string) *elem {
	for _, c := range e.children {
		if c.name == local {
			return c
		}
	}
	return nil
}

// elemReader reads the top-level children of one XML stream. A new
// elemReader is made at every stream restart (RFC 6120 § 4.3.3); the
// underlying *bufio.Reader is kept across restarts on the same transport so
// that no bytes are lost.
type elemReader struct {
	dec *xml.Decoder
}

func newElemReader(br *bufio.Reader) *elemReader {
	d := xml.NewDecoder(br)
	d.Strict = false
	return &elemReader{dec: d}
}

// streamHeader reads up to and including the opening <stream:stream>.
func (r *elemReader) streamHeader() (*elem, error) {
	for {
		tok, err := r.dec.RawToken()
		if err != nil {
			return nil, fmt.Errorf("reading stream header: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				return nil, fmt.Errorf("expected stream header, got <%s>", se.Name.Local)
			}
			return &elem{name: "stream", attrs: se.Copy().Attr}, nil
		}
	}
}

// next reads one complete top-level element. The closing </stream:stream>
// yields io.EOF.
func (r *elemReader) next() (*elem, error) {
	for {
		tok, err := r.dec.RawToken()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return r.subtree(t)
		case xml.EndElement:
			return nil, io.EOF
		}
	}
}

// subtree reads the rest of the element opened by start.
func (r *elemReader) subtree(start xml.StartElement) (*elem, error) {
	// RawToken may reuse the attribute slice on the next call.
	e := &elem{name: start.Name.Local, attrs: start.Copy().Attr}
	var text strings.Builder
	for {
		tok, err := r.dec.RawToken()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			c, err := r.subtree(t)
			if err != nil {
				return nil, err
			}
			e.children = append(e.children, c)
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			e.text = text.String()
			return e, nil
		}
	}
}

// xmlEscape escapes s for use in attribute values and text.
func xmlEscape(s string) string {
	if !strings.ContainsAny(s, "<>&'\"") {
		return s
	}
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
