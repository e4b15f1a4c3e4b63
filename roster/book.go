package roster

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// bookSchema holds uploaded address books and the daily lookup quota. A
// book is one row per owner: the normalised numbers with the names the
// owner gave them, packed into a blob (encodeBook), and a hash of the
// book, so that the common upload, the same book again, is recognised
// without reading it. Which books hold a number is answered from memory
// (book_index.go), rebuilt from these rows at start. The usage table counts
// the new numbers an owner looked up on one UTC day; the quota table lists
// the numbers that left the owner's book that day, which may come back
// without being counted again. (Numbers still in the book are free anyway,
// so listing only the ones that left keeps an upload of a fresh book to a
// few rows. Databases written before the usage table listed every number
// looked up; a missing usage row is counted from them.) Books of databases
// from before the blob, a row per number in table roster_book, are moved
// into it at the first use (migrateBooks).
const bookSchema = `
CREATE TABLE IF NOT EXISTS roster_books (
	owner  TEXT PRIMARY KEY,
	digest BLOB NOT NULL,
	book   BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS roster_book_quota (
	owner  TEXT NOT NULL,
	day    TEXT NOT NULL,
	number TEXT NOT NULL,
	PRIMARY KEY (owner, day, number)
);
CREATE TABLE IF NOT EXISTS roster_book_usage (
	owner TEXT PRIMARY KEY,
	day   TEXT NOT NULL,
	used  INTEGER NOT NULL
);
` + queueSchema

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

// Lister is a Directory that can also list every registered number. Book
// then reads them all once and matches books in memory, keeping the set
// current through Joined, Left and the account changes that other
// processes leave (TakeQueued); a Directory without it is asked at every
// upload.
type Lister interface {
	Directory
	// AllRegistered calls fn with every registered number (E.164).
	AllRegistered(ctx context.Context, fn func(number string)) error
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
	Matches []Match // the book's numbers that are accounts, in numeric order
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
	store    *Store
	dir      Directory
	domain   string
	limit    int
	oneSided Subscription // None or To: see WithOneSided
	now      func() time.Time

	idx   bookIndex
	group groupCommit
	// logAccounts: Joined, JoinedMany and Left record the account change
	// for the server (see WithAccountLog).
	logAccounts bool
}

// BookOption configures a Book.
type BookOption func(*Book)

// WithOneSided sets what a one-sided entry (the owner holds the contact's
// number, the contact does not hold the owner's) gives: None (the default)
// lets the owner message the contact without seeing presence; To lets the
// owner see the contact's presence, and gives the contact a book-made item
// with subscription from for the owner. To tells a user's presence to
// everyone who has their number, and shows them who has it: see
// docs/contacts.md. Any other value means None.
func WithOneSided(sub Subscription) BookOption {
	return func(b *Book) {
		if sub == To {
			b.oneSided = To
		}
	}
}

// WithAccountLog makes Joined, JoinedMany and Left record each account
// change in the database, for a server that runs on the same database to
// apply to its in-memory index when it takes the queued pushes
// (TakeQueued). The command line, which creates and deletes accounts
// beside a running server, sets it.
func WithAccountLog() BookOption {
	return func(b *Book) { b.logAccounts = true }
}

