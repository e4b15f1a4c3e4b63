package wire

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
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
	if e.Text != "" {
		return "stream error " + e.Condition + ": " + e.Text
	}
	return "stream error " + e.Condition
}

// Element returns the <stream:error/> element for e.
func (e *StreamError) Element() *Element {
	se := New(NSStream, "error").Add(New(NSStreams, e.Condition))
	if e.Text != "" {
		se.Add(New(NSStreams, "text").Add(e.Text))
	}
	return se
}

// ErrStreamEnd is returned by Next when the peer closed its stream with
// </stream:stream>.
var ErrStreamEnd = errors.New("peer closed the stream")

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

// Errors found in the input. Each is a *StreamError the caller can send.
var (
	errNotWellFormed = &StreamError{Condition: "not-well-formed"}
	errForbiddenChar = &StreamError{Condition: "not-well-formed", Text: "forbidden character"}
	errBadName       = &StreamError{Condition: "not-well-formed", Text: "invalid name"}
	errComment       = &StreamError{Condition: "restricted-xml", Text: "comments are not allowed"}
	errDTD           = &StreamError{Condition: "restricted-xml",
		Text: "DTDs and declarations are not allowed"}
	errProcInst = &StreamError{Condition: "restricted-xml",
		Text: "processing instructions are not allowed"}
	errBadPrefix   = &StreamError{Condition: "bad-namespace-prefix"}
	errTooDeep     = &StreamError{Condition: "policy-violation", Text: "elements nested too deeply"}
	errTooMany     = &StreamError{Condition: "policy-violation", Text: "too many elements"}
	errManyAttrs   = &StreamError{Condition: "policy-violation", Text: "too many attributes"}
	errOutsideText = &StreamError{Condition: "not-well-formed", Text: "text outside a stanza"}
	// Refusals that encoding/xml, which the server once used, does not make.
	errRepeatedAttr = &StreamError{Condition: "not-well-formed", Text: "attribute repeated"}
	errNonASCIIName = &StreamError{Condition: "not-well-formed",
		Text: "names outside ASCII are not accepted"}
	// Namespaces in XML 1.0 § 3: the prefix xmlns is bound by definition
	// and must not be declared.
	errXMLNSDeclared = &StreamError{Condition: "bad-namespace-prefix",
		Text: "the prefix xmlns cannot be declared"}
	errAttrSpace = &StreamError{Condition: "not-well-formed",
		Text: "no white space before an attribute"}
	errEmptyPrefix = &StreamError{Condition: "not-well-formed",
		Text: "a prefix declared with an empty namespace"}
)

// binding is a namespace declaration in scope: prefix "" is the default
// namespace.
type binding struct{ prefix, uri string }

// rawAttr is an attribute as written, before its prefix is resolved.
type rawAttr struct{ prefix, local, value string }

// Reader reads a stream header and then one top-level element at a time.
// It parses the XML itself, in the restricted form RFC 6120 § 11 allows
// (no comments, processing instructions, DTDs or entities other than the
// five predefined ones), checking each limit and each character as the
// bytes arrive. It is not safe for concurrent use.
type Reader struct {
	limits Limits
	src    *pooledReader
	n      int // bytes consumed by the element (or header) being read

	binds      []binding // declarations of the open elements, header first
	streamName string    // the header's qualified name, for its end tag
	inStream   bool      // a header was read and its end tag was not
	selfClosed bool      // the header was <stream:stream/>

	text     []byte    // text being read
	attrs    []rawAttr // attributes of the start tag being read
	lastMark int       // len(binds) before the last start tag's declarations

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
// server has one reading goroutine per idle connection, and one parked
// deep inside a parser keeps a larger stack. wait need not wait; Next
// reads the same either way.
func (r *Reader) SetWait(wait func()) { r.wait = wait }

// SetLimits changes the limits, for example after authentication.
func (r *Reader) SetLimits(l Limits) { r.limits = l.withDefaults() }

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
	r.n = 0
	r.binds = r.binds[:0]
	r.streamName = ""
	r.inStream = false
	r.selfClosed = false
}

