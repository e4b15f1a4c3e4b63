package conf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

const examplePath = "../testdata/conf/example.toml"

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

// The example file is the documented example: it must set every key, to its
// default, so that it cannot drift from Default.
func TestExampleIsDefault(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	got, ps := load("example.toml", data)
	if len(ps) > 0 {
		t.Fatalf("example.toml has problems:\n%v", ps)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("example.toml loads to\n%+v\nwant Default()\n%+v", got, Default())
	}

	pos := keyPositions(data)
	for _, s := range Default().Settings() {
		if _, ok := pos[s.Key]; !ok {
			t.Errorf("example.toml does not set %s", s.Key)
		}
	}
}

func TestLoadResolvesPaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "twotick.toml")
	writeFile(t, path, `
data_dir = "`+filepath.ToSlash(dir)+`/data"
[tls]
cert_file = "cert.pem"
key_file = "/etc/ssl/key.pem"
[storage]
path = "db/twotick.db"
`)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"DataDir":  filepath.Join(dir, "data"),
		"CertFile": filepath.Join(dir, "data", "cert.pem"),
		"KeyFile":  "/etc/ssl/key.pem",
		"Path":     filepath.Join(dir, "data", "db", "twotick.db"),
	}
	got := map[string]string{
		"DataDir": c.DataDir, "CertFile": c.TLS.CertFile,
		"KeyFile": c.TLS.KeyFile, "Path": c.Storage.Path,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resolved paths = %v, want %v", got, want)
	}

	again := *c
	if err := again.ResolvePaths(); err != nil || !reflect.DeepEqual(&again, c) {
		t.Errorf("ResolvePaths is not idempotent: %+v, err %v", again, err)
	}
}

func TestDefaultResolvesToWorkingDirectory(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	c := Default()
	if err := c.ResolvePaths(); err != nil {
		t.Fatal(err)
	}
	if c.DataDir != wd || c.Storage.Path != filepath.Join(wd, "twotick.db") {
		t.Errorf("DataDir %q, Storage.Path %q; want both in %q", c.DataDir, c.Storage.Path, wd)
	}
	if c.TLS.CertFile != "" || c.TLS.KeyFile != "" {
		t.Errorf("empty TLS file names became %q, %q", c.TLS.CertFile, c.TLS.KeyFile)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.toml"))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 {
		t.Fatalf("Load(absent) = %v, want one Problem", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(absent) error %v does not unwrap to fs.ErrNotExist", err)
	}
	if got := ps[0].String(); strings.Count(got, "absent.toml") != 1 ||
		!strings.HasSuffix(got, ": cannot open: no such file or directory") {
		t.Errorf("problem reads %q", got)
	}
}

func TestLoadSkipsByteOrderMark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bom.toml")
	writeFile(t, path, "\uFEFFdomain = \"example.net\"\n")
	if c, err := Load(path); err != nil || c.Domain != "example.net" {
		t.Errorf("Load(file with BOM) = %v, %v", c, err)
	}
}

func TestLoadRefusesHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.toml")
	writeFile(t, path, "# "+strings.Repeat("x", maxFileSize)+"\n")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big) = %v, want a size error", err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	writeFile(t, cert, "not checked here, only read")

	tests := []struct {
		name string
		file string
		want []string // key@line of each problem
	}{
		{"defaults", ``, nil},
		{"both tls files readable", "[tls]\ncert_file = 'cert.pem'\nkey_file = 'cert.pem'\n", nil},
		{"key file missing", "[tls]\ncert_file = 'cert.pem'\nkey_file = 'key.pem'\n",
			[]string{"tls.key_file@4"}},
		{"bad file", "[c2s]\nmax_stanza_size = 1\n", []string{"c2s.max_stanza_size@3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "twotick.toml")
			writeFile(t, path, "data_dir = '"+filepath.ToSlash(dir)+"'\n"+tt.file)
			err := Check(path)
			if got := problemKeys(t, err); !slices.Equal(got, tt.want) {
				t.Errorf("Check: problems with %q, want %q; error:\n%v", got, tt.want, err)
			}
		})
	}
}

