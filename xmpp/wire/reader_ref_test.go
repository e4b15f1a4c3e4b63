package wire

// The reader as it was built on encoding/xml, kept as a reference that
// FuzzReaderAgrees compares the hand-written parser with.

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

var refErrTooBig = errors.New("element too large")

// refCounting counts the bytes consumed since the last reset and fails
// once more than max have been read, so that an oversized element is
// refused while it arrives rather than after it has been buffered. It also
// passes every byte through refs, which fails on a character reference
// the decoder would otherwise accept wrongly.
type refCounting struct {
	r    *pooledReader
	n    int
	max  int
	refs refScanner
}

func (c *refCounting) ReadByte() (byte, error) {
	if c.n >= c.max {
		return 0, refErrTooBig
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
func (c *refCounting) Read(p []byte) (int, error) {
	if c.n >= c.max {
		return 0, refErrTooBig
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

// refReader reads a stream header and then one top-level element at a time.
// It is not safe for concurrent use.
type refReader struct {
	limits Limits
	src    *pooledReader
	cr     refCounting
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
func newRefReader(r io.Reader, limits Limits, bufSize int) *refReader {
	if bufSize <= 0 {
		bufSize = 4096
	}
	rd := &refReader{limits: limits.withDefaults(), src: newPooledReader(r, bufSize)}
	rd.Reset(r)
	return rd
}

// SetWait has Next call wait before reading an element when nothing is
// buffered, so that a caller can wait for input in a shallow frame: a
// goroutine parked deep inside the XML decoder keeps a stack twice as
// large, and a server has one such goroutine per idle connection. wait
// need not wait; Next reads the same either way.
func (r *refReader) SetWait(wait func()) { r.wait = wait }

// SetLimits changes the limits, for example after authentication.
func (r *refReader) SetLimits(l Limits) {
	r.limits = l.withDefaults()
	r.cr.max = r.limits.MaxBytes
}

// Reset starts a new XML document on src and drops whatever was buffered
// from the old source, as the restart after STARTTLS requires (RFC 6120
// § 5.4.3.3): plaintext read ahead must never count as encrypted input.
func (r *refReader) Reset(src io.Reader) {
	r.src.Reset(src)
	r.Restart()
}

// Restart starts a new XML document on the same source, keeping what is
// already buffered, as the stream restart after SASL requires
// (RFC 6120 § 6.4.6): unlike after STARTTLS, bytes the client sent right
// after <success/> belong to the new stream.
func (r *refReader) Restart() {
	r.cr = refCounting{r: r.src, max: r.limits.MaxBytes}
	r.dec = xml.NewDecoder(&r.cr)
	r.dec.Strict = true
	r.depth = 0
	r.declared = r.declared[:0]
	r.marks = r.marks[:0]
}

// Buffered reports how many bytes are read ahead and not yet parsed; a
// STARTTLS request followed by more plaintext is an attack (RFC 6120 § 5.4.3.3).
func (r *refReader) Buffered() int { return r.src.Buffered() }

// token returns the next token, translating decoder failures into stream
// errors and refusing what RFC 6120 § 11.1 restricts.
func (r *refReader) token() (xml.Token, error) {
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

func (r *refReader) classify(err error) error {
	switch {
	case errors.Is(err, refErrTooBig):
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
func (r *refReader) badPrefix(t xml.StartElement) bool {
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

func (r *refReader) undeclared(space string) bool {
	return space != "" && !strings.Contains(space, ":") && !slices.Contains(r.declared, space)
}

// StreamHeader reads up to and including the peer's <stream:stream>.
func (r *refReader) StreamHeader() (Header, error) {
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
func (r *refReader) Next() (*Element, error) {
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
func (r *refReader) element(start xml.StartElement) (*Element, error) {
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

// namesValid reports whether the local parts of an element's name and of
// its attributes' names are NCNames as XML Namespaces § 3 requires.
// encoding/xml checks a name as a whole, so that it accepts "p:0", whose
// local part "0" would be written back as the ill-formed <0/>.
func namesValid(t xml.StartElement) bool {
	if !ncName(t.Name.Local) {
		return false
	}
	for _, a := range t.Attr {
		if !ncName(a.Name.Local) {
			return false
		}
	}
	return true
}

// ncName approximates the NCName production the way encoding/xml reads
// names: a letter, '_' or a non-ASCII character first, and no ':'.
func ncName(s string) bool {
	if s == "" || strings.Contains(s, ":") {
		return false
	}
	c := s[0]
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= utf8.RuneSelf
}

// FuzzReaderAgrees checks the parser against the reference built on
// encoding/xml: both read the same elements, and where one refuses the
// input the other does too, except where the parser is knowingly stricter
// (strictlyRefused).
//
//	go test ./xmpp/wire/ -run '^$' -fuzz FuzzReaderAgrees -fuzztime 5m
func FuzzReaderAgrees(f *testing.F) {
	for _, s := range []string{
		`<message to='a@b' id="1" type='chat'><body>x &amp; &#x1F600; y</body></message>`,
		`<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>`,
		`<a xmlns:p='urn:p' p:x='1'><p:b/></a><r xmlns='urn:xmpp:sm:3'/>`,
		"<a>\r\n<![CDATA[<x>]]>\r</a>", `<a xml:lang='en'>t</a></stream:stream>`,
		`<a x='1' x='2'/>`, `<m>]]></m>`, `<m>&#65;&#x42;</m>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		in := header + body
		got, gotErr := readAll(t, in, Limits{MaxBytes: 4096})
		var want []*Element
		var wantErr error
		ref := newRefReader(strings.NewReader(in), Limits{MaxBytes: 4096}, 0)
		if _, wantErr = ref.StreamHeader(); wantErr == nil {
			for {
				e, err := ref.Next()
				if err != nil {
					wantErr = err
					break
				}
				want = append(want, e)
			}
		}
		for i := range min(len(got), len(want)) {
			if g, w := got[i].Bytes(NSClient), want[i].Bytes(NSClient); string(g) != string(w) {
				t.Fatalf("element %d:\n got %s\nwant %s", i, g, w)
			}
		}
		if len(got) == len(want) && sameEnd(gotErr, wantErr) {
			return
		}
		if len(got) < len(want) || len(got) == len(want) {
			if strictlyRefused(gotErr) {
				return
			}
		}
		t.Fatalf("read %d elements, then %v; the reference read %d, then %v",
			len(got), gotErr, len(want), wantErr)
	})
}

// sameEnd reports whether two readers stopped for the same kind of reason.
func sameEnd(a, b error) bool {
	var sa, sb *StreamError
	if errors.As(a, &sa) && errors.As(b, &sb) {
		return true // conditions may differ in how a fault is named
	}
	// Input that ends inside an element with a fault in what came: one
	// reader may find the fault first, the other the end.
	eof := func(err error) bool { return err == io.EOF || err == io.ErrUnexpectedEOF }
	return a == b || eof(a) && eof(b) ||
		a == io.ErrUnexpectedEOF && errors.As(b, &sb) || b == io.ErrUnexpectedEOF && errors.As(a, &sa)
}

// strictlyRefused reports a refusal the parser makes on purpose where
// encoding/xml accepts the input.
func strictlyRefused(err error) bool {
	return err == errRepeatedAttr || err == errEmptyPrefix ||
		err == errAttrSpace || err == errNonASCIIName || err == errXMLNSDeclared
}