// Buffered reports how many bytes are read ahead and not yet parsed; a
// STARTTLS request followed by more plaintext is an attack (RFC 6120 § 5.4.3.3).
func (r *Reader) Buffered() int { return r.src.Buffered() }

// byte returns the next input byte, counting it against MaxBytes.
func (r *Reader) byte() (byte, error) {
	if r.n >= r.limits.MaxBytes {
		return 0, &StreamError{Condition: "policy-violation",
			Text: fmt.Sprintf("element larger than %d bytes", r.limits.MaxBytes)}
	}
	p := r.src
	if p.r < p.w {
		b := p.buf[p.r]
		p.r++
		if p.r == p.w {
			p.release()
		}
		r.n++
		return b, nil
	}
	b, err := p.ReadByte()
	if err != nil {
		return 0, err
	}
	r.n++
	return b, nil
}

// must is byte inside a construct, where the input may not end.
func (r *Reader) must() (byte, error) {
	b, err := r.byte()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return b, err
}

func (r *Reader) expect(want byte) error {
	b, err := r.must()
	if err != nil {
		return err
	}
	if b != want {
		return errNotWellFormed
	}
	return nil
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// skipSpace reads past white space and returns the first other byte.
func (r *Reader) skipSpace() (byte, error) {
	for {
		b, err := r.must()
		if err != nil || !isSpace(b) {
			return b, err
		}
	}
}

// StreamHeader reads up to and including the peer's <stream:stream>.
func (r *Reader) StreamHeader() (Header, error) {
	declared := false
	for {
		b, err := r.byte()
		if err != nil {
			return Header{}, err
		}
		if isSpace(b) {
			continue
		}
		if b != '<' {
			return Header{}, errNotWellFormed
		}
		if b, err = r.must(); err != nil {
			return Header{}, err
		}
		switch b {
		case '?':
			if declared {
				return Header{}, errProcInst
			}
			declared = true
			if err := r.declaration(); err != nil {
				return Header{}, err
			}
			continue
		case '!':
			return Header{}, r.markup()
		case '/':
			return Header{}, errNotWellFormed
		}
		el, qname, empty, err := r.startTag(b)
		if err != nil {
			return Header{}, err
		}
		if el.Name.Local != "stream" || el.Name.Space != NSStream {
			return Header{}, &StreamError{Condition: "invalid-namespace"}
		}
		r.streamName, r.inStream, r.selfClosed = qname, true, empty
		r.n = 0
		h := Header{}
		for _, a := range el.Attr {
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
			case a.Name.Local == "lang" && a.Name.Space == NSXML:
				h.Lang = a.Value
			}
		}
		return h, nil
	}
}

