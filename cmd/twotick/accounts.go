package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/roster"
	"github.com/twotick/twotick/xmpp"
	"github.com/twotick/twotick/xmpp/auth"
)

// cmdEnv is what an admin command needs: the configuration, the open
// database, a logger and the standard streams (replaced in tests).
type cmdEnv struct {
	Cfg            *conf.Config
	DB             *sql.DB
	Logger         *slog.Logger
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

const userUsage = `usage:
  twotick user add NUMBER [--password P]
  twotick user del NUMBER
  twotick user passwd NUMBER [--password P]
  twotick user list
  twotick user import FILE.csv [--workers N] [--same-salt]
Without --password the password is the first line of standard input.`

const botUsage = `usage:
  twotick bot add NAME [--password P]
  twotick bot del NAME
  twotick bot list`

// runUser runs "twotick user ...": phone-number accounts.
func runUser(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) == 0 {
		return errors.New("user: missing subcommand\n" + userUsage)
	}
	store, err := openAccounts(ctx, env)
	if err != nil {
		return err
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "add", "passwd":
		return userSetPassword(ctx, env, store, sub, args)
	case "del":
		local, err := oneAccountArg(env, store, "user del", auth.KindPhone, args)
		if err != nil {
			return err
		}
		return deleteAccount(ctx, env, store, "user del", local, auth.KindPhone)
	case "list":
		return listAccounts(ctx, env, store, "user list", auth.KindPhone, args)
	case "import":
		return userImport(ctx, env, store, args)
	}
	return fmt.Errorf("user: unknown subcommand %q\n%s", sub, userUsage)
}

// runBot runs "twotick bot ...": accounts with plain localparts.
func runBot(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) == 0 {
		return errors.New("bot: missing subcommand\n" + botUsage)
	}
	store, err := openAccounts(ctx, env)
	if err != nil {
		return err
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "add":
		fs := newFlagSet(env, "bot add")
		password := fs.String("password", "", "the bot's password (default: first line of stdin)")
		pos, err := parseInterleaved(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return errors.New("bot add: expected exactly one NAME\n" + botUsage)
		}
		local, err := auth.NormalizeBot(pos[0])
		if err != nil {
			return fmt.Errorf("bot add: %w", err)
		}
		pw, err := readPassword(env, fs, *password)
		if err != nil {
			return fmt.Errorf("bot add: %w", err)
		}
		if err := store.Create(ctx, local, auth.KindBot, pw); err != nil {
			return fmt.Errorf("bot add: %w", err)
		}
		fmt.Fprintln(env.Stdout, jidOf(env, local))
		return nil
	case "del":
		local, err := oneAccountArg(env, store, "bot del", auth.KindBot, args)
		if err != nil {
			return err
		}
		return deleteAccount(ctx, env, store, "bot del", local, auth.KindBot)
	case "list":
		return listAccounts(ctx, env, store, "bot list", auth.KindBot, args)
	}
	return fmt.Errorf("bot: unknown subcommand %q\n%s", sub, botUsage)
}

func openAccounts(ctx context.Context, env *cmdEnv) (*auth.Store, error) {
	store, err := auth.OpenStore(ctx, env.DB, env.Cfg.Domain)
	if err != nil {
		return nil, err
	}
	store.Iterations = env.Cfg.Auth.SCRAMIterations
	return store, nil
}

// newBook returns the address-book service over the server's stores, as
// configured: serve uses it for uploads, the user commands to bring
// rosters in line with the accounts they create and delete.
func newBook(cfg *conf.Config, rosters *roster.Store, accounts *auth.Store,
	db *sql.DB, opts ...roster.BookOption) *roster.Book {
	opts = append(opts, roster.WithOneSided(roster.Subscription(cfg.Contacts.OneSided)))
	return roster.NewBook(rosters, xmpp.AccountDirectory{Accounts: accounts, DB: db}, cfg.Domain,
		cfg.Contacts.DailyLookupLimit, opts...)
}

