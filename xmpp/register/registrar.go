package register

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"unicode/utf8"

	"github.com/twotick/twotick/roster"
	"github.com/twotick/twotick/xmpp/auth"
)

// Errors returned by the Registrar besides those of Codes.
var (
	// ErrInvalidNumber is roster.ErrInvalidNumber: a number that cannot be
	// read or is not in use in any region.
	ErrInvalidNumber = roster.ErrInvalidNumber
	// ErrBadPassword means the new password is too short or too long; the
	// error is a *PasswordError.
	ErrBadPassword = errors.New("unacceptable password")
	// ErrSendFailed means the gateway did not take the SMS; no code is left
	// behind.
	ErrSendFailed = errors.New("verification code could not be sent")
	// ErrCodeSent is what Submit returns, as a *CodeSentError, for a
	// submission without a code once the SMS has gone out: in-band
	// registration answers it with an error telling the user to submit
	// again with the code.
	ErrCodeSent = errors.New("verification code sent; submit again with the code")
)

// CodeSentError is the error of Submit after sending a code to Number. It
// matches ErrCodeSent with errors.Is.
type CodeSentError struct{ Number string }

func (e *CodeSentError) Error() string { return e.Number + ": " + ErrCodeSent.Error() }

// Is reports whether target is ErrCodeSent.
func (e *CodeSentError) Is(target error) bool { return target == ErrCodeSent }

// MaxPasswordLen is the longest password accepted, in bytes.
const MaxPasswordLen = 1024

// DefaultMinPasswordLen is the default of Registrar.MinPasswordLen.
const DefaultMinPasswordLen = 8

// Accounts is what the Registrar needs of the account store; *auth.Store
// has it.
type Accounts interface {
	Create(ctx context.Context, local string, kind auth.Kind, password string) error
	SetPassword(ctx context.Context, local, password string) error
}

// Registrar turns a verified phone number into an account: Start sends a
// code, Complete checks it and creates the account or, if the number is
// already registered, replaces its password.
//
// Set the fields before the Registrar is shared; after that it is safe for
// concurrent use.
type Registrar struct {
	Codes    *Codes
	Gateway  Gateway
	Accounts Accounts
	// DefaultRegion is the ISO 3166 region for numbers written without a
	// country code (default "US").
	DefaultRegion string
	// MinPasswordLen is the shortest password accepted, in characters
	// (default DefaultMinPasswordLen).
	MinPasswordLen int
	// OnRegistered, if not nil, is called after an account was created
	// (created true) or its password replaced by re-registration (false),
	// so that the server can close the account's old sessions and tell
	// contacts that the number joined. It runs on the caller's goroutine and
	// must not block for long.
	OnRegistered func(local string, created bool)
	// Logger receives registrations and failures (nil: discarded). Codes
	// and passwords never reach it.
	Logger *slog.Logger
}

func (r *Registrar) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// Normalize reads number as E.164, relative to DefaultRegion, or returns an
// error wrapping ErrInvalidNumber.
func (r *Registrar) Normalize(number string) (string, error) {
	region := r.DefaultRegion
	if region == "" {
		region = "US"
	}
	e164, err := roster.ParsePhone(number, region)
	if err != nil {
		return "", fmt.Errorf("registering: %w", err)
	}
	return e164, nil
}

// Start sends a new code to number on behalf of a client at addr speaking
// lang. Errors: ErrInvalidNumber, a *LimitError, ErrSendFailed.
func (r *Registrar) Start(ctx context.Context, number string, addr netip.Addr, lang string) error {
	e164, err := r.Normalize(number)
	if err != nil {
		return err
	}
	res, err := r.Codes.Request(ctx, e164, addr, lang)
	if err != nil {
		return err
	}
	if err := r.Gateway.Send(ctx, e164, res.Code, lang); err != nil {
		// A code nobody received must not be guessable for ten minutes.
		// The request still counts against the limits: the provider may
		// have sent it after all, and failures must not open a way around
		// the SMS bill cap.
		if derr := r.Codes.Discard(context.WithoutCancel(ctx), e164); derr != nil {
			r.logger().Error("discarding unsent code", "number", e164, "err", derr)
		}
		return fmt.Errorf("%w: %w", ErrSendFailed, err)
	}
	r.logger().Debug("verification code sent", "number", e164, "remote_addr", addr)
	return nil
}

