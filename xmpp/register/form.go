package register

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twotick/twotick/xmpp/wire"
)

// Namespaces of XEP-0077 and XEP-0004.
const (
	NSRegister = "jabber:iq:register"
	NSData     = "jabber:x:data"
	// NSFeature is the stream feature of XEP-0077 § 4 that tells clients
	// in-band registration is offered.
	NSFeature = "http://jabber.org/features/iq-register"
)

// ErrBadSubmission is returned by ParseSubmission for a query that is not a
// usable registration.
var ErrBadSubmission = errors.New("malformed registration submission")

// Limits on submitted values, in bytes.
const (
	maxPhoneLen = 64
	maxCodeLen  = 16
)

// Submission is a parsed jabber:iq:register set.
type Submission struct {
	// Phone is the number as typed (from the form's phone or username
	// field, or the legacy <username/> or <phone/>); normalise it with
	// Registrar.Normalize. After authentication it is the account's
	// username (XEP-0077 § 3.3) and may be empty.
	Phone string
	// Password is the chosen password.
	Password string
	// Code is the verification code, empty on the first submission. In
	// legacy fields it is carried by <key/>.
	Code string
	// Remove is set for <remove/> (XEP-0077 § 3.2); the other fields are
	// then ignored.
	Remove bool
	// Form says the values came from a data form.
	Form bool
}

// RegistrationForm returns the answer to a registration get from an
// unregistered client (XEP-0077 § 3.1): instructions, the legacy
// <username/> and <password/> (the username being the phone number), and a
// XEP-0004 form with FORM_TYPE jabber:iq:register and the fields phone,
// password and code (optional), labelled in the language best matching
// lang. Legacy clients cannot submit a code field; they pass it in <key/>,
// which the instructions do not mention, so that they can at least trigger
// the SMS.
func RegistrationForm(lang string) *wire.Element {
	tag, instructions := localized(lang, "instructions")
	q := wire.New(NSRegister, "query")
	setLang(q, tag)
	q.AddText(NSRegister, "instructions", instructions)
	q.Add(wire.New(NSRegister, "username"), wire.New(NSRegister, "password"))

	x := wire.New(NSData, "x", "type", "form")
	x.AddText(NSData, "instructions", instructions)
	x.Add(wire.New(NSData, "field", "type", "hidden", "var", "FORM_TYPE").
		AddText(NSData, "value", NSRegister))
	for _, f := range []struct {
		typ, name string
		required  bool
	}{
		{"text-single", "phone", true},
		{"text-private", "password", true},
		{"text-single", "code", false},
	} {
		_, label := localized(lang, f.name)
		field := wire.New(NSData, "field", "type", f.typ, "var", f.name, "label", label)
		if f.required {
			field.Add(wire.New(NSData, "required"))
		}
		x.Add(field)
	}
	return q.Add(x)
}

// RegisteredAnswer returns the answer to a registration get from a client
// logged in as local (XEP-0077 § 3.2): <registered/>, the username, and an
// empty password, which the client fills to change it.
func RegisteredAnswer(local, lang string) *wire.Element {
	tag, hint := localized(lang, "username_hint")
	q := wire.New(NSRegister, "query")
	setLang(q, tag)
	q.AddText(NSRegister, "instructions", hint)
	q.Add(wire.New(NSRegister, "registered"))
	q.AddText(NSRegister, "username", local)
	return q.Add(wire.New(NSRegister, "password"))
}

func setLang(e *wire.Element, tag string) {
	e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Space: wire.NSXML, Local: "lang"}, Value: tag})
}

// ParseSubmission reads the <query xmlns='jabber:iq:register'/> of a set:
// a removal, a data form (which takes precedence, XEP-0077 § 6), or legacy
// fields. It checks shape and lengths only; errors wrap ErrBadSubmission.
func ParseSubmission(q *wire.Element) (Submission, error) {
	if q == nil || q.Name.Space != NSRegister || q.Name.Local != "query" {
		return Submission{}, fmt.Errorf("not a jabber:iq:register query: %w", ErrBadSubmission)
	}
	if q.Child(NSRegister, "remove") != nil {
		return Submission{Remove: true}, nil
	}

	var s Submission
	var err error
	if x := q.Child(NSData, "x"); x != nil {
		s, err = parseForm(x)
	} else {
		s, err = parseLegacy(q)
	}
	if err != nil {
		return Submission{}, err
	}
	s.Phone, s.Code = strings.TrimSpace(s.Phone), strings.TrimSpace(s.Code)
	switch {
	case len(s.Phone) > maxPhoneLen:
		return Submission{}, fmt.Errorf("phone longer than %d bytes: %w", maxPhoneLen, ErrBadSubmission)
	case len(s.Code) > maxCodeLen:
		return Submission{}, fmt.Errorf("code longer than %d bytes: %w", maxCodeLen, ErrBadSubmission)
	case len(s.Password) > MaxPasswordLen:
		return Submission{}, fmt.Errorf("password longer than %d bytes: %w", MaxPasswordLen,
			ErrBadSubmission)
	case s.Password == "":
		return Submission{}, fmt.Errorf("no password: %w", ErrBadSubmission)
	}
	return s, nil
}

