package xmpp

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/auth"
	"github.com/twotick/twotick/xmpp/register"
	"github.com/twotick/twotick/xmpp/wire"
)

// newTestRegistrar is the Registrar of a test server whose configuration
// sets sms.log_file: codes go to that file, where the test reads them.
func newTestRegistrar(t testing.TB, db *sql.DB, accounts *auth.Store,
	logFile string) *register.Registrar {
	t.Helper()
	codes, err := register.OpenCodes(context.Background(), db, register.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	return &register.Registrar{
		Codes:         codes,
		Gateway:       &register.LogGateway{Path: logFile},
		Accounts:      accounts,
		DefaultRegion: "US",
	}
}

// withRegistration gives the test server a Registrar with a log gateway
// writing to sms.log in its data directory.
func withRegistration(cfg *conf.Config) {
	cfg.SMS.LogFile = filepath.Join(cfg.DataDir, "sms.log")
}

// registerForm is a jabber:iq:register set carrying a data form.
func registerForm(id, phone, password, code string) string {
	field := func(name, value string) string {
		if value == "" {
			return ""
		}
		return "<field var='" + name + "'><value>" + value + "</value></field>"
	}
	return "<iq type='set' id='" + id + "'><query xmlns='" + register.NSRegister + "'>" +
		"<x xmlns='" + register.NSData + "' type='submit'>" +
		field("FORM_TYPE", register.NSRegister) + field("phone", phone) +
		field("password", password) + field("code", code) + "</x></query></iq>"
}

// preAuthRegistration connects with STARTTLS and returns the client at the
// features after TLS, where registration is offered.
func preAuthRegistration(t *testing.T, ts *testServer) *rawClient {
	t.Helper()
	c := dialRaw(t, ts, false)
	c.openStream(t)
	c.startTLS(t)
	return c
}

// TestInBandRegistration runs XEP-0077 from the form to a SCRAM login as
// the new +E164 account, then the password change and removal of § 3.3 and
// § 3.2.
func TestInBandRegistration(t *testing.T) {
	ts := newTestServer(t, withRegistration)
	const number, pw, newPW = "+12025550123", "first password", "second password"

	c := preAuthRegistration(t, ts)
	if c.features.Child(register.NSFeature, "register") == nil {
		t.Fatalf("registration not offered after TLS: %s", c.features)
	}

	c.send(t, "<iq type='get' id='r1'><query xmlns='"+register.NSRegister+"'/></iq>")
	form := c.nextSync(t)
	if form.Get("type") != "result" || form.Get("id") != "r1" ||
		form.Child(register.NSRegister, "query").Child(register.NSData, "x") == nil {
		t.Fatalf("form get answered %s", form)
	}

	// Without a code: the SMS goes out and the error says to resubmit.
	c.send(t, registerForm("r2", "+1 202 555 0123", pw, ""))
	el := c.nextSync(t)
	if el.Get("id") != "r2" || stanzaErrorCond(el) != "not-acceptable" {
		t.Fatalf("submission without code answered %s", el)
	}
	if txt := el.Child(wire.NSClient, "error").ChildText(wire.NSStanzas, "text"); txt == "" {
		t.Fatalf("no text telling to resubmit with the code: %s", el)
	}
	code, err := register.ReadCodeFromLog(ts.cfg.SMS.LogFile, number)
	if err != nil {
		t.Fatal(err)
	}

	c.send(t, registerForm("r3", number, pw, wrongCode(code)))
	if el := c.nextSync(t); stanzaErrorCond(el) != "not-authorized" {
		t.Fatalf("wrong code answered %s", el)
	}
	c.send(t, registerForm("r4", number, pw, code))
	if el := c.nextSync(t); el.Get("type") != "result" || el.Get("id") != "r4" {
		t.Fatalf("submission with code answered %s", el)
	}

	// The same stream goes on to SASL as the new account.
	if err := c.auth(t, "SCRAM-SHA-256", number, pw); err != nil {
		t.Fatalf("login after registration: %v", err)
	}
	c.bind(t, "phone")
	c.send(t, "<iq type='get' id='g1'><query xmlns='"+register.NSRegister+"'/></iq>")
	if el := c.expect(t, byID("g1"), 0); el.Child(register.NSRegister, "query").
		Child(register.NSRegister, "registered") == nil {
		t.Fatalf("registered user's get answered %s", el)
	}

	t.Run("password change", func(t *testing.T) {
		c.send(t, "<iq type='set' id='p1'><query xmlns='"+register.NSRegister+"'>"+
			"<username>"+number+"</username><password>"+newPW+"</password></query></iq>")
		expectResultThenClose(t, c, "p1")
		if err := dialLogin(t, ts, number, pw); err == nil {
			t.Fatal("old password still accepted")
		}
		if err := dialLogin(t, ts, number, newPW); err != nil {
			t.Fatalf("new password refused: %v", err)
		}
	})

	t.Run("removal", func(t *testing.T) {
		d := login(t, ts, number, newPW, "")
		d.send(t, "<iq type='set' id='x1'><query xmlns='"+register.NSRegister+"'>"+
			"<remove/></query></iq>")
		expectResultThenClose(t, d, "x1")
		if err := dialLogin(t, ts, number, newPW); err == nil {
			t.Fatal("removed account can still log in")
		}
		if _, err := ts.deps.Accounts.Lookup(context.Background(), number); !errors.Is(err,
			auth.ErrNotFound) {
			t.Fatalf("account after removal: %v", err)
		}
	})
}

// wrongCode is a six-digit code other than code.
func wrongCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

// dialLogin connects and tries SCRAM-SHA-256 once.
func dialLogin(t *testing.T, ts *testServer, local, password string) error {
	t.Helper()
	c := dialRaw(t, ts, false)
	c.openStream(t)
	c.startTLS(t)
	return c.auth(t, "SCRAM-SHA-256", local, password)
}

// expectResultThenClose waits for the result to id and then for the
// not-authorized stream error: a changed password or a removed account ends
// the account's sessions, this one included, but only after its answer has
// been written (XEP-0077 § 3.2, § 3.3).
func expectResultThenClose(t *testing.T, c *rawClient, id string) {
	t.Helper()
	el := c.expect(t, func(el *wire.Element) bool {
		return el.Get("id") == id || (el.Name.Space == wire.NSStream && el.Name.Local == "error")
	}, 0)
	if el.Get("id") != id || el.Get("type") != "result" {
		t.Fatalf("%s answered %s, want its result before the stream ends", id, el)
	}
	c.expectStreamError(t, "not-authorized")
}

// TestReRegistrationClosesSessions registers a number that already has an
// account, in-band and over the HTTP API: the new password replaces the
// old one, and the account's logged-in sessions are closed.
func TestReRegistrationClosesSessions(t *testing.T) {
	const oldPW, newPW = "old password", "new password"
	tests := []struct {
		name     string
		number   string
		register func(t *testing.T, ts *testServer, number string)
	}{
		{"in-band", "+12025550131", reRegisterInBand},
		{"http api", "+12025550132", reRegisterHTTP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, withRegistration)
			ctx := context.Background()
			if err := ts.deps.Accounts.Create(ctx, tt.number, auth.KindPhone, oldPW); err != nil {
				t.Fatal(err)
			}
			old := login(t, ts, tt.number, oldPW, "phone")

			tt.register(t, ts, tt.number)

			old.expectStreamError(t, "not-authorized")
			if err := dialLogin(t, ts, tt.number, oldPW); err == nil {
				t.Fatal("old password still accepted")
			}
			if err := dialLogin(t, ts, tt.number, newPW); err != nil {
				t.Fatalf("new password refused: %v", err)
			}
		})
	}
}

