// Package conf holds twotick's configuration: the TOML file, the defaults
// that apply when a key is absent, and the validation that names every bad
// key with its line.
//
// conf imports nothing else of twotick; every other package receives the
// values it needs from a *Config.
package conf

import (
	"fmt"
	"strings"
	"time"
)

// Duration is a time.Duration written in the file as a Go duration string
// such as "30s" or "72h".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration such as \"30s\" or \"5m\": %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a Go duration string without trailing
// zero units: "5m" rather than time.Duration's "5m0s", as people write it.
func (d Duration) MarshalText() ([]byte, error) {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return []byte(s), nil
}

// Config is the whole configuration. The zero value is not useful: start from
// Default, or from Load, which applies the file on top of Default. A Config is
// a plain value: safe to read from many goroutines once nobody modifies it.
//
// Adding a setting: a field with its `toml` key and a doc comment giving unit,
// default and risk; its default in Default; one line for its rule in
// Config.check (validate.go); a row in docs/configuration.md and a line in
// testdata/conf/example.toml (tests fail until both exist). Two tag
// conventions apply to fields: `conf:"secret"` shows only "(set)" or
// "(empty)" in Settings, so the value never reaches a log, and `conf:"path"`
// makes a relative file name relative to DataDir.
type Config struct {
	// Domain is the XMPP domain served (default "localhost").
	Domain string `toml:"domain"`
	// DataDir holds the database and the generated certificate
	// (default ".", the working directory). A relative DataDir is relative to
	// the working directory, not to the configuration file.
	DataDir string `toml:"data_dir"`

	Log        Log        `toml:"log"`
	C2S        C2S        `toml:"c2s"`
	TLS        TLS        `toml:"tls"`
	Storage    Storage    `toml:"storage"`
	Auth       Auth       `toml:"auth"`
	Offline    Offline    `toml:"offline"`
	SM         SM         `toml:"stream_management"`
	Roster     Roster     `toml:"roster"`
	Contacts   Contacts   `toml:"contacts"`
	Metrics    Metrics    `toml:"metrics"`
	Shutdown   Shutdown   `toml:"shutdown"`
	Memory     Memory     `toml:"memory"`
	Components Components `toml:"components"`
	Push       Push       `toml:"push"`

	Registration Registration `toml:"registration"`
	SMS          SMS          `toml:"sms"`
}

// Registration configures accounts created by SMS verification
// (docs/registration.md), and the abuse limits on verification codes. Every
// code request can cost an SMS, so the limits stand between an attacker and
// the operator's SMS bill; all of them are kept in the database and survive
// a restart.
type Registration struct {
	// Enabled offers XEP-0077 in-band registration before login (default
	// true). Password change and account removal after login stay
	// available either way.
	Enabled bool `toml:"enabled"`
	// HTTPAddr serves the Quicksy registration API over HTTPS with the
	// server's certificate (default "", disabled). Each request for a code
	// can cost an SMS; the abuse limits apply to it as to in-band
	// registration.
	HTTPAddr string `toml:"http_addr"`
	// CodeTTL is how long a code stays valid (default "10m"). Longer gives
	// a guesser more time.
	CodeTTL Duration `toml:"code_ttl"`
	// MaxAttempts is the number of wrong codes that invalidate a code
	// (default 5). Higher makes guessing easier.
	MaxAttempts int `toml:"max_attempts"`
	// NumberShortMax codes may go to one number within NumberShortWindow
	// (default 1 per "2m"), and NumberLongMax within NumberLongWindow
	// (default 2 per "8h"). Together with MaxAttempts they bound the
	// guesses at one number's codes.
	NumberShortMax    int      `toml:"number_short_max"`
	NumberShortWindow Duration `toml:"number_short_window"`
	NumberLongMax     int      `toml:"number_long_max"`
	NumberLongWindow  Duration `toml:"number_long_window"`
	// AddressShortMax codes may be requested from one client address within
	// AddressShortWindow (default 5 per "5m"), and AddressLongMax within
	// AddressLongWindow (default 100 per "24h"). Higher lets one machine
	// run up the bill.
	AddressShortMax    int      `toml:"address_short_max"`
	AddressShortWindow Duration `toml:"address_short_window"`
	AddressLongMax     int      `toml:"address_long_max"`
	AddressLongWindow  Duration `toml:"address_long_window"`
	// GlobalMax codes may be sent in total within GlobalWindow (default
	// 1000 per "1h"): the cap on the SMS bill.
	GlobalMax    int      `toml:"global_max"`
	GlobalWindow Duration `toml:"global_window"`
	// IPv6Prefix is the prefix length, in bits, under which IPv6 client
	// addresses count as one (default 64, one customer's network; 32 to
	// 128). Longer lets one customer change address to escape the limits.
	IPv6Prefix int `toml:"ipv6_prefix"`
	// MinPasswordLength is the shortest password accepted at registration
	// and password change, in characters (default 8; 1 to 256).
	MinPasswordLength int `toml:"min_password_length"`
	// TrustedProxies lists the reverse proxies, as IP addresses or CIDR
	// prefixes, whose X-Forwarded-For header the HTTP API believes
	// (default none). Behind an unlisted proxy every client counts as the
	// proxy's address; listing a network that clients can connect from
	// lets them forge their address.
	TrustedProxies []string `toml:"trusted_proxies"`
}