// TestRules has a case for every rule in check: the file fragment, and the
// key and line the problem must name (no key: the fragment is valid).
func TestRules(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		key     string // "" when the file is valid
		line    int
		msgPart string
	}{
		{"domain ok", `domain = "chat.example.net"`, "", 0, ""},
		{"domain localhost", `domain = "localhost"`, "", 0, ""},
		{"domain upper case is lowered", `domain = "Chat.Example.NET"`, "", 0, ""},
		{"domain empty", `domain = ""`, "domain", 1, "empty"},
		{"domain single label", `domain = "chat"`, "domain", 1, "dot"},
		{"domain IP", `domain = "192.0.2.1"`, "domain", 1, "IP address"},
		{"domain underscore", `domain = "my_host.example"`, "domain", 1, "letter, digit"},
		{"domain hyphen end", `domain = "a-.example"`, "domain", 1, "hyphen"},
		{"domain trailing dot", `domain = "example.net."`, "domain", 1, "empty label"},
		{"domain unicode", `domain = "bücher.example"`, "domain", 1, "xn--"},
		{"domain long label", `domain = "` + strings.Repeat("a", 64) + `.net"`, "domain", 1, "63"},
		{"data_dir empty", `data_dir = ""`, "data_dir", 1, "must not be empty"},

		{"log level", "[log]\nlevel = \"verbose\"", "log.level", 2, "debug, info, warn, error"},
		{"log level case", "[log]\nlevel = \"INFO\"", "log.level", 2, "one of"},
		{"log format", "[log]\nformat = \"xml\"", "log.format", 2, "text, json"},
		{"log json", "[log]\nformat = \"json\"\nlevel = \"debug\"", "", 0, ""},

		{"addr no port", "[c2s]\nstarttls_addr = \"0.0.0.0\"", "c2s.starttls_addr", 2, "host:port"},
		{"addr bad port", "[c2s]\nstarttls_addr = \":xmpp\"", "c2s.starttls_addr", 2, "0 to 65535"},
		{"addr big port", "[c2s]\ndirect_tls_addr = \":70000\"", "c2s.direct_tls_addr", 2, "65535"},
		{"addr bad host", "[metrics]\naddr = \"a b:9090\"", "metrics.addr", 2, "host name"},
		{"addr ipv6", "[c2s]\nstarttls_addr = \"[::1]:5222\"", "", 0, ""},
		{"addr host name", "[metrics]\naddr = \"localhost:9090\"", "", 0, ""},
		{"one listener disabled", "[c2s]\ndirect_tls_addr = \"\"", "", 0, ""},
		{"metrics disabled", "[metrics]\naddr = \"\"", "", 0, ""},
		{"pprof on loopback", "[metrics]\npprof = true", "", 0, ""},
		{"pprof on a public address", "[metrics]\naddr = \":9090\"\npprof = true",
			"metrics.pprof", 3, "loopback"},
		{"pprof without metrics", "[metrics]\naddr = \"\"\npprof = true",
			"metrics.pprof", 3, "loopback"},
		{"both listeners disabled", "[c2s]\nstarttls_addr = \"\"\ndirect_tls_addr = \"\"",
			"c2s.starttls_addr", 2, "both client listeners"},
		{"listeners share address", "[c2s]\nstarttls_addr = \":5222\"\ndirect_tls_addr = \":5222\"",
			"c2s.direct_tls_addr", 3, "same address as c2s.starttls_addr"},
		{"metrics shares address", "[metrics]\naddr = \":5223\"",
			"metrics.addr", 2, "same address as c2s.direct_tls_addr"},
		{"plaintext loopback ok", "[c2s]\nstarttls_addr = \"127.0.0.1:5222\"\n" +
			"allow_plaintext_loopback = true", "", 0, ""},
		{"plaintext on public listener", "[c2s]\nallow_plaintext_loopback = true",
			"c2s.allow_plaintext_loopback", 2, "no effect"},

		{"stanza size small", "[c2s]\nmax_stanza_size = 9999", "c2s.max_stanza_size", 2,
			"at least 10000 bytes, got 9999"},
		{"stanza size large", "[c2s]\nmax_stanza_size = 16777217", "c2s.max_stanza_size", 2,
			"at most 16777216 bytes"},
		{"stanza size max", "[c2s]\nmax_stanza_size = 16777216", "", 0, ""},
		{"preauth small", "[c2s]\npreauth_max_stanza_size = 1023", "c2s.preauth_max_stanza_size",
			2, "at least 1024 bytes"},
		{"preauth above max", "[c2s]\nmax_stanza_size = 20000\npreauth_max_stanza_size = 20001",
			"c2s.preauth_max_stanza_size", 3, "at most c2s.max_stanza_size (20000 bytes)"},
		{"preauth equal max", "[c2s]\nmax_stanza_size = 20000\npreauth_max_stanza_size = 20000",
			"", 0, ""},
		{"max below default preauth", "[c2s]\nmax_stanza_size = 10000\n" +
			"preauth_max_stanza_size = 10001", "c2s.preauth_max_stanza_size", 3, "at most"},

		{"negotiation zero", "[c2s]\nnegotiation_timeout = \"0s\"", "c2s.negotiation_timeout", 2,
			"positive"},
		{"idle negative", "[c2s]\nidle_timeout = \"-5m\"", "c2s.idle_timeout", 2, "positive"},
		{"failure window zero", "[auth]\nfailure_window = \"0\"", "auth.failure_window", 2,
			"positive"},
		{"max age zero", "[offline]\nmax_age = \"0h\"", "offline.max_age", 2, "positive"},
		{"resume zero", "[stream_management]\nresume_timeout = \"0s\"",
			"stream_management.resume_timeout", 2, "positive"},
		{"shutdown zero", "[shutdown]\ntimeout = \"0s\"", "shutdown.timeout", 2, "positive"},
		{"max resume below resume", "[stream_management]\nresume_timeout = \"10m\"\n" +
			"max_resume_timeout = \"9m\"", "stream_management.max_resume_timeout", 3,
			"at least stream_management.resume_timeout (10m0s), got 9m0s"},
		{"max resume equal resume", "[stream_management]\nresume_timeout = \"1h\"", "", 0, ""},

		{"unauth per ip zero", "[c2s]\nmax_unauth_per_ip = 0", "c2s.max_unauth_per_ip", 2,
			"at least 1, got 0"},
		{"outgoing queue negative", "[c2s]\nmax_outgoing_queue = -1", "c2s.max_outgoing_queue", 2,
			"at least 1"},
		{"failures per ip zero", "[auth]\nmax_failures_per_ip = 0", "auth.max_failures_per_ip", 2,
			"at least 1"},
		{"failures per account zero", "[auth]\nmax_failures_per_account = 0",
			"auth.max_failures_per_account", 2, "at least 1"},
		{"per user zero", "[offline]\nmax_per_user = 0", "offline.max_per_user", 2, "at least 1"},
		{"unacked zero", "[stream_management]\nmax_unacked = 0", "stream_management.max_unacked",
			2, "at least 1"},
		{"roster zero", "[roster]\nmax_items = 0", "roster.max_items", 2, "at least 1"},
		{"rate zero disables", "[c2s]\nrate_bytes_per_second = 0", "", 0, ""},
		{"rate small", "[c2s]\nrate_bytes_per_second = 100", "c2s.rate_bytes_per_second", 2,
			"0 (no limit) or at least 1024"},
		{"rate negative", "[c2s]\nrate_bytes_per_second = -1", "c2s.rate_bytes_per_second", 2,
			"0 (no limit)"},

		{"tls both", "[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"", "", 0, ""},
		{"tls cert only", "[tls]\ncert_file = \"c.pem\"", "tls.cert_file", 2, "set together"},
		{"tls key only", "[tls]\nkey_file = \"k.pem\"", "tls.key_file", 2, "set together"},

		{"storage path empty", "[storage]\npath = \"\"", "storage.path", 2, "must not be empty"},
		{"synchronous normal", "[storage]\nsynchronous = \"normal\"", "", 0, ""},
		{"synchronous bad", "[storage]\nsynchronous = \"extra\"", "storage.synchronous", 2,
			"full, normal, off"},

		{"scram low", "[auth]\nscram_iterations = 4095", "auth.scram_iterations", 2,
			"between 4096 and 1000000, got 4095"},
		{"scram high", "[auth]\nscram_iterations = 1000001", "auth.scram_iterations", 2,
			"between 4096"},
		{"scram high ok", "[auth]\nscram_iterations = 1000000", "", 0, ""},
		{"region lower case ok", "[auth]\ndefault_region = \"de\"", "", 0, ""},
		{"region unknown", "[auth]\ndefault_region = \"XX\"", "auth.default_region", 2,
			"two-letter region"},
		{"region three letters", "[auth]\ndefault_region = \"USA\"", "auth.default_region", 2,
			"two-letter"},
		{"region world", "[auth]\ndefault_region = \"001\"", "auth.default_region", 2,
			"two-letter"},

		{"code ttl zero", "[registration]\ncode_ttl = \"0s\"", "registration.code_ttl", 2,
			"positive"},
		{"attempts zero", "[registration]\nmax_attempts = 0", "registration.max_attempts", 2,
			"at least 1"},
		{"global max zero", "[registration]\nglobal_max = 0", "registration.global_max", 2,
			"at least 1"},
		{"number window negative", "[registration]\nnumber_long_window = \"-1h\"",
			"registration.number_long_window", 2, "positive"},
		{"ipv6 prefix small", "[registration]\nipv6_prefix = 16", "registration.ipv6_prefix", 2,
			"between 32 and 128"},
		{"password length zero", "[registration]\nmin_password_length = 0",
			"registration.min_password_length", 2, "between 1 and 256"},
		{"proxies ok", "[registration]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]", "", 0, ""},
		{"proxy bad", "[registration]\ntrusted_proxies = [\"10.0.0.0/8\",\n  \"proxy.lan\"]",
			"registration.trusted_proxies[1]", 3, "CIDR prefix"},
		{"retries none", "[sms]\nwebhook_retries = 0", "", 0, ""},
		{"retries many", "[sms]\nwebhook_retries = 11", "sms.webhook_retries", 2,
			"between 0 and 10"},
		{"webhook timeout zero", "[sms]\nwebhook_timeout = \"0s\"", "sms.webhook_timeout", 2,
			"positive"},
		{"texts ok", "[sms.texts]\nde = \"Dein Code: {code}\"\npt-BR = \"Código {code}\"",
			"", 0, ""},
		{"texts bad tag", "[sms.texts]\nde = \"Code {code}\"\ntoolonglanguage = \"x {code}\"",
			"sms.texts.toolonglanguage", 3, "language tag"},
		{"texts empty", "[sms.texts]\nfr = \"\"", "sms.texts.fr", 2, "must not be empty"},
		{"texts not string", "[sms.texts]\nfr = 1", "sms.texts.fr", 2, "must be a string"},
		{"texts not table", "[sms]\ntexts = \"hello\"", "sms.texts", 2, "must be a table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := load("t.toml", []byte(tt.file+"\n"))
			if tt.key == "" {
				if len(ps) > 0 {
					t.Fatalf("problems in a valid file:\n%v", ps)
				}
				return
			}
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1 with %s:\n%v", len(ps), tt.key, ps)
			}
			p := ps[0]
			if p.Key != tt.key || p.Line != tt.line || !strings.Contains(p.Msg, tt.msgPart) {
				t.Errorf("problem %q (key %q line %d), want key %q line %d with %q",
					p, p.Key, p.Line, tt.key, tt.line, tt.msgPart)
			}
		})
	}
}

