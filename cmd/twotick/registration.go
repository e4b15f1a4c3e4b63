package main

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/auth"
	"github.com/twotick/twotick/xmpp/register"
)

// newRegistrar builds the SMS registration from cfg: the code store in db
// with the abuse limits of [registration], the gateway chosen by
// sms.gateway, and the Registrar over accounts.
func newRegistrar(ctx context.Context, cfg *conf.Config, db *sql.DB, accounts *auth.Store,
	logger *slog.Logger) (*register.Registrar, error) {
	codes, err := register.OpenCodes(ctx, db, codeOptions(cfg.Registration))
	if err != nil {
		return nil, err
	}
	smsLog := logger.With("component", "sms")
	var gw register.Gateway
	switch cfg.SMS.Gateway {
	case "webhook":
		retries := cfg.SMS.WebhookRetries
		if retries == 0 {
			retries = -1 // the gateway reads 0 as its default; conf's 0 means none
		}
		gw = &register.WebhookGateway{
			URL:     cfg.SMS.WebhookURL,
			Token:   cfg.SMS.WebhookToken,
			Timeout: cfg.SMS.WebhookTimeout.Duration,
			Retries: retries,
			Backoff: cfg.SMS.WebhookBackoff.Duration,
			Texts:   &register.Texts{Default: cfg.SMS.Text, ByLang: cfg.SMS.Texts},
			Logger:  smsLog,
		}
	default: // "log"; conf rejects anything else
		gw = &register.LogGateway{Path: cfg.SMS.LogFile, Logger: smsLog}
		logger.Warn("sms gateway writes verification codes down; " +
			"anyone who reads them can register any number")
	}
	return &register.Registrar{
		Codes:          codes,
		Gateway:        gw,
		Accounts:       accounts,
		DefaultRegion:  cfg.Auth.DefaultRegion,
		MinPasswordLen: cfg.Registration.MinPasswordLength,
		Logger:         logger.With("component", "register"),
	}, nil
}

// codeOptions turns the [registration] limits into register.Options. conf
// has checked every value, so none is left to register's defaults.
func codeOptions(r conf.Registration) register.Options {
	limit := func(max int, window conf.Duration) register.Limit {
		return register.Limit{Max: max, Window: window.Duration}
	}
	return register.Options{
		CodeTTL:      r.CodeTTL.Duration,
		MaxAttempts:  r.MaxAttempts,
		NumberShort:  limit(r.NumberShortMax, r.NumberShortWindow),
		NumberLong:   limit(r.NumberLongMax, r.NumberLongWindow),
		AddressShort: limit(r.AddressShortMax, r.AddressShortWindow),
		AddressLong:  limit(r.AddressLongMax, r.AddressLongWindow),
		Global:       limit(r.GlobalMax, r.GlobalWindow),
		IPv6Prefix:   r.IPv6Prefix,
	}
}

// trustedProxies parses registration.trusted_proxies, which conf has
// checked: CIDR prefixes, or single addresses taken as full-length prefixes.
func trustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("registration.trusted_proxies: %q: %w", s, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// serveRegistrationHTTP serves the Quicksy registration API over HTTPS on
// addr. The returned function stops it, waiting at most timeout for
// requests in flight, and waits for its goroutine.
func serveRegistrationHTTP(addr string, reg *register.Registrar, proxies []string,
	tlsConf *tls.Config, timeout time.Duration, logger *slog.Logger) (func(), error) {
	trusted, err := trustedProxies(proxies)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("registration listener on %s: %w", addr, err)
	}
	log := logger.With("component", "register_http")
	hs := &http.Server{
		Handler: register.NewHTTPHandler(reg, register.HTTPOptions{
			TrustedProxies: trusted,
			Logger:         log,
		}),
		TLSConfig:         tlsConf.Clone(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			log.Error("registration listener failed", "err", err)
		}
	}()
	logger.Info("listening", "addr", ln.Addr().String(), "kind", "registration")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		hs.Shutdown(ctx)
		<-done
	}, nil
}
