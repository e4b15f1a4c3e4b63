package xmpp

// The HTTPS endpoint for address book uploads, for scripts and apps that
// do not speak XMPP: POST /contacts with a vCard file, a CSV file or plain
// lines, authenticated with HTTP Basic (RFC 7617) against the account
// store. docs/contacts.md describes it for users.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twotick/twotick/roster"
	"github.com/twotick/twotick/xmpp/auth"
)

// contactsPath is the path of the upload endpoint.
const contactsPath = "/contacts"

// Limits of an HTTP upload. A vCard export with photos is large, so the
// body may be; a property line longer than maxVCardLine (a photo) is read
// and dropped.
const (
	maxUploadBytes = 8 << 20
	maxVCardLine   = 64 << 10
)

// ContactsHTTP is the HTTPS listener for address book uploads. Create it
// with Server.ListenContactsHTTP; it serves until Shutdown.
type ContactsHTTP struct {
	hs   *http.Server
	ln   net.Listener
	done chan struct{} // closed when the serving goroutine has returned
	once sync.Once
	err  error
}

// ListenContactsHTTP listens on addr with the server's TLS configuration
// and serves the upload endpoint (ContactsHandler) on it in a goroutine
// that Shutdown stops.
func (srv *Server) ListenContactsHTTP(addr string) (*ContactsHTTP, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("contacts listener on %s: %w", addr, err)
	}
	tc := srv.deps.TLS.Clone()
	// The XMPP configuration offers only xmpp-client by ALPN; an HTTP
	// client offering http/1.1 would be refused the handshake.
	tc.NextProtos = []string{"http/1.1"}
	h := &ContactsHTTP{
		hs: &http.Server{
			Handler:           srv.ContactsHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       time.Minute,
			WriteTimeout:      time.Minute,
		},
		ln:   tls.NewListener(ln, tc),
		done: make(chan struct{}),
	}
	go func() {
		defer close(h.done)
		if err := h.hs.Serve(h.ln); !errors.Is(err, http.ErrServerClosed) {
			srv.log.Error("contacts listener stopped", "err", err)
		}
	}()
	srv.log.Info("listening", "addr", ln.Addr().String(), "kind", "contacts_https")
	return h, nil
}

// Addr is the address the endpoint listens on.
func (h *ContactsHTTP) Addr() net.Addr { return h.ln.Addr() }

// Shutdown stops accepting, waits for the uploads in progress to finish or
// for ctx to end, and then for the serving goroutine. Later calls return
// the first call's result.
func (h *ContactsHTTP) Shutdown(ctx context.Context) error {
	h.once.Do(func() {
		h.err = h.hs.Shutdown(ctx)
		if h.err != nil {
			h.hs.Close()
		}
		<-h.done
	})
	return h.err
}

// ContactsHandler returns the upload endpoint: POST /contacts with HTTP
// Basic credentials of a phone account (the number, or its bare JID, and
// the password). The body is a vCard file (text/vcard), CSV with the
// number first and the name second (text/csv), or lines as the ad-hoc
// command takes them (text/plain, see ParseNumberLines); another type is
// read as vCard if it starts like one and as lines otherwise. The answer is
// JSON: {"ver", "matches": [{"number", "jid"}], "skipped", "over_cap"}.
//
// Passwords are checked by a SASL PLAIN exchange, so failed attempts count
// in the same throttle as failed logins, and an unknown account costs the
// same work as a wrong password.
func (srv *Server) ContactsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(contactsPath, srv.serveContacts)
	return mux
}

