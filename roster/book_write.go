package roster

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// pairState is what one side of a pair of users should have for the other,
// as far as address books decide it.
type pairState struct {
	exists bool         // the owner has an item for the contact
	sub    Subscription // its subscription, unless the item is manual
}

// want returns the state of x's item for y from who holds whose number.
// With the default one-sided policy only x's own book makes the item, and
// presence flows only between users who hold each other; with policy To,
// holding a number gives its presence, so y's book alone gives x an item
// with subscription from.
func (b *Book) want(xHoldsY, yHoldsX bool) pairState {
	if b.oneSided == To {
		return pairState{exists: xHoldsY || yHoldsX, sub: withHalves(xHoldsY, yHoldsX)}
	}
	sub := None
	if xHoldsY && yHoldsX {
		sub = Both
	}
	return pairState{exists: xHoldsY, sub: sub}
}

// bookWriter changes the items of one owner's roster during Sync. It reads
// the roster once, keeps the count of items for the cap instead of
// counting rows, and gives each change its own version (XEP-0237 needs
// them unique per owner). The changes are buffered and written in finish
// with a few statements that read their rows from a JSON array
// (json_each): one statement for a thousand rows costs a fraction of a
// thousand, because binding and stepping each row from Go is what an
// upload mostly spent its time on.
type bookWriter struct {
	b        *Book
	tx       *sql.Tx
	owner    string
	max      int
	recs     map[string]record // the owner's items by contact
	ver, was int64

	saves []itemRow
	drops []dropRow
}

// itemRow is the part of a roster_items row that the book sets, in the
// JSON that finish writes. The other columns keep their values, or their
// defaults in a new row: the book never sets a name, groups, manual, ask or
// approved.
type itemRow struct {
	Contact  string
	InBook   int
	BookName string
	Sub      string
	Ver      int64
	New      bool
}

// appendItemRows writes rows as a JSON array of arrays, which SQLite reads
// faster than objects. Written by hand: encoding/json's reflection cost
// more than the statement that reads them.
func appendItemRows(b []byte, rows []itemRow) []byte {
	b = append(b, '[')
	for i, r := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendJSONString(b, r.Contact)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(r.InBook), 10)
		b = append(b, ',')
		b = appendJSONString(b, r.BookName)
		b = append(b, ',')
		b = appendJSONString(b, r.Sub)
		b = append(b, ',')
		b = strconv.AppendInt(b, r.Ver, 10)
		b = append(b, ']')
	}
	return append(b, ']')
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			js, _ := json.Marshal(s) // rare: names with escapes or non-ASCII
			return append(b, js...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

type dropRow struct {
	Contact string `json:"c"`
	Ver     int64  `json:"v"`
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (b *Book) newBookWriter(ctx context.Context, tx *sql.Tx, owner string) (*bookWriter, error) {
	w := &bookWriter{b: b, tx: tx, owner: owner, max: b.store.maxItems,
		recs: map[string]record{}}
	rows, err := b.query(ctx, tx, selectItems+` WHERE i.owner = ?`, owner)
	if err != nil {
		return nil, fmt.Errorf("loading roster of %s: %w", owner, err)
	}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("loading roster of %s: %w", owner, err)
		}
		w.recs[r.JID] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading roster of %s: %w", owner, err)
	}
	err = b.queryRow(ctx, tx, `SELECT ver FROM roster_versions WHERE owner = ?`,
		owner).Scan(&w.ver)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reading roster version of %s: %w", owner, err)
	}
	w.was = w.ver
	return w, nil
}

