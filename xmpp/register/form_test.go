package register

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twotick/twotick/xmpp/wire"
)

// parseXML reads one element as a client would send it inside a stream.
func parseXML(s string) (*wire.Element, error) {
	in := "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>" + s
	r := wire.NewReader(strings.NewReader(in), wire.Limits{MaxBytes: 64 << 10}, 0)
	if _, err := r.StreamHeader(); err != nil {
		return nil, err
	}
	return r.Next()
}

func mustXML(t *testing.T, s string) *wire.Element {
	t.Helper()
	e, err := parseXML(s)
	if err != nil {
		t.Fatalf("parsing %s: %v", s, err)
	}
	return e
}

// fill answers a RegistrationForm as a data-form client does: the form
// turned into a submission with a value for every field in values.
func fill(form *wire.Element, values map[string]string) *wire.Element {
	q := wire.New(NSRegister, "query")
	x := form.Child(NSData, "x").Clone()
	x.Set("type", "submit")
	x.RemoveChildren(func(c *wire.Element) bool { return c.Name.Local != "field" })
	for _, f := range x.Children() {
		f.RemoveChildren(func(*wire.Element) bool { return true })
		if v, ok := values[f.Get("var")]; ok {
			f.AddText(NSData, "value", v)
		}
		if f.Get("var") == "FORM_TYPE" {
			f.AddText(NSData, "value", NSRegister)
		}
	}
	return q.Add(x)
}

func TestRegistrationForm(t *testing.T) {
	form := RegistrationForm("de-DE")
	if form.Lang() != "de" {
		t.Fatalf("xml:lang = %q, want de", form.Lang())
	}
	if form.ChildText(NSRegister, "instructions") == "" ||
		form.Child(NSRegister, "username") == nil || form.Child(NSRegister, "password") == nil {
		t.Fatalf("legacy part missing: %s", form)
	}
	x := form.Child(NSData, "x")
	if x == nil || x.Get("type") != "form" {
		t.Fatalf("no data form: %s", form)
	}
	fields := map[string]*wire.Element{}
	for _, f := range x.Children() {
		if f.Name.Local == "field" {
			fields[f.Get("var")] = f
		}
	}
	tests := []struct {
		name, typ string
		required  bool
	}{
		{"FORM_TYPE", "hidden", false},
		{"phone", "text-single", true},
		{"password", "text-private", true},
		{"code", "text-single", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fields[tt.name]
			if f == nil {
				t.Fatalf("no field %s", tt.name)
			}
			if f.Get("type") != tt.typ || (f.Child(NSData, "required") != nil) != tt.required {
				t.Fatalf("field = %s", f)
			}
			if tt.typ != "hidden" && f.Get("label") == "" {
				t.Fatalf("no label: %s", f)
			}
		})
	}
	if !strings.Contains(fields["password"].Get("label"), "Passwort") {
		t.Fatalf("labels not in German: %s", fields["password"])
	}
	// The serialisation is well-formed XML that parses back to the same.
	back := mustXML(t, form.String())
	if back.String() != form.String() {
		t.Fatalf("round trip changed the form:\n%s\n%s", form, back)
	}
}

