package auth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxMessage bounds every client message of an exchange, in bytes. Real
// SCRAM and PLAIN messages are a few hundred bytes.
const maxMessage = 4096

// maxNonce bounds the client nonce, in bytes.
const maxNonce = 256

// clientFirst is a parsed client-first-message (RFC 5802 § 7).
type clientFirst struct {
	gs2Header string // up to and including the second comma
	cbFlag    byte   // 'n', 'y' or 'p'
	cbName    string // after "p=", when cbFlag is 'p'
	authzid   string // decoded; "" when absent
	username  string // decoded
	nonce     string
	bare      string // client-first-message-bare
}

// clientFinal is a parsed client-final-message (RFC 5802 § 7).
type clientFinal struct {
	cbData       []byte // decoded c= attribute
	nonce        string
	withoutProof string
	proof        []byte
}

var errMalformed = errors.New("malformed SCRAM message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// parseClientFirst parses gs2-header client-first-message-bare.
func parseClientFirst(msg []byte) (clientFirst, error) {
	var m clientFirst
	if len(msg) > maxMessage {
		return m, malformed("message longer than %d bytes", maxMessage)
	}
	if !utf8.Valid(msg) || bytes.IndexByte(msg, 0) >= 0 {
		return m, malformed("not valid UTF-8 without NUL")
	}
	s := string(msg)

	flag, rest, ok := strings.Cut(s, ",")
	if !ok {
		return m, malformed("no gs2 header")
	}
	switch {
	case flag == "n" || flag == "y":
		m.cbFlag = flag[0]
	case strings.HasPrefix(flag, "p="):
		m.cbFlag = 'p'
		m.cbName = flag[2:]
		if !validCBName(m.cbName) {
			return m, malformed("bad channel binding name")
		}
	default:
		return m, malformed("bad channel binding flag")
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return m, malformed("gs2 header not terminated")
	}
	if authz != "" {
		if !strings.HasPrefix(authz, "a=") {
			return m, malformed("bad authzid attribute")
		}
		var err error
		if m.authzid, err = decodeSASLName(authz[2:]); err != nil || m.authzid == "" {
			return m, malformed("bad authzid")
		}
	}
	m.gs2Header = s[:len(s)-len(bare)]
	m.bare = bare

	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 {
		return m, malformed("missing username or nonce")
	}
	if strings.HasPrefix(attrs[0], "m=") {
		return m, malformed("mandatory extension not supported")
	}
	if !strings.HasPrefix(attrs[0], "n=") {
		return m, malformed("username expected")
	}
	var err error
	if m.username, err = decodeSASLName(attrs[0][2:]); err != nil || m.username == "" {
		return m, malformed("bad username")
	}
	if !strings.HasPrefix(attrs[1], "r=") {
		return m, malformed("nonce expected")
	}
	m.nonce = attrs[1][2:]
	if err := checkNonce(m.nonce); err != nil {
		return m, err
	}
	if err := checkExtensions(attrs[2:]); err != nil {
		return m, err
	}
	return m, nil
}

// parseClientFinal parses channel-binding "," nonce ["," extensions] ","
// proof.
func parseClientFinal(msg []byte) (clientFinal, error) {
	var m clientFinal
	if len(msg) > maxMessage {
		return m, malformed("message longer than %d bytes", maxMessage)
	}
	if !utf8.Valid(msg) || bytes.IndexByte(msg, 0) >= 0 {
		return m, malformed("not valid UTF-8 without NUL")
	}
	s := string(msg)
	cut := strings.LastIndex(s, ",p=")
	if cut < 0 {
		return m, malformed("missing proof")
	}
	m.withoutProof = s[:cut]
	proof, err := base64.StdEncoding.Strict().DecodeString(s[cut+3:])
	if err != nil || len(proof) == 0 {
		return m, malformed("bad proof encoding")
	}
	m.proof = proof

	attrs := strings.Split(m.withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return m, malformed("channel binding and nonce expected")
	}
	if m.cbData, err = base64.StdEncoding.Strict().DecodeString(attrs[0][2:]); err != nil {
		return m, malformed("bad channel binding encoding")
	}
	m.nonce = attrs[1][2:]
	if len(m.nonce) == 0 || len(m.nonce) > 2*maxNonce {
		return m, malformed("bad nonce length")
	}
	if err := checkExtensions(attrs[2:]); err != nil {
		return m, err
	}
	return m, nil
}

// checkNonce enforces RFC 5802's printable: %x21-2B / %x2D-7E, non-empty,
// and our length bound.
func checkNonce(n string) error {
	if n == "" || len(n) > maxNonce {
		return malformed("nonce empty or longer than %d bytes", maxNonce)
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7e || c == ',' {
			return malformed("nonce has a character outside printable ASCII")
		}
	}
	return nil
}

// checkExtensions accepts optional extensions ("x=value" with x a letter
// other than the reserved ones) and ignores them, as RFC 5802 § 5.1 allows.
func checkExtensions(attrs []string) error {
	for _, a := range attrs {
		if len(a) < 2 || a[1] != '=' || !isAlpha(a[0]) {
			return malformed("bad attribute")
		}
		if a[0] == 'm' {
			return malformed("mandatory extension not supported")
		}
	}
	return nil
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func validCBName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !isAlpha(c) && (c < '0' || c > '9') && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// decodeSASLName undoes RFC 5802 § 5.1 escaping: "=2C" is ',' and "=3D" is
// '='; any other '=' is an error.
func decodeSASLName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 > len(s) {
			return "", malformed("truncated escape in name")
		}
		switch s[i+1 : i+3] {
		case "2C":
			b.WriteByte(',')
		case "3D":
			b.WriteByte('=')
		default:
			return "", malformed("bad escape in name")
		}
		i += 2
	}
	return b.String(), nil
}