// set gives the owner's item for contact the state st, recording whether
// the contact's number is in the owner's book and under which name. A
// manual item keeps its subscription and is never removed. It returns the
// push for a visible change, nil for none, and an error wrapping
// ErrTooManyItems when a new item would pass the cap. Each contact may be
// set once per writer.
func (w *bookWriter) set(contact string, st pairState, inBook bool, name string) (*Push, error) {
	r, found := w.recs[contact]
	if !found && !st.exists {
		return nil, nil
	}
	if !found {
		if len(w.recs) >= w.max {
			return nil, fmt.Errorf("%s has %d items: %w", w.owner, len(w.recs), ErrTooManyItems)
		}
		r = record{Item: Item{JID: contact, Subscription: None}}
	}
	before := r.item()
	if !st.exists && !r.manual {
		w.ver++
		w.drops = append(w.drops, dropRow{Contact: contact, Ver: w.ver})
		delete(w.recs, contact)
		return &Push{Owner: w.owner, Item: Item{JID: contact, Subscription: Remove,
			Groups: []string{}}, Ver: formatVer(w.ver), Before: before.Subscription}, nil
	}
	hidden := r.inBook != inBook || r.bookName != name
	r.inBook, r.bookName = inBook, name
	if !r.manual {
		r.Subscription = st.sub
	}
	after := r.item()
	if found && after.Name == before.Name && after.Subscription == before.Subscription &&
		after.Origin == before.Origin {
		if hidden {
			// Only hidden columns differ: store them without a push.
			w.recs[contact] = r
			return nil, w.save(r, found)
		}
		return nil, nil
	}
	w.ver++
	w.recs[contact] = r
	if err := w.save(r, found); err != nil {
		return nil, err
	}
	return &Push{Owner: w.owner, Item: after, Ver: formatVer(w.ver), Before: before.Subscription}, nil
}

// save buffers the book's columns of r at the writer's current version.
func (w *bookWriter) save(r record, found bool) error {
	w.saves = append(w.saves, itemRow{Contact: r.JID, InBook: b2i(r.inBook),
		BookName: r.bookName, Sub: string(r.Subscription), Ver: w.ver, New: !found})
	return nil
}

// finish writes the buffered changes and the owner's new version: saved
// items as save does (forgetting the tombstones of new ones), removed
// items as drop does.
func (w *bookWriter) finish(ctx context.Context) error {
	fail := func(err error) error {
		return fmt.Errorf("writing roster of %s: %w", w.owner, err)
	}
	if len(w.saves) > 0 {
		js := appendItemRows(nil, w.saves)
		if err := w.b.exec(ctx, w.tx, `INSERT INTO roster_items
			(owner, contact, in_book, book_name, subscription, ver)
			SELECT ?, value->>0, value->>1, value->>2, value->>3, value->>4
			FROM json_each(?) WHERE true
			ON CONFLICT (owner, contact) DO UPDATE SET in_book = excluded.in_book,
			book_name = excluded.book_name, subscription = excluded.subscription,
			ver = excluded.ver`,
			w.owner, string(js)); err != nil {
			return fail(err)
		}
		var fresh []string
		for _, r := range w.saves {
			if r.New {
				fresh = append(fresh, r.Contact)
			}
		}
		if len(fresh) > 0 {
			js, err := json.Marshal(fresh)
			if err == nil {
				err = w.b.exec(ctx, w.tx, `DELETE FROM roster_removed WHERE owner = ?
					AND contact IN (SELECT value FROM json_each(?))`, w.owner, string(js))
			}
			if err != nil {
				return fail(err)
			}
		}
	}
	if len(w.drops) > 0 {
		js, err := json.Marshal(w.drops)
		if err != nil {
			return fail(err)
		}
		if err := w.b.exec(ctx, w.tx, `DELETE FROM roster_items WHERE owner = ?
			AND contact IN (SELECT value->>'c' FROM json_each(?))`,
			w.owner, string(js)); err != nil {
			return fail(err)
		}
		if err := w.b.exec(ctx, w.tx, `INSERT INTO roster_removed (owner, contact, ver)
			SELECT ?, value->>'c', value->>'v' FROM json_each(?) WHERE true
			ON CONFLICT (owner, contact) DO UPDATE SET ver = excluded.ver`,
			w.owner, string(js)); err != nil {
			return fail(err)
		}
	}
	if w.ver == w.was {
		return nil
	}
	err := w.b.exec(ctx, w.tx, `INSERT INTO roster_versions (owner, ver) VALUES (?, ?)
		ON CONFLICT (owner) DO UPDATE SET ver = excluded.ver`, w.owner, w.ver)
	if err != nil {
		return fail(err)
	}
	return nil
}

