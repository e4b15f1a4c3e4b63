package roster

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// bookSchema holds uploaded address books and the daily lookup quota. A
// book row is one E.164 number of the owner's book with the name the owner
// gave it; the quota table lists the numbers an owner looked up for the
// first time on one UTC day.
const bookSchema = `
CREATE TABLE IF NOT EXISTS roster_book (
	owner  TEXT NOT NULL,
	number TEXT NOT NULL,
	name   TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (owner, number)
);
CREATE INDEX IF NOT EXISTS roster_book_number ON roster_book (number);
CREATE TABLE IF NOT EXISTS roster_book_quota (
	owner  TEXT NOT NULL,
	day    TEXT NOT NULL,
	number TEXT NOT NULL,
	PRIMARY KEY (owner, day, number)
);
`

// DefaultDailyLookups is how many new distinct numbers an account may look
// up per UTC day when NewBook is given no limit.
const DefaultDailyLookups = 2048

// Errors returned by Book.
var (
	// ErrLookupLimit is wrapped by *LimitError.
	ErrLookupLimit = errors.New("daily contact lookup limit reached")
	// ErrNotPhoneAccount: the owner's JID has no phone number (a bot), so
	// it has no address book.
	ErrNotPhoneAccount = errors.New("account has no phone number")
)

// LimitError refuses an upload that would take the owner past the daily
// limit of new numbers. The server answers policy-violation and says when to
// retry.
type LimitError struct {
	Owner   string
	New     int       // new numbers in the refused upload
	Left    int       // lookups left today
	RetryAt time.Time // start of the next UTC day
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s uploaded %d new numbers with %d lookups left today; retry after %s",
		e.Owner, e.New, e.Left, e.RetryAt.Format(time.RFC3339))
}

func (e *LimitError) Unwrap() error { return ErrLookupLimit }

// Directory answers which phone numbers belong to accounts. The account
// store implements it; the roster package never sees accounts otherwise.
type Directory interface {
	// Registered returns those of numbers (E.164) that are registered
	// accounts, in any order.
	Registered(ctx context.Context, numbers []string) ([]string, error)
}

// Entry is one line of an uploaded address book.
type Entry struct {
	Number string // as the user wrote it: "+49 30 1234567", "030 1234567"
	Name   string // the user's name for it; "" if none
}

// Match is a number of the uploaded book that belongs to an account.
type Match struct {
	Number string // E.164
	JID    string // bare JID of the account
}

// Push is one roster change that the server must push to Owner's sessions
// (RFC 6121 § 2.1.6). Item.Subscription is Remove for a removed item. Before
// is the subscription before the change, so that the server can send
// presence when a contact gains or loses it (both ways for Both).
type Push struct {
	Owner  string
	Item   Item
	Ver    string
	Before Subscription
}

// SyncResult is the outcome of an upload.
type SyncResult struct {
	Matches []Match // the book's numbers that are accounts, sorted by number
	Ver     string  // QuicksyVer of Matches
	Skipped int     // entries that are not valid numbers; never stored
	OverCap int     // matches left out of the roster because it was full
	Pushes  []Push  // roster changes for the uploader and their contacts
}

// Book keeps uploaded address books and turns them into roster items: a
// number that belongs to an account becomes an item with Origin OriginBook,
// named as in the book. Two users who hold each other's numbers get
// subscription both; a one-sided entry stays none, so it can be messaged but
// shows no presence. Items the owner added or edited (OriginManual) keep
// their subscription: the book only marks them as in the book.
//
// Book is safe for concurrent use.
type Book struct {
	store  *Store
	dir    Directory
	domain string
	limit  int
	now    func() time.Time
}

// NewBook returns a Book over the store's tables. domain is the server's
// domain: an account's JID is its E.164 number "@" domain. dailyLimit <= 0
// means DefaultDailyLookups.
func NewBook(store *Store, dir Directory, domain string, dailyLimit int) *Book {
	if dailyLimit <= 0 {
		dailyLimit = DefaultDailyLookups
	}
	return &Book{store: store, dir: dir, domain: domain, limit: dailyLimit, now: time.Now}
}