func TestValidateNormalises(t *testing.T) {
	c := Default()
	c.Domain = "Chat.Example.NET"
	c.Auth.DefaultRegion = "gb"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Domain != "chat.example.net" || c.Auth.DefaultRegion != "GB" {
		t.Errorf("Domain %q, DefaultRegion %q; want lower and upper case", c.Domain,
			c.Auth.DefaultRegion)
	}
}

// Validate on a Config built in code reports every problem, without
// positions, one per line.
func TestValidateReportsAll(t *testing.T) {
	c := Default()
	c.Log.Level = "loud"
	c.C2S.MaxStanzaSize = 20000
	c.C2S.PreAuthMaxStanzaSize = 30000
	c.SM.MaxUnacked = 0
	c.Metrics.Addr = "9090"
	err := c.Validate()
	want := "log.level: must be one of debug, info, warn, error, got \"loud\"\n" +
		"stream_management.max_unacked: must be at least 1, got 0\n" +
		"metrics.addr: must be host:port such as \":5222\" or \"127.0.0.1:5222\" " +
		"(empty disables it), got \"9090\": address 9090: missing port in address\n" +
		"c2s.preauth_max_stanza_size: must be at most c2s.max_stanza_size (20000 bytes), got 30000"
	if err == nil || err.Error() != want {
		t.Errorf("Validate() =\n%v\nwant\n%s", err, want)
	}
}