// execJSON runs query with owner and the JSON array of values, if there are
// any values.
func execJSON(ctx context.Context, tx *sql.Tx, query, owner string, values any) error {
	js, err := json.Marshal(values)
	if err != nil {
		return err
	}
	if string(js) == "null" || string(js) == "[]" || string(js) == "{}" {
		return nil
	}
	_, err = tx.ExecContext(ctx, query, owner, string(js))
	return err
}

// txStmts prepares each statement once per transaction: Joined and Left
// run the same few statements for thousands of owners, and preparing
// costs more than running a point query.
type txStmts struct {
	tx *sql.Tx
	m  map[string]*sql.Stmt
}

func newTxStmts(tx *sql.Tx) *txStmts { return &txStmts{tx: tx, m: map[string]*sql.Stmt{}} }

func (c *txStmts) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	st, err := c.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m[query] = st
	return st, nil
}

func (c *txStmts) exec(ctx context.Context, query string, args ...any) error {
	st, err := c.get(ctx, query)
	if err == nil {
		_, err = st.ExecContext(ctx, args...)
	}
	return err
}

func (c *txStmts) scan(ctx context.Context, query string, args []any, dest ...any) error {
	st, err := c.get(ctx, query)
	if err != nil {
		return err
	}
	return st.QueryRowContext(ctx, args...).Scan(dest...)
}

func (c *txStmts) close() {
	for _, st := range c.m {
		st.Close()
	}
}

// setItem gives owner's item for contact the state st, one item at a time:
// the other side of a pair, and Joined and Left. A manual item keeps its
// subscription and is never removed; an owner whose roster is full gets no
// new item. It returns the push for a visible change, nil for none. The
// statements are those of Store's load, checkRoom, bump, save and drop,
// prepared once per transaction.
func (b *Book) setItem(ctx context.Context, c *txStmts, owner, contact string, st pairState,
	inBook bool, name string) (*Push, error) {
	fail := func(err error) (*Push, error) {
		return nil, fmt.Errorf("updating roster item %s of %s: %w", contact, owner, err)
	}
	var r record
	found := true
	stmt, err := c.get(ctx, selectItems+` WHERE i.owner = ? AND i.contact = ?`)
	if err != nil {
		return fail(err)
	}
	r, err = scanRecord(stmt.QueryRowContext(ctx, owner, contact))
	if errors.Is(err, sql.ErrNoRows) {
		found, err = false, nil
	}
	if err != nil {
		return fail(err)
	}
	if !found && !st.exists {
		return nil, nil
	}
	if !found {
		var n int
		if err := c.scan(ctx, `SELECT COUNT(*) FROM roster_items WHERE owner = ?`,
			[]any{owner}, &n); err != nil {
			return fail(err)
		}
		if n >= b.store.maxItems {
			return nil, nil
		}
		r = record{Item: Item{JID: contact, Subscription: None}}
	}
	before := r.item()
	if found && r.inBook == inBook && r.bookName == name &&
		(r.manual || (st.exists && r.Subscription == st.sub)) {
		return nil, nil
	}
	bumpVer := func() (int64, error) {
		var v int64
		err := c.scan(ctx, `INSERT INTO roster_versions (owner, ver) VALUES (?, 1)
			ON CONFLICT (owner) DO UPDATE SET ver = ver + 1 RETURNING ver`, []any{owner}, &v)
		return v, err
	}
	if !st.exists && !r.manual {
		v, err := bumpVer()
		if err == nil {
			err = c.exec(ctx, `DELETE FROM roster_items WHERE owner = ? AND contact = ?`,
				owner, contact)
		}
		if err == nil {
			err = c.exec(ctx, `INSERT INTO roster_removed (owner, contact, ver) VALUES (?, ?, ?)
				ON CONFLICT (owner, contact) DO UPDATE SET ver = excluded.ver`, owner, contact, v)
		}
		if err != nil {
			return fail(err)
		}
		it := Item{JID: contact, Subscription: Remove, Groups: []string{}}
		return &Push{Owner: owner, Item: it, Ver: formatVer(v), Before: before.Subscription}, nil
	}
	r.inBook, r.bookName = inBook, name
	if !r.manual {
		r.Subscription = st.sub
	}
	after := r.item()
	visible := !found || after.Name != before.Name || after.Subscription != before.Subscription ||
		after.Origin != before.Origin
	var v int64
	if visible {
		v, err = bumpVer()
	} else {
		err = c.scan(ctx, `SELECT ver FROM roster_versions WHERE owner = ?`, []any{owner}, &v)
	}
	if err != nil {
		return fail(err)
	}
	groups := []byte("[]")
	if len(r.Groups) > 0 {
		if groups, err = json.Marshal(r.Groups); err != nil {
			return fail(err)
		}
	}
	if err := c.exec(ctx, upsertItem, owner, r.JID, r.name, string(groups), r.manual, r.inBook,
		r.bookName, string(r.Subscription), r.Ask, r.Approved, v); err != nil {
		return fail(err)
	}
	if !found {
		if err := c.exec(ctx, `DELETE FROM roster_removed WHERE owner = ? AND contact = ?`,
			owner, contact); err != nil {
			return fail(err)
		}
	}
	if !visible {
		return nil, nil
	}
	return &Push{Owner: owner, Item: after, Ver: formatVer(v), Before: before.Subscription}, nil
}

