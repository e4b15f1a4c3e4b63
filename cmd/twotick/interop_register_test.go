package main

// Interoperability tests of registration by SMS against the real binary:
// slixmpp's XEP-0077 plugin creates an account in-band, and Go's net/http
// client runs the Quicksy HTTP API. Both read the codes from the file the
// log gateway writes (sms.log_file).

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twotick/twotick/xmpp/register"
)

// registrationServer is a running twotick with registration open, the log
// gateway writing to codeLog, and the Quicksy API on httpAddr.
type registrationServer struct {
	*xmppServer
	codeLog  string
	httpAddr string
}

// startRegistrationServer builds and starts twotick with a configuration
// that serves both ways of registering. extra is appended to the
// [registration] section.
func startRegistrationServer(t *testing.T, extra string) *registrationServer {
	t.Helper()
	bin := buildTwotick(t)
	dir := t.TempDir()
	addrs := freeAddrs(t, 4)
	codeLog := filepath.Join(dir, "sms.log")
	config := filepath.Join(dir, "twotick.toml")
	text := fmt.Sprintf(`domain = "localhost"
data_dir = %q

[log]
level = "debug"

[c2s]
starttls_addr = %q
direct_tls_addr = %q

[metrics]
addr = %q

[registration]
enabled = true
http_addr = %q
%s
[sms]
gateway = "log"
log_file = %q
`, filepath.Join(dir, "data"), addrs[0], addrs[1], addrs[2], addrs[3], extra, codeLog)
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &xmppServer{name: "twotick", domain: "localhost", c2s: addrs[0]}
	s.start(t, exec.Command(bin, "serve", "--config", config))
	return &registrationServer{xmppServer: s, codeLog: codeLog, httpAddr: addrs[3]}
}

// TestInteropRegisterSlixmpp has slixmpp register a new number in-band
// (XEP-0077): the form, a submission without a code that the server
// answers with an error asking for the code, the code read from the log
// gateway's file, the submission with it; then slixmpp logs in as the new
// account on the same stream and fetches its roster. The number then
// registers again over the HTTP API, as when the phone changed hands: the
// server must end slixmpp's session with not-authorized.
func TestInteropRegisterSlixmpp(t *testing.T) {
	needClients(t)
	// A second code for the number within 2 minutes, for the second
	// registration.
	srv := startRegistrationServer(t, "number_short_max = 2\n")
	const number, password = "+12025550177", "slixmpp-password"

	timeout := strconv.Itoa(int(scenarioTimeout.Seconds()))
	slix := startClient(t, "slixmpp", debianPython, "slix_register.py",
		"--jid", number+"@"+srv.domain, "--number", number, "--password", password,
		"--code-log", srv.codeLog, "--host", "127.0.0.1", "--port", portOf(t, srv.c2s),
		"--timeout", timeout, "--stay")
	deadline := time.Now().Add(scenarioTimeout + 10*time.Second)
	if err := slix.waitLine("online", deadline); err != nil {
		t.Fatal(err)
	}

	api := newQuicksyClient(srv.httpAddr)
	if st, _ := api.requestCode(t, number); st != http.StatusOK {
		t.Fatalf("code request for the registered number: %d, want 200", st)
	}
	code := nthCode(t, srv.codeLog, number, 2)
	if st := api.setPassword(t, number, code, "the new holder's password"); st != http.StatusOK {
		t.Fatalf("re-registration: %d, want 200", st)
	}
	if err := slix.wait(deadline); err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
}

// nthCode returns the nth code (counting from 1) that the log gateway
// wrote for number to path. The gateway has written it before the server
// answered, so it is there at once; a missing one fails t.
func nthCode(t *testing.T, path, number string, nth int) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, line := range strings.Split(string(data), "\n") {
		if c, ok := strings.CutPrefix(line, "code for "+number+" is "); ok {
			codes = append(codes, c)
		}
	}
	if len(codes) != nth {
		t.Fatalf("%d codes logged for %s, want %d", len(codes), number, nth)
	}
	return codes[nth-1]
}

// TestInteropRegisterHTTP runs the Quicksy API against the real binary with
// Go's HTTP client: a code request, a wrong code, the right one creating
// the account, a second verification replacing its password, and a third
// code request refused by the per-number limit set in the configuration,
// with Retry-After.
func TestInteropRegisterHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("interoperability test: skipped with -short")
	}
	// Two codes per number in the short window (the default is one), so
	// that the test can re-register, and three in the long one, so that the
	// short window is what refuses the third: the settings took effect.
	srv := startRegistrationServer(t, "number_short_max = 2\nnumber_long_max = 3\n")
	const number = "+12025550178"
	api := newQuicksyClient(srv.httpAddr)

	if st, _ := api.requestCode(t, "12"); st != http.StatusBadRequest {
		t.Fatalf("code for a bad number: %d, want 400", st)
	}
	if st, _ := api.requestCode(t, number); st != http.StatusOK {
		t.Fatalf("code request: %d, want 200", st)
	}
	code, err := register.ReadCodeFromLog(srv.codeLog, number)
	if err != nil {
		t.Fatal(err)
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if st := api.setPassword(t, number, wrong, "first password"); st != http.StatusUnauthorized {
		t.Fatalf("wrong code: %d, want 401", st)
	}
	if st := api.setPassword(t, number, code, "first password"); st != http.StatusCreated {
		t.Fatalf("right code: %d, want 201", st)
	}
	if st := api.setPassword(t, number, code, "first password"); st != http.StatusNotFound {
		t.Fatalf("used code again: %d, want 404", st)
	}

	if st, _ := api.requestCode(t, number); st != http.StatusOK {
		t.Fatalf("second code request: %d, want 200", st)
	}
	code2, err := register.ReadCodeFromLog(srv.codeLog, number)
	if err != nil {
		t.Fatal(err)
	}
	if st := api.setPassword(t, number, code2, "second password"); st != http.StatusOK {
		t.Fatalf("re-registration: %d, want 200", st)
	}

	st, retry := api.requestCode(t, number)
	if st != http.StatusTooManyRequests {
		t.Fatalf("third code request: %d, want 429", st)
	}
	if secs, err := strconv.Atoi(retry); err != nil || secs < 1 || secs > 120 {
		t.Fatalf("Retry-After %q, want 1 to 120 seconds", retry)
	}
	srv.stop(t)
}

// quicksyClient makes the two calls of the Quicksy registration API.
type quicksyClient struct {
	base   string
	client *http.Client
}

func newQuicksyClient(addr string) *quicksyClient {
	return &quicksyClient{
		base: "https://" + addr,
		client: &http.Client{
			Timeout: 30 * time.Second,
			// The server's certificate is generated and self-signed.
			Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		},
	}
}

// requestCode calls GET /authentication/{number} and returns the status
// and the Retry-After header.
func (q *quicksyClient) requestCode(t *testing.T, number string) (int, string) {
	t.Helper()
	resp, err := q.client.Get(q.base + "/authentication/" + number)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// setPassword calls POST /password as Quicksy does: Authorization is base64
// of NUL, number, NUL, code; the body is the password.
func (q *quicksyClient) setPassword(t *testing.T, number, code, password string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, q.base+"/password",
		strings.NewReader(password))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization",
		base64.StdEncoding.EncodeToString([]byte("\x00"+number+"\x00"+code)))
	resp, err := q.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