func parseLegacy(q *wire.Element) (Submission, error) {
	s := Submission{
		Phone:    q.ChildText(NSRegister, "username"),
		Password: q.ChildText(NSRegister, "password"),
		Code:     q.ChildText(NSRegister, "key"),
	}
	if p := q.ChildText(NSRegister, "phone"); strings.TrimSpace(p) != "" {
		s.Phone = p
	}
	return s, nil
}

func parseForm(x *wire.Element) (Submission, error) {
	switch x.Get("type") {
	case "submit", "":
	default:
		return Submission{}, fmt.Errorf("data form of type %q: %w", x.Get("type"), ErrBadSubmission)
	}
	s := Submission{Form: true}
	seen := map[string]bool{}
	for _, f := range x.Children() {
		if f.Name.Space != NSData || f.Name.Local != "field" {
			continue
		}
		name := f.Get("var")
		var values []string
		for _, v := range f.Children() {
			if v.Name.Space == NSData && v.Name.Local == "value" {
				values = append(values, v.Text())
			}
		}
		if len(values) > 1 {
			return Submission{}, fmt.Errorf("field %q has %d values: %w", name, len(values),
				ErrBadSubmission)
		}
		if seen[name] {
			return Submission{}, fmt.Errorf("field %q given twice: %w", name, ErrBadSubmission)
		}
		seen[name] = true
		value := ""
		if len(values) == 1 {
			value = values[0]
		}
		switch name {
		case "FORM_TYPE":
			if value != NSRegister {
				return Submission{}, fmt.Errorf("FORM_TYPE %q: %w", value, ErrBadSubmission)
			}
		case "phone", "username":
			if value != "" {
				s.Phone = value
			}
		case "password":
			s.Password = value
		case "code":
			s.Code = value
		}
	}
	return s, nil
}

// ErrorElement returns the <error/> (in jabber:client) for an error of
// Registrar.Submit or Start, with the condition a client can act on and a
// text in the language best matching lang. Internal detail stays out of
// it; log err yourself if it is not one of this package's errors.
func ErrorElement(err error, lang string) *wire.Element {
	typ, cond, key, arg := classify(err)
	tag, text := localized(lang, key)
	if arg != nil {
		text = fmt.Sprintf(text, arg)
	}
	e := wire.New(wire.NSClient, "error", "type", typ)
	e.Add(wire.New(wire.NSStanzas, cond))
	t := wire.New(wire.NSStanzas, "text")
	setLang(t, tag)
	return e.Add(t.Add(text))
}

// classify maps err to an RFC 6120 § 8.3 error type and condition and a
// catalogue key with its argument.
func classify(err error) (typ, cond, key string, arg any) {
	var sent *CodeSentError
	var lim *LimitError
	var pw *PasswordError
	switch {
	case errors.As(err, &sent):
		return "modify", "not-acceptable", "code_sent", sent.Number
	case errors.As(err, &lim):
		return "wait", "resource-constraint", "rate_limited", FormatWait(lim.RetryAfter)
	case errors.Is(err, ErrInvalidNumber):
		return "modify", "not-acceptable", "bad_number", nil
	case errors.As(err, &pw):
		return "modify", "not-acceptable", "bad_password", pw.Min
	case errors.Is(err, ErrBadSubmission):
		return "modify", "bad-request", "bad_form", nil
	case errors.Is(err, ErrWrongCode):
		return "auth", "not-authorized", "wrong_code", nil
	case errors.Is(err, ErrExpired):
		return "modify", "not-acceptable", "expired", nil
	case errors.Is(err, ErrTooManyAttempts):
		return "auth", "not-authorized", "too_many", nil
	case errors.Is(err, ErrSendFailed):
		return "wait", "service-unavailable", "send_failed", nil
	}
	return "wait", "internal-server-error", "internal", nil
}

// FormatWait writes a retry delay for people: whole seconds rounded up,
// then "45s", "3m", "1h5m".
func FormatWait(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	h, m, s := secs/3600, secs%3600/60, secs%60
	switch {
	case h > 0 && m > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	case h > 0:
		return fmt.Sprintf("%dh", h)
	case m > 0 && s > 0 && m < 5:
		return fmt.Sprintf("%dm%ds", m, s)
	case m > 0 && s > 0:
		return fmt.Sprintf("%dm", m+1)
	case m > 0:
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%ds", s)
}