// SMS configures how verification codes are sent.
type SMS struct {
	// Gateway is "log" (default: write codes to LogFile or the server log,
	// for development only, since whoever reads it can register any
	// number) or "webhook" (POST to WebhookURL).
	Gateway string `toml:"gateway"`
	// LogFile is the file the log gateway appends to (default "", the
	// server log). Relative to DataDir.
	LogFile string `toml:"log_file" conf:"path"`
	// WebhookURL receives the webhook gateway's POST (default ""; required
	// for "webhook"). Use https: the body holds a live code.
	WebhookURL string `toml:"webhook_url"`
	// WebhookToken is sent as a bearer token to WebhookURL (default "").
	WebhookToken string `toml:"webhook_token" conf:"secret"`
	// WebhookTimeout bounds each attempt of the webhook gateway (default
	// "10s"). The registering client waits for all attempts.
	WebhookTimeout Duration `toml:"webhook_timeout"`
	// WebhookRetries is how many times a POST that failed with a 5xx answer
	// or a network error is repeated (default 3; 0 to 10).
	WebhookRetries int `toml:"webhook_retries"`
	// WebhookBackoff is the wait before the first retry, doubled for each
	// further one (default "500ms").
	WebhookBackoff Duration `toml:"webhook_backoff"`
	// Text is the SMS text; "{code}" is replaced by the code (default
	// "Your twotick code is {code}").
	Text string `toml:"text"`
	// Texts holds SMS texts by BCP 47 language tag ("de", "pt-BR"), chosen
	// by the client's language; Text serves languages without a match
	// (default none).
	Texts map[string]string `toml:"texts"`
}

// Components configures XEP-0114 external components: app servers for push
// notifications, gateways and bot services that serve a domain of their own.
type Components struct {
	// Addr is the component listener (default "127.0.0.1:5347"; empty
	// disables it). The protocol has no TLS: keep it on loopback or a
	// private network, or the shared secrets can be sniffed.
	Addr string `toml:"addr"`
	// Service lists the components allowed to connect.
	Service []Component `toml:"service"`
}

// Component is one external component.
type Component struct {
	// Domain is the component's domain, such as "push.example.net".
	Domain string `toml:"domain"`
	// Secret is the shared secret of the XEP-0114 handshake. Anyone who knows
	// it can speak for the whole domain.
	Secret string `toml:"secret" conf:"secret"`
}

