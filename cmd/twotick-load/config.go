package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// config is the parsed command line.
type config struct {
	scenario    string
	addr        string
	domain      string
	userFormat  string
	userStart   int
	password    string
	tls         bool
	mech        string
	sources     int
	connectRate float64
	concurrency int
	serverPID   int
	serverName  string
	maxDuration time.Duration
	jsonPath    string
	plotPath    string
	logLevel    slog.Level

	sessions   []int         // idle: checkpoints, ascending
	settle     time.Duration // idle: wait before reading memory
	pairs      int           // chat
	rate       float64       // chat: offered messages per second over all pairs
	duration   time.Duration // chat
	drain      time.Duration // chat, offline: how long to wait for stragglers
	users      int           // offline: recipients
	messages   int           // offline: messages per recipient
	uploads    int           // contacts: uploads, each by its own account
	uploadRate float64       // contacts: offered uploads per second; 0: closed loop
	bookSize   int           // contacts: numbers per upload
	population int           // contacts: registered accounts from --user-start
	matchShare float64       // contacts: share of each book that is registered
	unreg      int           // contacts: unregistered numbers to draw from, after the population
	seed       int64         // contacts: makes the books
	apiHost    string        // contacts: the Quicksy API component
}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("twotick-load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.scenario, "scenario", "idle", "idle, chat, offline or contacts")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:5222", "server c2s `host:port`; loopback only")
	fs.StringVar(&c.domain, "domain", "localhost", "XMPP domain of the accounts")
	fs.StringVar(&c.userFormat, "user-format", "user%d",
		"fmt pattern of account names, e.g. '+1202555%04d'")
	fs.IntVar(&c.userStart, "user-start", 1, "number of the first account")
	fs.StringVar(&c.password, "password", "password", "password of every account")
	fs.BoolVar(&c.tls, "tls", true,
		"use STARTTLS when offered (false: plaintext, if the server allows)")
	fs.StringVar(&c.mech, "mech", "",
		"SASL mechanism: SCRAM-SHA-256 or SCRAM-SHA-1 (default: best offered)")
	fs.IntVar(&c.sources, "sources", 200,
		"number of 127.0.x.y source addresses to spread connections over")
	fs.Float64Var(&c.connectRate, "connect-rate", 1000,
		"new connections per second at most (0: unbounded)")
	fs.IntVar(&c.concurrency, "concurrency", 64, "logins in progress at once at most")
	fs.IntVar(&c.serverPID, "server-pid", 0, "server process to read memory and CPU from (0: none)")
	fs.StringVar(&c.serverName, "server", "server", "label of the server in the outputs")
	fs.DurationVar(&c.maxDuration, "max-duration", 10*time.Minute, "hard limit on the whole run")
	fs.StringVar(&c.jsonPath, "json", "", "append one JSON line with the results to this file")
	fs.StringVar(&c.plotPath, "plot", "", "write a latency plot (PNG) to this file")
	verbose := fs.Bool("v", false, "log each failed login and protocol problem")
	sessions := fs.String("sessions", "100",
		"idle: sessions to hold, or ascending checkpoints '5000,10000,19000'")
	fs.DurationVar(&c.settle, "settle", 2*time.Second,
		"idle: wait after the last login before reading memory")
	fs.IntVar(&c.pairs, "pairs", 10, "chat: sender and recipient pairs")
	fs.Float64Var(&c.rate, "rate", 100, "chat: offered messages per second over all pairs")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "chat: how long to send")
	fs.DurationVar(&c.drain, "drain", 10*time.Second,
		"chat, offline: longest wait for outstanding messages")
	fs.IntVar(&c.users, "users", 10, "offline: recipients (each has its own sender)")
	fs.IntVar(&c.messages, "messages", 10, "offline: messages per recipient")
	fs.Float64Var(&c.uploadRate, "upload-rate", 0,
		"contacts: offer uploads at this rate, open loop, latency from each one's due time "+
			"(0: --concurrency uploads in flight, each sent when one is answered)")
	fs.IntVar(&c.uploads, "uploads", 100,
		"contacts: uploads in total, each by its own account (the first N of the population)")
	fs.IntVar(&c.bookSize, "book-size", 1000, "contacts: numbers per upload")
	fs.IntVar(&c.population, "population", 0,
		"contacts: registered accounts, numbered from --user-start (default: --uploads)")
	fs.Float64Var(&c.matchShare, "match-share", 0.07,
		"contacts: share of each book's numbers that are registered accounts")
	fs.IntVar(&c.unreg, "unregistered", 1000000, "contacts: unregistered numbers the "+
		"books draw the rest from: account numbers after the population")
	fs.Int64Var(&c.seed, "seed", 1, "contacts: seed of the books (the same seed, the same books)")
	fs.StringVar(&c.apiHost, "api-host", "", "contacts: Quicksy API address (default api.DOMAIN)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if *verbose {
		c.logLevel = slog.LevelDebug
	}
	if c.population == 0 {
		c.population = c.uploads
	}
	if c.apiHost == "" {
		c.apiHost = "api." + c.domain
	}
	var err error
	if c.sessions, err = parseCheckpoints(*sessions); err != nil {
		return nil, err
	}
	return c, c.validate()
}

func (c *config) validate() error {
	if err := checkLoopback(c.addr); err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if !strings.Contains(c.userFormat, "%") {
		return fmt.Errorf("--user-format %q has no %% verb for the account number", c.userFormat)
	}
	switch {
	case c.maxDuration <= 0:
		return fmt.Errorf("--max-duration must be positive")
	case c.pairs < 1 || c.users < 1 || c.messages < 1 || c.uploads < 1 || c.bookSize < 1:
		return fmt.Errorf("--pairs, --users, --messages, --uploads and --book-size must be at least 1")
	case c.rate <= 0 || c.duration <= 0:
		return fmt.Errorf("--rate and --duration must be positive")
	case c.population < c.uploads || c.unreg < 1 || c.matchShare < 0 || c.matchShare > 1:
		return fmt.Errorf("--population must cover --uploads, --unregistered be positive " +
			"and --match-share within 0..1")
	case c.scenario == "contacts" && c.uploads > maxUploaders:
		return fmt.Errorf("--uploads %d: at most %d, one session each", c.uploads, maxUploaders)
	case c.uploadRate < 0:
		return fmt.Errorf("--upload-rate must not be negative")
	case c.concurrency < 1 || c.sources < 1:
		return fmt.Errorf("--concurrency and --sources must be at least 1")
	case c.mech != "" && c.mech != "SCRAM-SHA-1" && c.mech != "SCRAM-SHA-256":
		return fmt.Errorf("--mech must be SCRAM-SHA-1 or SCRAM-SHA-256, not %q", c.mech)
	}
	return nil
}

// parseCheckpoints reads "5000,10000,19000".
func parseCheckpoints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || (len(out) > 0 && n <= out[len(out)-1]) {
			return nil, fmt.Errorf("--sessions %q: want ascending positive counts", s)
		}
		out = append(out, n)
	}
	return out, nil
}