// ownerNumber returns the E.164 number of a phone account's bare JID.
func ownerNumber(owner string) (string, error) {
	local, _, ok := strings.Cut(owner, "@")
	if !ok || !IsE164(local) {
		return "", fmt.Errorf("%s: %w", owner, ErrNotPhoneAccount)
	}
	return local, nil
}

// Normalize turns uploaded entries into E.164 numbers, reading numbers
// without a country code as numbers of region. Entries already in E.164
// skip libphonenumber: a well-formed number that is not valid simply
// matches no account. Invalid entries are counted in skipped and dropped;
// a number listed twice keeps its first non-empty name.
func Normalize(entries []Entry, region string) (book map[string]string, skipped int) {
	book = make(map[string]string, len(entries))
	for _, e := range entries {
		n := strings.TrimSpace(e.Number)
		if !IsE164(n) {
			var err error
			if n, err = ParsePhone(n, region); err != nil {
				skipped++
				continue
			}
		}
		name := strings.TrimSpace(e.Name)
		if len(name) > maxNameBytes {
			name = name[:maxNameBytes]
		}
		if old, ok := book[n]; !ok || old == "" {
			book[n] = name
		}
	}
	return book, skipped
}

// Sync replaces owner's address book with entries and updates rosters to
// match: new matches become items, numbers gone from the book leave the
// roster (unless the owner added them by hand), and mutual pairs get
// subscription both on both sides.
//
// Numbers not in the stored book count against the daily limit; an upload
// past it changes nothing and returns a *LimitError. Re-uploading the same
// book costs nothing.
func (b *Book) Sync(ctx context.Context, owner string, entries []Entry) (SyncResult, error) {
	var res SyncResult
	ownNum, err := ownerNumber(owner)
	if err != nil {
		return res, err
	}
	book, skipped := Normalize(entries, RegionOf(ownNum))
	delete(book, ownNum)
	res.Skipped = skipped

	if err := b.charge(ctx, owner, book); err != nil {
		return res, err
	}
	numbers := make([]string, 0, len(book))
	for n := range book {
		numbers = append(numbers, n)
	}
	slices.Sort(numbers)
	registered, err := b.dir.Registered(ctx, numbers)
	if err != nil {
		return res, fmt.Errorf("matching the book of %s: %w", owner, err)
	}
	slices.Sort(registered)
	for _, n := range slices.Compact(registered) {
		if _, ok := book[n]; ok {
			res.Matches = append(res.Matches, Match{Number: n, JID: n + "@" + b.domain})
		}
	}
	res.Ver = QuicksyVer(res.Matches)

	err = b.store.write(ctx, func(tx *sql.Tx) error {
		var err error
		res.Pushes, res.OverCap, err = b.apply(ctx, tx, owner, ownNum, book, res.Matches)
		return err
	})
	if err != nil {
		return SyncResult{}, fmt.Errorf("storing the book of %s: %w", owner, err)
	}
	return res, nil
}

// day returns the current UTC day and the start of the next.
func (b *Book) day() (string, time.Time) {
	now := b.now().UTC()
	start := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	return start.Format(time.DateOnly), start.AddDate(0, 0, 1)
}

