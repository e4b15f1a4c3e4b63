package register

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestLogGatewayFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sms.log")
	g := &LogGateway{Path: path}
	ctx := context.Background()
	for _, s := range []struct{ number, code string }{
		{"+12025550101", "111111"}, {"+12025550102", "222222"}, {"+12025550101", "333333"},
	} {
		if err := g.Send(ctx, s.number, s.code, "en"); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ number, want string }{
		{"+12025550101", "333333"}, // the latest code wins
		{"+12025550102", "222222"},
	}
	for _, tt := range tests {
		t.Run(tt.number, func(t *testing.T) {
			got, err := ReadCodeFromLog(path, tt.number)
			if err != nil || got != tt.want {
				t.Fatalf("ReadCodeFromLog = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := ReadCodeFromLog(path, "+12025550103"); !errors.Is(err, ErrNoCode) {
		t.Fatalf("unknown number: %v, want ErrNoCode", err)
	}
}

func TestLogGatewayLogger(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			var h slog.Handler = slog.NewTextHandler(&buf, nil)
			if format == "json" {
				h = slog.NewJSONHandler(&buf, nil)
			}
			g := &LogGateway{Logger: slog.New(h)}
			if err := g.Send(context.Background(), "+12025550101", "654321", "de"); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), CodeLogKey) {
				t.Fatalf("log line lacks key %s: %s", CodeLogKey, buf.String())
			}
			got, err := FindCode(&buf, "+12025550101")
			if err != nil || got != "654321" {
				t.Fatalf("FindCode = %q, %v", got, err)
			}
		})
	}
}

// webhookServer answers with the statuses in turn (the last one repeats)
// and records the requests.
type webhookServer struct {
	statuses []int
	calls    atomic.Int32
	last     atomic.Value // webhookBody
	auth     atomic.Value // string
}

func (s *webhookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(s.calls.Add(1))
	var b webhookBody
	json.NewDecoder(r.Body).Decode(&b)
	s.last.Store(b)
	s.auth.Store(r.Header.Get("Authorization"))
	w.WriteHeader(s.statuses[min(n, len(s.statuses))-1])
}

func TestWebhookGateway(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		wantErr  bool
		calls    int32
	}{
		{"success", []int{http.StatusOK}, false, 1},
		{"5xx then success", []int{http.StatusBadGateway, http.StatusInternalServerError,
			http.StatusAccepted}, false, 3},
		{"5xx until retries run out", []int{http.StatusServiceUnavailable}, true, 4},
		{"4xx is not retried", []int{http.StatusBadRequest}, true, 1},
		{"redirect is not retried", []int{http.StatusNotModified}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := &webhookServer{statuses: tt.statuses}
			srv := httptest.NewServer(ws)
			defer srv.Close()
			var logs bytes.Buffer
			g := &WebhookGateway{
				URL:     srv.URL,
				Token:   "s3cret",
				Backoff: time.Millisecond,
				Texts:   &Texts{ByLang: map[string]string{"de": "Dein Code: {code}"}},
				Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			}
			err := g.Send(context.Background(), "+12025550101", "424242", "de-AT")
			if (err != nil) != tt.wantErr {
				t.Fatalf("Send error = %v, want error %v", err, tt.wantErr)
			}
			if got := ws.calls.Load(); got != tt.calls {
				t.Fatalf("%d requests, want %d", got, tt.calls)
			}
			want := webhookBody{Number: "+12025550101", Code: "424242", Lang: "de-AT",
				Text: "Dein Code: 424242"}
			if got := ws.last.Load().(webhookBody); got != want {
				t.Fatalf("body = %+v, want %+v", got, want)
			}
			if got := ws.auth.Load().(string); got != "Bearer s3cret" {
				t.Fatalf("Authorization = %q", got)
			}
			if strings.Contains(logs.String(), "424242") {
				t.Fatalf("the code reached the log: %s", logs.String())
			}
			if !strings.Contains(logs.String(), "sms") {
				t.Fatalf("outcome not logged: %q", logs.String())
			}
		})
	}
}

func TestWebhookGatewayTimeout(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select { // hang until the client gives up or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)

	g := &WebhookGateway{URL: srv.URL, Timeout: 50 * time.Millisecond, Retries: 1,
		Backoff: time.Millisecond}
	start := time.Now()
	err := g.Send(context.Background(), "+12025550101", "424242", "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want a deadline error", err)
	}
	if got := calls.Load(); got != 2 {
		t.Fatalf("%d attempts, want 2 (one retry)", got)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Send took %s despite a 50ms timeout", took)
	}
}

func TestWebhookGatewayCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g := &WebhookGateway{URL: srv.URL, Retries: 5, Backoff: time.Hour}
	if err := g.Send(ctx, "+12025550101", "1", ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with a cancelled context = %v", err)
	}
}

func TestTexts(t *testing.T) {
	texts := &Texts{
		Default: "Code: {code}",
		ByLang: map[string]string{
			"de":    "Dein Code: {code}",
			"fr":    "Votre code : {code}",
			"pt-BR": "Seu código: {code}",
			"es":    "Código",
		},
	}
	tests := []struct{ lang, want string }{
		{"", "Code: 123456"},
		{"de", "Dein Code: 123456"},
		{"de-AT", "Dein Code: 123456"},
		{"fr-CH, fr;q=0.9, en;q=0.8", "Votre code : 123456"},
		{"ja, de;q=0.5", "Dein Code: 123456"},
		{"pt-BR", "Seu código: 123456"},
		{"ja", "Code: 123456"},
		{"en-US", "Code: 123456"},
		{"es", "Código 123456"}, // no {code}: appended
		{"not a tag!", "Code: 123456"},
	}
	for _, tt := range tests {
		t.Run(tt.lang, func(t *testing.T) {
			if got := texts.Message(tt.lang, "123456"); got != tt.want {
				t.Fatalf("Message(%q) = %q, want %q", tt.lang, got, tt.want)
			}
		})
	}
	var zero Texts
	if got := zero.Message("de", "1"); got != "Your twotick code is 1" {
		t.Fatalf("zero Texts: %q", got)
	}
}

func TestCatalogueLanguages(t *testing.T) {
	tests := []struct{ lang, wantTag string }{
		{"", "en"}, {"de-CH", "de"}, {"fr", "fr"}, {"ja", "en"}, {"sv, fr;q=0.3", "fr"},
	}
	for _, tt := range tests {
		t.Run(tt.lang, func(t *testing.T) {
			if tag, _ := localized(tt.lang, "instructions"); tag != tt.wantTag {
				t.Fatalf("localized(%q) chose %q, want %q", tt.lang, tag, tt.wantTag)
			}
		})
	}
	// Every language has every sentence, with the same verbs.
	for tag, m := range catalogue {
		for key, en := range catalogue["en"] {
			s, ok := m[key]
			if !ok {
				t.Errorf("%s lacks %q", tag, key)
			}
			if strings.Count(s, "%") != strings.Count(en, "%") {
				t.Errorf("%s %q has other format verbs than English", tag, key)
			}
		}
	}
}