// Push configures XEP-0357 push notifications.
type Push struct {
	// IncludeBody puts the last message body in notifications (default
	// false). The app server, and the phone vendor's push service behind it,
	// then read messages.
	IncludeBody bool `toml:"include_body"`
	// IncludeSender puts the last sender's JID in notifications (default
	// false), revealing who talks to whom to the app server.
	IncludeSender bool `toml:"include_sender"`
	// MaxPerAccount caps the devices (app server and node pairs) of one
	// account (default 5).
	MaxPerAccount int `toml:"max_per_account"`
	// MaxFailures disables a registration after this many error answers in a
	// row from its app server; wait errors do not count (default 3).
	MaxFailures int `toml:"max_failures"`
	// Coalesce is the shortest time between two notifications for one
	// account (default "2s"); messages in between are counted in the next.
	Coalesce Duration `toml:"coalesce"`
	// ResumeTimeout is the resumption window of a session that has push
	// enabled (default "72h"), so that a sleeping phone keeps its session.
	ResumeTimeout Duration `toml:"resume_timeout"`
}

// Log configures log/slog output on standard error.
type Log struct {
	// Level is debug, info, warn or error (default info). Debug logs one line
	// per connection event and may include JIDs, never bodies or secrets.
	Level string `toml:"level"`
	// Format is text or json (default text).
	Format string `toml:"format"`
}

// C2S configures client-to-server listeners and per-stream limits.
type C2S struct {
	// STARTTLSAddr is the address of the STARTTLS listener (default ":5222";
	// empty disables it).
	STARTTLSAddr string `toml:"starttls_addr"`
	// DirectTLSAddr is the address of the XEP-0368 direct TLS listener
	// (default ":5223"; empty disables it).
	DirectTLSAddr string `toml:"direct_tls_addr"`
	// AllowPlaintextLoopback permits authentication without TLS on a STARTTLS
	// listener bound to a loopback address (default false). Only for a
	// TLS-terminating proxy on the same host, or benchmarks.
	AllowPlaintextLoopback bool `toml:"allow_plaintext_loopback"`
	// MaxStanzaSize is the largest stanza accepted after authentication, in
	// bytes (default 262144). Larger stanzas end the stream with
	// policy-violation.
	MaxStanzaSize int `toml:"max_stanza_size"`
	// PreAuthMaxStanzaSize is the largest element accepted before
	// authentication, in bytes (default 10000).
	PreAuthMaxStanzaSize int `toml:"preauth_max_stanza_size"`
	// NegotiationTimeout bounds the time from connect to a bound resource
	// (default "30s").
	NegotiationTimeout Duration `toml:"negotiation_timeout"`
	// IdleTimeout is how long a silent authenticated stream is kept before the
	// server pings it; a stream that stays silent for another IdleTimeout is
	// closed with connection-timeout (default "5m").
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxUnauthPerIP caps concurrent unauthenticated connections from one
	// client address (default 32).
	MaxUnauthPerIP int `toml:"max_unauth_per_ip"`
	// RateBytesPerSecond throttles what one authenticated session may send,
	// in bytes per second (default 65536; 0 disables the limit).
	RateBytesPerSecond int `toml:"rate_bytes_per_second"`
	// MaxOutgoingQueue is the number of stanzas waiting to be written to one
	// client before the server disconnects it (default 1000).
	MaxOutgoingQueue int `toml:"max_outgoing_queue"`
}

// TLS configures the certificate.
type TLS struct {
	// CertFile and KeyFile name a PEM certificate chain and key. When both are
	// empty (the default) a self-signed ECDSA P-256 certificate for the domain
	// is generated in DataDir on first start.
	// Relative names are taken relative to DataDir. Set both or neither.
	CertFile string `toml:"cert_file" conf:"path"`
	KeyFile  string `toml:"key_file" conf:"path"`
}

