package conf

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/language"
)

// Size bounds, in bytes. A stanza limit under 10000 bytes refuses ordinary
// traffic (an avatar update or an encrypted message with many devices); over
// 16 MiB one session can pin that much memory per stanza.
const (
	minStanzaSize        = 10000
	maxStanzaSize        = 16 << 20
	minPreAuthStanzaSize = 1024
	minRateBytes         = 1024
	minSCRAMIterations   = 4096
	maxSCRAMIterations   = 1_000_000
	// A password may be at most 1024 bytes (register.MaxPasswordLen); a
	// minimum far below that leaves room for every script.
	maxMinPasswordLength = 256
	// Each webhook retry keeps a registering client waiting; past 10 the
	// provider is down, not flaky.
	maxWebhookRetries = 10
)

// Validate normalises Domain to lower case and Auth.DefaultRegion to upper
// case, then checks every rule, returning nil or Problems naming each broken
// one. Problems from Validate carry no file positions; Load's do.
func (c *Config) Validate() error {
	var v validator
	c.check(&v)
	if len(v.problems) > 0 {
		return v.problems
	}
	return nil
}

// check normalises c and applies every rule to it. One line per setting,
// with the helper for its kind, in file order; rules that tie settings
// together follow. A setting that takes any value says so with v.free, so
// that a test can insist that no setting is forgotten.
func (c *Config) check(v *validator) {
	c.Domain = strings.ToLower(c.Domain)
	c.Auth.DefaultRegion = strings.ToUpper(c.Auth.DefaultRegion)

	v.dnsName("domain", c.Domain)
	v.nonEmpty("data_dir", c.DataDir, `"." for the working directory`)

	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")

	v.addr("c2s.starttls_addr", c.C2S.STARTTLSAddr)
	v.addr("c2s.direct_tls_addr", c.C2S.DirectTLSAddr)
	v.free("c2s.allow_plaintext_loopback")
	v.size("c2s.max_stanza_size", c.C2S.MaxStanzaSize, minStanzaSize, maxStanzaSize)
	v.size("c2s.preauth_max_stanza_size", c.C2S.PreAuthMaxStanzaSize,
		minPreAuthStanzaSize, maxStanzaSize)
	v.duration("c2s.negotiation_timeout", c.C2S.NegotiationTimeout)
	v.duration("c2s.idle_timeout", c.C2S.IdleTimeout)
	v.count("c2s.max_unauth_per_ip", c.C2S.MaxUnauthPerIP)
	v.zeroOrAtLeast("c2s.rate_bytes_per_second", c.C2S.RateBytesPerSecond, minRateBytes,
		"bytes per second")
	v.count("c2s.max_outgoing_queue", c.C2S.MaxOutgoingQueue)

	v.free("tls.cert_file")
	v.free("tls.key_file")

	v.nonEmpty("storage.path", c.Storage.Path, `a file name such as "twotick.db"`)
	v.oneOf("storage.synchronous", c.Storage.Synchronous, "full", "normal", "off")

	v.between("auth.scram_iterations", c.Auth.SCRAMIterations,
		minSCRAMIterations, maxSCRAMIterations)
	v.region("auth.default_region", c.Auth.DefaultRegion)
	v.count("auth.max_failures_per_ip", c.Auth.MaxFailuresPerIP)
	v.count("auth.max_failures_per_account", c.Auth.MaxFailuresPerAccount)
	v.duration("auth.failure_window", c.Auth.FailureWindow)

	v.duration("offline.max_age", c.Offline.MaxAge)
	v.count("offline.max_per_user", c.Offline.MaxPerUser)

	v.duration("stream_management.resume_timeout", c.SM.ResumeTimeout)
	v.duration("stream_management.max_resume_timeout", c.SM.MaxResumeTimeout)
	v.count("stream_management.max_unacked", c.SM.MaxUnacked)

	v.count("roster.max_items", c.Roster.MaxItems)
	v.count("contacts.daily_lookup_limit", c.Contacts.DailyLookupLimit)
	v.addr("contacts.http_addr", c.Contacts.HTTPAddr)
	v.oneOf("contacts.one_sided", c.Contacts.OneSided, "none", "to")
	v.addr("metrics.addr", c.Metrics.Addr)
	v.duration("shutdown.timeout", c.Shutdown.Timeout)
	v.zeroOrPositive("memory.release_after", c.Memory.ReleaseAfter, "leaves it to the runtime")

	v.addr("components.addr", c.Components.Addr)
	for i, comp := range c.Components.Service {
		key := fmt.Sprintf("components.service[%d]", i+1)
		v.dnsName(key+".domain", strings.ToLower(comp.Domain))
		v.nonEmpty(key+".secret", comp.Secret, "a long random string")
	}

	v.free("push.include_body")
	v.free("push.include_sender")
	v.count("push.max_per_account", c.Push.MaxPerAccount)
	v.count("push.max_failures", c.Push.MaxFailures)
	v.duration("push.coalesce", c.Push.Coalesce)
	v.duration("push.resume_timeout", c.Push.ResumeTimeout)

	v.free("registration.enabled")
	v.addr("registration.http_addr", c.Registration.HTTPAddr)
	v.duration("registration.code_ttl", c.Registration.CodeTTL)
	v.count("registration.max_attempts", c.Registration.MaxAttempts)
	v.count("registration.number_short_max", c.Registration.NumberShortMax)
	v.duration("registration.number_short_window", c.Registration.NumberShortWindow)
	v.count("registration.number_long_max", c.Registration.NumberLongMax)
	v.duration("registration.number_long_window", c.Registration.NumberLongWindow)
	v.count("registration.address_short_max", c.Registration.AddressShortMax)
	v.duration("registration.address_short_window", c.Registration.AddressShortWindow)
	v.count("registration.address_long_max", c.Registration.AddressLongMax)
	v.duration("registration.address_long_window", c.Registration.AddressLongWindow)
	v.count("registration.global_max", c.Registration.GlobalMax)
	v.duration("registration.global_window", c.Registration.GlobalWindow)
	v.between("registration.ipv6_prefix", c.Registration.IPv6Prefix, 32, 128)
	v.between("registration.min_password_length", c.Registration.MinPasswordLength,
		1, maxMinPasswordLength)
	v.prefixes("registration.trusted_proxies", c.Registration.TrustedProxies)
	v.oneOf("sms.gateway", c.SMS.Gateway, "log", "webhook")
	v.free("sms.log_file")
	v.webhookURL("sms.webhook_url", c.SMS.WebhookURL, c.SMS.Gateway == "webhook")
	v.free("sms.webhook_token")
	v.duration("sms.webhook_timeout", c.SMS.WebhookTimeout)
	v.between("sms.webhook_retries", c.SMS.WebhookRetries, 0, maxWebhookRetries)
	v.duration("sms.webhook_backoff", c.SMS.WebhookBackoff)
	v.nonEmpty("sms.text", c.SMS.Text, `a text with "{code}" in it`)
	v.langTexts("sms.texts", c.SMS.Texts)

	c.checkTogether(v)
}

