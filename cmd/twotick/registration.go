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
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/auth"
	"github.com/twotick/twotick/xmpp/register"
)

// newRegistrar builds the SMS registration from cfg: the code store in db,
// the gateway chosen by sms.gateway, and the Registrar over accounts. The
// abuse limits are register.DefaultOptions until they become settings.
func newRegistrar(ctx context.Context, cfg *conf.Config, db *sql.DB, accounts *auth.Store,
	logger *slog.Logger) (*register.Registrar, error) {
	codes, err := register.OpenCodes(ctx, db, register.DefaultOptions())
	if err != nil {
		return nil, err
	}
	smsLog := logger.With("component", "sms")
	var gw register.Gateway
	switch cfg.SMS.Gateway {
	case "webhook":
		gw = &register.WebhookGateway{
			URL:    cfg.SMS.WebhookURL,
			Token:  cfg.SMS.WebhookToken,
			Texts:  &register.Texts{Default: cfg.SMS.Text},
			Logger: smsLog,
		}
	default: // "log"; conf rejects anything else
		gw = &register.LogGateway{Path: cfg.SMS.LogFile, Logger: smsLog}
		logger.Warn("sms gateway writes verification codes down; " +
			"anyone who reads them can register any number")
	}
	return &register.Registrar{
		Codes:         codes,
		Gateway:       gw,
		Accounts:      accounts,
		DefaultRegion: cfg.Auth.DefaultRegion,
		Logger:        logger.With("component", "register"),
	}, nil
}

// serveRegistrationHTTP serves the Quicksy registration API over HTTPS on
// addr. The returned function stops it, waiting at most timeout for
// requests in flight, and waits for its goroutine.
func serveRegistrationHTTP(addr string, reg *register.Registrar, tlsConf *tls.Config,
	timeout time.Duration, logger *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("registration listener on %s: %w", addr, err)
	}
	log := logger.With("component", "register_http")
	hs := &http.Server{
		Handler:           register.NewHTTPHandler(reg, register.HTTPOptions{Logger: log}),
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