// declaration reads the rest of an XML declaration after "<?" and refuses
// any other processing instruction and any encoding but UTF-8.
func (r *Reader) declaration() error {
	r.text = r.text[:0]
	for {
		b, err := r.must()
		if err != nil {
			return err
		}
		if b == '>' && len(r.text) > 0 && r.text[len(r.text)-1] == '?' {
			break
		}
		r.text = append(r.text, b)
	}
	inst := string(r.text[:len(r.text)-1])
	target, rest, _ := strings.Cut(inst, " ")
	if target != "xml" {
		return errProcInst
	}
	if enc := procInstParam(rest, "encoding"); enc != "" && !strings.EqualFold(enc, "utf-8") {
		return &StreamError{Condition: "unsupported-encoding"}
	}
	return nil
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

// markup refuses what follows "<!" outside text: a comment or a DTD.
func (r *Reader) markup() error {
	b, err := r.must()
	if err != nil {
		return err
	}
	switch b {
	case '-':
		return errComment
	case '[':
		return errNotWellFormed
	}
	return errDTD
}

// Next reads the next top-level element of the stream. Whitespace between
// elements (keepalives) is skipped. It returns ErrStreamEnd when the peer
// closes its stream, io.EOF when the connection ends, or a *StreamError.
func (r *Reader) Next() (*Element, error) {
	if r.selfClosed {
		return nil, ErrStreamEnd
	}
	if r.wait != nil && r.src.Buffered() == 0 {
		r.wait()
	}
	for {
		r.n = 0
		b, err := r.byte()
		if err != nil {
			return nil, err
		}
		if isSpace(b) {
			continue
		}
		if b != '<' {
			return nil, errOutsideText
		}
		if b, err = r.must(); err != nil {
			return nil, err
		}
		switch b {
		case '/':
			if err := r.endTag(r.streamName); err != nil {
				return nil, err
			}
			r.inStream = false
			return nil, ErrStreamEnd
		case '!':
			// A CDATA section between stanzas is text there: fine only
			// if it holds nothing.
			if err := r.cdataSection(); err != nil {
				return nil, err
			}
			if len(strings.TrimLeft(string(r.text), " \t\r\n")) != 0 {
				return nil, errOutsideText
			}
			continue
		case '?':
			return nil, errProcInst
		}
		return r.element(b)
	}
}

func (r *Reader) expectString(s string) error {
	for i := 0; i < len(s); i++ {
		if err := r.expect(s[i]); err != nil {
			return err
		}
	}
	return nil
}

// element reads the element whose start tag begins with first.
func (r *Reader) element(first byte) (*Element, error) {
	root, qname, empty, err := r.startTag(first)
	if err != nil {
		return nil, err
	}
	if root.Name.Space == NSStream && root.Name.Local == "stream" {
		// A restart is the server's to grant (after STARTTLS or SASL), on
		// a fresh reader; a header inside the stream is a restart the
		// client took on its own (RFC 6120 § 4.3.3).
		return nil, ErrUnrequestedRestart
	}
	if empty {
		return root, nil
	}
	type open struct {
		el    *Element
		qname string
		binds int // len(r.binds) before its declarations
	}
	stack := []open{{root, qname, r.lastMark}}
	count := 1
	for len(stack) > 0 {
		top := stack[len(stack)-1].el
		if err := r.chars(top); err != nil {
			return nil, err
		}
		b, err := r.must()
		if err != nil {
			return nil, err
		}
		switch b {
		case '/':
			o := stack[len(stack)-1]
			if err := r.endTag(o.qname); err != nil {
				return nil, err
			}
			r.binds = r.binds[:o.binds]
			stack = stack[:len(stack)-1]
			continue
		case '!':
			if err := r.cdataSection(); err != nil {
				return nil, err
			}
			if err := r.addText(top); err != nil {
				return nil, err
			}
			continue
		case '?':
			return nil, errProcInst
		}
		count++
		if count > r.limits.MaxElements {
			return nil, errTooMany
		}
		if len(stack) >= r.limits.MaxDepth {
			return nil, errTooDeep
		}
		el, qname, empty, err := r.startTag(b)
		if err != nil {
			return nil, err
		}
		top.Nodes = append(top.Nodes, el)
		if !empty {
			stack = append(stack, open{el, qname, r.lastMark})
		}
	}
	return root, nil
}

// startTag reads a start tag after "<" whose name begins with first,
// declares its namespaces, and returns the element, its qualified name as
// written, and whether it was empty (<x/>). The declarations of an empty
// element are dropped again before it returns; r.lastMark is where the
// element's own declarations begin.
func (r *Reader) startTag(first byte) (*Element, string, bool, error) {
	qname, b, err := r.name(first)
	if err != nil {
		return nil, "", false, err
	}
	r.attrs = r.attrs[:0]
	mark := len(r.binds)
	empty := false
	for {
		sep := isSpace(b)
		if sep {
			if b, err = r.skipSpace(); err != nil {
				return nil, "", false, err
			}
		}
		if b == '>' {
			break
		}
		if b == '/' {
			if err := r.expect('>'); err != nil {
				return nil, "", false, err
			}
			empty = true
			break
		}
		if !sep {
			return nil, "", false, errAttrSpace
		}
		if len(r.attrs) >= r.limits.MaxAttrs {
			return nil, "", false, errManyAttrs
		}
		aname, c, err := r.name(b)
		if err != nil {
			return nil, "", false, err
		}
		if isSpace(c) {
			if c, err = r.skipSpace(); err != nil {
				return nil, "", false, err
			}
		}
		if c != '=' {
			return nil, "", false, errNotWellFormed
		}
		q, err := r.skipSpace()
		if err != nil {
			return nil, "", false, err
		}
		if q != '\'' && q != '"' {
			return nil, "", false, errNotWellFormed
		}
		value, err := r.attrValue(q)
		if err != nil {
			return nil, "", false, err
		}
		prefix, local := splitName(aname)
		for _, a := range r.attrs {
			if a.prefix == prefix && a.local == local {
				return nil, "", false, errRepeatedAttr
			}
		}
		r.attrs = append(r.attrs, rawAttr{prefix, local, value})
		switch {
		case prefix == "" && local == "xmlns":
			r.binds = append(r.binds, binding{"", value})
		case prefix == "xmlns":
			if value == "" {
				return nil, "", false, errEmptyPrefix
			}
			if local == "xmlns" {
				return nil, "", false, errXMLNSDeclared
			}
			r.binds = append(r.binds, binding{local, value})
		}
		if b, err = r.must(); err != nil {
			return nil, "", false, err
		}
	}

	prefix, local := splitName(qname)
	space, ok := r.resolve(prefix)
	if !ok || prefix == "xmlns" {
		return nil, "", false, errBadPrefix
	}
	el := &Element{Name: xml.Name{Space: space, Local: local}}
	if len(r.attrs) > 0 {
		el.Attr = make([]xml.Attr, len(r.attrs))
		for i, a := range r.attrs {
			n := xml.Name{Local: a.local}
			switch a.prefix {
			case "":
			case "xmlns":
				n.Space = "xmlns"
			default:
				if n.Space, ok = r.resolve(a.prefix); !ok {
					return nil, "", false, errBadPrefix
				}
			}
			el.Attr[i] = xml.Attr{Name: n, Value: a.value}
		}
	}
	if empty {
		r.binds = r.binds[:mark]
	}
	r.lastMark = mark
	return el, qname, empty, nil
}

// resolve returns the namespace a prefix stands for in the open elements.
// Unprefixed names take the default namespace, or none.
func (r *Reader) resolve(prefix string) (string, bool) {
	if prefix == "xml" {
		return NSXML, true
	}
	for i := len(r.binds) - 1; i >= 0; i-- {
		if r.binds[i].prefix == prefix {
			return r.binds[i].uri, true
		}
	}
	return "", prefix == ""
}

func splitName(q string) (prefix, local string) {
	if i := strings.IndexByte(q, ':'); i >= 0 {
		return q[:i], q[i+1:]
	}
	return "", q
}

// endTag reads the rest of an end tag after "</" and checks that it closes
// the element named want.
func (r *Reader) endTag(want string) error {
	b, err := r.must()
	if err != nil {
		return err
	}
	got, b, err := r.name(b)
	if err != nil {
		return err
	}
	if isSpace(b) {
		if b, err = r.skipSpace(); err != nil {
			return err
		}
	}
	if b != '>' || got != want {
		return errNotWellFormed
	}
	return nil
}

func isNameByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '_' || b == '-' || b == '.' || b == ':' || b >= utf8.RuneSelf
}