// checkTogether applies the rules that tie settings to each other. Each
// problem is reported at the first of its keys that the file sets.
func (c *Config) checkTogether(v *validator) {
	if c.C2S.STARTTLSAddr == "" && c.C2S.DirectTLSAddr == "" {
		v.addAt("both client listeners are disabled; set c2s.starttls_addr, "+
			"c2s.direct_tls_addr or both", "c2s.starttls_addr", "c2s.direct_tls_addr")
	}
	// Compared only with a valid max_stanza_size: when that is out of range,
	// its own problem says so and this one would only repeat it.
	if c.C2S.MaxStanzaSize >= minStanzaSize && c.C2S.PreAuthMaxStanzaSize > c.C2S.MaxStanzaSize {
		v.addAt(fmt.Sprintf("must be at most c2s.max_stanza_size (%d bytes), got %d",
			c.C2S.MaxStanzaSize, c.C2S.PreAuthMaxStanzaSize),
			"c2s.preauth_max_stanza_size", "c2s.max_stanza_size")
	}
	v.distinct([]string{"c2s.starttls_addr", "c2s.direct_tls_addr", "metrics.addr",
		"contacts.http_addr", "registration.http_addr"},
		c.C2S.STARTTLSAddr, c.C2S.DirectTLSAddr, c.Metrics.Addr, c.Contacts.HTTPAddr,
		c.Registration.HTTPAddr)
	if c.C2S.AllowPlaintextLoopback && !isLoopbackAddr(c.C2S.STARTTLSAddr) {
		v.addAt(fmt.Sprintf("has no effect: c2s.starttls_addr %q is not a loopback "+
			"address such as \"127.0.0.1:5222\"", c.C2S.STARTTLSAddr),
			"c2s.allow_plaintext_loopback", "c2s.starttls_addr")
	}
	v.free("metrics.pprof")
	if c.Metrics.Pprof && !isLoopbackAddr(c.Metrics.Addr) {
		v.addAt(fmt.Sprintf("needs a loopback metrics.addr such as \"127.0.0.1:9090\", got %q",
			c.Metrics.Addr), "metrics.pprof", "metrics.addr")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		v.addAt("tls.cert_file and tls.key_file must be set together, or both left "+
			"empty for a generated certificate", "tls.cert_file", "tls.key_file")
	}
	if c.SM.MaxResumeTimeout.Duration < c.SM.ResumeTimeout.Duration {
		v.addAt(fmt.Sprintf("must be at least stream_management.resume_timeout (%s), got %s",
			c.SM.ResumeTimeout, c.SM.MaxResumeTimeout),
			"stream_management.max_resume_timeout", "stream_management.resume_timeout")
	}
}

