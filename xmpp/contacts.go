package xmpp

// Rosters from address books (DESIGN.md, "Rosters from address books"):
// the Quicksy phone-book IQ to api.<domain>, the shared upload path that
// the ad-hoc command (contacts_command.go) and the HTTPS endpoint
// (contacts_http.go) use too, and the roster pushes and presence that an
// upload, a registration or a deletion causes. The matching itself lives
// in package roster (Book); this file only turns its results into stanzas.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/twotick/twotick/roster"
	"github.com/twotick/twotick/xmpp/auth"
	"github.com/twotick/twotick/xmpp/wire"
)

// nsQuicksy is the namespace of the Quicksy phone-book exchange.
const nsQuicksy = "im.quicksy.synchronization:0"

// maxUploadEntries caps the lines of one upload, whatever its path. The
// daily limit counts only new numbers; this bounds the work of parsing and
// normalising a single request.
const maxUploadEntries = 10000

// errTooManyEntries refuses an upload longer than maxUploadEntries.
var errTooManyEntries = fmt.Errorf("more than %d entries in one upload", maxUploadEntries)

// AccountDirectory is the roster.Directory of registered phone accounts,
// over the account store. It is a roster.Lister: the Book reads every
// phone number once and then matches books in memory. It is safe for
// concurrent use.
type AccountDirectory struct {
	Accounts *auth.Store
	// DB, if set, is the database of Accounts: the numbers of a book are
	// then matched with one query instead of one lookup each.
	DB *sql.DB
}

// Registered returns those of numbers that are phone accounts. With DB set
// it asks the account table once for the whole book, passing the numbers
// as one JSON array (json_each): a thousand point lookups inside SQLite
// take about a millisecond, while a thousand queries from Go take ten.
//
// TODO: the query belongs in auth.Store (a batched Registered there would
// keep the table's name in its package).
func (d AccountDirectory) Registered(ctx context.Context, numbers []string) ([]string, error) {
	if d.DB != nil {
		return d.registeredBatch(ctx, numbers)
	}
	var out []string
	for _, n := range numbers {
		a, err := d.Accounts.Lookup(ctx, n)
		if errors.Is(err, auth.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("looking up registered numbers: %w", err)
		}
		if a.Kind == auth.KindPhone {
			out = append(out, n)
		}
	}
	return out, nil
}

// AllRegistered calls fn with the number of every phone account.
func (d AccountDirectory) AllRegistered(ctx context.Context, fn func(number string)) error {
	if d.DB == nil {
		list, err := d.Accounts.List(ctx)
		if err != nil {
			return fmt.Errorf("listing registered numbers: %w", err)
		}
		for _, a := range list {
			if a.Kind == auth.KindPhone {
				fn(a.Local)
			}
		}
		return nil
	}
	rows, err := d.DB.QueryContext(ctx, `SELECT local FROM auth_accounts WHERE kind = ?`,
		string(auth.KindPhone))
	if err != nil {
		return fmt.Errorf("listing registered numbers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return fmt.Errorf("listing registered numbers: %w", err)
		}
		fn(n)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing registered numbers: %w", err)
	}
	return nil
}