// Storage configures the database.
type Storage struct {
	// Path is the SQLite database file, relative to DataDir
	// (default "twotick.db").
	Path string `toml:"path" conf:"path"`
	// Synchronous is SQLite's synchronous mode for the queue: full (default;
	// a commit survives a power cut), normal (a commit survives a crash of
	// twotick but the last commits may be lost on a power cut) or off (a
	// crash of the operating system may lose or corrupt recent commits).
	Synchronous string `toml:"synchronous"`
}

// Auth configures accounts and login.
type Auth struct {
	// SCRAMIterations is the PBKDF2 iteration count for new credentials
	// (default 4096; fewer weakens stored credentials against offline attack).
	SCRAMIterations int `toml:"scram_iterations"`
	// DefaultRegion is the ISO 3166 region used to read phone numbers written
	// without a country code on the command line (default "US").
	DefaultRegion string `toml:"default_region"`
	// MaxFailuresPerIP is the number of failed logins from one address within
	// FailureWindow before further attempts from it are refused (default 10).
	MaxFailuresPerIP int `toml:"max_failures_per_ip"`
	// MaxFailuresPerAccount is the number of failed logins for one account
	// within FailureWindow, from all addresses, before attempts from addresses
	// that have never logged in to it are slowed (default 5).
	MaxFailuresPerAccount int `toml:"max_failures_per_account"`
	// FailureWindow is the period over which failures are counted
	// (default "15m").
	FailureWindow Duration `toml:"failure_window"`
}

// Offline configures the message queue.
type Offline struct {
	// MaxAge is how long an undelivered message is kept (default "720h").
	MaxAge Duration `toml:"max_age"`
	// MaxPerUser caps the messages queued for one recipient (default 10000);
	// past it senders get resource-constraint.
	MaxPerUser int `toml:"max_per_user"`
}

// SM configures XEP-0198 stream management.
type SM struct {
	// ResumeTimeout is how long a broken session can be resumed when the
	// client asks for no shorter time (default "5m").
	ResumeTimeout Duration `toml:"resume_timeout"`
	// MaxResumeTimeout caps the client's requested max (default "1h").
	MaxResumeTimeout Duration `toml:"max_resume_timeout"`
	// MaxUnacked is the number of stanzas sent to a client and not yet
	// acknowledged before the server stops the session (default 5000).
	MaxUnacked int `toml:"max_unacked"`
}

// Roster configures rosters.
type Roster struct {
	// MaxItems caps a manual roster (default 1000).
	MaxItems int `toml:"max_items"`
}

// Contacts configures rosters from address books (docs/contacts.md).
type Contacts struct {
	// DailyLookupLimit is how many new distinct phone numbers one account
	// may look up per UTC day (default 2048). Re-uploading the same book
	// costs nothing. Higher lets a stolen account probe more numbers for
	// who is registered; lower refuses large address books on their first
	// upload.
	DailyLookupLimit int `toml:"daily_lookup_limit"`
	// HTTPAddr serves the HTTPS upload endpoint POST /contacts with the
	// server's certificate (default "", disabled). It takes account
	// passwords, so failed attempts count in the login throttle.
	HTTPAddr string `toml:"http_addr"`
	// OneSided is what an entry gives when only one of two users holds the
	// other's number: "none" (default) lets the holder message the contact
	// without seeing presence; "to" shows the holder the contact's presence,
	// which tells anyone with a number when its owner is online and shows
	// the owner who has their number.
	OneSided string `toml:"one_sided"`
}

// Metrics configures the Prometheus listener.
type Metrics struct {
	// Addr serves /metrics and /health (default "127.0.0.1:9090"; empty
	// disables it). Binding it to a public address exposes counts of users
	// and traffic.
	Addr string `toml:"addr"`
	// Pprof also serves Go's profiles under /debug/pprof/ on Addr (default
	// false). Only a loopback Addr may serve them: a profile shows the
	// server's code paths and timing to whoever can fetch it.
	Pprof bool `toml:"pprof"`
}