// name reads a qualified name beginning with first and returns it with the
// byte that ended it. A name is one NCName, or two joined by ':'
// (XML Namespaces § 3).
func (r *Reader) name(first byte) (string, byte, error) {
	if !isNameByte(first) || first <= '9' {
		return "", 0, errBadName // '-', '.', ':' or a digit cannot begin a name
	}
	r.text = append(r.text[:0], first)
	for {
		b, err := r.must()
		if err != nil {
			return "", 0, err
		}
		if !isNameByte(b) {
			if !validQName(r.text) {
				for _, c := range r.text {
					if c >= utf8.RuneSelf {
						return "", 0, errNonASCIIName
					}
				}
				return "", 0, errBadName
			}
			return intern(r.text), b, nil
		}
		r.text = append(r.text, b)
	}
}

func validQName(q []byte) bool {
	colon := -1
	for i, c := range q {
		if c == ':' {
			if colon >= 0 {
				return false
			}
			colon = i
		}
	}
	if colon < 0 {
		return validNCName(q)
	}
	return validNCName(q[:colon]) && validNCName(q[colon+1:])
}

// validNCName checks the NCName production for ASCII names: a letter or
// '_' first, then letters, digits, '-', '.' and '_'. Names outside ASCII
// are refused: no XMPP extension uses one, and XML parsers disagree on
// which of them are names (XML 1.0's fourth and fifth editions differ), so
// passing one on could make the recipient's client drop its stream.
func validNCName(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for i, c := range s {
		ok := c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if i > 0 && !ok {
			ok = c == '-' || c == '.' || '0' <= c && c <= '9'
		}
		if !ok {
			return false
		}
	}
	return true
}

