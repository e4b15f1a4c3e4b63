package xmpp

// In-band registration (XEP-0077) on top of package register: the stream
// feature and the jabber:iq:register IQs before authentication, and
// password change and account removal after it. The Registrar in Deps
// does the work; this file only moves stanzas.

import (
	"context"
	"errors"
	"time"

	"github.com/twotick/twotick/xmpp/auth"
	"github.com/twotick/twotick/xmpp/register"
	"github.com/twotick/twotick/xmpp/wire"
)

// maxRegisterIQs bounds the registration IQs on one unauthenticated stream.
// A normal registration takes three (form, submission, submission with the
// code); the bound keeps one connection from hammering the code store and
// the limits tables, which are the only defence before authentication.
const maxRegisterIQs = 5

// registrationOpen reports whether in-band registration is offered before
// authentication.
func (s *Server) registrationOpen() bool {
	return s.deps.Registrar != nil && s.cfg.Registration.Enabled
}

// registerFeature is the stream feature announcing in-band registration
// (XEP-0077 § 4), or nil when registration is closed.
func (c *conn) registerFeature() *wire.Element {
	if !c.srv.registrationOpen() {
		return nil
	}
	return wire.New(register.NSFeature, "register")
}

// isRegisterIQ reports whether el is an IQ carrying a jabber:iq:register
// query.
func isRegisterIQ(el *wire.Element) bool {
	if el.Name.Local != "iq" || (el.Name.Space != wire.NSClient && el.Name.Space != "") {
		return false
	}
	kids := el.Children()
	return len(kids) == 1 && kids[0].Name.Space == register.NSRegister &&
		kids[0].Name.Local == "query"
}

// preAuthRegister answers a registration IQ before authentication. It
// returns an error only when the stream must end: a write failed, or the
// client sent more registration IQs than maxRegisterIQs.
func (c *conn) preAuthRegister(iq *wire.Element) error {
	c.registerIQs++
	if c.registerIQs > maxRegisterIQs {
		return &streamErr{cond: "policy-violation", text: "too many registration requests"}
	}
	if !c.srv.registrationOpen() {
		return c.writeElement(iqError(iq, "cancel", "service-unavailable", ""))
	}
	switch iq.Get("type") {
	case "get":
		return c.writeElement(iqResult(iq, register.RegistrationForm(c.lang)))
	case "set":
	default:
		return nil // results and errors from the client are ignored
	}

	sub, err := register.ParseSubmission(iq.Children()[0])
	if err == nil {
		ctx, cancel := context.WithDeadline(context.Background(), c.deadline)
		_, err = c.srv.deps.Registrar.Submit(ctx, sub, c.remote, c.lang)
		cancel()
	}
	switch {
	case errors.Is(err, register.ErrCodeSent):
		c.log.Info("verification code sent for in-band registration")
	case err != nil:
		// A wrong code, a limit or a bad number: an operator watches these
		// for abuse. The error text never holds the code.
		c.srv.warn(c.log, c.remote, "in-band registration refused", "err", err)
	}
	if err != nil {
		return c.writeElement(registerError(iq, err, c.lang))
	}
	c.log.Info("account registered in-band")
	return c.writeElement(iqResult(iq, nil))
}

// registerError is the error reply to a registration IQ; the condition and
// localised text come from register.ErrorElement.
func registerError(iq *wire.Element, err error, lang string) *wire.Element {
	return iqErrorWith(iq, register.ErrorElement(err, lang))
}

// registerIQ answers jabber:iq:register from a logged-in user (XEP-0077
// § 3.2 removal, § 3.3 password change). Neither needs a code: the user
// proved the password by logging in.
func (s *Session) registerIQ(iq, q *wire.Element) {
	lang := iq.Lang()
	if iq.Get("type") == "get" {
		s.reply(iqResult(iq, register.RegisteredAnswer(s.local, lang)))
		return
	}
	sub, err := register.ParseSubmission(q)
	if err != nil {
		s.reply(registerError(iq, err, lang))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Either request ends every session of the account through the
	// store's OnChange, this one included; it waits until this one's
	// answer is written (§ 3.2, § 3.3: the client sees its result).
	s.holdTerminate()
	defer s.releaseTerminate()
	if sub.Remove {
		if err := s.srv.deps.Accounts.Delete(ctx, s.local); err != nil &&
			!errors.Is(err, auth.ErrNotFound) {
			s.log.Error("removing account", "err", err)
			s.reply(iqError(iq, "wait", "internal-server-error", ""))
			return
		}
		s.log.Info("account removed in-band")
		s.reply(iqResult(iq, nil))
		return
	}
	s.changePassword(ctx, iq, sub, lang)
}

// changePassword sets a new password for the session's account. A username,
// if given, must be the account's own number.
func (s *Session) changePassword(ctx context.Context, iq *wire.Element,
	sub register.Submission, lang string) {
	reg := s.srv.deps.Registrar
	if reg == nil {
		s.reply(iqError(iq, "cancel", "service-unavailable", ""))
		return
	}
	if sub.Phone != "" {
		if n, err := reg.Normalize(sub.Phone); err != nil || n != s.local {
			s.reply(iqError(iq, "modify", "not-allowed", "that is not your account"))
			return
		}
	}
	if err := reg.CheckPassword(sub.Password); err != nil {
		s.reply(registerError(iq, err, lang))
		return
	}
	if err := s.srv.deps.Accounts.SetPassword(ctx, s.local, sub.Password); err != nil {
		s.log.Error("changing password", "err", err)
		s.reply(iqError(iq, "wait", "internal-server-error", ""))
		return
	}
	s.log.Debug("password changed in-band")
	s.reply(iqResult(iq, nil))
}