// bookChanged brings the address-book rosters in line after the command
// created (joined) or deleted phone accounts, as the running server does
// for its own registrations: the stored rosters change here at once, and
// the pushes are queued in the database for the server (if one runs) to
// send to the holders who are online (xmpp.Server.PollQueuedPushes). The
// account changes are logged too (roster.WithAccountLog), so that the
// server's in-memory index of registered numbers and books follows them.
func bookChanged(ctx context.Context, env *cmdEnv, accounts *auth.Store, joined []string,
	left string) error {
	rosters, err := roster.OpenStore(ctx, env.DB, roster.WithMaxItems(env.Cfg.Roster.MaxItems))
	if err != nil {
		return err
	}
	book := newBook(env.Cfg, rosters, accounts, env.DB, roster.WithAccountLog())
	defer book.Close() // its connection, before the command closes the database
	var pushes []roster.Push
	if left != "" {
		pushes, err = book.Left(ctx, left)
	} else {
		pushes, err = book.JoinedMany(ctx, joined)
	}
	if qerr := book.Queue(ctx, pushes); err == nil {
		err = qerr
	}
	if err != nil {
		return fmt.Errorf("updating address-book rosters: %w", err)
	}
	return nil
}

func jidOf(env *cmdEnv, local string) string { return local + "@" + env.Cfg.Domain }

func newFlagSet(env *cmdEnv, name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// parseInterleaved parses flags that may come before or after the
// positional arguments ("user add NUMBER --password P") and returns the
// positional ones. The flag package alone stops at the first of them.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%s: %w", fs.Name(), err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parseNumber normalises a phone number given on the command line.
func parseNumber(env *cmdEnv, cmd, arg string) (string, error) {
	local, err := roster.ParsePhone(arg, env.Cfg.Auth.DefaultRegion)
	if err != nil {
		return "", fmt.Errorf("%s: %q is not a valid phone number (numbers without a country "+
			"code are read as %s numbers): %w", cmd, arg, env.Cfg.Auth.DefaultRegion, err)
	}
	return local, nil
}

// oneAccountArg reads the single NUMBER or NAME argument of del.
func oneAccountArg(env *cmdEnv, store *auth.Store, cmd string, kind auth.Kind,
	args []string) (string, error) {
	pos, err := parseInterleaved(newFlagSet(env, cmd), args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", fmt.Errorf("%s: expected exactly one argument", cmd)
	}
	if kind == auth.KindPhone {
		return parseNumber(env, cmd, pos[0])
	}
	local, err := auth.NormalizeBot(pos[0])
	if err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	return local, nil
}

// readPassword returns the --password value or the first line of stdin.
func readPassword(env *cmdEnv, fs *flag.FlagSet, flagValue string) (string, error) {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "password" })
	if given {
		if flagValue == "" {
			return "", errors.New("--password is empty")
		}
		return flagValue, nil
	}
	if isTerminal(env.Stdin) {
		// TODO: turn off echo (golang.org/x/term) so that the password is
		// not shown while typed.
		fmt.Fprint(env.Stderr, "Password: ")
	}
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password: give --password or a line on standard input")
	}
	return line, nil
}

func userSetPassword(ctx context.Context, env *cmdEnv, store *auth.Store, sub string,
	args []string) error {
	cmd := "user " + sub
	fs := newFlagSet(env, cmd)
	password := fs.String("password", "", "the password (default: first line of stdin)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%s: expected exactly one NUMBER\n%s", cmd, userUsage)
	}
	local, err := parseNumber(env, cmd, pos[0])
	if err != nil {
		return err
	}
	if sub == "passwd" {
		if err := checkKind(ctx, store, cmd, local, auth.KindPhone); err != nil {
			return err
		}
	}
	pw, err := readPassword(env, fs, *password)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if sub == "add" {
		err = store.Create(ctx, local, auth.KindPhone, pw)
	} else {
		err = store.SetPassword(ctx, local, pw)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if sub == "add" {
		if err := bookChanged(ctx, env, store, []string{local}, ""); err != nil {
			return fmt.Errorf("%s: account created, but %w", cmd, err)
		}
	}
	fmt.Fprintln(env.Stdout, jidOf(env, local))
	return nil
}