// reRegisterInBand verifies number over XEP-0077 with the password "new
// password".
func reRegisterInBand(t *testing.T, ts *testServer, number string) {
	c := preAuthRegistration(t, ts)
	c.send(t, registerForm("r1", number, "new password", ""))
	if el := c.nextSync(t); stanzaErrorCond(el) != "not-acceptable" {
		t.Fatalf("submission without code answered %s", el)
	}
	code, err := register.ReadCodeFromLog(ts.cfg.SMS.LogFile, number)
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, registerForm("r2", number, "new password", code))
	if el := c.nextSync(t); el.Get("type") != "result" {
		t.Fatalf("re-registration answered %s", el)
	}
}

// reRegisterHTTP verifies number over the Quicksy API with the password
// "new password"; an existing account answers 200, not 201.
func reRegisterHTTP(t *testing.T, ts *testServer, number string) {
	api := httptest.NewServer(register.NewHTTPHandler(ts.deps.Registrar, register.HTTPOptions{}))
	defer api.Close()
	resp, err := api.Client().Get(api.URL + "/authentication/" + number)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /authentication: %s", resp.Status)
	}
	code, err := register.ReadCodeFromLog(ts.cfg.SMS.LogFile, number)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, api.URL+"/password",
		strings.NewReader("new password"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization",
		base64.StdEncoding.EncodeToString([]byte("\x00"+number+"\x00"+code)))
	resp, err = api.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /password for an existing account: %s, want 200", resp.Status)
	}
}

// TestPreAuthRegistrationRefusals covers the ways a registration IQ before
// login is refused.
func TestPreAuthRegistrationRefusals(t *testing.T) {
	t.Run("disabled", func(t *testing.T) {
		ts := newTestServer(t, withRegistration, func(cfg *conf.Config) {
			cfg.Registration.Enabled = false
		})
		c := preAuthRegistration(t, ts)
		if c.features.Child(register.NSFeature, "register") != nil {
			t.Fatalf("registration offered while disabled: %s", c.features)
		}
		c.send(t, "<iq type='get' id='r1'><query xmlns='"+register.NSRegister+"'/></iq>")
		if el := c.nextSync(t); stanzaErrorCond(el) != "service-unavailable" {
			t.Fatalf("disabled registration answered %s", el)
		}
	})

	t.Run("no registrar", func(t *testing.T) {
		ts := newTestServer(t)
		c := preAuthRegistration(t, ts)
		if c.features.Child(register.NSFeature, "register") != nil {
			t.Fatalf("registration offered without a registrar: %s", c.features)
		}
	})

	t.Run("bad password", func(t *testing.T) {
		ts := newTestServer(t, withRegistration)
		c := preAuthRegistration(t, ts)
		c.send(t, registerForm("r1", "+12025550124", "short", ""))
		if el := c.nextSync(t); stanzaErrorCond(el) != "not-acceptable" {
			t.Fatalf("short password answered %s", el)
		}
		if _, err := register.ReadCodeFromLog(ts.cfg.SMS.LogFile, "+12025550124"); err == nil {
			t.Fatal("a code was sent for a refused password")
		}
	})

	t.Run("too many requests", func(t *testing.T) {
		ts := newTestServer(t, withRegistration)
		c := preAuthRegistration(t, ts)
		for i := range maxRegisterIQs {
			id := "r" + strings.Repeat("x", i+1)
			c.send(t, "<iq type='get' id='"+id+"'><query xmlns='"+register.NSRegister+"'/></iq>")
			if el := c.nextSync(t); el.Get("type") != "result" {
				t.Fatalf("request %d answered %s", i+1, el)
			}
		}
		c.send(t, "<iq type='get' id='last'><query xmlns='"+register.NSRegister+"'/></iq>")
		c.expectStreamError(t, "policy-violation")
	})
}
