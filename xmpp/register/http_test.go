package register

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twotick/twotick/xmpp/auth"
)

// harness is a Registrar on a fresh database with the log gateway, served
// over HTTP.
type harness struct {
	clock    *fakeClock
	codes    *Codes
	accounts *auth.Store
	reg      *Registrar
	smsLog   string
	srv      *httptest.Server

	mu         sync.Mutex
	registered []string // "local created"
}

func newHarness(t *testing.T, opts HTTPOptions) *harness {
	t.Helper()
	dir := t.TempDir()
	db := openDB(t, filepath.Join(dir, "db"))
	h := &harness{clock: newClock(), smsLog: filepath.Join(dir, "sms.log")}
	h.codes = openCodes(t, db, Options{}, h.clock)
	var err error
	h.accounts, err = auth.OpenStore(context.Background(), db, "example.net")
	if err != nil {
		t.Fatal(err)
	}
	h.accounts.Iterations = 16 // fast credentials; strength is not under test
	h.reg = &Registrar{
		Codes:    h.codes,
		Gateway:  &LogGateway{Path: h.smsLog},
		Accounts: h.accounts,
		OnRegistered: func(local string, created bool) {
			h.mu.Lock()
			h.registered = append(h.registered, fmt.Sprintf("%s %v", local, created))
			h.mu.Unlock()
		},
	}
	h.srv = httptest.NewServer(NewHTTPHandler(h.reg, opts))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) code(t *testing.T, number string) string {
	t.Helper()
	code, err := ReadCodeFromLog(h.smsLog, number)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func quicksyAuth(number, code string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + number + "\x00" + code))
}

