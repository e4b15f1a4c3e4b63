package xmpp

// Rosters from address books (DESIGN.md, "Rosters from address books"):
// the Quicksy phone-book IQ to api.<domain>, the shared upload path that
// the ad-hoc command (contacts_command.go) and the HTTPS endpoint
// (contacts_http.go) use too, and the roster pushes and presence that an
// upload, a registration or a deletion causes. The matching itself lives
// in package roster (Book); this file only turns its results into stanzas.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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
// over the account store. It is safe for concurrent use.
type AccountDirectory struct {
	Accounts *auth.Store
}

// Registered returns those of numbers that are phone accounts. It looks
// each number up on its own: a point query on the primary key costs a few
// microseconds in SQLite, so a book of a thousand numbers takes
// milliseconds.
//
// TODO: a batched query on auth.Store (WHERE local IN ...) would save the
// round trips once the store sits on PostgreSQL.
func (d AccountDirectory) Registered(ctx context.Context, numbers []string) ([]string, error) {
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
	res, err := s.srv.uploadBook(ctx, s.bare, entries)
	if err != nil {
		s.replyUploadError(iq, err)
		return
	}
	defer s.srv.applyBookPushes(res.Pushes)
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
	s.reply(iqError(iq, typ, cond, text))
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
// path does. The caller answers the upload and then sends res.Pushes with
// applyBookPushes, so that the answer is the first thing the uploader gets.
//
// The answer is held back until a time that depends only on the number of
// entries (uploadQuantum), so that an uploader cannot tell from the delay
// how many of the numbers matched: a match costs several writes that a
// miss does not. Padding was chosen over doing the same work either way
// because the work for a match is writes to other users' rosters, which
// cannot be faked without side effects. Cancelling ctx ends the wait.
func (srv *Server) uploadBook(ctx context.Context, owner string,
	entries []roster.Entry) (roster.SyncResult, error) {
	start := time.Now()
	if len(entries) > maxUploadEntries {
		return roster.SyncResult{}, errTooManyEntries
	}
	res, err := srv.deps.Book.Sync(ctx, owner, entries)
	padUntil(ctx, start, uploadQuantum(len(entries)))
	if err != nil {
		return res, fmt.Errorf("uploading the address book of %s: %w", owner, err)
	}
	return res, nil
}

// uploadQuantum is the time unit of an answer to an upload of n entries:
// above what storing and matching n numbers costs when all of them match
// for the first time, so that the answer normally comes at exactly one
// quantum. Measured on the 2-core test machine with SQLite: a first upload
// of 1,000 numbers that all match takes 430 ms (a roster item and a push
// version each), one that matches none 25 ms; hence 0.5 ms an entry.
//
// TODO: the wait holds the uploader's session (its other stanzas queue
// behind it); running uploads on a goroutine of their own would free it.
func uploadQuantum(n int) time.Duration {
	return 20*time.Millisecond + time.Duration(n)*500*time.Microsecond
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
// contact to the available sessions of owner.
func (srv *Server) presenceTo(owner, contact string) {
	to := srv.router.available(owner)
	if len(to) == 0 {
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
// available sessions is no longer visible.
func (srv *Server) unavailableTo(owner, contact string) {
	for _, c := range srv.router.available(contact) {
		b := wire.New(wire.NSClient, "presence", "type", "unavailable",
			"from", c.full, "to", owner).Bytes(wire.NSClient)
		for _, sess := range srv.router.available(owner) {
			sess.send(outItem{b: b, stanza: true})
		}
	}
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
