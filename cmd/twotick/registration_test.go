package main

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/twotick/twotick/conf"
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
