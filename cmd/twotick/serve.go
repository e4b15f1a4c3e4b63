package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp"
	"github.com/twotick/twotick/xmpp/auth"
)

func xmppVersion() string { return xmpp.Version }

// serve runs the server until ctx ends (SIGINT or SIGTERM), then shuts it
// down gracefully.
func serve(ctx context.Context, cfg *conf.Config, logger *slog.Logger) error {
	logger.Info("starting twotick", "version", xmpp.Version, "domain", cfg.Domain)
	for _, s := range cfg.Settings() {
		logger.Info("setting", "key", s.Key, "value", s.Value)
	}

	db, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	deps, err := xmpp.OpenDeps(ctx, cfg, db, logger)
	if err != nil {
		return err
	}
	defer deps.Queue.Close()
	accounts, tlsConf := deps.Accounts, deps.TLS
	deps.Book = newBook(cfg, deps.Roster, accounts, db) // accounts.go
	// Before db.Close: the book holds a connection of its own, and SQLite
	// removes the write-ahead log only when the last connection closes.
	defer deps.Book.Close()

	registrar, err := newRegistrar(ctx, cfg, db, accounts, logger) // registration.go
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(
		collectors.ProcessCollectorOpts{}))
	deps.Metrics = xmpp.NewMetrics(reg)
	xmpp.RegisterQueueMetrics(reg, deps.Queue)
	deps.Registrar = registrar
	srv, err := xmpp.New(cfg, deps, logger)
	if err != nil {
		return err
	}
	accounts.OnChange = func(local string, c auth.Change) {
		// A new password or a deleted account ends the sessions that
		// logged in with the old credentials.
		if c == auth.ChangePassword || c == auth.ChangeDeleted {
			srv.CloseSessions(local, "not-authorized")
		}
		if c == auth.ChangeDeleted {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := srv.ForgetAccount(ctx, local); err != nil {
				logger.Error("forgetting a deleted account's blocklist and push registrations failed",
					"err", err, "local", local)
			}
			cancel()
		}
		// A phone account joins or leaves the rosters of the books that
		// hold its number.
		srv.AccountChanged(local, c)
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	// Roster pushes left by "twotick user add/import/del" (accounts.go).
	go srv.PollQueuedPushes(ctx, time.Second)
	if err := srv.ListenComponents(); err != nil {
		return err
	}
	if cfg.Contacts.HTTPAddr != "" {
		contactsHTTP, err := srv.ListenContactsHTTP(cfg.Contacts.HTTPAddr)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Timeout.Duration)
			defer cancel()
			contactsHTTP.Shutdown(sctx)
		}()
	}
	if cfg.Registration.HTTPAddr != "" {
		stopReg, err := serveRegistrationHTTP(cfg.Registration.HTTPAddr, registrar,
			cfg.Registration.TrustedProxies, tlsConf, cfg.Shutdown.Timeout.Duration, logger)
		if err != nil {
			return err
		}
		defer stopReg()
	}
	stopHTTP, err := serveMetrics(cfg.Metrics, reg, srv, logger)
	if err != nil {
		return err
	}
	defer stopHTTP()
	// After a burst of logins, give the freed heap back once the server
	// goes quiet (docs/memory.md).
	mem := xmpp.StartMemoryReleaser(cfg.Memory.ReleaseAfter.Duration, reg, logger)
	defer mem.Stop()

	err = srv.Serve(ctx)
	logger.Info("stopped")
	if errors.Is(err, context.DeadlineExceeded) {
		// Some connections had to be cut; that is still a clean stop.
		return nil
	}
	return err
}

// serveMetrics serves /metrics (Prometheus) and /health on mc.Addr, which
// is loopback by default, and Go's profiles under /debug/pprof/ if
// mc.Pprof is set. It returns a function that stops the listener.
func serveMetrics(mc conf.Metrics, reg *prometheus.Registry, srv *xmpp.Server,
	logger *slog.Logger) (func(), error) {
	addr := mc.Addr
	if addr == "" {
		return func() {}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if err := srv.Healthy(); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if mc.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener on %s: %w", addr, err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	logger.Info("listening", "addr", ln.Addr().String(), "kind", "metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	}, nil
}
