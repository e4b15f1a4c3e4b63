package main

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/auth"
	"github.com/twotick/twotick/xmpp/register"
)

// The defaults documented for [registration] are the ones package register
// documents: a server started without the keys enforces the same limits.
func TestCodeOptionsDefault(t *testing.T) {
	got := codeOptions(conf.Default().Registration)
	if want := register.DefaultOptions(); got != want {
		t.Fatalf("codeOptions(defaults) = %+v, want register.DefaultOptions() %+v", got, want)
	}
	if n := conf.Default().Registration.MinPasswordLength; n != register.DefaultMinPasswordLen {
		t.Errorf("registration.min_password_length default %d, register's %d",
			n, register.DefaultMinPasswordLen)
	}
	if n := conf.Default().SMS.WebhookRetries; n != register.DefaultWebhookRetries {
		t.Errorf("sms.webhook_retries default %d, register's %d", n, register.DefaultWebhookRetries)
	}
	if d := conf.Default().SMS.WebhookTimeout.Duration; d != register.DefaultWebhookTimeout {
		t.Errorf("sms.webhook_timeout default %s, register's %s", d, register.DefaultWebhookTimeout)
	}
	if d := conf.Default().SMS.WebhookBackoff.Duration; d != register.DefaultWebhookBackoff {
		t.Errorf("sms.webhook_backoff default %s, register's %s", d, register.DefaultWebhookBackoff)
	}
}

func TestTrustedProxies(t *testing.T) {
	got, err := trustedProxies([]string{"10.1.2.3/8", "::1", "::ffff:192.0.2.1", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("192.0.2.1/32"),
		netip.MustParsePrefix("192.0.2.7/32"),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("trustedProxies = %v, want %v", got, want)
	}
	if _, err := trustedProxies([]string{"proxy.lan"}); err == nil {
		t.Fatal("a host name was accepted")
	}
}

// newRegistrar carries the settings into the Registrar and the gateway:
// nothing configured is left at register's defaults.
func TestNewRegistrarAppliesSettings(t *testing.T) {
	ctx := context.Background()
	cfg := conf.Default()
	cfg.DataDir = t.TempDir()
	cfg.Registration.MinPasswordLength = 12
	cfg.Registration.GlobalMax = 50
	cfg.Registration.CodeTTL = conf.Duration{Duration: 3 * time.Minute}
	cfg.SMS.Gateway = "webhook"
	cfg.SMS.WebhookURL = "https://sms.example.net/send"
	cfg.SMS.WebhookRetries = 0
	cfg.SMS.WebhookTimeout = conf.Duration{Duration: 2 * time.Second}
	cfg.SMS.WebhookBackoff = conf.Duration{Duration: time.Second}
	cfg.SMS.Texts = map[string]string{"de": "Dein Code: {code}"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	db, err := openDB(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	accounts, err := auth.OpenStore(ctx, db, cfg.Domain)
	if err != nil {
		t.Fatal(err)
	}

	reg, err := newRegistrar(ctx, cfg, db, accounts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if reg.MinPasswordLen != 12 {
		t.Errorf("MinPasswordLen = %d, want 12", reg.MinPasswordLen)
	}
	if o := reg.Codes.Options(); o.Global.Max != 50 || o.CodeTTL != 3*time.Minute {
		t.Errorf("code options %+v, want global max 50 and TTL 3m", o)
	}
	gw, ok := reg.Gateway.(*register.WebhookGateway)
	if !ok {
		t.Fatalf("gateway %T, want *register.WebhookGateway", reg.Gateway)
	}
	if gw.Retries >= 0 || gw.Timeout != 2*time.Second || gw.Backoff != time.Second {
		t.Errorf("webhook retries %d, timeout %s, backoff %s; want none, 2s, 1s",
			gw.Retries, gw.Timeout, gw.Backoff)
	}
	if got := gw.Texts.Message("de-AT", "123456"); got != "Dein Code: 123456" {
		t.Errorf("text for de-AT = %q", got)
	}
}
