package wire

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Limits bound what one peer can make the reader hold. A zero field takes
// the default shown.
type Limits struct {
	// MaxBytes is the largest element, in bytes of input (default 262144).
	MaxBytes int
	// MaxDepth is the deepest nesting inside one element (default 32).
	MaxDepth int
	// MaxElements is the most elements inside one top-level element
	// (default 10000).
	MaxElements int
	// MaxAttrs is the most attributes on one element (default 64).
	MaxAttrs int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 256 << 10
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = 32
	}
	if l.MaxElements <= 0 {
		l.MaxElements = 10000
	}
	if l.MaxAttrs <= 0 {
		l.MaxAttrs = 64
	}
	return l
}

// StreamError is a stream-level error condition (RFC 6120 § 4.9.3) found in
// the input. The caller sends it to the peer and closes the stream.
type StreamError struct {
	Condition string
	Text      string
}

func (e *StreamError) Error() string {
	if e.Text == "" {
		return "stream error: " + e.Condition
	}
	return "stream error: " + e.Condition + ": " + e.Text
}

// Element returns the <stream:error/> element for e.
func (e *StreamError) Element() *Element {
	se := New(NSStream, "error")
	se.Add(New(NSStreams, e.Condition))
	if e.Text != "" {
		se.Add(New(NSStreams, "text").Add(e.Text))
	}
	return se
}

// ErrStreamEnd is returned by Next when the peer closed its stream with
// </stream:stream>.
var ErrStreamEnd = errors.New("peer closed the stream")

var errTooBig = errors.New("element too large")

// ErrUnrequestedRestart is the *StreamError Next returns for a stream
// header inside the stream: a restart the server did not ask for. Stream
// restarts are thereby bounded by the negotiation steps that call for one.
var ErrUnrequestedRestart = &StreamError{Condition: "policy-violation",
	Text: "stream restart not requested"}

// Header is the opening <stream:stream> of a peer.
type Header struct {
	To, From, ID, Version, Lang string
	// NS is the default (content) namespace declared, such as jabber:client.
	NS string
}

// countingReader counts the bytes consumed since the last reset and fails
// once more than max have been read, so that an oversized element is
// refused while it arrives rather than after it has been buffered. It also
// passes every byte through refs, which fails on a character reference
// the decoder would otherwise accept wrongly.
type countingReader struct {
	r    *pooledReader
	n    int
	max  int
	refs refScanner
}

func (c *countingReader) ReadByte() (byte, error) {
	if c.n >= c.max {
		return 0, errTooBig
	}
	b, err := c.r.ReadByte()
	if err != nil {
		return b, err
	}
	c.n++
	if !c.refs.scan(b) {
		return 0, errBadCharRef
	}
	return b, nil
}

// Read is not used by encoding/xml, which prefers ReadByte, but keeps the
// same checks for any other caller.
func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= c.max {
		return 0, errTooBig
	}
	if len(p) > c.max-c.n {
		p = p[:c.max-c.n]
	}
	n, err := c.r.Read(p)
	c.n += n
	for i, b := range p[:n] {
		if !c.refs.scan(b) {
			return i, errBadCharRef
		}
	}
	return n, err
}

// Reader reads a stream header and then one top-level element at a time.
// It is not safe for concurrent use.
type Reader struct {
	limits Limits
	src    *pooledReader
	cr     countingReader
	dec    *xml.Decoder
	depth  int

	// declared holds the namespaces declared (xmlns and xmlns:p) by the
	// open elements, stream header included; marks[i] is its length
	// before the i-th open element's declarations.
	declared []string
	marks    []int

	wait func() // see SetWait
}

// NewReader reads from r with the given limits. bufSize is the size of the
// read buffer (0 for 4096), which is held only while input arrives: an
// idle stream gives it back to a pool shared by all Readers.
func NewReader(r io.Reader, limits Limits, bufSize int) *Reader {
	if bufSize <= 0 {
		bufSize = 4096
	}
	rd := &Reader{limits: limits.withDefaults(), src: newPooledReader(r, bufSize)}
	rd.Reset(r)
	return rd
}

// SetWait has Next call wait before reading an element when nothing is
// buffered, so that a caller can wait for input in a shallow frame: a
// goroutine parked deep inside the XML decoder keeps a stack twice as
// large, and a server has one such goroutine per idle connection. wait
// need not wait; Next reads the same either way.
func (r *Reader) SetWait(wait func()) { r.wait = wait }