// checkKind refuses to act on an account of the other kind, so that "user
// del" cannot remove a bot by accident.
func checkKind(ctx context.Context, store *auth.Store, cmd, local string, kind auth.Kind) error {
	a, err := store.Lookup(ctx, local)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if a.Kind != kind {
		return fmt.Errorf("%s: %s is a %s account, not a %s account", cmd, local, a.Kind, kind)
	}
	return nil
}

func deleteAccount(ctx context.Context, env *cmdEnv, store *auth.Store, cmd, local string,
	kind auth.Kind) error {
	if err := checkKind(ctx, store, cmd, local, kind); err != nil {
		return err
	}
	if err := store.Delete(ctx, local); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if kind == auth.KindPhone {
		if err := bookChanged(ctx, env, store, nil, local); err != nil {
			return fmt.Errorf("%s: account deleted, but %w", cmd, err)
		}
	}
	// A deletion inside the server (XEP-0077 removal) forgets the blocklist
	// through the store's OnChange; this command runs without a server, and
	// a recycled number must not inherit the old owner's list.
	bl, err := roster.OpenBlocklist(ctx, env.DB, 0)
	if err == nil {
		err = bl.DeleteOwner(ctx, jidOf(env, local))
	}
	if err != nil {
		return fmt.Errorf("%s: account deleted, but its blocklist was not: %w", cmd, err)
	}
	fmt.Fprintln(env.Stdout, "deleted", jidOf(env, local))
	return nil
}

func listAccounts(ctx context.Context, env *cmdEnv, store *auth.Store, cmd string,
	kind auth.Kind, args []string) error {
	pos, err := parseInterleaved(newFlagSet(env, cmd), args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%s: takes no arguments", cmd)
	}
	list, err := store.List(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	w := bufio.NewWriter(env.Stdout)
	for _, a := range list {
		if a.Kind == kind {
			fmt.Fprintln(w, jidOf(env, a.Local))
		}
	}
	return w.Flush()
}

// maxReported bounds the problem lines printed by an import; the summary
// counts them all.
const maxReported = 100

func userImport(ctx context.Context, env *cmdEnv, store *auth.Store, args []string) error {
	fs := newFlagSet(env, "user import")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "goroutines deriving keys")
	sameSalt := fs.Bool("same-salt", false, "derive each distinct password's keys once "+
		"(test populations only: accounts with one password share their keys)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("user import: expected exactly one FILE\n" + userUsage)
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return fmt.Errorf("user import: %w", err)
	}
	defer f.Close()

	start := time.Now()
	rows, problems, err := readImportCSV(f, pos[0])
	if err != nil {
		return fmt.Errorf("user import: %w", err)
	}
	records, invalid := parseImportRows(env, pos[0], rows, *workers)
	problems = append(problems, invalid...)
	for i, p := range problems {
		if i == maxReported {
			fmt.Fprintf(env.Stderr, "... and %d more rows skipped\n", len(problems)-i)
			break
		}
		fmt.Fprintln(env.Stderr, p)
	}
	if *sameSalt {
		fmt.Fprintln(env.Stderr, "--same-salt: accounts with the same password share one salt "+
			"and identical keys; use it only for test populations")
	}

	bar := newProgressBar(env.Stderr, "importing")
	res, err := store.Import(ctx, records, *workers, bar.update, auth.SharedSalt(*sameSalt))
	bar.finish()
	shown := 0
	for _, r := range res.Rejected {
		if shown == maxReported {
			fmt.Fprintf(env.Stderr, "... and %d more rejected\n", len(res.Rejected)-shown)
			break
		}
		shown++
		fmt.Fprintf(env.Stderr, "%s:%d: %s: %s\n", pos[0], r.Line, r.Local, r.Reason)
	}
	fmt.Fprintf(env.Stdout, "imported %d accounts in %v; skipped %d duplicates, %d invalid rows\n",
		res.Created, time.Since(start).Round(time.Millisecond), res.Duplicates,
		len(problems)+res.Invalid)
	if err != nil {
		return fmt.Errorf("user import: %w", err)
	}
	// Only numbers that some book holds cost more than one lookup here.
	imported := make([]string, 0, len(records))
	for _, r := range records {
		imported = append(imported, r.Local)
	}
	if err := bookChanged(ctx, env, store, imported, ""); err != nil {
		return fmt.Errorf("user import: accounts imported, but %w", err)
	}
	return nil
}