// Shutdown configures graceful stop.
type Shutdown struct {
	// Timeout bounds the wait for sessions to close on SIGINT or SIGTERM
	// (default "10s").
	Timeout Duration `toml:"timeout"`
}

// Memory configures how the server returns memory to the OS
// (docs/memory.md).
type Memory struct {
	// ReleaseAfter is how long the allocation rate must stay low, after
	// the heap has grown by at least 16 MiB, before the server runs one
	// garbage collection and returns the free memory to the OS (default
	// "1s"; "0s" leaves it to the Go runtime, which keeps up to twice the
	// live heap resident). At most one release per 10 s, never while the
	// server uses over 10% of a core, allocates over 2 MiB/s, or allocates
	// fast enough to refill the freed memory within a minute; each costs
	// one collection, about 0.1 s of CPU per 100 MiB of live heap.
	ReleaseAfter Duration `toml:"release_after"`
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	return &Config{
		Domain:  "localhost",
		DataDir: ".",
		Log:     Log{Level: "info", Format: "text"},
		C2S: C2S{
			STARTTLSAddr:         ":5222",
			DirectTLSAddr:        ":5223",
			MaxStanzaSize:        256 << 10,
			PreAuthMaxStanzaSize: 10000,
			NegotiationTimeout:   Duration{30 * time.Second},
			IdleTimeout:          Duration{5 * time.Minute},
			MaxUnauthPerIP:       32,
			RateBytesPerSecond:   64 << 10,
			MaxOutgoingQueue:     1000,
		},
		Storage: Storage{Path: "twotick.db", Synchronous: "full"},
		Auth: Auth{
			SCRAMIterations:       4096,
			DefaultRegion:         "US",
			MaxFailuresPerIP:      10,
			MaxFailuresPerAccount: 5,
			FailureWindow:         Duration{15 * time.Minute},
		},
		Offline: Offline{MaxAge: Duration{30 * 24 * time.Hour}, MaxPerUser: 10000},
		SM: SM{
			ResumeTimeout:    Duration{5 * time.Minute},
			MaxResumeTimeout: Duration{time.Hour},
			MaxUnacked:       5000,
		},
		Roster:     Roster{MaxItems: 1000},
		Contacts:   Contacts{DailyLookupLimit: 2048, OneSided: "none"},
		Metrics:    Metrics{Addr: "127.0.0.1:9090"},
		Shutdown:   Shutdown{Timeout: Duration{10 * time.Second}},
		Memory:     Memory{ReleaseAfter: Duration{time.Second}},
		Components: Components{Addr: "127.0.0.1:5347"},
		Push: Push{
			MaxPerAccount: 5,
			MaxFailures:   3,
			Coalesce:      Duration{2 * time.Second},
			ResumeTimeout: Duration{72 * time.Hour},
		},
		Registration: Registration{
			Enabled:            true,
			CodeTTL:            Duration{10 * time.Minute},
			MaxAttempts:        5,
			NumberShortMax:     1,
			NumberShortWindow:  Duration{2 * time.Minute},
			NumberLongMax:      2,
			NumberLongWindow:   Duration{8 * time.Hour},
			AddressShortMax:    5,
			AddressShortWindow: Duration{5 * time.Minute},
			AddressLongMax:     100,
			AddressLongWindow:  Duration{24 * time.Hour},
			GlobalMax:          1000,
			GlobalWindow:       Duration{time.Hour},
			IPv6Prefix:         64,
			MinPasswordLength:  8,
			TrustedProxies:     []string{},
		},
		SMS: SMS{
			Gateway:        "log",
			WebhookTimeout: Duration{10 * time.Second},
			WebhookRetries: 3,
			WebhookBackoff: Duration{500 * time.Millisecond},
			Text:           "Your twotick code is {code}",
			Texts:          map[string]string{},
		},
	}
}