// PasswordError says why a password was refused. It matches
// ErrBadPassword with errors.Is.
type PasswordError struct {
	Min    int    // the shortest length accepted, in characters
	Reason string // what is wrong, without the password
}

func (e *PasswordError) Error() string { return ErrBadPassword.Error() + ": " + e.Reason }

// Is reports whether target is ErrBadPassword.
func (e *PasswordError) Is(target error) bool { return target == ErrBadPassword }

// CheckPassword returns a *PasswordError if password is not acceptable as
// a new password: shorter than MinPasswordLen characters, longer than
// MaxPasswordLen bytes, or not UTF-8. The server uses it for password
// changes (XEP-0077 § 3.3) too.
func (r *Registrar) CheckPassword(password string) error {
	min := r.MinPasswordLen
	if min <= 0 {
		min = DefaultMinPasswordLen
	}
	switch {
	case !utf8.ValidString(password):
		return &PasswordError{Min: min, Reason: "not UTF-8"}
	case utf8.RuneCountInString(password) < min:
		return &PasswordError{Min: min, Reason: fmt.Sprintf("shorter than %d characters", min)}
	case len(password) > MaxPasswordLen:
		return &PasswordError{Min: min, Reason: fmt.Sprintf("longer than %d bytes", MaxPasswordLen)}
	}
	return nil
}

// Complete verifies code for number and sets password on its account,
// creating the account if there is none (created is then true). The
// password is checked first, so that a bad password does not use up the
// code. Errors: ErrInvalidNumber, ErrBadPassword, ErrWrongCode, ErrExpired,
// ErrTooManyAttempts, or a storage failure.
func (r *Registrar) Complete(ctx context.Context, number, code, password string) (bool, error) {
	e164, err := r.Normalize(number)
	if err != nil {
		return false, err
	}
	if err := r.CheckPassword(password); err != nil {
		return false, err
	}
	if err := r.Codes.Verify(ctx, e164, code); err != nil {
		r.logger().Debug("verification failed", "number", e164, "err", err)
		return false, err
	}

	created := true
	err = r.Accounts.Create(ctx, e164, auth.KindPhone, password)
	if errors.Is(err, auth.ErrExists) {
		// Re-registration: whoever holds the number now owns the account.
		created = false
		err = r.Accounts.SetPassword(ctx, e164, password)
	}
	if err != nil {
		return false, fmt.Errorf("registering %s: %w", e164, err)
	}
	r.logger().Info("number registered", "number", e164, "created", created)
	if r.OnRegistered != nil {
		r.OnRegistered(e164, created)
	}
	return created, nil
}

// Submit runs one in-band registration submission (XEP-0077 § 3.1) from an
// unauthenticated client at addr: without a code it checks the password,
// sends a code and returns ErrCodeSent; with a code it completes the
// registration. A removal is not a registration and gives an error wrapping
// ErrBadSubmission. Turn errors into stanza errors with ErrorElement.
func (r *Registrar) Submit(ctx context.Context, s Submission, addr netip.Addr,
	lang string) (created bool, err error) {
	if s.Remove {
		return false, fmt.Errorf("removal before authentication: %w", ErrBadSubmission)
	}
	if s.Code == "" {
		if err := r.CheckPassword(s.Password); err != nil {
			return false, err
		}
		if err := r.Start(ctx, s.Phone, addr, lang); err != nil {
			return false, err
		}
		e164, _ := r.Normalize(s.Phone) // Start succeeded, so this does
		return false, &CodeSentError{Number: e164}
	}
	return r.Complete(ctx, s.Phone, s.Code, s.Password)
}