func TestParseSubmission(t *testing.T) {
	form := RegistrationForm("")
	legacy := func(inner string) *wire.Element {
		return mustXML(t, "<query xmlns='jabber:iq:register'>"+inner+"</query>")
	}
	tests := []struct {
		name    string
		q       *wire.Element
		want    Submission
		wantErr bool
	}{
		{"form without code", fill(form, map[string]string{"phone": " +1 202 555 0101 ",
			"password": "hunter22"}),
			Submission{Phone: "+1 202 555 0101", Password: "hunter22", Form: true}, false},
		{"form with code", fill(form, map[string]string{"phone": "+12025550101",
			"password": " spaced password ", "code": "123456"}),
			Submission{Phone: "+12025550101", Password: " spaced password ", Code: "123456",
				Form: true}, false},
		{"form with username instead of phone", legacy(`<x xmlns='jabber:x:data' type='submit'>
			<field var='username'><value>+12025550101</value></field>
			<field var='password'><value>pw123456</value></field></x>`),
			Submission{Phone: "+12025550101", Password: "pw123456", Form: true}, false},
		{"form wins over legacy fields", legacy(`<username>+19999999999</username>
			<x xmlns='jabber:x:data' type='submit'>
			<field var='phone'><value>+12025550101</value></field>
			<field var='password'><value>pw123456</value></field></x>`),
			Submission{Phone: "+12025550101", Password: "pw123456", Form: true}, false},
		{"legacy", legacy(`<username>+12025550101</username><password>pw123456</password>`),
			Submission{Phone: "+12025550101", Password: "pw123456"}, false},
		{"legacy with key as code", legacy(`<username>+12025550101</username>
			<password>pw123456</password><key>654321</key>`),
			Submission{Phone: "+12025550101", Password: "pw123456", Code: "654321"}, false},
		{"legacy phone element", legacy(`<username>me</username><phone>+12025550101</phone>
			<password>pw123456</password>`),
			Submission{Phone: "+12025550101", Password: "pw123456"}, false},
		{"password change after login", legacy(`<username>+12025550101</username>
			<password>newpassword</password>`),
			Submission{Phone: "+12025550101", Password: "newpassword"}, false},
		{"remove", legacy(`<remove/>`), Submission{Remove: true}, false},
		{"empty", legacy(``), Submission{}, true},
		{"no password", legacy(`<username>+12025550101</username>`), Submission{}, true},
		{"wrong FORM_TYPE", legacy(`<x xmlns='jabber:x:data' type='submit'>
			<field var='FORM_TYPE'><value>urn:other</value></field>
			<field var='password'><value>pw</value></field></x>`), Submission{}, true},
		{"cancelled form", legacy(`<x xmlns='jabber:x:data' type='cancel'/>`), Submission{}, true},
		{"two values", legacy(`<x xmlns='jabber:x:data' type='submit'>
			<field var='phone'><value>+1</value><value>+2</value></field>
			<field var='password'><value>pw</value></field></x>`), Submission{}, true},
		{"field twice", legacy(`<x xmlns='jabber:x:data' type='submit'>
			<field var='password'><value>a</value></field>
			<field var='password'><value>b</value></field></x>`), Submission{}, true},
		{"long phone", legacy(`<username>` + strings.Repeat("1", 65) +
			`</username><password>pw</password>`), Submission{}, true},
		{"long code", legacy(`<username>+1</username><password>pw</password><key>` +
			strings.Repeat("1", 17) + `</key>`), Submission{}, true},
		{"long password", legacy(`<username>+1</username><password>` +
			strings.Repeat("p", MaxPasswordLen+1) + `</password>`), Submission{}, true},
		{"other namespace", mustXML(t, `<query xmlns='jabber:iq:auth'><password>x</password></query>`),
			Submission{}, true},
		{"nil", nil, Submission{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSubmission(tt.q)
			if tt.wantErr {
				if !errors.Is(err, ErrBadSubmission) {
					t.Fatalf("ParseSubmission = %+v, %v; want ErrBadSubmission", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSubmission = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestRegisteredAnswer(t *testing.T) {
	q := RegisteredAnswer("+12025550101", "fr")
	if q.Child(NSRegister, "registered") == nil ||
		q.ChildText(NSRegister, "username") != "+12025550101" ||
		q.Child(NSRegister, "password") == nil || q.Lang() != "fr" {
		t.Fatalf("RegisteredAnswer = %s", q)
	}
}

func TestErrorElement(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		typ, cond string
		text      string // a part of the English text
	}{
		{"code sent", &CodeSentError{Number: "+12025550101"}, "modify", "not-acceptable",
			"sent by SMS to +12025550101"},
		{"limited", &LimitError{RetryAfter: 90 * time.Second, Scope: ScopeNumber}, "wait",
			"resource-constraint", "Try again in 1m30s"},
		{"bad number", fmt.Errorf("x: %w", ErrInvalidNumber), "modify", "not-acceptable",
			"not a valid phone number"},
		{"bad password", &PasswordError{Min: 10, Reason: "short"}, "modify", "not-acceptable",
			"at least 10 characters"},
		{"bad form", fmt.Errorf("x: %w", ErrBadSubmission), "modify", "bad-request", "malformed"},
		{"wrong code", fmt.Errorf("x: %w", ErrWrongCode), "auth", "not-authorized", "wrong"},
		{"expired", fmt.Errorf("x: %w", ErrExpired), "modify", "not-acceptable", "expired"},
		{"too many", fmt.Errorf("x: %w", ErrTooManyAttempts), "auth", "not-authorized",
			"Too many wrong codes"},
		{"send failed", fmt.Errorf("x: %w", ErrSendFailed), "wait", "service-unavailable",
			"could not be sent"},
		{"other", errors.New("disk on fire"), "wait", "internal-server-error", "server problem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ErrorElement(tt.err, "en")
			if e.Name.Space != wire.NSClient || e.Get("type") != tt.typ ||
				e.Child(wire.NSStanzas, tt.cond) == nil {
				t.Fatalf("ErrorElement = %s", e)
			}
			text := e.ChildText(wire.NSStanzas, "text")
			if !strings.Contains(text, tt.text) {
				t.Fatalf("text %q lacks %q", text, tt.text)
			}
			if strings.Contains(text, "disk") {
				t.Fatalf("internal detail leaked: %q", text)
			}
		})
	}
	text := ErrorElement(ErrWrongCode, "de").ChildText(wire.NSStanzas, "text")
	if !strings.Contains(text, "falsch") {
		t.Fatalf("German text = %q", text)
	}
}

func TestFormatWait(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "1s"}, {300 * time.Millisecond, "1s"}, {45 * time.Second, "45s"},
		{90 * time.Second, "1m30s"}, {2 * time.Minute, "2m"}, {7*time.Minute + time.Second, "8m"},
		{time.Hour, "1h"}, {8*time.Hour - 4*time.Minute, "7h56m"},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			if got := FormatWait(tt.d); got != tt.want {
				t.Fatalf("FormatWait(%s) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func FuzzParseSubmission(f *testing.F) {
	f.Add(fill(RegistrationForm(""), map[string]string{"phone": "+12025550101",
		"password": "pw", "code": "123456"}).String())
	f.Add(`<query xmlns='jabber:iq:register'><username>+1</username>` +
		`<password>p</password><key>1</key></query>`)
	f.Add(`<query xmlns='jabber:iq:register'><remove/></query>`)
	f.Add(`<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data'>` +
		`<field var='password'><value/></field></x></query>`)
	f.Fuzz(func(t *testing.T, in string) {
		q, err := parseXML(in)
		if err != nil {
			return
		}
		s, err := ParseSubmission(q)
		if err != nil {
			if !errors.Is(err, ErrBadSubmission) {
				t.Fatalf("error %v does not wrap ErrBadSubmission", err)
			}
			return
		}
		if s.Remove {
			return
		}
		if s.Password == "" || len(s.Password) > MaxPasswordLen || len(s.Phone) > maxPhoneLen ||
			len(s.Code) > maxCodeLen {
			t.Fatalf("accepted out of bounds: %+v", s)
		}
		if s.Phone != strings.TrimSpace(s.Phone) || s.Code != strings.TrimSpace(s.Code) {
			t.Fatalf("untrimmed: %+v", s)
		}
		// The same query, serialised and read again, means the same.
		again, err := parseXML(q.String())
		if err != nil {
			t.Fatalf("re-reading %s: %v", q, err)
		}
		if s2, err := ParseSubmission(again); err != nil || s2 != s {
			t.Fatalf("re-read gives %+v, %v; first %+v", s2, err, s)
		}
	})
}