// SetLimits changes the limits, for example after authentication.
func (r *Reader) SetLimits(l Limits) {
	r.limits = l.withDefaults()
	r.cr.max = r.limits.MaxBytes
}

// Reset starts a new XML document on src and drops whatever was buffered
// from the old source, as the restart after STARTTLS requires (RFC 6120
// § 5.4.3.3): plaintext read ahead must never count as encrypted input.
func (r *Reader) Reset(src io.Reader) {
	r.src.Reset(src)
	r.Restart()
}

// Restart starts a new XML document on the same source, keeping what is
// already buffered, as the stream restart after SASL requires
// (RFC 6120 § 6.4.6): unlike after STARTTLS, bytes the client sent right
// after <success/> belong to the new stream.
func (r *Reader) Restart() {
	r.cr = countingReader{r: r.src, max: r.limits.MaxBytes}
	r.dec = xml.NewDecoder(&r.cr)
	r.dec.Strict = true
	r.depth = 0
	r.declared = r.declared[:0]
	r.marks = r.marks[:0]
}

// Buffered reports how many bytes are read ahead and not yet parsed; a
// STARTTLS request followed by more plaintext is an attack (RFC 6120 § 5.4.3.3).
func (r *Reader) Buffered() int { return r.src.Buffered() }

// token returns the next token, translating decoder failures into stream
// errors and refusing what RFC 6120 § 11.1 restricts.
func (r *Reader) token() (xml.Token, error) {
	tok, err := r.dec.Token()
	if err != nil {
		return nil, r.classify(err)
	}
	switch t := tok.(type) {
	case xml.Comment:
		return nil, &StreamError{Condition: "restricted-xml", Text: "comments are not allowed"}
	case xml.Directive:
		return nil, &StreamError{Condition: "restricted-xml",
			Text: "DTDs and declarations are not allowed"}
	case xml.ProcInst:
		// Only the XML declaration, and only before the stream header.
		if t.Target != "xml" || r.depth != 0 {
			return nil, &StreamError{Condition: "restricted-xml",
				Text: "processing instructions are not allowed"}
		}
		if enc := procInstParam(string(t.Inst), "encoding"); enc != "" &&
			!strings.EqualFold(enc, "utf-8") {
			return nil, &StreamError{Condition: "unsupported-encoding"}
		}
	case xml.CharData:
		if !ValidText(string(t)) {
			return nil, &StreamError{Condition: "not-well-formed", Text: "forbidden character"}
		}
	case xml.EndElement:
		if n := len(r.marks); n > 0 {
			r.declared = r.declared[:r.marks[n-1]]
			r.marks = r.marks[:n-1]
		}
	case xml.StartElement:
		r.marks = append(r.marks, len(r.declared))
		for _, a := range t.Attr {
			if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
				r.declared = append(r.declared, a.Value)
			}
		}
		if bad := r.badPrefix(t); bad {
			return nil, &StreamError{Condition: "bad-namespace-prefix"}
		}
		if !namesValid(t) {
			return nil, &StreamError{Condition: "not-well-formed", Text: "invalid name"}
		}
		if len(t.Attr) > r.limits.MaxAttrs {
			return nil, &StreamError{Condition: "policy-violation", Text: "too many attributes"}
		}
		for _, a := range t.Attr {
			if !ValidText(a.Value) {
				return nil, &StreamError{Condition: "not-well-formed",
					Text: "forbidden character"}
			}
		}
	}
	return tok, nil
}

func (r *Reader) classify(err error) error {
	switch {
	case errors.Is(err, errTooBig):
		return &StreamError{Condition: "policy-violation",
			Text: fmt.Sprintf("element larger than %d bytes", r.limits.MaxBytes)}
	case errors.Is(err, errBadCharRef):
		return &StreamError{Condition: "not-well-formed", Text: "forbidden character"}
	case errors.Is(err, io.EOF):
		return io.EOF
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		if strings.Contains(se.Msg, "unexpected EOF") {
			return io.ErrUnexpectedEOF
		}
		return &StreamError{Condition: "not-well-formed"}
	}
	return err
}