// do sends a request and returns the status and the Retry-After header.
func (h *harness) do(t *testing.T, method, path, authz, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req.Header.Set("Accept-Language", "de")
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

func TestHTTPFlow(t *testing.T) {
	const n = "+12025550101"
	h := newHarness(t, HTTPOptions{})
	ctx := context.Background()

	if st, _ := h.do(t, "GET", "/authentication/"+n, "", ""); st != http.StatusOK {
		t.Fatalf("GET /authentication = %d", st)
	}
	code := h.code(t, n)

	st, _ := h.do(t, "POST", "/password", quicksyAuth(n, wrong(code)), "first password")
	if st != http.StatusUnauthorized {
		t.Fatalf("wrong code: %d, want 401", st)
	}
	st, _ = h.do(t, "POST", "/password", quicksyAuth(n, code), "first password")
	if st != http.StatusCreated {
		t.Fatalf("right code: %d, want 201", st)
	}
	if a, err := h.accounts.Lookup(ctx, n); err != nil || a.Kind != auth.KindPhone {
		t.Fatalf("account after 201: %+v, %v", a, err)
	}
	st, _ = h.do(t, "POST", "/password", quicksyAuth(n, code), "again password")
	if st != http.StatusNotFound {
		t.Fatalf("used code: %d, want 404", st)
	}

	// Re-registration from a reinstalled phone replaces the password.
	h.clock.Advance(2 * time.Minute)
	if st, _ := h.do(t, "GET", "/authentication/"+n, "", ""); st != http.StatusOK {
		t.Fatalf("second GET = %d", st)
	}
	code2 := h.code(t, n)
	// Without the leading NUL and with a Basic prefix, as some clients send.
	authz := "Basic " + base64.StdEncoding.EncodeToString([]byte(n+"\x00"+code2))
	if st, _ := h.do(t, "POST", "/password", authz, "second password"); st != http.StatusOK {
		t.Fatalf("re-registration: %d, want 200", st)
	}

	h.mu.Lock()
	got := strings.Join(h.registered, ",")
	h.mu.Unlock()
	if want := n + " true," + n + " false"; got != want {
		t.Fatalf("OnRegistered calls %q, want %q", got, want)
	}
	// The new password is the one stored: SCRAM credentials derived from
	// it verify, the old ones do not.
	checkPassword(t, h.accounts, n, "second password", true)
	checkPassword(t, h.accounts, n, "first password", false)
}

func checkPassword(t *testing.T, s *auth.Store, local, password string, want bool) {
	t.Helper()
	c, err := s.Credentials(context.Background(), local, auth.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if got := matches(c, password); got != want {
		t.Fatalf("password %q accepted = %v, want %v", password, got, want)
	}
}

// matches reports whether password gives c's StoredKey (RFC 5802 § 3).
func matches(c auth.Cred, password string) bool {
	salted, err := pbkdf2.Key(sha256.New, password, c.Salt, c.Iterations, sha256.Size)
	if err != nil {
		panic(err)
	}
	m := hmac.New(sha256.New, salted)
	m.Write([]byte("Client Key"))
	stored := sha256.Sum256(m.Sum(nil))
	return hmac.Equal(stored[:], c.StoredKey)
}

func TestHTTPErrors(t *testing.T) {
	const n = "+12025550101"
	tests := []struct {
		name  string
		run   func(t *testing.T, h *harness) (int, string)
		want  int
		retry string // expected Retry-After, "" for none
	}{
		{"bad number", func(t *testing.T, h *harness) (int, string) {
			return h.do(t, "GET", "/authentication/+1000", "", "")
		}, http.StatusBadRequest, ""},
		{"letters", func(t *testing.T, h *harness) (int, string) {
			return h.do(t, "GET", "/authentication/hello", "", "")
		}, http.StatusBadRequest, ""},
		{"second request too soon", func(t *testing.T, h *harness) (int, string) {
			h.do(t, "GET", "/authentication/"+n, "", "")
			h.clock.Advance(20 * time.Second)
			return h.do(t, "GET", "/authentication/"+n, "", "")
		}, http.StatusTooManyRequests, "100"},
		{"no code requested", func(t *testing.T, h *harness) (int, string) {
			return h.do(t, "POST", "/password", quicksyAuth(n, "123456"), "some password")
		}, http.StatusNotFound, ""},
		{"expired code", func(t *testing.T, h *harness) (int, string) {
			h.do(t, "GET", "/authentication/"+n, "", "")
			code := h.code(t, n)
			h.clock.Advance(11 * time.Minute)
			return h.do(t, "POST", "/password", quicksyAuth(n, code), "some password")
		}, http.StatusNotFound, ""},
		{"too many attempts", func(t *testing.T, h *harness) (int, string) {
			h.do(t, "GET", "/authentication/"+n, "", "")
			code := h.code(t, n)
			h.clock.Advance(30 * time.Second)
			for range 4 {
				if st, _ := h.do(t, "POST", "/password", quicksyAuth(n, wrong(code)),
					"some password"); st != http.StatusUnauthorized {
					t.Fatalf("wrong code: %d", st)
				}
			}
			h.do(t, "POST", "/password", quicksyAuth(n, wrong(code)), "some password")
			return h.do(t, "POST", "/password", quicksyAuth(n, code), "some password")
		}, http.StatusTooManyRequests, "90"},
		{"short password keeps the code", func(t *testing.T, h *harness) (int, string) {
			h.do(t, "GET", "/authentication/"+n, "", "")
			code := h.code(t, n)
			st, _ := h.do(t, "POST", "/password", quicksyAuth(n, code), "short")
			if st != http.StatusBadRequest {
				t.Fatalf("short password: %d, want 400", st)
			}
			return h.do(t, "POST", "/password", quicksyAuth(n, code), "long enough")
		}, http.StatusCreated, ""},
		{"curl -u", func(t *testing.T, h *harness) (int, string) {
			h.do(t, "GET", "/authentication/"+n, "", "")
			authz := "Basic " + base64.StdEncoding.EncodeToString([]byte(n+":"+h.code(t, n)))
			return h.do(t, "POST", "/password", authz, "long enough")
		}, http.StatusCreated, ""},
		{"no Authorization", func(t *testing.T, h *harness) (int, string) {
			return h.do(t, "POST", "/password", "", "some password")
		}, http.StatusBadRequest, ""},
		{"Authorization not base64", func(t *testing.T, h *harness) (int, string) {
			return h.do(t, "POST", "/password", "%%%", "some password")
		}, http.StatusBadRequest, ""},
		{"Authorization without code", func(t *testing.T, h *harness) (int, string) {
			return h.do(t, "POST", "/password",
				base64.StdEncoding.EncodeToString([]byte("\x00"+n)), "some password")
		}, http.StatusBadRequest, ""},
		{"body too large", func(t *testing.T, h *harness) (int, string) {
			return h.do(t, "POST", "/password", quicksyAuth(n, "123456"), strings.Repeat("p", 2000))
		}, http.StatusRequestEntityTooLarge, ""},
		{"wrong method", func(t *testing.T, h *harness) (int, string) {
			return h.do(t, "DELETE", "/password", "", "")
		}, http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, HTTPOptions{})
			st, retry := tt.run(t, h)
			if st != tt.want || retry != tt.retry {
				t.Fatalf("status %d, Retry-After %q; want %d, %q", st, retry, tt.want, tt.retry)
			}
		})
	}
}