// validator collects the problems that rules find. Its zero value checks
// a Config that did not come from a file.
type validator struct {
	file     string
	pos      map[string]position
	skip     map[string]bool // keys already reported by the decoder
	problems Problems
	checked  []string // every key a rule looked at, in order
}

// add reports a problem with key, unless the key already has one: a value of
// the wrong type was left at its default, and its rule has nothing to add;
// and one thing to fix per key reads better than two.
func (v *validator) add(key, msg string) {
	if v.skip[key] {
		return
	}
	if v.skip == nil {
		v.skip = make(map[string]bool)
	}
	v.skip[key] = true
	p := v.pos[key]
	v.problems = append(v.problems, Problem{
		File: v.file, Key: key, Line: p.line, Column: p.col, Msg: msg,
	})
}

// addAt reports a problem that involves several keys at the first of them
// that the file sets, so that its line points at something to change.
func (v *validator) addAt(msg string, keys ...string) {
	for _, k := range keys {
		if _, ok := v.pos[k]; ok {
			v.add(k, msg)
			return
		}
	}
	v.add(keys[0], msg)
}

func (v *validator) free(key string) { v.checked = append(v.checked, key) }

func (v *validator) oneOf(key, val string, allowed ...string) {
	v.checked = append(v.checked, key)
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.add(key, fmt.Sprintf("must be one of %s, got %q", strings.Join(allowed, ", "), val))
}

func (v *validator) nonEmpty(key, val, hint string) {
	v.checked = append(v.checked, key)
	if val == "" {
		v.add(key, "must not be empty; use "+hint)
	}
}

func (v *validator) between(key string, n, lo, hi int) {
	v.checked = append(v.checked, key)
	if n < lo || n > hi {
		v.add(key, fmt.Sprintf("must be between %d and %d, got %d", lo, hi, n))
	}
}

// size checks a number of bytes.
func (v *validator) size(key string, n, lo, hi int) {
	v.checked = append(v.checked, key)
	switch {
	case n < lo:
		v.add(key, fmt.Sprintf("must be at least %d bytes, got %d", lo, n))
	case n > hi:
		v.add(key, fmt.Sprintf("must be at most %d bytes (%d MiB), got %d", hi, hi>>20, n))
	}
}

// count checks a number of things, which must be at least one.
func (v *validator) count(key string, n int) {
	v.checked = append(v.checked, key)
	if n < 1 {
		v.add(key, fmt.Sprintf("must be at least 1, got %d", n))
	}
}

// zeroOrAtLeast checks a limit where 0 means no limit.
func (v *validator) zeroOrAtLeast(key string, n, lo int, unit string) {
	v.checked = append(v.checked, key)
	if n != 0 && n < lo {
		v.add(key, fmt.Sprintf("must be 0 (no limit) or at least %d %s, got %d", lo, unit, n))
	}
}

func (v *validator) duration(key string, d Duration) {
	v.checked = append(v.checked, key)
	if d.Duration <= 0 {
		v.add(key, fmt.Sprintf("must be a positive duration such as \"30s\", got %q", d))
	}
}

// zeroOrPositive checks a duration where "0s" turns something off; zero
// means what off says.
func (v *validator) zeroOrPositive(key string, d Duration, off string) {
	v.checked = append(v.checked, key)
	if d.Duration < 0 {
		v.add(key, fmt.Sprintf("must be \"0s\" (%s) or a positive duration, got %q", off, d))
	}
}

// addr checks a listening address; empty disables the listener.
func (v *validator) addr(key, val string) {
	v.checked = append(v.checked, key)
	if val == "" {
		return
	}
	host, port, err := net.SplitHostPort(val)
	if err == nil {
		err = checkPort(port)
	}
	if err == nil && host != "" {
		if _, perr := netip.ParseAddr(host); perr != nil && checkHostname(host) != nil {
			err = fmt.Errorf("%q is neither an IP address nor a host name", host)
		}
	}
	if err != nil {
		v.add(key, fmt.Sprintf("must be host:port such as \":5222\" or \"127.0.0.1:5222\" "+
			"(empty disables it), got %q: %v", val, err))
	}
}