type csvRow struct {
	line             int
	number, password string
}

// readImportCSV reads number,password rows; a first row whose first field is
// "number" is a header. Rows of the wrong shape are returned as problems.
func readImportCSV(r io.Reader, name string) ([]csvRow, []string, error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 1<<16))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var rows []csvRow
	var problems []string
	for first := true; ; first = false {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, problems, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		if first && strings.EqualFold(strings.TrimSpace(rec[0]), "number") {
			continue
		}
		if len(rec) != 2 || rec[1] == "" {
			problems = append(problems, fmt.Sprintf("%s:%d: expected number,password; skipped",
				name, line))
			continue
		}
		rows = append(rows, csvRow{line: line, number: rec[0], password: rec[1]})
	}
}

// parseImportRows normalises the numbers on several goroutines (parsing a
// number takes microseconds, which adds up over a million rows) and returns
// the records in file order with the rows it refused.
func parseImportRows(env *cmdEnv, name string, rows []csvRow,
	workers int) ([]auth.ImportRecord, []string) {
	workers = max(1, workers)
	out := make([]auth.ImportRecord, len(rows))
	errs := make([]error, len(rows))
	var wg sync.WaitGroup
	per := (len(rows) + workers - 1) / workers
	for w := range workers {
		lo, hi := w*per, min((w+1)*per, len(rows))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				local, err := roster.ParsePhone(rows[i].number, env.Cfg.Auth.DefaultRegion)
				errs[i] = err
				out[i] = auth.ImportRecord{Line: rows[i].line, Local: local, Kind: auth.KindPhone,
					Password: rows[i].password}
			}
		}()
	}
	wg.Wait()

	records := out[:0]
	var problems []string
	for i, r := range out {
		if errs[i] != nil {
			problems = append(problems, fmt.Sprintf("%s:%d: %q is not a valid phone number; skipped",
				name, r.Line, rows[i].number))
			continue
		}
		records = append(records, r)
	}
	return records, problems
}

// progressBar draws an import's progress on a terminal, redrawn in place at
// most ten times a second, or as a plain line every few seconds elsewhere.
type progressBar struct {
	w     io.Writer
	label string
	tty   bool
	start time.Time
	last  time.Time
	drawn bool
}

func newProgressBar(w io.Writer, label string) *progressBar {
	return &progressBar{w: w, label: label, tty: isTerminal(w), start: time.Now()}
}

func (p *progressBar) update(done, total int) {
	now := time.Now()
	every := 5 * time.Second
	if p.tty {
		every = 100 * time.Millisecond
	}
	if now.Sub(p.last) < every && done != total {
		return
	}
	p.last = now
	p.drawn = true
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	rate := float64(done) / max(now.Sub(p.start).Seconds(), 1e-3)
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %3.0f%% %d/%d %.0f/s\n", p.label, pct, done, total, rate)
		return
	}
	const width = 30
	fill := int(pct / 100 * width)
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	fmt.Fprintf(p.w, "\r%s [%s] %3.0f%% %d/%d %.0f/s ", p.label, bar, pct, done, total, rate)
}

func (p *progressBar) finish() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}

// isTerminal reports whether v is an *os.File open on a character device.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