func TestUnknownKeys(t *testing.T) {
	file := `domain = "example.net"
[c2s]
idle_timout = "5m"
  max_stanza_size = 20000
[c2s.extra]
x = 1
[federation]
open = true
[log]
level = "info"
colour = true
`
	_, ps := load("twotick.toml", []byte(file))
	want := Problems{
		{File: "twotick.toml", Key: "c2s.idle_timout", Line: 3, Column: 1,
			Msg: `unknown key (did you mean "idle_timeout"?)`},
		{File: "twotick.toml", Key: "c2s.extra", Line: 5, Column: 6, Msg: "unknown key"},
		{File: "twotick.toml", Key: "federation", Line: 7, Column: 2, Msg: "unknown key"},
		{File: "twotick.toml", Key: "log.colour", Line: 11, Column: 1, Msg: "unknown key"},
	}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("problems:\n%v\nwant:\n%v", ps, want)
	}
}

// Keys written as dotted keys, inline tables or in any order are found at
// their own line and column.
func TestKeyPositions(t *testing.T) {
	file := "c2s.idle_timout = \"1m\"\n" +
		"stream_management = { max_unacked = 1, bogus = 2 }\n" +
		"\"log\".\"level\" = 3\n"
	_, ps := load("t.toml", []byte(file))
	type at struct {
		key       string
		line, col int
	}
	var got []at
	for _, p := range ps {
		got = append(got, at{p.Key, p.Line, p.Column})
	}
	want := []at{
		{"c2s.idle_timout", 1, 5},
		{"stream_management.bogus", 2, 40},
		{"log.level", 3, 7},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("positions %v, want %v\n%v", got, want, ps)
	}
}