// attrValue reads an attribute value up to the closing quote q.
func (r *Reader) attrValue(q byte) (string, error) {
	r.text = r.text[:0]
	for {
		b, err := r.must()
		if err != nil {
			return "", err
		}
		switch b {
		case q:
			if !validChars(r.text) {
				return "", errForbiddenChar
			}
			return intern(r.text), nil
		case '<':
			return "", errNotWellFormed
		case '&':
			if err := r.reference(); err != nil {
				return "", err
			}
		case '\r':
			r.text = append(r.text, '\n')
			if err := r.crlf(); err != nil {
				return "", err
			}
		default:
			r.text = append(r.text, b)
		}
	}
}

// crlf drops the '\n' of a "\r\n" pair whose '\r' was just read as a line
// end (XML 1.0 § 2.11); any other byte is kept for the caller to read.
func (r *Reader) crlf() error {
	p := r.src
	if p.r < p.w {
		if p.buf[p.r] == '\n' {
			_, err := r.byte()
			return err
		}
		return nil
	}
	b, err := r.must()
	if err != nil {
		return err
	}
	if b != '\n' {
		r.unread(b)
	}
	return nil
}

// unread puts back the byte just read from a fresh fill.
func (r *Reader) unread(b byte) {
	p := r.src
	if p.buf == nil {
		p.buf = p.small[:]
		p.r, p.w = 0, 0
	}
	if p.r > 0 {
		p.r--
	} else {
		copy(p.buf[1:], p.buf[p.r:p.w])
		p.w++
	}
	p.buf[p.r] = b
	r.n--
}

// chars reads character data up to the next '<' (consumed) into top.
func (r *Reader) chars(top *Element) error {
	r.text = r.text[:0]
	brackets := 0 // consecutive ']' just read, for "]]>"
	for {
		p := r.src
		// Plain bytes straight from the buffer: the common case.
		if p.r < p.w {
			i := p.r
			for i < p.w {
				c := p.buf[i]
				if c < 0x20 || c == '<' || c == '&' || c == ']' || c == '>' {
					break
				}
				i++
			}
			if i > p.r {
				run := min(i-p.r, r.limits.MaxBytes-r.n)
				if run > 0 {
					r.text = append(r.text, p.buf[p.r:p.r+run]...)
					r.n += run
					p.r += run
					if p.r == p.w {
						p.release()
					}
					brackets = 0
					continue
				}
			}
		}
		b, err := r.must()
		if err != nil {
			return err
		}
		switch b {
		case '<':
			return r.addText(top)
		case '&':
			if err := r.reference(); err != nil {
				return err
			}
		case '\r':
			r.text = append(r.text, '\n')
			if err := r.crlf(); err != nil {
				return err
			}
		case '\n', '\t':
			r.text = append(r.text, b)
		case '>':
			if brackets >= 2 {
				return errNotWellFormed // "]]>" outside CDATA (XML 1.0 § 2.4)
			}
			r.text = append(r.text, b)
		default:
			if b < 0x20 {
				return errForbiddenChar
			}
			r.text = append(r.text, b)
		}
		if b == ']' {
			brackets++
		} else {
			brackets = 0
		}
	}
}