// upsertItem is save's statement.
const upsertItem = `INSERT INTO roster_items
	(owner, contact, name, groups, manual, in_book, book_name, subscription, ask, approved, ver)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name,
	groups = excluded.groups, manual = excluded.manual, in_book = excluded.in_book,
	book_name = excluded.book_name, subscription = excluded.subscription,
	ask = excluded.ask, approved = excluded.approved, ver = excluded.ver`

// addToRosters gives each holder, who has no item for contact and whom
// contact does not hold, a new book item for contact under the holder's
// name for it, with the one-sided subscription; a holder whose roster is
// full is skipped. It runs a fixed number of statements whatever the
// number of holders (rows go in as JSON, see bookWriter), so that a
// number held in ten thousand books joins them in a fraction of a second.
func (b *Book) addToRosters(ctx context.Context, tx *sql.Tx, contact string,
	holders []holder) ([]Push, error) {
	if len(holders) == 0 {
		return nil, nil
	}
	fail := func(err error) ([]Push, error) {
		return nil, fmt.Errorf("adding %s to %d rosters: %w", contact, len(holders), err)
	}
	owners := make([]string, len(holders))
	for i, h := range holders {
		owners[i] = h.owner
	}
	js, err := json.Marshal(owners)
	if err != nil {
		return fail(err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT owner, COUNT(*) FROM roster_items
		WHERE owner IN (SELECT value FROM json_each(?)) GROUP BY owner`, string(js))
	if err != nil {
		return fail(err)
	}
	full := map[string]bool{}
	for rows.Next() {
		var owner string
		var n int
		if err := rows.Scan(&owner, &n); err != nil {
			rows.Close()
			return fail(err)
		}
		full[owner] = n >= b.store.maxItems
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	var room []holder
	owners = owners[:0]
	for _, h := range holders {
		if !full[h.owner] {
			room = append(room, h)
			owners = append(owners, h.owner)
		}
	}
	if len(room) == 0 {
		return nil, nil
	}
	// One version bump per owner, returned for the pushes.
	vers, err := bumpVersions(ctx, tx, owners)
	if err != nil {
		return fail(err)
	}
	sub := b.want(true, false).sub
	type row [4]any // owner, book name, subscription, version
	items := make([]row, len(room))
	pushes := make([]Push, len(room))
	for i, h := range room {
		items[i] = row{h.owner, h.name, string(sub), vers[h.owner]}
		it := record{Item: Item{JID: contact, Subscription: sub}, inBook: true, bookName: h.name}
		pushes[i] = Push{Owner: h.owner, Item: it.item(), Ver: formatVer(vers[h.owner]),
			Before: None}
	}
	if js, err = json.Marshal(items); err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO roster_items
		(owner, contact, in_book, book_name, subscription, ver)
		SELECT value->>0, ?, 1, value->>1, value->>2, value->>3 FROM json_each(?)`,
		contact, string(js)); err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM roster_removed WHERE contact = ?
		AND owner IN (SELECT value->>0 FROM json_each(?))`, contact, string(js)); err != nil {
		return fail(err)
	}
	return pushes, nil
}

// removeFromRosters removes the items for contact that no owner added by
// hand (manual = 0) from the rosters of owners (see bookOwners), leaving
// tombstones, with one version bump per owner, in a fixed number of
// statements; it returns the pushes in owner order.
func (b *Book) removeFromRosters(ctx context.Context, tx *sql.Tx, contact string,
	owners []string) ([]Push, error) {
	fail := func(err error) ([]Push, error) {
		return nil, fmt.Errorf("removing %s from rosters: %w", contact, err)
	}
	if len(owners) == 0 {
		return nil, nil
	}
	candidates, err := json.Marshal(owners)
	if err != nil {
		return fail(err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT owner, subscription FROM roster_items
		WHERE owner IN (SELECT value FROM json_each(?)) AND contact = ? AND manual = 0
		ORDER BY owner`, string(candidates), contact)
	if err != nil {
		return fail(err)
	}
	var pushes []Push
	var removed []string
	for rows.Next() {
		var p Push
		if err := rows.Scan(&p.Owner, &p.Before); err != nil {
			rows.Close()
			return fail(err)
		}
		p.Item = Item{JID: contact, Subscription: Remove, Groups: []string{}}
		pushes = append(pushes, p)
		removed = append(removed, p.Owner)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	if len(removed) == 0 {
		return nil, nil
	}
	vers, err := bumpVersions(ctx, tx, removed)
	if err != nil {
		return fail(err)
	}
	type row [2]any // owner, version
	tombs := make([]row, len(pushes))
	for i := range pushes {
		v := vers[pushes[i].Owner]
		pushes[i].Ver = formatVer(v)
		tombs[i] = row{pushes[i].Owner, v}
	}
	js, err := json.Marshal(tombs)
	if err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM roster_items
		WHERE owner IN (SELECT value->>0 FROM json_each(?)) AND contact = ? AND manual = 0`,
		string(js), contact); err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO roster_removed (owner, contact, ver)
		SELECT value->>0, ?, value->>1 FROM json_each(?) WHERE true
		ON CONFLICT (owner, contact) DO UPDATE SET ver = excluded.ver`,
		contact, string(js)); err != nil {
		return fail(err)
	}
	return pushes, nil
}

// bumpVersions raises the roster version of every owner by one in a single
// statement and returns the new versions, for the pushes.
func bumpVersions(ctx context.Context, tx *sql.Tx, owners []string) (map[string]int64, error) {
	js, err := json.Marshal(owners)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `INSERT INTO roster_versions (owner, ver)
		SELECT value, 1 FROM json_each(?) WHERE true
		ON CONFLICT (owner) DO UPDATE SET ver = ver + 1 RETURNING owner, ver`, string(js))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	vers := make(map[string]int64, len(owners))
	for rows.Next() {
		var owner string
		var v int64
		if err := rows.Scan(&owner, &v); err != nil {
			return nil, err
		}
		vers[owner] = v
	}
	return vers, rows.Err()
}