// Every value of the wrong type is reported, with its line, in one go, and
// together with the rules broken elsewhere in the file.
func TestTypeErrors(t *testing.T) {
	file := `domain = 42
[c2s]
max_stanza_size = "big"
idle_timeout = 300
negotiation_timeout = "soon"
allow_plaintext_loopback = "yes"
max_unauth_per_ip = 1.5
rate_bytes_per_second = 99999999999999999
[auth]
scram_iterations = 10
[storage]
synchronous = ["full"]
[roster]
max_items = 1979-05-27
[shutdown]
timeout = { seconds = 10 }
metrics = 5
`
	_, ps := load("twotick.toml", []byte(file))
	want := []string{
		`twotick.toml:1:1: domain: must be a string, got integer 42`,
		`twotick.toml:3:1: c2s.max_stanza_size: must be an integer, got string "big"`,
		`twotick.toml:4:1: c2s.idle_timeout: must be a duration string such as "30s" or "5m", ` +
			`got integer 300`,
		`twotick.toml:5:1: c2s.negotiation_timeout: not a duration such as "30s" or "5m": "soon"`,
		`twotick.toml:6:1: c2s.allow_plaintext_loopback: must be true or false, got string "yes"`,
		`twotick.toml:7:1: c2s.max_unauth_per_ip: must be an integer, got float 1.5`,
		`twotick.toml:10:1: auth.scram_iterations: must be between 4096 and 1000000, got 10`,
		`twotick.toml:12:1: storage.synchronous: must be a string, got an array`,
		`twotick.toml:14:1: roster.max_items: must be an integer, got a date or time`,
		`twotick.toml:16:1: shutdown.timeout: must be a duration string such as "30s" or "5m", ` +
			`got a table`,
		`twotick.toml:17:1: shutdown.metrics: unknown key`,
	}
	got := strings.Split(ps.Error(), "\n")
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestIntegerOutOfRange(t *testing.T) {
	_, ps := load("t.toml", []byte("[c2s]\nrate_bytes_per_second = 99999999999999999999\n"))
	if len(ps) != 1 || ps[0].Line != 2 || ps[0].Key != "c2s.rate_bytes_per_second" {
		t.Errorf("problems %#v, want one at line 2 naming c2s.rate_bytes_per_second", ps)
	}
}

func TestSyntaxErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		key  string
		line int
	}{
		{"unterminated string", "domain = \"x\n", "domain", 1},
		{"missing value", "[c2s]\nidle_timeout =\n", "c2s.idle_timeout", 2},
		{"not a key", "[c2s]\n= 3\n", "", 2},
		{"bad header", "[c2s\n", "", 1},
		{"quoted key", "[c2s]\n\"idle\" = 5x\n", "", 2},
		{"duplicate key", "[log]\nlevel = \"info\"\nlevel = \"debug\"\n", "log.level", 3},
		{"duplicate dotted key", "[c2s]\nidle_timeout = \"1m\"\n[log]\nformat = \"json\"\n" +
			"[c2s]\n", "c2s", 5},
		{"bad value after tables", "[log]\n[c2s]\n  idle_timeout = 5x\n", "c2s.idle_timeout", 3},
		{"duplicate table", "[log]\n[c2s]\n[log]\n", "log", 3},
		{"section is a value", "log = 3\n", "log", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := load("t.toml", []byte(tt.file))
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(ps), ps)
			}
			if ps[0].Line != tt.line || ps[0].Key != tt.key || ps[0].Msg == "" {
				t.Errorf("problem %#v, want key %q at line %d", ps[0], tt.key, tt.line)
			}
		})
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		name string
		p    Problem
		want string
	}{
		{"full", Problem{File: "twotick.toml", Key: "c2s.max_stanza_size", Line: 12, Column: 1,
			Msg: "must be at least 10000 bytes, got 10"},
			"twotick.toml:12:1: c2s.max_stanza_size: must be at least 10000 bytes, got 10"},
		{"no column", Problem{File: "a.toml", Key: "k", Line: 3, Msg: "m"}, "a.toml:3: k: m"},
		{"not in file", Problem{File: "a.toml", Key: "k", Msg: "m"}, "a.toml: k: m"},
		{"no file", Problem{Key: "k", Msg: "m"}, "k: m"},
		{"no key", Problem{File: "a.toml", Line: 1, Column: 9, Msg: "m"}, "a.toml:1:9: m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSettingsOfDefault(t *testing.T) {
	s := Default().Settings()
	if len(s) < 31 {
		t.Fatalf("%d settings, want every key", len(s))
	}
	want := []Setting{
		{"domain", "localhost"},
		{"data_dir", "."},
		{"log.level", "info"},
	}
	if !slices.Equal(s[:3], want) {
		t.Errorf("first settings %v, want %v", s[:3], want)
	}
	byKey := map[string]string{}
	for _, kv := range s {
		if _, dup := byKey[kv.Key]; dup {
			t.Errorf("key %s listed twice", kv.Key)
		}
		byKey[kv.Key] = kv.Value
	}
	for k, v := range map[string]string{
		"c2s.idle_timeout":                 "5m",
		"offline.max_age":                  "720h",
		"stream_management.resume_timeout": "5m",
		"c2s.allow_plaintext_loopback":     "false",
		"c2s.max_stanza_size":              "262144",
		"tls.cert_file":                    "",
		"shutdown.timeout":                 "10s",
	} {
		if byKey[k] != v {
			t.Errorf("setting %s = %q, want %q", k, byKey[k], v)
		}
	}
}

func TestDurationText(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{1500 * time.Millisecond, "1.5s"},
		{10 * time.Minute, "10m"},
		{90 * time.Minute, "1h30m"},
		{time.Hour, "1h"},
		{time.Hour + time.Second, "1h0m1s"},
		{100 * time.Millisecond, "100ms"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			b, _ := Duration{tt.d}.MarshalText()
			var back Duration
			if string(b) != tt.want || back.UnmarshalText(b) != nil || back.Duration != tt.d {
				t.Errorf("MarshalText(%v) = %q (round trip %v), want %q", tt.d, b, back, tt.want)
			}
		})
	}
}