// addText appends the text read to el, merged with text just before it so
// that Text stays cheap.
func (r *Reader) addText(el *Element) error {
	if len(r.text) == 0 {
		return nil
	}
	if !validChars(r.text) {
		return errForbiddenChar
	}
	if n := len(el.Nodes); n > 0 {
		if s, ok := el.Nodes[n-1].(string); ok {
			el.Nodes[n-1] = s + string(r.text)
			return nil
		}
	}
	el.Nodes = append(el.Nodes, string(r.text))
	return nil
}

// cdataSection reads what follows "<!" where text may be: a CDATA
// section, whose text it leaves in r.text, or else a comment or DTD,
// which it refuses.
func (r *Reader) cdataSection() error {
	if err := r.markup(); err != errNotWellFormed {
		return err
	}
	if err := r.expectString("CDATA["); err != nil {
		return err
	}
	return r.cdata()
}

// cdata reads a CDATA section after "<![CDATA[" into r.text.
func (r *Reader) cdata() error {
	r.text = r.text[:0]
	for {
		b, err := r.must()
		if err != nil {
			return err
		}
		if b == '>' {
			if n := len(r.text); n >= 2 && r.text[n-1] == ']' && r.text[n-2] == ']' {
				r.text = r.text[:n-2]
				return nil
			}
		}
		if b == '\r' {
			r.text = append(r.text, '\n')
			if err := r.crlf(); err != nil {
				return err
			}
			continue
		}
		r.text = append(r.text, b)
	}
}

// reference reads an entity or character reference after '&' and appends
// what it stands for. Only XML's five predefined entities exist here, and
// a character reference must name a character XML allows.
func (r *Reader) reference() error {
	var name [16]byte
	n := 0
	for {
		b, err := r.must()
		if err != nil {
			return err
		}
		if b == ';' {
			break
		}
		if n == len(name) {
			return errNotWellFormed
		}
		name[n] = b
		n++
	}
	s := name[:n]
	switch string(s) {
	case "lt":
		r.text = append(r.text, '<')
		return nil
	case "gt":
		r.text = append(r.text, '>')
		return nil
	case "amp":
		r.text = append(r.text, '&')
		return nil
	case "apos":
		r.text = append(r.text, '\'')
		return nil
	case "quot":
		r.text = append(r.text, '"')
		return nil
	}
	if len(s) < 2 || s[0] != '#' {
		return errNotWellFormed
	}
	digits, base := s[1:], rune(10)
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	if len(digits) == 0 {
		return errNotWellFormed
	}
	var c rune
	for _, d := range digits {
		var v rune
		switch {
		case '0' <= d && d <= '9':
			v = rune(d - '0')
		case base == 16 && 'a' <= d && d <= 'f':
			v = rune(d-'a') + 10
		case base == 16 && 'A' <= d && d <= 'F':
			v = rune(d-'A') + 10
		default:
			return errNotWellFormed
		}
		c = min(c*base+v, utf8.MaxRune+1) // saturated: too large either way
	}
	if !allowedRune(c) {
		return errForbiddenChar
	}
	r.text = utf8.AppendRune(r.text, c)
	return nil
}

// validChars reports whether b is UTF-8 made only of characters XML allows.
func validChars(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 || !allowedRune(r) {
			return false
		}
		i += size
	}
	return true
}
