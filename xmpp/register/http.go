package register

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxBody is the default of HTTPOptions.MaxBody.
const DefaultMaxBody = 1 << 10

// HTTPOptions configures NewHTTPHandler.
type HTTPOptions struct {
	// TrustedProxies are the networks of reverse proxies whose
	// X-Forwarded-For header is believed. Without them the client address
	// is RemoteAddr, and the header is ignored, since any client can send
	// it to escape the per-address limits.
	TrustedProxies []netip.Prefix
	// MaxBody bounds a request body, in bytes (default DefaultMaxBody).
	MaxBody int64
	// Logger receives server-side failures (nil: discarded).
	Logger *slog.Logger
}

// NewHTTPHandler returns the HTTP API of the Quicksy client:
//
//	GET /authentication/{number}
//	    sends a code to number (E.164): 200 sent, 400 bad number,
//	    429 limited (Retry-After in seconds), 503 the SMS could not be sent.
//	POST /password
//	    Authorization: base64 of "\x00number\x00code" (the leading NUL is
//	    optional; a "Basic " prefix, and "number:code" after it, are also
//	    accepted); body: the new password. 201 account created, 200
//	    password replaced, 400 malformed, 401 wrong code, 404 no code or
//	    expired, 413 body too large, 429 too many wrong codes (Retry-After:
//	    when a new code may be requested).
//
// The client's language is taken from Accept-Language. The handler does not
// look at the Host; the server mounts it where Quicksy looks for it
// (https://api.<domain>/).
func NewHTTPHandler(reg *Registrar, opts HTTPOptions) http.Handler {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	api := &httpAPI{reg: reg, opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authentication/{number}", api.authentication)
	mux.HandleFunc("POST /password", api.password)
	return mux
}

type httpAPI struct {
	reg  *Registrar
	opts HTTPOptions
}

func (a *httpAPI) authentication(w http.ResponseWriter, r *http.Request) {
	addr := a.clientAddr(r)
	err := a.reg.Start(r.Context(), r.PathValue("number"), addr, r.Header.Get("Accept-Language"))
	var lim *LimitError
	switch {
	case err == nil:
		reply(w, http.StatusOK, "code sent")
	case errors.Is(err, ErrInvalidNumber):
		reply(w, http.StatusBadRequest, "not a valid phone number")
	case errors.As(err, &lim):
		// Bounded by the limits themselves: one line per refused request.
		a.opts.Logger.Warn("verification code refused by a limit", "remote_addr", addr,
			"scope", lim.Scope, "retry_after", lim.RetryAfter)
		w.Header().Set("Retry-After", retrySeconds(lim.RetryAfter))
		reply(w, http.StatusTooManyRequests, "too many codes requested ("+lim.Scope+")")
	case errors.Is(err, ErrSendFailed):
		a.opts.Logger.Warn("sms gateway failed", "remote_addr", addr, "err", err)
		reply(w, http.StatusServiceUnavailable, "the code could not be sent")
	default:
		a.opts.Logger.Error("requesting verification code", "remote_addr", addr, "err", err)
		reply(w, http.StatusInternalServerError, "internal error")
	}
}

func (a *httpAPI) password(w http.ResponseWriter, r *http.Request) {
	number, code, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		reply(w, http.StatusBadRequest, err.Error())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		reply(w, http.StatusRequestEntityTooLarge, "password too long")
		return
	case err != nil:
		reply(w, http.StatusBadRequest, "reading body failed")
		return
	}

	created, err := a.reg.Complete(r.Context(), number, code, string(body))
	switch {
	case err == nil && created:
		reply(w, http.StatusCreated, "account created")
	case err == nil:
		reply(w, http.StatusOK, "password changed")
	case errors.Is(err, ErrInvalidNumber):
		reply(w, http.StatusBadRequest, "not a valid phone number")
	case errors.Is(err, ErrBadPassword):
		reply(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrWrongCode):
		// At most max_attempts lines per code; the code is never logged.
		a.opts.Logger.Warn("wrong verification code", "remote_addr", a.clientAddr(r))
		reply(w, http.StatusUnauthorized, "wrong code")
	case errors.Is(err, ErrExpired):
		reply(w, http.StatusNotFound, "code expired or not requested")
	case errors.Is(err, ErrTooManyAttempts):
		a.tooManyAttempts(w, r, number)
	default:
		a.opts.Logger.Error("completing registration", "remote_addr", a.clientAddr(r), "err", err)
		reply(w, http.StatusInternalServerError, "internal error")
	}
}

// tooManyAttempts answers 429 with the time after which a new code can be
// requested, the only way forward.
func (a *httpAPI) tooManyAttempts(w http.ResponseWriter, r *http.Request, number string) {
	wait := time.Second
	if e164, err := a.reg.Normalize(number); err == nil {
		if d, err := a.reg.Codes.NumberRetryAfter(r.Context(), e164); err == nil && d > wait {
			wait = d
		}
	}
	w.Header().Set("Retry-After", retrySeconds(wait))
	reply(w, http.StatusTooManyRequests, "too many wrong codes; request a new code")
}

func reply(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	io.WriteString(w, text+"\n")
}

// retrySeconds writes d for Retry-After: whole seconds, rounded up, at
// least 1.
func retrySeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

const maxAuthorization = 512

// parseAuthorization reads Quicksy's Authorization header: base64 of
// "\x00number\x00code" like SASL PLAIN (RFC 4616) with an empty authzid,
// or "number\x00code". After a "Basic " prefix, "number:code" is accepted
// too, so that curl -u works.
func parseAuthorization(v string) (number, code string, err error) {
	v = strings.TrimSpace(v)
	basic := false
	if len(v) > 6 && strings.EqualFold(v[:6], "basic ") {
		v, basic = strings.TrimSpace(v[6:]), true
	}
	if v == "" {
		return "", "", errors.New("missing Authorization header")
	}
	if len(v) > maxAuthorization {
		return "", "", errors.New("Authorization header too long")
	}
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(v)
	}
	if err != nil {
		return "", "", fmt.Errorf("Authorization is not base64")
	}
	s := strings.TrimPrefix(string(raw), "\x00")
	number, code, ok := strings.Cut(s, "\x00")
	if !ok && basic {
		number, code, ok = strings.Cut(s, ":")
	}
	if !ok || number == "" || code == "" || strings.ContainsRune(code, 0) {
		return "", "", errors.New("Authorization must hold the number and the code")
	}
	return number, code, nil
}

// clientAddr returns the address limits are counted against: RemoteAddr,
// or, if that is a trusted proxy, the rightmost X-Forwarded-For entry that
// is not a trusted proxy itself.
func (a *httpAPI) clientAddr(r *http.Request) netip.Addr {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		addr = ap.Addr().Unmap()
	} else if ip, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		addr = ip.Unmap()
	}
	if !a.trusted(addr) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if h == "" {
			continue
		}
		ip, err := netip.ParseAddr(h)
		if err != nil {
			return addr // a proxy we trust wrote garbage; count against it
		}
		addr = ip.Unmap()
		if !a.trusted(addr) {
			return addr
		}
	}
	return addr
}

func (a *httpAPI) trusted(addr netip.Addr) bool {
	for _, p := range a.opts.TrustedProxies {
		if addr.IsValid() && p.Contains(addr) {
			return true
		}
	}
	return false
}