func checkPort(port string) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

// webhookURL checks an http or https URL, required when the webhook gateway
// is chosen; otherwise an empty one is fine.
func (v *validator) webhookURL(key, val string, required bool) {
	v.checked = append(v.checked, key)
	if val == "" {
		if required {
			v.add(key, `must be set when sms.gateway is "webhook", such as `+
				`"https://sms.example.net/send"`)
		}
		return
	}
	u, err := url.Parse(val)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.add(key, fmt.Sprintf("must be an http or https URL such as "+
			"\"https://sms.example.net/send\", got %q", val))
	}
}

// prefixes checks a list of IP addresses or CIDR prefixes, reporting each
// bad element at its own index.
func (v *validator) prefixes(key string, vals []string) {
	v.checked = append(v.checked, key)
	for i, val := range vals {
		if _, err := netip.ParsePrefix(val); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(val); err == nil {
			continue
		}
		v.add(fmt.Sprintf("%s[%d]", key, i), fmt.Sprintf("must be an IP address or a CIDR "+
			"prefix such as \"10.0.0.0/8\" or \"::1\", got %q", val))
	}
}

// langTexts checks a table of texts keyed by BCP 47 language tag, reporting
// a bad entry at its own key (sms.texts.de).
func (v *validator) langTexts(key string, texts map[string]string) {
	v.checked = append(v.checked, key)
	tags := make([]string, 0, len(texts))
	for tag := range texts {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	for _, tag := range tags {
		k := key + "." + tag
		if _, err := language.Parse(tag); err != nil {
			v.add(k, fmt.Sprintf("must be keyed by a language tag such as \"de\" or "+
				"\"pt-BR\", got %q", tag))
		} else if texts[tag] == "" {
			v.add(k, `must not be empty; use a text with "{code}" in it`)
		}
	}
}

// isLoopbackAddr reports whether a listening address binds only loopback.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// distinct reports listeners that share an address: the second would fail
// to bind at start, after the operator had stopped looking.
func (v *validator) distinct(keys []string, addrs ...string) {
	for i := range addrs {
		for j := range i {
			if addrs[i] != "" && addrs[i] == addrs[j] {
				v.addAt(fmt.Sprintf("same address as %s (%q); each listener needs its own",
					keys[j], addrs[i]), keys[i])
			}
		}
	}
}

// dnsName checks the XMPP domain: a DNS name of letters, digits and hyphens
// (RFC 1123), with at least one dot, except for "localhost".
func (v *validator) dnsName(key, name string) {
	v.checked = append(v.checked, key)
	err := checkHostname(name)
	switch {
	case err != nil:
	case name != "localhost" && !strings.Contains(name, "."):
		err = fmt.Errorf("a public domain has a dot, as in \"example.net\"; only " +
			"\"localhost\" may go without")
	default:
		if _, perr := netip.ParseAddr(name); perr == nil || isAllDigits(lastLabel(name)) {
			err = fmt.Errorf("an IP address is not a domain")
		}
	}
	if err != nil {
		v.add(key, fmt.Sprintf("must be a DNS name such as \"example.net\", got %q: %v",
			name, err))
	}
}

// checkHostname checks the syntax of a host name, in lower or upper case.
func checkHostname(name string) error {
	if name == "" {
		return fmt.Errorf("empty")
	}
	if len(name) > 253 {
		return fmt.Errorf("longer than 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return fmt.Errorf("empty label (two dots in a row, or a dot at an end)")
		}
		if len(label) > 63 {
			return fmt.Errorf("label %.20q... is longer than 63 characters", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("character %q is not a letter, digit or hyphen "+
					"(write an internationalised name in its xn-- form)", r)
			}
		}
	}
	return nil
}

func lastLabel(name string) string { return name[strings.LastIndexByte(name, '.')+1:] }

func isAllDigits(s string) bool {
	return strings.Trim(s, "0123456789") == ""
}

// region checks an ISO 3166 region that phone number parsing knows.
func (v *validator) region(key, r string) {
	v.checked = append(v.checked, key)
	if len(r) != 2 || !phonenumbers.GetSupportedRegions()[r] {
		hint := ""
		if r == "UK" {
			hint = ` (the United Kingdom is "GB")`
		}
		v.add(key, fmt.Sprintf("must be a two-letter region with a phone numbering plan, "+
			"such as \"US\" or \"DE\", got %q%s", r, hint))
	}
}