// secretsShape stands in for sections to come (sms, push, components) whose
// keys hold credentials, which Settings must never show.
type secretsShape struct {
	Name string `toml:"name"`
	SMS  struct {
		URL   string `toml:"url"`
		Token string `toml:"token" conf:"secret"`
		Empty string `toml:"empty" conf:"secret"`
	} `toml:"sms"`
	Components []struct {
		Host   string `toml:"host"`
		Secret string `toml:"secret" conf:"secret"`
	} `toml:"components"`
	Keys     []string `toml:"keys" conf:"secret"`
	Aliases  []string `toml:"aliases"`
	internal string
}

func TestSettingsHideSecrets(t *testing.T) {
	var c secretsShape
	c.Name = "n"
	c.SMS.URL = "https://sms.example/send"
	c.SMS.Token = "tok-very-secret"
	c.Components = make([]struct {
		Host   string `toml:"host"`
		Secret string `toml:"secret" conf:"secret"`
	}, 2)
	c.Components[0] = struct {
		Host   string `toml:"host"`
		Secret string `toml:"secret" conf:"secret"`
	}{"a.example", "hunter2"}
	c.Components[1].Host = "b.example"
	c.Keys = []string{"k1-secret"}
	c.Aliases = []string{"x", "y"}
	c.internal = "not a setting"

	got := flatten(nil, reflect.ValueOf(c), "")
	want := []Setting{
		{"name", "n"},
		{"sms.url", "https://sms.example/send"},
		{"sms.token", "(set)"},
		{"sms.empty", "(empty)"},
		{"components[0].host", "a.example"},
		{"components[0].secret", "(set)"},
		{"components[1].host", "b.example"},
		{"components[1].secret", "(empty)"},
		{"keys", "(set)"},
		{"aliases", "x, y"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("settings\n%v\nwant\n%v", got, want)
	}
	for _, s := range got {
		for _, secret := range []string{"tok-very-secret", "hunter2", "k1-secret"} {
			if strings.Contains(s.Value, secret) {
				t.Errorf("%s shows a secret: %q", s.Key, s.Value)
			}
		}
	}
}

// Every setting has a rule, or is declared free, so that a field added to
// Config cannot go unchecked by oversight; and no rule names a key that does
// not exist.
func TestEverySettingHasRule(t *testing.T) {
	var v validator
	Default().check(&v)
	var keys []string
	for _, s := range Default().Settings() {
		keys = append(keys, s.Key)
	}
	for _, k := range keys {
		if !slices.Contains(v.checked, k) {
			t.Errorf("%s has no rule in Config.check (use v.free if any value goes)", k)
		}
	}
	for _, k := range v.checked {
		if !slices.Contains(keys, k) {
			t.Errorf("Config.check has a rule for %s, which is not a setting", k)
		}
	}
}

// Every struct field is a setting: a field without a toml key would be
// silently unsettable.
func TestEveryFieldHasKey(t *testing.T) {
	var walk func(reflect.Type, string)
	walk = func(rt reflect.Type, path string) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			if f.Tag.Get("toml") == "" {
				t.Errorf("%s.%s has no toml tag", path, f.Name)
			}
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(f.Type, path+"."+f.Name)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "Config")
}