func TestHTTPAddressLimit(t *testing.T) {
	h := newHarness(t, HTTPOptions{})
	for i := range 5 {
		if st, _ := h.do(t, "GET", fmt.Sprintf("/authentication/+1202555%04d", i), "", ""); st != 200 {
			t.Fatalf("request %d: %d", i, st)
		}
	}
	st, retry := h.do(t, "GET", "/authentication/+12025559999", "", "")
	if st != http.StatusTooManyRequests {
		t.Fatalf("sixth number from one address: %d", st)
	}
	if s, err := strconv.Atoi(retry); err != nil || s < 1 || s > 300 {
		t.Fatalf("Retry-After %q", retry)
	}
}

func TestClientAddr(t *testing.T) {
	api := &httpAPI{opts: HTTPOptions{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}}}
	tests := []struct {
		name, remote, xff, want string
	}{
		{"direct", "192.0.2.1:5000", "", "192.0.2.1"},
		{"untrusted peer's header is ignored", "192.0.2.1:5000", "198.51.100.9", "192.0.2.1"},
		{"trusted proxy", "10.1.2.3:5000", "198.51.100.9", "198.51.100.9"},
		{"client forged the left entry", "10.1.2.3:5000", "203.0.113.5, 198.51.100.9",
			"198.51.100.9"},
		{"two trusted proxies", "[::1]:5000", "198.51.100.9, 10.9.9.9", "198.51.100.9"},
		{"garbage from proxy", "10.1.2.3:5000", "nonsense", "10.1.2.3"},
		{"mapped address", "[::ffff:192.0.2.1]:5000", "", "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if got := api.clientAddr(r); got.String() != tt.want {
				t.Fatalf("clientAddr = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestHTTPRefusalsLogged checks what an operator watching for abuse sees:
// a refused code request and a wrong code each log one Warn line with the
// client's address (and the limit that refused), and the code itself is
// never written to the log.
func TestHTTPRefusalsLogged(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
	h := newHarness(t, HTTPOptions{Logger: logger})
	const number = "+12025550100"
	for i := range 6 { // the sixth number from one address is over its limit
		h.do(t, "GET", fmt.Sprintf("/authentication/+1202555%04d", 100+i), "", "")
	}
	code := h.code(t, number)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if st, _ := h.do(t, "POST", "/password", quicksyAuth(number, wrong), "pw-123456"); st != 401 {
		t.Fatalf("wrong code answered %d, want 401", st)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{
		`level=WARN msg="verification code refused by a limit" remote_addr=127.0.0.1 scope=`,
		`level=WARN msg="wrong verification code" remote_addr=127.0.0.1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, code) || strings.Contains(out, wrong) {
		t.Errorf("log holds a verification code:\n%s", out)
	}
}

// lockedWriter serialises writes from the server's handler goroutines.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