// charge records the numbers of book that owner looks up for the first time
// today, or refuses them all with a *LimitError.
func (b *Book) charge(ctx context.Context, owner string, book map[string]string) error {
	today, tomorrow := b.day()
	return b.store.write(ctx, func(tx *sql.Tx) error {
		// Earlier days no longer count; forgetting them keeps the table
		// to at most one day's limit per owner.
		if _, err := tx.ExecContext(ctx, `DELETE FROM roster_book_quota
			WHERE owner = ? AND day <> ?`, owner, today); err != nil {
			return fmt.Errorf("charging lookups of %s: %w", owner, err)
		}
		known, err := stringSet(ctx, tx, `SELECT number FROM roster_book WHERE owner = ?
			UNION SELECT number FROM roster_book_quota WHERE owner = ?`, owner, owner)
		if err != nil {
			return fmt.Errorf("charging lookups of %s: %w", owner, err)
		}
		var used int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM roster_book_quota
			WHERE owner = ?`, owner).Scan(&used); err != nil {
			return fmt.Errorf("charging lookups of %s: %w", owner, err)
		}
		var fresh []string
		for n := range book {
			if !known[n] {
				fresh = append(fresh, n)
			}
		}
		if used+len(fresh) > b.limit {
			return &LimitError{Owner: owner, New: len(fresh), Left: max(b.limit-used, 0),
				RetryAt: tomorrow}
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO roster_book_quota (owner, day, number)
			VALUES (?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("charging lookups of %s: %w", owner, err)
		}
		defer ins.Close()
		for _, n := range fresh {
			if _, err := ins.ExecContext(ctx, owner, today, n); err != nil {
				return fmt.Errorf("charging lookups of %s: %w", owner, err)
			}
		}
		return nil
	})
}

func stringSet(ctx context.Context, q querier, query string, args ...any) (map[string]bool, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	set := map[string]bool{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		set[s] = true
	}
	return set, rows.Err()
}

// apply stores book as owner's address book and brings the rosters of owner
// and of the matched contacts in line with it. Lock: runs inside
// Store.write.
func (b *Book) apply(ctx context.Context, tx *sql.Tx, owner, ownNum string,
	book map[string]string, matches []Match) (pushes []Push, overCap int, err error) {
	old, err := stringSet(ctx, tx, `SELECT number FROM roster_book WHERE owner = ?`, owner)
	if err != nil {
		return nil, 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM roster_book WHERE owner = ?`, owner); err != nil {
		return nil, 0, err
	}
	ins, err := tx.PrepareContext(ctx,
		`INSERT INTO roster_book (owner, number, name) VALUES (?, ?, ?)`)
	if err != nil {
		return nil, 0, err
	}
	defer ins.Close()
	for n, name := range book {
		if _, err := ins.ExecContext(ctx, owner, n, name); err != nil {
			return nil, 0, err
		}
	}

	// Who among the matches holds the owner's number decides mutuality.
	holders, err := stringSet(ctx, tx, `SELECT owner FROM roster_book WHERE number = ?`, ownNum)
	if err != nil {
		return nil, 0, err
	}
	for _, m := range matches {
		mutual := holders[m.JID]
		p, err := b.store.markInBook(ctx, tx, owner, m.JID, true, book[m.Number], mutual)
		if errors.Is(err, ErrTooManyItems) {
			overCap++
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		pushes = appendPush(pushes, p)
		if mutual {
			p, err := b.store.setBookSubscription(ctx, tx, m.JID, owner, Both)
			if err != nil {
				return nil, 0, err
			}
			pushes = appendPush(pushes, p)
		}
	}

	// Numbers that left the book: the owner's book item goes, and a mutual
	// pair falls back to one-sided.
	for n := range old {
		if _, still := book[n]; still {
			continue
		}
		jid := n + "@" + b.domain
		p, err := b.store.markInBook(ctx, tx, owner, jid, false, "", false)
		if err != nil {
			return nil, 0, err
		}
		pushes = appendPush(pushes, p)
		if holders[jid] {
			p, err := b.store.setBookSubscription(ctx, tx, jid, owner, None)
			if err != nil {
				return nil, 0, err
			}
			pushes = appendPush(pushes, p)
		}
	}
	return pushes, overCap, nil
}

func appendPush(pushes []Push, p *Push) []Push {
	if p == nil {
		return pushes
	}
	return append(pushes, *p)
}

// markInBook records whether contact is in owner's book, under name, and
// sets a book-only item's subscription from mutual. An item leaving the
// book is removed unless it is manual. It creates a missing item only when
// inBook; nil means nothing changed. Lock: runs inside Store.write.
func (s *Store) markInBook(ctx context.Context, tx *sql.Tx, owner, contact string,
	inBook bool, name string, mutual bool) (*Push, error) {
	r, found, err := load(ctx, tx, owner, contact)
	if err != nil {
		return nil, err
	}
	if !found && !inBook {
		return nil, nil
	}
	if !found {
		if err := s.checkRoom(ctx, tx, "roster_items", owner); err != nil {
			return nil, err
		}
		r = record{Item: Item{JID: contact, Subscription: None}}
	}
	before := r.item()
	if !inBook && !r.manual {
		v, err := bump(ctx, tx, owner)
		if err != nil {
			return nil, err
		}
		if err := drop(ctx, tx, owner, contact, v); err != nil {
			return nil, err
		}
		it := Item{JID: contact, Subscription: Remove, Groups: []string{}}
		return &Push{Owner: owner, Item: it, Ver: formatVer(v), Before: before.Subscription}, nil
	}
	r.inBook, r.bookName = inBook, name
	if !r.manual {
		r.Subscription = None
		if mutual {
			r.Subscription = Both
		}
	}
	return s.saveIfChanged(ctx, tx, owner, r, before, found)
}

// setBookSubscription sets the subscription of owner's book-only item for
// contact, creating it from owner's book if the number is there but the
// item is missing. Manual items are left alone. Lock: runs inside
// Store.write.
func (s *Store) setBookSubscription(ctx context.Context, tx *sql.Tx, owner, contact string,
	sub Subscription) (*Push, error) {
	r, found, err := load(ctx, tx, owner, contact)
	if err != nil {
		return nil, err
	}
	if found && r.manual {
		return nil, nil
	}
	if !found {
		num, _, _ := strings.Cut(contact, "@")
		var name string
		err := tx.QueryRowContext(ctx, `SELECT name FROM roster_book
			WHERE owner = ? AND number = ?`, owner, num).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if err := s.checkRoom(ctx, tx, "roster_items", owner); err != nil {
			if errors.Is(err, ErrTooManyItems) {
				return nil, nil
			}
			return nil, err
		}
		r = record{Item: Item{JID: contact, Subscription: None}, inBook: true, bookName: name}
	}
	before := r.item()
	r.Subscription = sub
	return s.saveIfChanged(ctx, tx, owner, r, before, found)
}

// saveIfChanged saves r at a new version if it differs from before (or is
// new) and returns the push for it.
func (s *Store) saveIfChanged(ctx context.Context, tx *sql.Tx, owner string, r record,
	before Item, found bool) (*Push, error) {
	after := r.item()
	if found && after.Name == before.Name && after.Subscription == before.Subscription &&
		after.Origin == before.Origin {
		// Only hidden columns may differ; store them without a push.
		v, err := version(ctx, tx, owner)
		if err != nil {
			return nil, err
		}
		return nil, save(ctx, tx, owner, r, v)
	}
	v, err := bump(ctx, tx, owner)
	if err != nil {
		return nil, err
	}
	if err := save(ctx, tx, owner, r, v); err != nil {
		return nil, err
	}
	return &Push{Owner: owner, Item: after, Ver: formatVer(v), Before: before.Subscription}, nil
}

// QuicksyVer computes the 'ver' of a Quicksy phone-book exchange over the
// matches, the way the Quicksy client does, so that the server can answer an
// unchanged book with an empty result. The matches are grouped by number in
// ascending order; each number is followed by its JIDs in ascending order,
// each preceded by U+001E; numbers are separated by U+001D. The value is the
// standard padded Base64 of the SHA-1 of that text.
func QuicksyVer(matches []Match) string {
	byNumber := map[string][]string{}
	for _, m := range matches {
		byNumber[m.Number] = append(byNumber[m.Number], m.JID)
	}
	numbers := make([]string, 0, len(byNumber))
	for n := range byNumber {
		numbers = append(numbers, n)
	}
	// Java's String.compareTo orders UTF-16 units; for the ASCII of
	// numbers and JIDs that is byte order.
	slices.Sort(numbers)
	var sb strings.Builder
	for i, n := range numbers {
		if i > 0 {
			sb.WriteByte(0x1d)
		}
		sb.WriteString(n)
		jids := byNumber[n]
		slices.Sort(jids)
		for _, j := range jids {
			sb.WriteByte(0x1e)
			sb.WriteString(j)
		}
	}
	sum := sha1.Sum([]byte(sb.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Joined adds a newly registered number to the roster of every user whose
// book holds it ("joined"), named as in each book. It returns the pushes for
// those users; a user whose roster is full is skipped.
func (b *Book) Joined(ctx context.Context, number string) ([]Push, error) {
	jid := number + "@" + b.domain
	var pushes []Push
	err := b.store.write(ctx, func(tx *sql.Tx) error {
		holders, err := bookHolders(ctx, tx, number)
		if err != nil {
			return err
		}
		// The new account's own book is normally empty; if it is not (an
		// upload raced the registration), mutual pairs form here.
		theirs, err := stringSet(ctx, tx, `SELECT number FROM roster_book WHERE owner = ?`, jid)
		if err != nil {
			return err
		}
		for _, h := range holders {
			hNum, _, _ := strings.Cut(h.owner, "@")
			mutual := theirs[hNum]
			p, err := b.store.markInBook(ctx, tx, h.owner, jid, true, h.name, mutual)
			if errors.Is(err, ErrTooManyItems) {
				continue
			}
			if err != nil {
				return err
			}
			pushes = appendPush(pushes, p)
			if mutual {
				p, err := b.store.setBookSubscription(ctx, tx, jid, h.owner, Both)
				if err != nil {
					return err
				}
				pushes = appendPush(pushes, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("adding joined %s to rosters: %w", number, err)
	}
	return pushes, nil
}

// Left removes a deleted account from every roster that holds it only
// because of an address book, and forgets the account's own book, roster,
// version and stored requests. Items that users added by hand stay, as on
// any XMPP server. It returns the pushes for the remaining users.
func (b *Book) Left(ctx context.Context, number string) ([]Push, error) {
	jid := number + "@" + b.domain
	var pushes []Push
	err := b.store.write(ctx, func(tx *sql.Tx) error {
		holders, err := bookHolders(ctx, tx, number)
		if err != nil {
			return err
		}
		for _, h := range holders {
			p, err := b.store.markInBook(ctx, tx, h.owner, jid, false, "", false)
			if err != nil {
				return err
			}
			pushes = appendPush(pushes, p)
		}
		for _, table := range []string{"roster_book", "roster_book_quota", "roster_items",
			"roster_removed", "roster_pending", "roster_versions"} {
			if _, err := tx.ExecContext(ctx,
				`DELETE FROM `+table+` WHERE owner = ?`, jid); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("removing deleted %s from rosters: %w", number, err)
	}
	return pushes, nil
}

type holder struct{ owner, name string }

// bookHolders lists the owners whose book holds number, with their names
// for it, in owner order.
func bookHolders(ctx context.Context, tx *sql.Tx, number string) ([]holder, error) {
	rows, err := tx.QueryContext(ctx, `SELECT owner, name FROM roster_book
		WHERE number = ? ORDER BY owner`, number)
	if err != nil {
		return nil, fmt.Errorf("finding books that hold %s: %w", number, err)
	}
	defer rows.Close()
	var hs []holder
	for rows.Next() {
		var h holder
		if err := rows.Scan(&h.owner, &h.name); err != nil {
			return nil, fmt.Errorf("finding books that hold %s: %w", number, err)
		}
		hs = append(hs, h)
	}
	return hs, rows.Err()
}