func problemKeys(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v (%T) is not Problems", err, err)
	}
	var keys []string
	for _, p := range ps {
		keys = append(keys, fmt.Sprintf("%s@%d", p.Key, p.Line))
	}
	return keys
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Sections to come (components, for one) are arrays of tables; the decoder
// and the positions already handle them, with element keys named key[i].
func TestDecodeArraysOfTables(t *testing.T) {
	type component struct {
		Host    string   `toml:"host"`
		Secret  string   `toml:"secret" conf:"secret"`
		Timeout Duration `toml:"timeout"`
	}
	var shape struct {
		Components []component `toml:"components"`
		Ports      []int       `toml:"ports"`
	}
	data := []byte(`ports = [1, "two", 3]
[[components]]
host = "a.example"
timeout = "1m"
[[components]]
host = "b.example"
secret = "s"
bogus = 1
timeout = 60
`)
	var tree map[string]any
	if err := toml.Unmarshal(data, &tree); err != nil {
		t.Fatal(err)
	}
	d := decoder{file: "t.toml", pos: keyPositions(data)}
	d.table(reflect.ValueOf(&shape).Elem(), tree, "")
	sortProblems(d.problems)

	want := []string{
		`t.toml:1:13: ports[1]: must be an integer, got string "two"`,
		`t.toml:8:1: components[1].bogus: unknown key`,
		`t.toml:9:1: components[1].timeout: must be a duration string such as "30s" or "5m", ` +
			`got integer 60`,
	}
	if got := strings.Split(d.problems.Error(), "\n"); !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(shape.Components) != 2 || shape.Components[1].Host != "b.example" ||
		shape.Components[0].Timeout.Duration != time.Minute {
		t.Errorf("decoded %+v", shape.Components)
	}
}
