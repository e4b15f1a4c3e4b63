// Command twotick is the twotick XMPP server and its administration tool.
//
//	twotick serve [--config FILE]          run the server
//	twotick check-config FILE              report every problem in a file
//	twotick user add|del|passwd|list|import  manage phone-number accounts
//	twotick bot add|del|list               manage bot accounts
//
// Without --config every setting takes its default: the domain localhost,
// data in the working directory.
package main

import (
	"context"
	"errors"

	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/storage"
)

const usage = `usage: twotick COMMAND [--config FILE] [ARGS]

commands:
  serve          run the server
  check-config   check a configuration file: twotick check-config FILE
  user           phone-number accounts: add, del, passwd, list, import
  bot            bot accounts: add, del, list
  version        print the version`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := runCommand(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "twotick:", err)
		os.Exit(2)
	}
}

// runCommand is main without the process: it parses the command line and runs one
// command.
func runCommand(ctx context.Context, args []string, stdin io.Reader,
	stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "check-config":
		if len(args) != 1 {
			return errors.New("check-config: expected one FILE")
		}
		if err := conf.Check(args[0]); err != nil {
			return err
		}
		fmt.Fprintln(stdout, args[0]+": ok")
		return nil
	case "version":
		fmt.Fprintln(stdout, "twotick", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	case "serve", "user", "bot":
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}

	cfgPath, args, err := configFlag(args)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	if cmd == "serve" {
		if len(args) > 0 {
			return fmt.Errorf("serve: unexpected arguments %q", args)
		}
		return serve(ctx, cfg, logger)
	}

	db, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	env := &cmdEnv{Cfg: cfg, DB: db, Logger: logger, Stdin: stdin, Stdout: stdout, Stderr: stderr}
	if cmd == "user" {
		return runUser(ctx, env, args)
	}
	return runBot(ctx, env, args)
}

// configFlag takes --config FILE (or --config=FILE) from anywhere in args
// and returns the remaining arguments.
func configFlag(args []string) (string, []string, error) {
	var path string
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--config" || a == "-config" || a == "-c":
			if i+1 >= len(args) {
				return "", nil, errors.New("--config needs a FILE")
			}
			path = args[i+1]
			i++
		case len(a) > 9 && (a[:9] == "--config=" || a[:8] == "-config="):
			path = a[len("--config="):]
			if a[1] != '-' {
				path = a[len("-config="):]
			}
		default:
			rest = append(rest, a)
		}
	}
	return path, rest, nil
}

func loadConfig(path string) (*conf.Config, error) {
	if path == "" {
		cfg := conf.Default()
		if err := cfg.ResolvePaths(); err != nil {
			return nil, err
		}
		return cfg, nil
	}
	return conf.Load(path)
}

func openDB(ctx context.Context, cfg *conf.Config) (*sql.DB, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	path := cfg.Storage.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(cfg.DataDir, path)
	}
	return storage.Open(ctx, path, cfg.Storage.Synchronous)
}

func newLogger(cfg *conf.Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// version is the module version when built from a tagged module, else the
// server's own version string.
func version() string {
	return xmppVersion()
}