func (d AccountDirectory) registeredBatch(ctx context.Context, numbers []string) ([]string, error) {
	if len(numbers) == 0 {
		return nil, nil
	}
	js, err := json.Marshal(numbers)
	if err != nil {
		return nil, fmt.Errorf("looking up registered numbers: %w", err)
	}
	rows, err := d.DB.QueryContext(ctx, `SELECT local FROM auth_accounts
		WHERE local IN (SELECT value FROM json_each(?)) AND kind = ?`,
		string(js), string(auth.KindPhone))
	if err != nil {
		return nil, fmt.Errorf("looking up registered numbers: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("looking up registered numbers: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up registered numbers: %w", err)
	}
	return out, nil
}

// apiJID is the address of the contact discovery service, as Quicksy
// clients expect it.
func (srv *Server) apiJID() string { return "api." + srv.domain }

// apiIQ answers an IQ get or set addressed to api.<domain>.
func (s *Session) apiIQ(iq *wire.Element) {
	if s.srv.deps.Book == nil {
		s.reply(iqError(iq, "cancel", "service-unavailable", ""))
		return
	}
	p := iq.Children()[0]
	switch {
	case p.Name.Space == nsDiscoInfo && p.Get("node") == "":
		q := wire.New(nsDiscoInfo, "query")
		q.Add(wire.New(nsDiscoInfo, "identity", "category", "directory", "type", "user",
			"name", "Contact discovery"))
		q.Add(wire.New(nsDiscoInfo, "feature", "var", nsDiscoInfo))
		q.Add(wire.New(nsDiscoInfo, "feature", "var", nsQuicksy))
		s.reply(iqResult(iq, q))
	case p.Name.Space == nsDiscoItems && p.Get("node") == "":
		s.reply(iqResult(iq, wire.New(nsDiscoItems, "query")))
	case p.Name.Space == nsQuicksy && p.Name.Local == "phone-book":
		s.phoneBookIQ(iq, p)
	default:
		s.reply(iqError(iq, "cancel", "service-unavailable", ""))
	}
}

// phoneBookIQ handles the Quicksy upload: the client sends every number of
// its address book (already in E.164) with the 'ver' of the last answer
// it got. The answer lists the numbers that are accounts, each with its
// JID, or is empty when that list still hashes to ver (roster.QuicksyVer).
// The book is stored, replacing the previous one, either way.
func (s *Session) phoneBookIQ(iq, book *wire.Element) {
	var entries []roster.Entry
	for _, e := range book.Children() {
		if e.Name.Space == nsQuicksy && e.Name.Local == "entry" {
			entries = append(entries, roster.Entry{Number: e.Get("number")})
		}
	}
	ctx, cancel := storeCtx()
	defer cancel()
	res, pushes, err := s.srv.uploadBook(ctx, s.bare, entries)
	if err != nil {
		s.replyUploadError(iq, err)
		return
	}
	defer func() { s.srv.applyBookPushes(pushes()) }()
	if ver := book.Get("ver"); ver != "" && ver == res.Ver {
		s.reply(iqResult(iq, nil))
		return
	}
	out := wire.New(nsQuicksy, "phone-book", "ver", res.Ver)
	for _, m := range res.Matches {
		out.Add(wire.New(nsQuicksy, "entry", "number", m.Number).
			AddText(nsQuicksy, "jid", m.JID))
	}
	s.reply(iqResult(iq, out))
}

// replyUploadError answers a refused upload with its stanza error.
func (s *Session) replyUploadError(iq *wire.Element, err error) {
	typ, cond, text := uploadErrorCondition(err)
	if cond == "internal-server-error" {
		s.log.Error("storing an address book failed", "err", err)
	}
	s.srv.warnLimit(s.log, s.remote(), err) // s.log names the account
	s.reply(iqError(iq, typ, cond, text))
}

// remote returns the address of the session's client, or the zero
// address while the session waits for resumption.
func (s *Session) remote() netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil {
		return netip.Addr{}
	}
	return s.c.remote
}

// warnLimit logs, at Warn and rate-limited per address, an upload that
// the daily lookup limit refused, if err is one: an account that keeps
// looking up new numbers may be trying to learn who is registered.
func (srv *Server) warnLimit(log *slog.Logger, addr netip.Addr, err error, args ...any) {
	var lim *roster.LimitError
	if errors.As(err, &lim) {
		srv.warn(log, addr, "address-book upload refused: daily lookup limit reached",
			append(args, "new_numbers", lim.New, "left_today", lim.Left,
				"retry_at", lim.RetryAt.UTC().Format(time.RFC3339))...)
	}
}

// uploadErrorCondition maps an upload error to a stanza error (RFC 6120
// § 8.3.3). The text of the daily limit says when to retry.
func uploadErrorCondition(err error) (typ, cond, text string) {
	var lim *roster.LimitError
	switch {
	case errors.As(err, &lim):
		return "wait", "policy-violation", limitText(lim)
	case errors.Is(err, roster.ErrNotPhoneAccount):
		return "cancel", "not-allowed", "only phone accounts have an address book"
	case errors.Is(err, errTooManyEntries):
		return "modify", "resource-constraint", errTooManyEntries.Error()
	}
	return "wait", "internal-server-error", ""
}