// NewBook returns a Book over the store's tables. domain is the server's
// domain: an account's JID is its E.164 number "@" domain. dailyLimit <= 0
// means DefaultDailyLookups.
func NewBook(store *Store, dir Directory, domain string, dailyLimit int,
	opts ...BookOption) *Book {
	if dailyLimit <= 0 {
		dailyLimit = DefaultDailyLookups
	}
	b := &Book{store: store, dir: dir, domain: domain, limit: dailyLimit, oneSided: None,
		now: time.Now}
	for _, o := range opts {
		o(b)
	}
	return b
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
// skip libphonenumber's parsing and get PossibleE164's check instead: one
// that passes it without being in use simply matches no account. Those
// with a 0 after the calling code (TrunkZeroE164) are parsed. Invalid
// entries are counted in skipped and dropped; a number listed twice keeps
// its first non-empty name.
func Normalize(entries []Entry, region string) (book map[string]string, skipped int) {
	return normalize(entries, func() string { return region })
}

// normalize is Normalize with the region asked for only when an entry is
// not in E.164 already, which a Quicksy upload never has: finding the
// owner's region takes a libphonenumber parse.
func normalize(entries []Entry, region func() string) (book map[string]string, skipped int) {
	book = make(map[string]string, len(entries))
	reg, known := "", false
	for _, e := range entries {
		n := strings.TrimSpace(e.Number)
		fast := IsE164(n)
		if fast {
			possible, trunkZero := screenE164(n)
			if !possible && !trunkZero {
				skipped++
				continue
			}
			fast = !trunkZero
		}
		if !fast {
			if !known {
				reg, known = region(), true
			}
			var err error
			if n, err = ParsePhone(n, reg); err != nil {
				skipped++
				continue
			}
		}
		name := cleanName(e.Name)
		if old, ok := book[n]; !ok || old == "" {
			book[n] = name
		}
	}
	return book, skipped
}

// cleanName makes an uploaded name fit to be a roster item's name, which
// goes out in XML: it drops bytes that are not UTF-8 and characters that
// XML 1.0 does not allow, turns tabs and line breaks into spaces, trims
// spaces at the ends and cuts it to maxNameBytes at a character boundary.
// A vCard or CSV file over HTTP can hold anything; a name with a control
// character would otherwise break the stream of every client it reached.
func cleanName(s string) string {
	s = strings.TrimSpace(s)
	plain := len(s) <= maxNameBytes
	for i := 0; plain && i < len(s); i++ {
		plain = s[i] >= 0x20 && s[i] < 0x7f
	}
	if plain { // printable ASCII: nearly every name
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1: // not UTF-8
			continue
		case r == '\t' || r == '\n' || r == '\r':
			r = ' '
		case r < 0x20, r == 0xfffe, r == 0xffff:
			continue
		}
		if b.Len()+utf8.RuneLen(r) > maxNameBytes {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// Sync replaces owner's address book with entries and updates rosters to
// match: new matches become items, numbers gone from the book leave the
// roster (unless the owner added them by hand), and mutual pairs get
// subscription both on both sides.
//
// Numbers not in the stored book count against the daily limit; an upload
// past it changes nothing and returns a *LimitError. Re-uploading the same
// book costs nothing.
//
// Everything happens in one transaction, shared with concurrent uploads
// (groupCommit), whose work grows with the changes, not with the book: the
// book is one row, the owner's roster is read once and only changed items
// are written, with one version bump for all of them (see bookWriter).
// Matching and the holders of the owner's number come from memory
// (bookIndex).
func (b *Book) Sync(ctx context.Context, owner string, entries []Entry) (SyncResult, error) {
	return b.SyncEarly(ctx, owner, entries, nil)
}

// SyncEarly is Sync, calling answer (if not nil) as soon as the answer to
// the uploader is known: the matches, Ver, Skipped and OverCap of the
// result, without Pushes. That is after the book is stored and charged and
// the roster read, but before the roster changes are written, whose cost
// grows with the number of matches: a server that answers at a time fixed
// by the number of entries (xmpp's padding) then needs to cover only the
// part that does not depend on the matches. answer runs inside the write
// lock and must not block. If writing the roster changes fails afterwards,
// SyncEarly returns the error although answer was called: the book is then
// not stored, and the next upload starts over. answer is called exactly
// once when SyncEarly returns no error.
func (b *Book) SyncEarly(ctx context.Context, owner string, entries []Entry,
	answer func(SyncResult)) (SyncResult, error) {
	if answer == nil {
		answer = func(SyncResult) {}
	}
	var res SyncResult
	ownNum, err := ownerNumber(owner)
	if err != nil {
		return res, err
	}
	book, skipped := normalize(entries, func() string { return RegionOf(ownNum) })
	delete(book, ownNum)
	res.Skipped = skipped
	sorted := sortBook(book)
	// A Directory that cannot list its numbers is asked here, before the
	// transaction, to keep the write lock short; an account created
	// meanwhile is added by Joined, which waits for the lock. The
	// in-memory set is read inside the lock instead, in step with Joined.
	var registered []string
	if _, ok := b.dir.(Lister); !ok {
		numbers := make([]string, len(sorted))
		for i, e := range sorted {
			numbers[i] = e.number
		}
		if registered, err = b.dir.Registered(ctx, numbers); err != nil {
			return res, fmt.Errorf("matching the book of %s: %w", owner, err)
		}
	}
	if err := b.ensureLoaded(ctx, true); err != nil {
		return res, fmt.Errorf("matching the book of %s: %w", owner, err)
	}
	digest := bookDigest(sorted)
	// The same book again, the common upload (clients send the whole book
	// at every start), is answered from a read, without the write lock:
	// the rosters already follow the stored book (Joined, Left and the
	// contacts' uploads keep them in step), so only the matches left out
	// by the cap remain to be counted.
	if same, inBook, err := b.sameBook(ctx, owner, digest); err != nil {
		return SyncResult{}, fmt.Errorf("storing the book of %s: %w", owner, err)
	} else if same {
		if res.Matches, err = b.match(ctx, sorted, registered); err != nil {
			return SyncResult{}, fmt.Errorf("matching the book of %s: %w", owner, err)
		}
		res.Ver = QuicksyVer(res.Matches)
		res.OverCap = max(len(res.Matches)-inBook, 0)
		answer(res)
		return res, nil
	}
	answered := false
	err = b.write(ctx, func(tx *sql.Tx) error {
		if err := b.load(ctx, tx); err != nil {
			return err
		}
		if err := b.loadRegistered(ctx, tx); err != nil {
			return err
		}
		matches, err := b.match(ctx, sorted, registered)
		if err != nil {
			return err
		}
		res.Matches, res.Ver, res.Pushes, res.OverCap = matches, QuicksyVer(matches), nil, 0
		stored, old, err := storedBook(ctx, b.queryRow(ctx, tx, selectBook, owner), owner)
		if err != nil {
			return err
		}
		if bytes.Equal(stored, digest) {
			// Stored by a concurrent upload since sameBook looked.
			var n int
			err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM roster_items
				WHERE owner = ? AND in_book = 1`, owner).Scan(&n)
			res.OverCap = max(len(res.Matches)-n, 0)
			if err == nil {
				answered = true
				answer(res)
			}
			return err
		}
		if err := b.charge(ctx, tx, owner, sorted, old); err != nil {
			return err
		}
		if err := b.storeBook(ctx, tx, owner, digest, sorted, old); err != nil {
			return err
		}
		res.Pushes, res.OverCap, err = b.apply(ctx, tx, owner, ownNum, sorted, old, res.Matches,
			func(overCap int) {
				early := res
				early.OverCap = overCap
				answered = true
				answer(early)
			})
		if err != nil {
			return err
		}
		// Last, once every statement has succeeded (see Book.write).
		ownKey, _ := numKey(ownNum)
		b.idx.mu.Lock()
		b.idx.replace(ownKey, old, sorted)
		b.idx.mu.Unlock()
		return nil
	})
	var lim *LimitError
	if errors.As(err, &lim) {
		return SyncResult{}, err
	}
	if err != nil {
		return SyncResult{}, fmt.Errorf("storing the book of %s: %w", owner, err)
	}
	if !answered {
		answer(res)
	}
	return res, nil
}

// match returns the matches of a sorted book: the numbers in registered
// if the Directory cannot list its numbers, else those in the in-memory
// set, which must be loaded. They come in the order of the book; QuicksyVer
// sorts them its own way.
func (b *Book) match(ctx context.Context, book []bookEntry, registered []string) ([]Match,
	error) {
	var out []Match
	if _, ok := b.dir.(Lister); !ok {
		reg := make(map[string]bool, len(registered))
		for _, n := range registered {
			reg[n] = true
		}
		for _, e := range book {
			if reg[e.number] {
				out = append(out, Match{Number: e.number, JID: e.number + "@" + b.domain})
			}
		}
		return out, nil
	}
	b.idx.mu.RLock()
	defer b.idx.mu.RUnlock()
	if !b.idx.regLoaded {
		return nil, errIndexStale
	}
	// Both are sorted: each search starts where the last one ended.
	reg := b.idx.registered
	for _, e := range book {
		i, found := slices.BinarySearch(reg, e.k)
		reg = reg[i:]
		if found {
			out = append(out, Match{Number: e.number, JID: e.number + "@" + b.domain})
		}
	}
	return out, nil
}

// sameBook reports whether owner's stored book has digest, and if so how
// many of the owner's items are in it. It reads outside any transaction on
// purpose: the database is opened with immediate transactions, and with
// the sqlite3 driver even a read-only one then takes the write lock. The
// two reads may straddle a concurrent upload of the same owner; the count
// then belongs to one of the two books, which is all a client can expect.
func (b *Book) sameBook(ctx context.Context, owner string, digest []byte) (bool, int, error) {
	var stored []byte
	err := b.store.db.QueryRowContext(ctx, `SELECT digest FROM roster_books
		WHERE owner = ?`, owner).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !bytes.Equal(stored, digest)) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, err
	}
	var n int
	err = b.store.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM roster_items
		WHERE owner = ? AND in_book = 1`, owner).Scan(&n)
	return err == nil, n, err
}

// bookEntry is one number of a normalised book: numKey(number), the
// number, and the owner's name for it.
type bookEntry struct {
	k            uint64
	number, name string
}

// sortBook returns a normalised book's entries in numeric order.
func sortBook(book map[string]string) []bookEntry {
	es := make([]bookEntry, 0, len(book))
	for n, name := range book {
		if k, ok := numKey(n); ok {
			es = append(es, bookEntry{k, n, name})
		}
	}
	if len(es) > 1<<sortShift {
		slices.SortFunc(es, func(a, b bookEntry) int { return cmp.Compare(a.k, b.k) })
		return es
	}
	// Sorting plain integers, each a number with its index in its low
	// bits (numbers stay below 2^50), is several times faster than
	// sorting the entries with a comparison function.
	packed := make([]uint64, len(es))
	for i, e := range es {
		packed[i] = e.k<<sortShift | uint64(i)
	}
	slices.Sort(packed)
	out := make([]bookEntry, len(es))
	for i, p := range packed {
		out[i] = es[p&(1<<sortShift-1)]
	}
	return out
}

// findEntry looks number up in a sorted book.
func findEntry(book []bookEntry, number string) (bookEntry, bool) {
	k, ok := numKey(number)
	if !ok {
		return bookEntry{}, false
	}
	i, found := slices.BinarySearchFunc(book, k, func(e bookEntry, k uint64) int {
		return cmp.Compare(e.k, k)
	})
	if !found {
		return bookEntry{}, false
	}
	return book[i], true
}

// sortShift is the bits of an index in sortBook's packed integers.
const sortShift = 14

// bookDigest hashes a sorted book: its numbers in order, each with its
// name.
func bookDigest(sorted []bookEntry) []byte {
	h := sha256.New()
	buf := make([]byte, 0, 64)
	for _, e := range sorted {
		buf = append(buf[:0], e.number...)
		buf = append(buf, 0x1f)
		buf = append(buf, e.name...)
		buf = append(buf, 0x1e)
		h.Write(buf)
	}
	return h.Sum(nil)
}

// selectBook reads one owner's book, for storedBook.
const selectBook = `SELECT digest, book FROM roster_books WHERE owner = ?`

// storedBook reads owner's stored book from row (selectBook): its digest
// (nil if none) and number to name.
func storedBook(ctx context.Context, row scanner, owner string) ([]byte, map[string]string,
	error) {
	var digest, blob []byte
	err := row.Scan(&digest, &blob)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, map[string]string{}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading the book of %s: %w", owner, err)
	}
	book, err := bookMap(blob)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the book of %s: %w", owner, err)
	}
	return digest, book, nil
}

// day returns the current UTC day and the start of the next.
func (b *Book) day() (string, time.Time) {
	now := b.now().UTC()
	start := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	return start.Format(time.DateOnly), start.AddDate(0, 0, 1)
}

// charge counts the numbers of book that owner looks up for the first time
// today, or refuses them all with a *LimitError. Numbers of the stored
// book (old) are free, and so are numbers that left it today. Lock: runs
// inside Store.write; a refusal rolls the transaction back.
func (b *Book) charge(ctx context.Context, tx *sql.Tx, owner string, book []bookEntry,
	old map[string]string) error {
	var fresh []string
	for _, e := range book {
		if _, ok := old[e.number]; !ok {
			fresh = append(fresh, e.number)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	today, tomorrow := b.day()
	used, err := b.usage(ctx, tx, owner, today)
	if err != nil {
		return fmt.Errorf("charging lookups of %s: %w", owner, err)
	}
	// The numbers that left the book today are few, usually none: reading
	// them all is cheaper than looking up each fresh number.
	back, err := b.stringSet(ctx, tx, `SELECT number FROM roster_book_quota
		WHERE owner = ? AND day = ?`, owner, today)
	if err != nil {
		return fmt.Errorf("charging lookups of %s: %w", owner, err)
	}
	cost := 0
	for _, n := range fresh {
		if !back[n] {
			cost++
		}
	}
	if cost == 0 {
		return nil
	}
	if used+cost > b.limit {
		return &LimitError{Owner: owner, New: cost, Left: max(b.limit-used, 0), RetryAt: tomorrow}
	}
	err = b.exec(ctx, tx, `INSERT INTO roster_book_usage (owner, day, used) VALUES (?, ?, ?)
		ON CONFLICT (owner) DO UPDATE SET day = excluded.day, used = excluded.used`,
		owner, today, used+cost)
	if err != nil {
		return fmt.Errorf("charging lookups of %s: %w", owner, err)
	}
	return nil
}

// usage returns how many new numbers owner looked up today, forgetting the
// quota rows of earlier days when the day changed.
func (b *Book) usage(ctx context.Context, tx *sql.Tx, owner, today string) (int, error) {
	var day string
	var used int
	err := b.queryRow(ctx, tx, `SELECT day, used FROM roster_book_usage WHERE owner = ?`,
		owner).Scan(&day, &used)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// No usage row yet: a database from before the usage table
		// listed every number looked up today in the quota table.
		err = b.queryRow(ctx, tx, `SELECT COUNT(*) FROM roster_book_quota
			WHERE owner = ? AND day = ?`, owner, today).Scan(&used)
		day = today
	case err != nil:
		return 0, err
	}
	if err != nil {
		return 0, err
	}
	if day != today {
		used = 0
	}
	// Earlier days no longer count; forgetting them keeps the table to
	// the numbers that left the book today.
	if err := b.exec(ctx, tx, `DELETE FROM roster_book_quota
		WHERE owner = ? AND day <> ?`, owner, today); err != nil {
		return 0, err
	}
	return used, nil
}

// storeBook writes owner's new book as its one row, and lists the numbers
// that left it in today's quota, so that putting them back today costs
// nothing.
func (b *Book) storeBook(ctx context.Context, tx *sql.Tx, owner string, digest []byte,
	book []bookEntry, old map[string]string) error {
	today, _ := b.day()
	var gone []string
	for n := range old {
		if _, still := findEntry(book, n); !still {
			gone = append(gone, n)
		}
	}
	var err error
	if len(book) == 0 {
		err = b.exec(ctx, tx, `DELETE FROM roster_books WHERE owner = ?`, owner)
	} else {
		err = b.exec(ctx, tx, `INSERT INTO roster_books (owner, digest, book)
			VALUES (?, ?, ?) ON CONFLICT (owner) DO UPDATE SET digest = excluded.digest,
			book = excluded.book`, owner, digest, encodeBook(book))
	}
	if err == nil && len(gone) > 0 {
		js, _ := json.Marshal(gone)
		err = b.exec(ctx, tx, `INSERT INTO roster_book_quota (owner, day, number)
			SELECT ?, ?, value FROM json_each(?) WHERE true ON CONFLICT DO NOTHING`,
			owner, today, string(js))
	}
	if err != nil {
		return fmt.Errorf("storing the book of %s: %w", owner, err)
	}
	return nil
}

func stringSet(ctx context.Context, q querier, query string, args ...any) (map[string]bool, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return scanStrings(rows)
}

// stringSet is the package's stringSet with a prepared statement (see
// Book.stmt).
func (b *Book) stringSet(ctx context.Context, tx *sql.Tx, query string,
	args ...any) (map[string]bool, error) {
	rows, err := b.query(ctx, tx, query, args...)
	if err != nil {
		return nil, err
	}
	return scanStrings(rows)
}

func scanStrings(rows *sql.Rows) (map[string]bool, error) {
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

// apply brings the rosters of owner and of the contacts concerned in line
// with owner's new book: the matches, and the numbers that left the book.
// It calls early with the matches left out by the cap once that is known,
// before it writes anything (see SyncEarly). Lock: runs inside Book.write,
// after storeBook.
func (b *Book) apply(ctx context.Context, tx *sql.Tx, owner, ownNum string,
	book []bookEntry, old map[string]string, matches []Match,
	early func(overCap int)) (pushes []Push, overCap int, err error) {
	// Who holds the owner's number decides mutuality.
	holders := b.idx.holdersOf(ownNum, b.domain)
	holds := make(map[string]string, len(holders))
	for _, h := range holders {
		holds[h.owner] = h.name
	}
	w, err := b.newBookWriter(ctx, tx, owner)
	if err != nil {
		return nil, 0, err
	}

	type other struct {
		jid              string
		theirs, heldBack bool
	}
	var others []other
	// Removals first, so that the room they make in a full roster
	// goes to the new matches.
	for n := range old {
		if _, still := findEntry(book, n); still {
			continue
		}
		jid := n + "@" + b.domain
		_, theirs := holds[jid]
		p, err := w.set(jid, b.want(false, theirs), false, "")
		if err != nil {
			return nil, 0, err
		}
		pushes = appendPush(pushes, p)
		others = append(others, other{jid, theirs, false})
	}
	for _, m := range matches {
		_, theirs := holds[m.JID]
		e, _ := findEntry(book, m.Number)
		p, err := w.set(m.JID, b.want(true, theirs), true, e.name)
		if errors.Is(err, ErrTooManyItems) {
			overCap++
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		pushes = appendPush(pushes, p)
		others = append(others, other{m.JID, theirs, true})
	}
	early(overCap)
	if err := w.finish(ctx); err != nil {
		return nil, 0, err
	}

	// The contacts' side changes only for mutual pairs, or for every pair
	// when one-sided entries give presence (the contact's from item).
	stmts := newTxStmts(tx)
	defer stmts.close()
	for _, o := range others {
		if !o.theirs && b.oneSided == None {
			continue
		}
		p, err := b.setItem(ctx, stmts, o.jid, owner, b.want(o.theirs, o.heldBack), o.theirs,
			holds[o.jid])
		if err != nil {
			return nil, 0, err
		}
		pushes = appendPush(pushes, p)
	}
	return pushes, overCap, nil
}

func appendPush(pushes []Push, p *Push) []Push {
	if p == nil {
		return pushes
	}
	return append(pushes, *p)
}

// QuicksyVer computes the 'ver' of a Quicksy phone-book exchange over the
// matches, the way the Quicksy client does, so that the server can answer an
// unchanged book with an empty result. The matches are grouped by number in
// ascending order; each number is followed by its JIDs in ascending order,
// each preceded by U+001E; numbers are separated by U+001D. The value is the
// standard padded Base64 of the SHA-1 of that text.
func QuicksyVer(matches []Match) string {
	// Sorted by number, then JID: a number's JIDs are then adjacent and
	// in order. Java's String.compareTo orders UTF-16 units; for the
	// ASCII of numbers and JIDs that is byte order.
	sorted := slices.Clone(matches)
	slices.SortFunc(sorted, func(a, b Match) int {
		if c := strings.Compare(a.Number, b.Number); c != 0 {
			return c
		}
		return strings.Compare(a.JID, b.JID)
	})
	h := sha1.New()
	buf := make([]byte, 0, 64)
	for i, m := range sorted {
		buf = buf[:0]
		if i == 0 || m.Number != sorted[i-1].Number {
			if i > 0 {
				buf = append(buf, 0x1d)
			}
			buf = append(buf, m.Number...)
		}
		buf = append(buf, 0x1e)
		buf = append(buf, m.JID...)
		h.Write(buf)
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// Joined adds a newly registered number to the roster of every user whose
// book holds it ("joined"), named as in each book, and gives the new
// account its side of each pair. It returns the pushes for those users; a
// user whose roster is full is skipped.
func (b *Book) Joined(ctx context.Context, number string) ([]Push, error) {
	return b.joined(ctx, number, b.logAccounts)
}

// joined is Joined; log says whether to record the account change (see
// WithAccountLog).
func (b *Book) joined(ctx context.Context, number string, log bool) ([]Push, error) {
	jid := number + "@" + b.domain
	var pushes []Push
	err := b.write(ctx, func(tx *sql.Tx) error {
		pushes = nil
		if err := b.load(ctx, tx); err != nil {
			return err
		}
		holders := b.idx.holdersOf(number, b.domain)
		// The new account's own book is normally empty; if it is not (an
		// upload raced the registration), mutual pairs form here.
		_, theirs, err := storedBook(ctx, b.queryRow(ctx, tx, selectBook, jid), jid)
		if err != nil {
			return err
		}
		// The common case, a holder without an item for the new account
		// whom it does not hold back, is written for all holders at once.
		// Those with an item already are the ones who added it by hand;
		// an item the books made cannot exist for an unregistered number,
		// but the holders are asked too rather than trusted to have none.
		has, err := b.itemOwners(ctx, tx, jid, holderOwners(holders))
		if err != nil {
			return err
		}
		var plain, rest []holder
		for _, h := range holders {
			hNum, _, _ := strings.Cut(h.owner, "@")
			if _, back := theirs[hNum]; back || has[h.owner] {
				rest = append(rest, h)
			} else {
				plain = append(plain, h)
			}
		}
		ps, err := b.addToRosters(ctx, tx, jid, plain)
		if err != nil {
			return err
		}
		pushes = append(pushes, ps...)
		stmts := newTxStmts(tx)
		defer stmts.close()
		for _, h := range plain {
			if b.oneSided == To {
				// The new account's side: a from item for each holder.
				p, err := b.setItem(ctx, stmts, jid, h.owner, b.want(false, true), false, "")
				if err != nil {
					return err
				}
				pushes = appendPush(pushes, p)
			}
		}
		for _, h := range rest {
			hNum, _, _ := strings.Cut(h.owner, "@")
			name, back := theirs[hNum]
			p, err := b.setItem(ctx, stmts, h.owner, jid, b.want(true, back), true, h.name)
			if err != nil {
				return err
			}
			pushes = appendPush(pushes, p)
			if back || b.oneSided == To {
				p, err := b.setItem(ctx, stmts, jid, h.owner, b.want(back, true), back, name)
				if err != nil {
					return err
				}
				pushes = appendPush(pushes, p)
			}
		}
		if log {
			if err := b.logAccount(ctx, tx, number, true, nil); err != nil {
				return err
			}
		}
		b.idx.mu.Lock()
		b.idx.setRegistered(number, true)
		b.idx.mu.Unlock()
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
	err := b.write(ctx, func(tx *sql.Tx) error {
		pushes = nil
		if err := b.load(ctx, tx); err != nil {
			return err
		}
		var blob []byte
		err := tx.QueryRowContext(ctx, `SELECT book FROM roster_books WHERE owner = ?`,
			jid).Scan(&blob)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		own, err := bookMap(blob)
		if err != nil {
			return err
		}
		// Items made by books go for all owners at once; manual ones,
		// which only lose their book columns, one at a time.
		manual, err := stringSet(ctx, tx, `SELECT owner FROM roster_items
			WHERE contact = ? AND manual = 1`, jid)
		if err != nil {
			return err
		}
		ps, err := b.removeFromRosters(ctx, tx, jid, bookOwners(b.idx.holdersOf(number, b.domain),
			own, b.domain))
		if err != nil {
			return err
		}
		pushes = append(pushes, ps...)
		stmts := newTxStmts(tx)
		defer stmts.close()
		for _, owner := range slices.Sorted(maps.Keys(manual)) {
			p, err := b.setItem(ctx, stmts, owner, jid, pairState{}, false, "")
			if err != nil {
				return err
			}
			pushes = appendPush(pushes, p)
		}
		for _, table := range []string{"roster_books", "roster_book_quota", "roster_book_usage",
			"roster_items", "roster_removed", "roster_pending", "roster_versions"} {
			if _, err := tx.ExecContext(ctx,
				`DELETE FROM `+table+` WHERE owner = ?`, jid); err != nil {
				return err
			}
		}
		if b.logAccounts {
			if err := b.logAccount(ctx, tx, number, false, blob); err != nil {
				return err
			}
		}
		b.idx.mu.Lock()
		b.idx.setRegistered(number, false)
		if k, ok := numKey(number); ok {
			b.idx.replace(k, own, nil)
		}
		b.idx.mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("removing deleted %s from rosters: %w", number, err)
	}
	return pushes, nil
}

type holder struct{ owner, name string }

// holderOwners returns the owners of holders.
func holderOwners(holders []holder) []string {
	owners := make([]string, len(holders))
	for i, h := range holders {
		owners[i] = h.owner
	}
	return owners
}

// bookOwners returns the owners who can have an item for an account
// because of an address book: the holders of its number and, under the
// To policy (or from a time when it was set), the accounts that its own
// book holds. These are the only ones whose items the books made.
func bookOwners(holders []holder, own map[string]string, domain string) []string {
	owners := holderOwners(holders)
	for n := range own {
		owners = append(owners, n+"@"+domain)
	}
	return owners
}

// itemOwners returns those of owners that have an item for contact, and
// every owner who added contact by hand, in one query each.
func (b *Book) itemOwners(ctx context.Context, tx *sql.Tx, contact string,
	owners []string) (map[string]bool, error) {
	has, err := stringSet(ctx, tx, `SELECT owner FROM roster_items
		WHERE contact = ? AND manual = 1`, contact)
	if err != nil || len(owners) == 0 {
		return has, err
	}
	js, err := json.Marshal(owners)
	if err != nil {
		return nil, err
	}
	more, err := stringSet(ctx, tx, `SELECT owner FROM roster_items
		WHERE owner IN (SELECT value FROM json_each(?)) AND contact = ?`, string(js), contact)
	if err != nil {
		return nil, err
	}
	for o := range more {
		has[o] = true
	}
	return has, nil
}
