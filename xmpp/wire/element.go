// Package wire reads and writes the XML of an XMPP stream (RFC 6120 § 4,
// § 11): a stream header, then one complete element at a time, with limits
// on size, depth and element count checked while the bytes arrive, so that
// no untrusted input is held or re-serialised before it has been checked.
//
// An Element is a small, namespace-resolved tree. It is what the server
// routes, stamps and stores; Encode writes it back with the namespace
// declarations it needs and nothing else from the original text.
package wire

import (
	"bytes"
	"encoding/xml"
	"strings"
	"unicode/utf8"
)

// Namespaces used throughout the server.
const (
	NSClient  = "jabber:client"
	NSServer  = "jabber:server"
	NSStream  = "http://etherx.jabber.org/streams"
	NSXML     = "http://www.w3.org/XML/1998/namespace"
	NSStreams = "urn:ietf:params:xml:ns:xmpp-streams"
	NSStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// Element is one XML element with its attributes and content. Nodes holds
// *Element and string (character data) values in document order.
//
// An Element is not safe for concurrent modification; the server treats an
// element as immutable once it is handed to the router and copies it
// (Clone) before changing it.
type Element struct {
	Name  xml.Name
	Attr  []xml.Attr
	Nodes []any
}

// New returns an element in namespace space with the given attributes as
// name/value pairs.
func New(space, local string, attrs ...string) *Element {
	e := &Element{Name: xml.Name{Space: space, Local: local}}
	for i := 0; i+1 < len(attrs); i += 2 {
		e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Local: attrs[i]}, Value: attrs[i+1]})
	}
	return e
}

// Add appends children (each an *Element or a string) and returns e.
func (e *Element) Add(nodes ...any) *Element {
	for _, n := range nodes {
		switch n := n.(type) {
		case *Element:
			if n != nil {
				e.Nodes = append(e.Nodes, n)
			}
		case string:
			if n != "" {
				e.Nodes = append(e.Nodes, n)
			}
		}
	}
	return e
}

// AddText appends a child element holding only text and returns e.
func (e *Element) AddText(space, local, text string) *Element {
	return e.Add(New(space, local).Add(text))
}

// Get returns the value of the attribute with no namespace named local.
func (e *Element) Get(local string) string {
	for _, a := range e.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// Has reports whether the attribute with no namespace named local exists.
func (e *Element) Has(local string) bool {
	for _, a := range e.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return true
		}
	}
	return false
}

// Lang returns the xml:lang attribute.
func (e *Element) Lang() string {
	for _, a := range e.Attr {
		if a.Name.Local == "lang" && (a.Name.Space == NSXML || a.Name.Space == "xml") {
			return a.Value
		}
	}
	return ""
}

// Set sets (or, with an empty value, removes) an attribute with no
// namespace.
func (e *Element) Set(local, value string) {
	for i, a := range e.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			if value == "" {
				e.Attr = append(e.Attr[:i], e.Attr[i+1:]...)
				return
			}
			e.Attr[i].Value = value
			return
		}
	}
	if value != "" {
		e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Local: local}, Value: value})
	}
}

// Child returns the first child element with the given namespace and local
// name, or nil. An empty local matches any name in the namespace.
func (e *Element) Child(space, local string) *Element {
	for _, n := range e.Nodes {
		if c, ok := n.(*Element); ok && c.Name.Space == space &&
			(local == "" || c.Name.Local == local) {
			return c
		}
	}
	return nil
}

// Children returns every child element.
func (e *Element) Children() []*Element {
	var out []*Element
	for _, n := range e.Nodes {
		if c, ok := n.(*Element); ok {
			out = append(out, c)
		}
	}
	return out
}

// RemoveChildren removes every child element for which drop returns true.
func (e *Element) RemoveChildren(drop func(*Element) bool) {
	kept := e.Nodes[:0]
	for _, n := range e.Nodes {
		if c, ok := n.(*Element); ok && drop(c) {
			continue
		}
		kept = append(kept, n)
	}
	e.Nodes = kept
}