func (srv *Server) serveContacts(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	if srv.deps.Book == nil {
		http.Error(w, "contact discovery is disabled", http.StatusNotFound)
		return
	}
	local, ok := srv.httpAuth(w, r)
	if !ok {
		return
	}
	entries, err := readUpload(r.Header.Get("Content-Type"),
		http.MaxBytesReader(w, r.Body, maxUploadBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge), errors.Is(err, errTooManyEntries):
		http.Error(w, fmt.Sprintf("upload too large: at most %d bytes and %d entries",
			maxUploadBytes, maxUploadEntries), http.StatusRequestEntityTooLarge)
		return
	case errors.Is(err, errUnsupportedType):
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return
	case err != nil:
		http.Error(w, "reading the upload: "+err.Error(), http.StatusBadRequest)
		return
	}
	res, pushes, err := srv.uploadBook(r.Context(), local+"@"+srv.domain, entries)
	if err != nil {
		srv.warnLimit(srv.log, httpRemote(r), err, "jid", local+"@"+srv.domain)
		srv.httpUploadError(w, err)
		return
	}
	type match struct {
		Number string `json:"number"`
		JID    string `json:"jid"`
	}
	out := struct {
		Ver     string  `json:"ver"`
		Matches []match `json:"matches"`
		Skipped int     `json:"skipped"`
		OverCap int     `json:"over_cap"`
	}{Ver: res.Ver, Matches: []match{}, Skipped: res.Skipped, OverCap: res.OverCap}
	for _, m := range res.Matches {
		out.Matches = append(out.Matches, match{m.Number, m.JID})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
	srv.applyBookPushes(pushes())
}

// httpAuth checks the request's Basic credentials and returns the
// account's localpart, or answers the request itself and reports false.
func (srv *Server) httpAuth(w http.ResponseWriter, r *http.Request) (string, bool) {
	user, password, ok := r.BasicAuth()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="twotick", charset="UTF-8"`)
		http.Error(w, "credentials required", http.StatusUnauthorized)
		return "", false
	}
	addr := httpRemote(r)
	x, err := srv.deps.SASL.Start(r.Context(), auth.MechPlain, r.TLS, addr)
	if err == nil {
		_, _, err = x.Step(r.Context(), []byte("\x00"+user+"\x00"+password))
	}
	var f *auth.Failure
	switch {
	case err == nil:
		return x.Username(), true
	case errors.As(err, &f) && f.Condition == auth.CondTemporaryAuthFailure:
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
			http.Error(w, "too many failed attempts; try again later", http.StatusTooManyRequests)
			return "", false
		}
		srv.log.Error("checking contacts upload credentials failed", "err", err)
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return "", false
	case errors.As(err, &f) && f.Condition == auth.CondEncryptionRequired:
		http.Error(w, "use HTTPS", http.StatusForbidden)
		return "", false
	}
	reason := "unknown"
	if f != nil {
		reason = f.Reason
	}
	// Like a failed XMPP login: at Warn, rate-limited per address, no secret.
	srv.warn(srv.log, addr, "contacts upload authentication failed", "reason", reason)
	w.Header().Set("WWW-Authenticate", `Basic realm="twotick", charset="UTF-8"`)
	http.Error(w, "wrong number or password", http.StatusUnauthorized)
	return "", false
}

// httpRemote returns the client's address of r, or the zero address.
func httpRemote(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// httpUploadError answers a refused upload with its HTTP status.
func (srv *Server) httpUploadError(w http.ResponseWriter, err error) {
	var lim *roster.LimitError
	switch {
	case errors.As(err, &lim):
		secs := max(int(math.Ceil(time.Until(lim.RetryAt).Seconds())), 1)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		http.Error(w, limitText(lim), http.StatusTooManyRequests)
	case errors.Is(err, roster.ErrNotPhoneAccount):
		http.Error(w, "only phone accounts have an address book", http.StatusForbidden)
	case errors.Is(err, errTooManyEntries):
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
	case errors.Is(err, context.Canceled):
		// The client went away during the wait; nobody reads the answer.
	default:
		srv.log.Error("storing an address book failed", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

var errUnsupportedType = errors.New("unsupported content type: send text/vcard, text/csv " +
	"or text/plain")

// readUpload reads the entries of an upload body of the given media type.
func readUpload(contentType string, body io.Reader) ([]roster.Entry, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if contentType == "" || err != nil {
		mt = ""
	}
	br := bufio.NewReader(body)
	switch mt {
	case "text/vcard", "text/x-vcard", "text/directory":
		return parseVCards(br)
	case "text/csv":
		return parseCSV(br)
	case "text/plain":
	case "", "application/octet-stream", "application/x-www-form-urlencoded":
		// curl --data-binary sends the last without -H; look at the body.
		head, _ := br.Peek(16)
		head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
		if bytes.HasPrefix(bytes.ToUpper(bytes.TrimSpace(head)), []byte("BEGIN:VCARD")) {
			return parseVCards(br)
		}
	default:
		return nil, errUnsupportedType
	}
	return parseLines(br)
}

// parseLines reads the body as ParseNumberLines lines.
func parseLines(r io.Reader) ([]roster.Entry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxVCardLine)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > maxUploadEntries {
			return nil, errTooManyEntries
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ParseNumberLines(lines), nil
}

// parseCSV reads records of a number and an optional name. A first record
// whose first field is a column title ("number", "phone", "tel") is
// skipped.
func parseCSV(r io.Reader) ([]roster.Entry, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	var out []roster.Entry
	for first := true; ; first = false {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		num := strings.TrimSpace(strings.TrimPrefix(rec[0], "\ufeff"))
		if first {
			switch strings.ToLower(num) {
			case "number", "phone", "tel", "telephone":
				continue
			}
		}
		if num == "" {
			continue
		}
		e := roster.Entry{Number: num}
		if len(rec) > 1 {
			e.Name = strings.TrimSpace(rec[1])
		}
		if out = append(out, e); len(out) > maxUploadEntries {
			return nil, errTooManyEntries
		}
	}
}

// parseVCards reads the TEL properties of a vCard file (RFC 6350, and the
// 2.1 and 3.0 files phones export), each with the card's FN as its name.
// Folded lines are unfolded (RFC 6350 § 3.2); quoted-printable values of
// vCard 2.1 are decoded, soft line breaks included. Other properties are
// ignored, and a line longer than maxVCardLine (a photo) is dropped.
func parseVCards(r io.Reader) ([]roster.Entry, error) {
	var (
		out  []roster.Entry
		name string
		tels []string
	)
	flush := func() error {
		for _, t := range tels {
			out = append(out, roster.Entry{Number: t, Name: name})
		}
		name, tels = "", nil
		if len(out) > maxUploadEntries {
			return errTooManyEntries
		}
		return nil
	}
	err := unfoldVCard(r, func(line string) error {
		prop, params, value := splitVCardLine(line)
		switch prop {
		case "BEGIN", "END":
			if strings.EqualFold(value, "VCARD") {
				return flush()
			}
		case "FN":
			name = vcardText(params, value)
		case "TEL":
			v := vcardText(params, value)
			if len(v) > 4 && strings.EqualFold(v[:4], "tel:") {
				v, _, _ = strings.Cut(v[4:], ";") // RFC 3966 parameters
			}
			if v = strings.TrimSpace(v); v != "" {
				tels = append(tels, v)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, flush()
}

// unfoldVCard calls fn with each logical line of r.
func unfoldVCard(r io.Reader, fn func(string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxUploadBytes)
	var cur strings.Builder
	overlong := false
	emit := func() error {
		defer func() { cur.Reset(); overlong = false }()
		if cur.Len() == 0 || overlong {
			return nil
		}
		return fn(cur.String())
	}
	add := func(s string) {
		if cur.Len()+len(s) > maxVCardLine {
			overlong = true
			return
		}
		cur.WriteString(s)
	}
	softBreak := false // the last line was quoted-printable ending in '='
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case softBreak:
			add(line)
		case len(line) > 0 && (line[0] == ' ' || line[0] == '\t'):
			add(line[1:])
		default:
			if err := emit(); err != nil {
				return err
			}
			add(strings.TrimPrefix(line, "\ufeff"))
		}
		s := cur.String()
		softBreak = strings.HasSuffix(s, "=") &&
			strings.Contains(strings.ToUpper(s[:strings.IndexByte(s+":", ':')]), "QUOTED-PRINTABLE")
		if softBreak {
			cur.Reset()
			cur.WriteString(strings.TrimSuffix(s, "="))
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return emit()
}

// splitVCardLine splits "group.NAME;PARAMS:value" into the upper-case
// property name without its group, the parameters, and the value.
func splitVCardLine(line string) (prop, params, value string) {
	head, value, ok := strings.Cut(line, ":")
	if !ok {
		return "", "", ""
	}
	prop, params, _ = strings.Cut(head, ";")
	if i := strings.LastIndexByte(prop, '.'); i >= 0 {
		prop = prop[i+1:]
	}
	return strings.ToUpper(strings.TrimSpace(prop)), strings.ToUpper(params), value
}

// vcardText decodes a text value: quoted-printable if the parameters say
// so, then the backslash escapes of RFC 6350 § 3.4.
func vcardText(params, value string) string {
	if strings.Contains(params, "QUOTED-PRINTABLE") {
		if b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(value))); err == nil {
			value = string(b)
		}
	}
	var sb strings.Builder
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c != '\\' || i+1 == len(value) {
			sb.WriteByte(c)
			continue
		}
		i++
		switch value[i] {
		case 'n', 'N':
			sb.WriteByte(' ')
		default:
			sb.WriteByte(value[i])
		}
	}
	return strings.TrimSpace(sb.String())
}
