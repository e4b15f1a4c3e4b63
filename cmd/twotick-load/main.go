// Command twotick-load drives an XMPP server on this machine with real
// client sessions and measures what users feel: memory per idle session,
// login rate, time to the single check (the server's XEP-0198 <a/>) and to
// the double check (the XEP-0184 receipt), offline delivery time, and
// contact upload rate. It speaks plain XMPP, so the same run can be pointed
// at twotick, Prosody or ejabberd.
//
// It refuses any target that is not a loopback address, stops by itself
// after --max-duration, and bounds every loop in count and time.
//
// Usage:
//
//	twotick-load accounts --kind prosody --out DATA_DIR --count 20000
//	twotick-load --scenario chat --addr 127.0.0.1:5222 --domain localhost \
//	    --user-format '+1202555%04d' --password secret --pairs 50 --rate 2000 \
//	    --duration 10s --server-pid 1234 --json results.jsonl --plot chat.png
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sub := map[string]func([]string) error{"accounts": runAccounts, "report": runReport}
	if len(os.Args) > 1 && sub[os.Args[1]] != nil {
		if err := sub[os.Args[1]](os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "twotick-load:", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "twotick-load:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.maxDuration)
	defer cancel()

	res, err := run(ctx, cfg, logger)
	if res != nil {
		if werr := writeOutputs(cfg, res, os.Stdout); werr != nil {
			logger.Error("writing results", "err", werr)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "twotick-load:", err)
		os.Exit(1)
	}
}

// run performs the configured scenario and returns its result. A result is
// returned even with an error when some figures were measured.
func run(ctx context.Context, cfg *config, logger *slog.Logger) (*result, error) {
	d, err := newDialer(cfg.addr, cfg.sources, cfg.connectRate)
	if err != nil {
		return nil, err
	}
	env := &env{cfg: cfg, dialer: d, logger: logger.With("scenario", cfg.scenario),
		client: &clientConfig{
			domain: cfg.domain, password: cfg.password, startTLS: cfg.tls, mech: cfg.mech,
			resource: "load", sm: true, cache: newSCRAMCache(),
		}}
	res := newResult(cfg)
	switch cfg.scenario {
	case "idle":
		err = runIdle(ctx, env, res)
	case "chat":
		err = runChat(ctx, env, res)
	case "offline":
		err = runOffline(ctx, env, res)
	case "contacts":
		err = runContacts(ctx, env, res)
	default:
		return nil, fmt.Errorf("unknown scenario %q", cfg.scenario)
	}
	if err != nil {
		res.Error = err.Error()
	}
	return res, err
}

// env is what a scenario needs besides its result.
type env struct {
	cfg    *config
	dialer *dialer
	client *clientConfig
	logger *slog.Logger
}

// user returns the account name of user number i (0-based) of the run.
func (e *env) user(i int) string { return fmt.Sprintf(e.cfg.userFormat, e.cfg.userStart+i) }

// bare returns the bare JID of user number i.
func (e *env) bare(i int) string { return e.user(i) + "@" + e.cfg.domain }
