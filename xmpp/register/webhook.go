package register

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Defaults of WebhookGateway.
const (
	DefaultWebhookTimeout = 10 * time.Second
	DefaultWebhookRetries = 3
	DefaultWebhookBackoff = 500 * time.Millisecond
)

// WebhookGateway sends codes by an HTTP POST of a JSON object
//
//	{"number": "+12025550123", "code": "123456", "lang": "de",
//	 "text": "Dein twotick-Code ist 123456"}
//
// to URL, for an SMS provider or a small relay in front of one. A 2xx
// answer is success. A 5xx answer or a network error (a timeout included)
// is retried up to Retries times, waiting Backoff, then twice as long, and
// so on; any other answer fails at once, since repeating a refused request
// would not change it. Every outcome is logged without the code.
//
// Set the fields before the gateway is shared; after that it is safe for
// concurrent use.
type WebhookGateway struct {
	// URL receives the POST. Use https: the body holds a live code.
	URL string
	// Token, if set, is sent as "Authorization: Bearer <Token>".
	Token string
	// Timeout bounds each attempt (default DefaultWebhookTimeout).
	Timeout time.Duration
	// Retries is how many times a failed attempt is repeated (default
	// DefaultWebhookRetries; negative means none).
	Retries int
	// Backoff is the wait before the first retry, doubled for each further
	// one (default DefaultWebhookBackoff).
	Backoff time.Duration
	// Texts chooses the message text (nil: DefaultSMSText).
	Texts *Texts
	// Client sends the requests (default http.DefaultClient, with Timeout
	// applied per attempt through the request context).
	Client *http.Client
	// Logger receives the outcome (nil: discarded).
	Logger *slog.Logger
}

type webhookBody struct {
	Number string `json:"number"`
	Code   string `json:"code"`
	Lang   string `json:"lang"`
	Text   string `json:"text"`
}

// errPermanent marks an answer that is not retried.
var errPermanent = errors.New("refused")

// Send posts the code, retrying as described on WebhookGateway.
func (g *WebhookGateway) Send(ctx context.Context, number, code, lang string) error {
	texts := g.Texts
	if texts == nil {
		texts = &defaultTexts
	}
	body, err := json.Marshal(webhookBody{Number: number, Code: code, Lang: lang,
		Text: texts.Message(lang, code)})
	if err != nil {
		return fmt.Errorf("webhook gateway: encoding request: %w", err)
	}
	retries, backoff := g.Retries, g.Backoff
	if retries == 0 {
		retries = DefaultWebhookRetries
	}
	if backoff <= 0 {
		backoff = DefaultWebhookBackoff
	}
	logger := g.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	for attempt := 1; ; attempt++ {
		status, err := g.post(ctx, body)
		if err == nil {
			logger.Info("sms sent", "number", number, "status", status, "attempt", attempt)
			return nil
		}
		if errors.Is(err, errPermanent) || attempt > retries || ctx.Err() != nil {
			logger.Warn("sms not sent", "number", number, "status", status,
				"attempt", attempt, "err", err)
			return fmt.Errorf("webhook gateway: sending to %s: %w", number, err)
		}
		logger.Debug("sms attempt failed", "number", number, "status", status,
			"attempt", attempt, "err", err)

		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("webhook gateway: sending to %s: %w", number, ctx.Err())
		case <-t.C:
		}
		backoff *= 2
	}
}

// post makes one attempt and returns the status (0 for a network error).
// Errors wrapping errPermanent are not worth repeating.
func (g *WebhookGateway) post(ctx context.Context, body []byte) (int, error) {
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = DefaultWebhookTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("building request: %w: %w", err, errPermanent)
	}
	req.Header.Set("Content-Type", "application/json")
	if g.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.Token)
	}
	client := g.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	// Drain a little so the connection can be reused; the body says nothing
	// we act on.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp.StatusCode, nil
	case resp.StatusCode >= 500:
		return resp.StatusCode, fmt.Errorf("server answered %s", resp.Status)
	}
	return resp.StatusCode, fmt.Errorf("server answered %s: %w", resp.Status, errPermanent)
}

var defaultTexts Texts
