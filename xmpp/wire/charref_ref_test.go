package wire

import "errors"

// errBadCharRef ends the stream with not-well-formed: a character
// reference names a code point outside XML's Char production.
var errBadCharRef = errors.New("character reference to a forbidden code point")

// refScanner watches the raw bytes of a stream for character references
// (&#N; and &#xH;) and refuses those naming a code point XML 1.0 § 2.2
// forbids. encoding/xml checks the characters it reads as bytes, but turns
// a reference to a surrogate (&#xD800;) into U+FFFD instead of failing, and
// by then the original is gone: only the raw bytes tell. The scanner holds
// a few bytes of state and never buffers input, so that the check costs
// nothing per element and nothing is re-serialised to make it.
//
// References are only recognised outside CDATA sections, where '&' starts
// a reference or is an error the decoder reports itself. Comments,
// processing instructions and DTDs, where '&' may be literal, are refused
// by the reader anyway; if one holds a bad reference the stream is refused
// with not-well-formed instead of restricted-xml, which is as final.
//
// The zero value is ready to scan the start of a document.
type refScanner struct {
	state  refState
	value  uint32 // the code point so far, saturated above the maximum
	digits int
	// match counts the bytes of "<![CDATA[" seen so far outside a CDATA
	// section, or of "]]>" inside one.
	match   int
	inCDATA bool
}

type refState uint8

const (
	refNone     refState = iota
	refAmp               // after '&'
	refHash              // after "&#"
	refDec               // in the digits of "&#N;"
	refHexStart          // after "&#x"
	refHex               // in the digits of "&#xH;"
)

const cdataOpen = "<![CDATA["

// maxRefValue is where value saturates: any larger number is as forbidden.
const maxRefValue = 0x110000

// scan takes the next input byte and reports false if it completes a
// reference to a forbidden code point.
func (s *refScanner) scan(b byte) bool {
	if s.inCDATA {
		switch {
		case b == ']':
			s.match = min(s.match+1, 2)
		case b == '>' && s.match == 2:
			s.inCDATA, s.match = false, 0
		default:
			s.match = 0
		}
		return true
	}
	switch {
	case b == cdataOpen[s.match]:
		s.match++
		if s.match == len(cdataOpen) {
			s.inCDATA, s.match, s.state = true, 0, refNone
			return true
		}
	case b == '<':
		s.match = 1
	default:
		s.match = 0
	}
	return s.reference(b)
}

// reference advances the character reference state machine. A sequence
// that turns out not to be a numeric reference is left to the decoder,
// which refuses what is malformed.
func (s *refScanner) reference(b byte) bool {
	switch s.state {
	case refNone:
		if b == '&' {
			s.state = refAmp
		}
	case refAmp:
		switch b {
		case '#':
			s.state = refHash
		case '&':
		default:
			s.state = refNone
		}
	case refHash:
		s.value, s.digits = 0, 0
		switch {
		case b == 'x':
			s.state = refHexStart
		case b >= '0' && b <= '9':
			s.state = refDec
			s.add(uint32(b-'0'), 10)
		default:
			s.state = refNone
		}
	case refDec, refHexStart, refHex:
		return s.digit(b)
	}
	return true
}

func (s *refScanner) digit(b byte) bool {
	base := uint32(16)
	if s.state == refDec {
		base = 10
	}
	switch {
	case b >= '0' && b <= '9':
		s.add(uint32(b-'0'), base)
	case base == 16 && b >= 'a' && b <= 'f':
		s.add(uint32(b-'a'+10), base)
	case base == 16 && b >= 'A' && b <= 'F':
		s.add(uint32(b-'A'+10), base)
	case b == ';' && s.digits > 0:
		s.state = refNone
		return s.value < maxRefValue && allowedRune(rune(s.value))
	default:
		s.state = refNone
		return true
	}
	if s.state == refHexStart {
		s.state = refHex
	}
	return true
}

func (s *refScanner) add(d, base uint32) {
	s.digits++
	s.value = min(s.value*base+d, maxRefValue)
}