// badPrefix reports a name whose prefix was never declared: the decoder
// leaves such a prefix in place of a namespace. A namespace with a ':' is a
// URI, which a bare prefix (an NCName) cannot be; one without, such as
// legacy OMEMO's eu.siacs.conversations.axolotl, is fine if it was
// declared by an open element.
func (r *Reader) badPrefix(t xml.StartElement) bool {
	if r.undeclared(t.Name.Space) {
		return true
	}
	for _, a := range t.Attr {
		if a.Name.Space != "xmlns" && a.Name.Space != "xml" && r.undeclared(a.Name.Space) {
			return true
		}
	}
	return false
}

func (r *Reader) undeclared(space string) bool {
	return space != "" && !strings.Contains(space, ":") && !slices.Contains(r.declared, space)
}

func procInstParam(inst, name string) string {
	i := strings.Index(inst, name+"=")
	if i < 0 {
		return ""
	}
	v := inst[i+len(name)+1:]
	if len(v) < 2 {
		return ""
	}
	q := v[0]
	end := strings.IndexByte(v[1:], q)
	if end < 0 {
		return ""
	}
	return v[1 : end+1]
}

// StreamHeader reads up to and including the peer's <stream:stream>.
func (r *Reader) StreamHeader() (Header, error) {
	for {
		tok, err := r.token()
		if err != nil {
			return Header{}, err
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			continue
		case xml.CharData:
			if len(strings.TrimSpace(string(t))) == 0 {
				continue
			}
			return Header{}, &StreamError{Condition: "not-well-formed"}
		case xml.StartElement:
			if t.Name.Local != "stream" || t.Name.Space != NSStream {
				return Header{}, &StreamError{Condition: "invalid-namespace"}
			}
			r.depth = 1
			r.cr.n = 0
			h := Header{}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					h.NS = a.Value
				case a.Name.Space == "":
					switch a.Name.Local {
					case "to":
						h.To = a.Value
					case "from":
						h.From = a.Value
					case "id":
						h.ID = a.Value
					case "version":
						h.Version = a.Value
					}
				case a.Name.Local == "lang" && (a.Name.Space == NSXML || a.Name.Space == "xml"):
					h.Lang = a.Value
				}
			}
			return h, nil
		default:
			return Header{}, &StreamError{Condition: "not-well-formed"}
		}
	}
}

// Next reads the next top-level element of the stream. Whitespace between
// elements (keepalives) is skipped. It returns ErrStreamEnd when the peer
// closes its stream, io.EOF when the connection ends, or a *StreamError.
func (r *Reader) Next() (*Element, error) {
	if r.wait != nil && r.src.Buffered() == 0 {
		r.wait()
	}
	for {
		r.cr.n = 0
		tok, err := r.token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(strings.TrimSpace(string(t))) != 0 {
				return nil, &StreamError{Condition: "not-well-formed",
					Text: "text outside a stanza"}
			}
		case xml.EndElement:
			return nil, ErrStreamEnd
		case xml.StartElement:
			if t.Name.Space == NSStream && t.Name.Local == "stream" {
				// A restart is the server's to grant (after STARTTLS or
				// SASL), on a fresh reader; a header inside the stream is
				// a restart the client took on its own (RFC 6120 § 4.3.3).
				return nil, ErrUnrequestedRestart
			}
			return r.element(t)
		default:
			return nil, &StreamError{Condition: "not-well-formed"}
		}
	}
}

// element reads the rest of the element that starts with start.
func (r *Reader) element(start xml.StartElement) (*Element, error) {
	root := &Element{Name: start.Name, Attr: start.Attr}
	stack := []*Element{root}
	count := 1
	for len(stack) > 0 {
		tok, err := r.token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			count++
			if count > r.limits.MaxElements {
				return nil, &StreamError{Condition: "policy-violation",
					Text: "too many elements"}
			}
			if len(stack) >= r.limits.MaxDepth {
				return nil, &StreamError{Condition: "policy-violation",
					Text: "elements nested too deeply"}
			}
			e := &Element{Name: t.Name, Attr: t.Attr}
			top.Nodes = append(top.Nodes, e)
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(t) == 0 {
				continue // an empty CDATA section: no node, as in <m/>
			}
			// Adjacent text is merged so that Text() stays cheap.
			if n := len(top.Nodes); n > 0 {
				if s, ok := top.Nodes[n-1].(string); ok {
					top.Nodes[n-1] = s + string(t)
					continue
				}
			}
			top.Nodes = append(top.Nodes, string(t))
		}
	}
	return root, nil
}