// limitText tells the user of a refused upload when to try again.
func limitText(lim *roster.LimitError) string {
	return fmt.Sprintf("daily limit of new contact lookups reached (%d new numbers, %d left "+
		"today); retry after %s", lim.New, lim.Left, lim.RetryAt.UTC().Format(time.RFC3339))
}

// uploadBook replaces owner's address book with entries, as every upload
// path does. It returns the answer to the upload (res without Pushes) or
// its error, and pushes, which waits until the roster changes are stored
// and returns them. The caller answers first, then sends pushes() with
// applyBookPushes, so that the answer is the first thing the uploader
// gets; pushes may be called once, and must be before ctx ends.
//
// The answer is held back until a time that depends only on the number of
// entries (uploadQuantum), so that an uploader cannot tell from the delay
// how many of the numbers matched: a match costs several writes that a
// miss does not. Those writes come after the answer is known
// (roster.Book.SyncEarly), so the time to cover is that of normalising,
// storing and matching the book, which does not depend on the matches.
// Padding was chosen over doing the same work either way because the work
// for a match is writes to other users' rosters, which cannot be faked
// without side effects. Cancelling ctx ends the wait.
func (srv *Server) uploadBook(ctx context.Context, owner string,
	entries []roster.Entry) (res roster.SyncResult, pushes func() []roster.Push, err error) {
	start := time.Now()
	if len(entries) > maxUploadEntries {
		return roster.SyncResult{}, noPushes, errTooManyEntries
	}
	early := make(chan roster.SyncResult, 1)
	done := make(chan struct{})
	var final roster.SyncResult
	var ferr error
	go func() {
		defer close(done)
		final, ferr = srv.deps.Book.SyncEarly(ctx, owner, entries,
			func(r roster.SyncResult) { early <- r })
	}()
	select {
	case res = <-early:
	case <-done:
		select {
		case res = <-early: // answered, then failed: logged by pushes
		default:
			res, err = final, ferr
		}
	}
	padUntil(ctx, start, uploadQuantum(len(entries)))
	if err != nil {
		return res, noPushes, fmt.Errorf("uploading the address book of %s: %w", owner, err)
	}
	return res, func() []roster.Push {
		<-done
		if ferr != nil {
			srv.log.Error("storing an address book failed after its answer", "err", ferr,
				"owner", owner)
			return nil
		}
		return final.Pushes
	}, nil
}

func noPushes() []roster.Push { return nil }

// uploadQuantum is the time unit of an answer to an upload of n entries:
// above what storing and matching n numbers costs when all of them match
// for the first time, so that the answer normally comes at exactly one
// quantum. The roster writes that grow with the matches come after the
// answer (see uploadBook); what remains before it still grows a little
// with them (a match is an item to prepare, a miss is not). Measured on
// the shared 2-core test machine (docs/contacts.md, "Performance"), the
// answer to a first upload of 1,000 numbers is known after 1.2 to 2.6 ms
// when none or 7% match and 4.3 to 6.6 ms when all do; hence 2 ms and
// 8 µs an entry, 10 ms for 1,000.
//
// TODO: the wait holds the uploader's session (its other stanzas queue
// behind it); running uploads on a goroutine of their own would free it.
func uploadQuantum(n int) time.Duration {
	return 2*time.Millisecond + time.Duration(n)*8*time.Microsecond
}

