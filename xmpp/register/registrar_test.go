package register

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/twotick/twotick/xmpp/auth"
)

// failingGateway refuses every message.
type failingGateway struct{}

func (failingGateway) Send(context.Context, string, string, string) error {
	return errors.New("provider down")
}

func TestSubmitFlow(t *testing.T) {
	h := newHarness(t, HTTPOptions{})
	ctx := context.Background()
	addr := netip.MustParseAddr("2001:db8::7")
	form := RegistrationForm("en")

	// First submission: no code, so an SMS goes out and the answer is an
	// error that says so.
	sub, err := ParseSubmission(fill(form, map[string]string{
		"phone": "(202) 555-0101", "password": "correct horse"}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.reg.Submit(ctx, sub, addr, "en")
	var sent *CodeSentError
	if !errors.As(err, &sent) || sent.Number != "+12025550101" || !errors.Is(err, ErrCodeSent) {
		t.Fatalf("first Submit = %v, want a CodeSentError for +12025550101", err)
	}

	// Second submission with the code from the SMS creates the account.
	sub, err = ParseSubmission(fill(form, map[string]string{"phone": "+1 202 555 0101",
		"password": "correct horse", "code": h.code(t, "+12025550101")}))
	if err != nil {
		t.Fatal(err)
	}
	created, err := h.reg.Submit(ctx, sub, addr, "en")
	if err != nil || !created {
		t.Fatalf("second Submit = %v, %v", created, err)
	}
	checkPassword(t, h.accounts, "+12025550101", "correct horse", true)
}

func TestRegistrarErrors(t *testing.T) {
	ctx := context.Background()
	addr := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name string
		run  func(h *harness) error
		want error
	}{
		{"invalid number", func(h *harness) error {
			return h.reg.Start(ctx, "12345", addr, "")
		}, ErrInvalidNumber},
		{"number of another region", func(h *harness) error {
			h.reg.DefaultRegion = "DE"
			return h.reg.Start(ctx, "030 12345678", addr, "")
		}, nil},
		{"short password before sending", func(h *harness) error {
			_, err := h.reg.Submit(ctx, Submission{Phone: "+12025550101", Password: "short"}, addr, "")
			return err
		}, ErrBadPassword},
		{"removal before login", func(h *harness) error {
			_, err := h.reg.Submit(ctx, Submission{Remove: true}, addr, "")
			return err
		}, ErrBadSubmission},
		{"gateway failure leaves no code", func(h *harness) error {
			h.reg.Gateway = failingGateway{}
			err := h.reg.Start(ctx, "+12025550101", addr, "")
			if !errors.Is(err, ErrSendFailed) {
				return fmt.Errorf("Start = %v, want ErrSendFailed", err)
			}
			var n int
			h.codes.db.QueryRow(`SELECT count(*) FROM register_codes`).Scan(&n)
			if n != 0 {
				return fmt.Errorf("%d codes left after a failed send", n)
			}
			return nil
		}, nil},
		{"wrong code", func(h *harness) error {
			h.reg.Start(ctx, "+12025550101", addr, "")
			_, err := h.reg.Complete(ctx, "+12025550101", wrong(h.code(t, "+12025550101")), "long enough")
			return err
		}, ErrWrongCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, HTTPOptions{})
			err := tt.run(h)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if _, lerr := h.accounts.Lookup(ctx, "+12025550101"); !errors.Is(lerr, auth.ErrNotFound) {
				t.Fatalf("an account was created: %v", lerr)
			}
		})
	}
}

func ExampleTexts_Message() {
	texts := &Texts{ByLang: map[string]string{"de": "Dein twotick-Code ist {code}"}}
	fmt.Println(texts.Message("de-AT, en;q=0.5", "123456"))
	fmt.Println(texts.Message("ja", "123456"))
	// Output:
	// Dein twotick-Code ist 123456
	// Your twotick code is 123456
}
