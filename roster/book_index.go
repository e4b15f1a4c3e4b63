package roster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
)

// The address-book index: what an upload and a registration ask of all
// books at once, kept in memory because asking SQLite costs more than the
// whole rest of an upload.
//
//   - Which numbers of a book are accounts: a sorted slice of the
//     registered numbers as integers (8 bytes an account, 8 MB for a
//     million), searched per number in well under a microsecond. A query
//     against the account table took about a millisecond per book and read
//     pages full of credentials.
//   - Which books hold a number (the reverse index that "joined" and
//     mutual pairs need): a map from number to holders. As an SQL index it
//     cost a random B-tree insert per number of every upload, a thousand
//     dirty pages for a book of a thousand, which the write-ahead log then
//     wrote out; the books themselves are stored one row (a blob) per
//     owner, which an upload writes as a whole.
//
// Both are loaded once from the database and changed in the same critical
// section (Store.write) as the rows they mirror. A commit that fails after
// the index changed marks it stale, so that the next use reloads it.

// numKey returns the digits of an E.164 number as an integer: "+4930123"
// is 4930123. E.164 numbers have no leading zero and at most 15 digits, so
// the mapping is one to one.
func numKey(e164 string) (uint64, bool) {
	if len(e164) < 2 || len(e164) > 16 || e164[0] != '+' || e164[1] == '0' {
		return 0, false
	}
	var k uint64
	for i := 1; i < len(e164); i++ {
		c := e164[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		k = k*10 + uint64(c-'0')
	}
	return k, true
}

// numString is the inverse of numKey.
func numString(k uint64) string { return "+" + strconv.FormatUint(k, 10) }

// bookFormat is the first byte of a stored book blob.
const bookFormat = 1

var errBadBook = errors.New("malformed stored address book")

// encodeBook packs a sorted book into the blob stored per owner: the
// format byte, then for each number in ascending order the difference to
// the previous one and the name, both length-prefixed varints. A book of
// a thousand numbers without names takes about 4 KB.
func encodeBook(book []bookEntry) []byte {
	size := 1
	for _, e := range book {
		size += 6 + len(e.name)
	}
	out := make([]byte, 1, size)
	out[0] = bookFormat
	var prev uint64
	for _, e := range book {
		out = binary.AppendUvarint(out, e.k-prev)
		prev = e.k
		out = binary.AppendUvarint(out, uint64(len(e.name)))
		out = append(out, e.name...)
	}
	return out
}

// decodeBook calls fn for each number of a blob from encodeBook, in
// ascending order.
func decodeBook(blob []byte, fn func(k uint64, name string)) error {
	if len(blob) == 0 {
		return nil
	}
	if blob[0] != bookFormat {
		return fmt.Errorf("%w: format %d", errBadBook, blob[0])
	}
	var k uint64
	for p := blob[1:]; len(p) > 0; {
		d, n := binary.Uvarint(p)
		if n <= 0 {
			return errBadBook
		}
		p = p[n:]
		l, n := binary.Uvarint(p)
		if n <= 0 || uint64(len(p)-n) < l {
			return errBadBook
		}
		k += d
		fn(k, string(p[n:n+int(l)]))
		p = p[n+int(l):]
	}
	return nil
}

// bookMap decodes a blob into number to name.
func bookMap(blob []byte) (map[string]string, error) {
	book := map[string]string{}
	err := decodeBook(blob, func(k uint64, name string) { book[numString(k)] = name })
	return book, err
}

// bookIndex is the in-memory index described above. Its writers hold the
// store's write lock as well as mu, so that the index and the tables
// change in the same order; readers outside that lock take mu only.
//
// The table from number to holders (numTable) holds no pointers, so that
// the garbage collector does not walk a million entries at every cycle:
// most numbers have one holder, kept in the entry; the others name a list
// in lists (ownerLists), which holds no pointers either.
type bookIndex struct {
	mu sync.RWMutex

	booksLoaded bool
	holders     numTable
	lists       ownerLists        // owner lists of numbers held by several books
	names       map[uint64][]byte // owner -> the names of their book (packNames)

	// sink keeps the reads of replace's first pass from being optimised
	// away.
	sink uint64

	regLoaded  bool
	registered []uint64 // sorted
}

// A holders value is one owner or, with manyBit set, the handle of the
// owners' list in bookIndex.lists. Owners are numKeys, below 10^15.
const manyBit = 1 << 63

func (x *bookIndex) resetBooks() {
	x.holders = numTable{}
	x.lists = ownerLists{}
	x.names = map[uint64][]byte{}
}

// add records that owner's book holds number k. Lock: mu held.
func (x *bookIndex) add(owner, k uint64) {
	v, added := x.holders.ref(k)
	switch {
	case added:
		*v = owner
	case *v&manyBit == 0:
		if *v != owner {
			*v = manyBit | x.lists.newList(*v, owner)
		}
	default:
		h := *v &^ manyBit
		if !slices.Contains(x.lists.owners(h), owner) {
			*v = manyBit | x.lists.add(h, owner)
		}
	}
}

// remove records that owner's book no longer holds k. Lock: mu held.
func (x *bookIndex) remove(owner, k uint64) {
	v, ok := x.holders.get(k)
	switch {
	case !ok:
	case v&manyBit == 0:
		if v == owner {
			x.holders.del(k)
		}
	default:
		h := v &^ manyBit
		l := x.lists.owners(h)
		i := slices.Index(l, owner)
		if i < 0 {
			return
		}
		last := l[0]
		if i == 0 {
			last = l[1]
		}
		nh, left := x.lists.remove(h, i)
		p, _ := x.holders.ref(k)
		if left > 1 {
			*p = manyBit | nh
		} else {
			*p = last // the one owner left
		}
	}
}

// ownersOf returns the owners whose book holds k, in any order. Lock: mu
// held for reading.
func (x *bookIndex) ownersOf(k uint64) []uint64 {
	v, ok := x.holders.get(k)
	switch {
	case !ok:
		return nil
	case v&manyBit == 0:
		return []uint64{v}
	}
	return slices.Clone(x.lists.owners(v &^ manyBit))
}

// replace changes owner's entries from book old (number to name) to the
// sorted book. Lock: mu held.
func (x *bookIndex) replace(owner uint64, old map[string]string, book []bookEntry) {
	if len(old) > 0 {
		in := make(map[string]bool, len(book))
		for _, e := range book {
			in[e.number] = true
		}
		for n := range old {
			if k, ok := numKey(n); ok && !in[n] {
				x.remove(owner, k)
			}
		}
	}
	// The book's slots of the table are random places in memory, each a
	// cache miss: fetched together first, they cost a fraction of one miss
	// after another in the loop below. (Fetching the owner lists the same
	// way paid while each was a slice of its own; in ownerLists' blocks it
	// no longer does.)
	var acc uint64
	for _, e := range book {
		acc = x.holders.touch(e.k, acc)
	}
	x.sink = acc
	for _, e := range book {
		if len(old) > 0 {
			if _, ok := old[e.number]; ok {
				continue
			}
		}
		x.add(owner, e.k)
	}
	if names := packNames(book); names != nil {
		x.names[owner] = names
	} else {
		delete(x.names, owner)
	}
}

// holdersOf lists the owners (bare JIDs in domain) whose book holds
// number, with their names for it, in owner order.
func (x *bookIndex) holdersOf(number, domain string) []holder {
	k, ok := numKey(number)
	if !ok {
		return nil
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	owners := x.ownersOf(k)
	slices.Sort(owners)
	hs := make([]holder, len(owners))
	for i, o := range owners {
		hs[i] = holder{owner: numString(o) + "@" + domain, name: nameIn(x.names[o], k)}
	}
	return hs
}

// held reports whether some book holds number.
func (x *bookIndex) held(number string) bool {
	k, ok := numKey(number)
	if !ok {
		return false
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok = x.holders.get(k)
	return ok
}

// isRegistered reports whether k is in the registered set. Lock: mu held
// for reading.
func (x *bookIndex) isRegistered(k uint64) bool {
	_, found := slices.BinarySearch(x.registered, k)
	return found
}

// setRegistered adds or removes one number. Lock: mu held.
func (x *bookIndex) setRegistered(number string, on bool) {
	k, ok := numKey(number)
	if !ok || !x.regLoaded {
		return
	}
	i, found := slices.BinarySearch(x.registered, k)
	switch {
	case on && !found:
		x.registered = slices.Insert(x.registered, i, k)
	case !on && found:
		x.registered = slices.Delete(x.registered, i, i+1)
	}
}

// addRegistered adds many numbers at once (an import) with one merge
// instead of an insert each. Lock: mu held.
func (x *bookIndex) addRegistered(numbers []string) {
	if !x.regLoaded {
		return
	}
	if len(numbers) < 64 {
		for _, n := range numbers {
			x.setRegistered(n, true)
		}
		return
	}
	for _, n := range numbers {
		if k, ok := numKey(n); ok {
			x.registered = append(x.registered, k)
		}
	}
	slices.Sort(x.registered)
	x.registered = slices.Compact(x.registered)
}