// Text returns the concatenated character data directly inside e.
func (e *Element) Text() string {
	var sb strings.Builder
	for _, n := range e.Nodes {
		if s, ok := n.(string); ok {
			sb.WriteString(s)
		}
	}
	return sb.String()
}

// ChildText returns the text of the first child with the given name.
func (e *Element) ChildText(space, local string) string {
	if c := e.Child(space, local); c != nil {
		return c.Text()
	}
	return ""
}

// Clone returns a deep copy of e.
func (e *Element) Clone() *Element {
	c := &Element{Name: e.Name}
	c.Attr = append([]xml.Attr(nil), e.Attr...)
	c.Nodes = make([]any, len(e.Nodes))
	for i, n := range e.Nodes {
		if ce, ok := n.(*Element); ok {
			c.Nodes[i] = ce.Clone()
		} else {
			c.Nodes[i] = n
		}
	}
	return c
}

// Bytes returns the serialisation of e as the child of a parent in
// namespace parentNS (usually NSClient, so that stanzas carry no xmlns).
func (e *Element) Bytes(parentNS string) []byte {
	var b bytes.Buffer
	e.Encode(&b, parentNS)
	return b.Bytes()
}

// String returns the serialisation of e with its namespace declared.
func (e *Element) String() string { return string(e.Bytes("")) }

// Encode writes e to b. Each element declares its namespace only where it
// differs from its parent's; namespaced attributes other than xml:* get
// generated prefixes. Declarations in the original input are never copied,
// so what is written is always well-formed and self-consistent.
//
// Elements in the streams namespace (features, error) are written with the
// stream: prefix that every stream header declares, as clients expect.
func (e *Element) Encode(b *bytes.Buffer, parentNS string) {
	name := e.Name.Local
	if e.Name.Space == NSStream {
		name = "stream:" + name
	}
	b.WriteByte('<')
	b.WriteString(name)
	if e.Name.Space != parentNS && e.Name.Space != NSStream {
		b.WriteString(" xmlns='")
		escape(b, e.Name.Space)
		b.WriteByte('\'')
	}
	prefixes := 0
	for _, a := range e.Attr {
		switch {
		case a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns"):
			continue
		case a.Name.Space == "":
			b.WriteByte(' ')
			b.WriteString(a.Name.Local)
		case a.Name.Space == NSXML || a.Name.Space == "xml":
			b.WriteString(" xml:")
			b.WriteString(a.Name.Local)
		default:
			p := "a" + string(rune('0'+prefixes%10))
			prefixes++
			b.WriteString(" xmlns:" + p + "='")
			escape(b, a.Name.Space)
			b.WriteString("' " + p + ":")
			b.WriteString(a.Name.Local)
		}
		b.WriteString("='")
		escape(b, a.Value)
		b.WriteByte('\'')
	}
	if len(e.Nodes) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	for _, n := range e.Nodes {
		switch n := n.(type) {
		case *Element:
			ns := e.Name.Space
			if ns == NSStream {
				ns = "" // children of stream elements always declare theirs
			}
			n.Encode(b, ns)
		case string:
			escape(b, n)
		}
	}
	b.WriteString("</")
	b.WriteString(name)
	b.WriteByte('>')
}

// escape writes s with the five XML special characters escaped. Input has
// already been checked for forbidden characters by the Reader; strings the
// server makes itself are escaped the same way and never hold them.
func escape(b *bytes.Buffer, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '&':
			esc = "&amp;"
		case '\'':
			esc = "&apos;"
		case '"':
			esc = "&quot;"
		case '\r':
			esc = "&#xD;"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(esc)
		last = i + 1
	}
	b.WriteString(s[last:])
}

// ValidText reports whether s is valid UTF-8 made only of characters that
// XML 1.0 allows (RFC 6120 § 11.1).
func ValidText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !allowedRune(r) {
			return false
		}
	}
	return true
}

func allowedRune(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) ||
		(r >= 0x10000 && r <= 0x10FFFF)
}