// padUntil waits until the next whole multiple of quantum after start. Work
// that overruns one quantum (a loaded machine) is rounded up to two, and so
// on, so that even then the delay shows only coarse steps.
func padUntil(ctx context.Context, start time.Time, quantum time.Duration) {
	elapsed := time.Since(start)
	steps := elapsed/quantum + 1
	t := time.NewTimer(steps*quantum - elapsed)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// applyBookPushes sends the roster pushes of an address book change to the
// owners' sessions (RFC 6121 § 2.1.6), then the presence the changes call
// for: an owner who gains the contact's presence (the item became both)
// gets the contact's current presence at once, and one who loses it gets
// unavailable, as RFC 6121 § 3.1.6 and § 3.3.3 do for subscriptions. A pair
// that becomes mutual has a push on each side, so presence flows both ways.
func (srv *Server) applyBookPushes(pushes []roster.Push) {
	for _, p := range pushes {
		srv.pushRoster(p.Owner, p.Item, p.Ver)
	}
	for _, p := range pushes {
		had := p.Before == roster.To || p.Before == roster.Both
		has := p.Item.Subscription == roster.To || p.Item.Subscription == roster.Both
		switch {
		case has && !had:
			srv.presenceTo(p.Owner, p.Item.JID)
		case had && !has:
			srv.unavailableTo(p.Owner, p.Item.JID)
		}
	}
}

// presenceTo sends the current presence of every available session of
// contact to the available sessions of owner, unless either blocks the
// other (XEP-0191: no presence passes between them).
func (srv *Server) presenceTo(owner, contact string) {
	to := srv.router.available(owner)
	if len(to) == 0 || srv.blockedBetweenBare(owner, contact) {
		return
	}
	for _, c := range srv.router.available(contact) {
		if b := c.currentPresence(); b != nil {
			for _, sess := range to {
				sess.send(outItem{b: b, stanza: true})
			}
		}
	}
}

// unavailableTo tells owner's available sessions that each of contact's
// available sessions is no longer visible. A blocked pair gets nothing: the
// block already sent unavailable, and no presence passed since.
func (srv *Server) unavailableTo(owner, contact string) {
	if srv.blockedBetweenBare(owner, contact) {
		return
	}
	for _, c := range srv.router.available(contact) {
		b := wire.New(wire.NSClient, "presence", "type", "unavailable",
			"from", c.full, "to", owner).Bytes(wire.NSClient)
		for _, sess := range srv.router.available(owner) {
			sess.send(outItem{b: b, stanza: true})
		}
	}
}

// blockedBetweenBare is blockedBetween for two bare JIDs as strings; a JID
// that does not parse counts as blocked, so that nothing is sent to it.
func (srv *Server) blockedBetweenBare(a, b string) bool {
	ja, err := jid.Parse(a)
	if err != nil {
		return true
	}
	jb, err := jid.Parse(b)
	if err != nil {
		return true
	}
	return srv.blockedBetween(ja, jb)
}

// AccountChanged keeps address-book rosters in step with the account
// store: a new phone account joins the rosters of the users whose books
// hold its number, and a deleted one leaves them. Bot accounts and other
// changes are ignored, as is every change when the server has no Book.
// Set it (with CloseSessions) as the account store's OnChange; it blocks
// for the roster transaction, and logs rather than returns its errors
// because the account change has already been committed.
func (srv *Server) AccountChanged(local string, c auth.Change) {
	if srv.deps.Book == nil || !strings.HasPrefix(local, "+") {
		return
	}
	ctx, cancel := storeCtx()
	defer cancel()
	var pushes []roster.Push
	var err error
	switch c {
	case auth.ChangeCreated:
		pushes, err = srv.deps.Book.Joined(ctx, local)
	case auth.ChangeDeleted:
		pushes, err = srv.deps.Book.Left(ctx, local)
	default:
		return
	}
	if err != nil {
		srv.log.Error("updating address-book rosters failed", "err", err, "change", c.String())
		return
	}
	srv.applyBookPushes(pushes)
}

// PollQueuedPushes sends, every interval until ctx ends, the roster pushes
// that other processes left in the database (roster.Book.Queue): the
// command line changes rosters when it creates, imports or deletes
// accounts, but only the server has the sessions to push to. Polling a
// small table was chosen over a socket between the two because it needs
// no listener, works when the server starts after the command ran, and
// loses nothing if the server is down. A failure is logged and retried at
// the next tick.
func (srv *Server) PollQueuedPushes(ctx context.Context, interval time.Duration) {
	if srv.deps.Book == nil {
		return
	}
	// The Book's in-memory index is loaded now rather than at the first
	// upload, which would otherwise wait for it (a second for a million
	// accounts).
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	start := time.Now()
	if err := srv.deps.Book.Warm(wctx); err != nil {
		srv.log.Error("loading the address-book index failed", "err", err)
	} else {
		srv.log.Info("address-book index loaded", "took", time.Since(start).Round(time.Millisecond))
	}
	cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := storeCtx()
		pushes, err := srv.deps.Book.TakeQueued(sctx)
		cancel()
		if err != nil {
			srv.log.Error("taking queued roster pushes failed", "err", err)
			continue
		}
		srv.applyBookPushes(pushes)
	}
}
