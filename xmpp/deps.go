package xmpp

import (
	"context"
	"database/sql"
	"log/slog"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/offline"
	"github.com/twotick/twotick/roster"
	"github.com/twotick/twotick/xmpp/auth"
)

// OpenDeps opens the stores every server needs on db, as cfg sets them up:
// accounts, the login throttle and SASL, rosters, the queue, and the TLS
// certificate (generated on first start when cfg names none). Metrics,
// Book and Registrar are left for the caller. The caller closes Queue.
func OpenDeps(ctx context.Context, cfg *conf.Config, db *sql.DB,
	logger *slog.Logger) (Deps, error) {
	accounts, err := auth.OpenStore(ctx, db, cfg.Domain)
	if err != nil {
		return Deps{}, err
	}
	accounts.Iterations = cfg.Auth.SCRAMIterations
	throttle := auth.NewThrottle(auth.ThrottleConfig{
		MaxPerAddr:    cfg.Auth.MaxFailuresPerIP,
		MaxPerAccount: cfg.Auth.MaxFailuresPerAccount,
		Window:        cfg.Auth.FailureWindow.Duration,
	})
	rosters, err := roster.OpenStore(ctx, db, roster.WithMaxItems(cfg.Roster.MaxItems))
	if err != nil {
		return Deps{}, err
	}
	tlsConf, err := LoadOrCreateCertificate(cfg.Domain, cfg.DataDir,
		cfg.TLS.CertFile, cfg.TLS.KeyFile, logger)
	if err != nil {
		return Deps{}, err
	}
	queue, err := offline.Open(ctx, db, offline.Options{
		MaxAge:      cfg.Offline.MaxAge.Duration,
		MaxPerUser:  cfg.Offline.MaxPerUser,
		Synchronous: cfg.Storage.Synchronous,
	}, logger)
	if err != nil {
		return Deps{}, err
	}
	return Deps{
		Accounts: accounts,
		SASL:     auth.NewServer(accounts, throttle),
		Throttle: throttle,
		Roster:   rosters,
		Queue:    queue,
		TLS:      tlsConf,
		DB:       db,
	}, nil
}
