package roster

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// queueSchema holds roster pushes that a process without sessions (the
// command line: "twotick user add", "user import", "user del") leaves for
// the server that runs on the same database. Only the pair and the
// subscription before the change are kept: the server pushes the item as
// it is when it takes the row, which is what the owner must end up with
// even if it changed again in between.
const queueSchema = `
CREATE TABLE IF NOT EXISTS roster_book_pushes (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	owner   TEXT NOT NULL,
	contact TEXT NOT NULL,
	before  TEXT NOT NULL
);
` + accountLogSchema

// maxTaken bounds the queued pushes that one TakeQueued returns; the rest
// wait for the next call.
const maxTaken = 10000

// Queue stores pushes for the server to send (TakeQueued). A process that
// changes rosters on the server's database but serves no sessions, such as
// the command line after Joined or Left, calls it so that the owners who
// are online see the change without logging in again.
func (b *Book) Queue(ctx context.Context, pushes []Push) error {
	if len(pushes) == 0 {
		return nil
	}
	type row struct {
		Owner   string `json:"o"`
		Contact string `json:"c"`
		Before  string `json:"b"`
	}
	rows := make([]row, len(pushes))
	for i, p := range pushes {
		rows[i] = row{p.Owner, p.Item.JID, string(p.Before)}
	}
	js, err := json.Marshal(rows)
	if err != nil {
		return fmt.Errorf("queueing roster pushes: %w", err)
	}
	err = b.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO roster_book_pushes (owner, contact, before)
			SELECT value->>'o', value->>'c', value->>'b' FROM json_each(?)`, string(js))
		return err
	})
	if err != nil {
		return fmt.Errorf("queueing roster pushes: %w", err)
	}
	return nil
}

// TakeQueued removes the queued pushes (at most maxTaken, oldest first) and
// returns them with each item as it is now: its current state and the
// owner's current version, or Remove if the item is gone. Several queued
// pushes of one pair become one, with the oldest Before. It also applies
// the account changes that other processes logged (WithAccountLog) to the
// in-memory index.
func (b *Book) TakeQueued(ctx context.Context) ([]Push, error) {
	// The server calls this every second; an empty queue, the usual case,
	// is seen with a read, without taking the write lock.
	var queued bool
	err := b.store.db.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM roster_book_pushes)
		OR EXISTS (SELECT 1 FROM roster_book_accounts)`).Scan(&queued)
	if err != nil {
		return nil, fmt.Errorf("taking queued roster pushes: %w", err)
	}
	if !queued {
		return nil, nil
	}
	var pushes []Push
	err = b.write(ctx, func(tx *sql.Tx) error {
		pushes = nil
		if err := b.load(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, owner, contact, before
			FROM roster_book_pushes ORDER BY id LIMIT ?`, maxTaken)
		if err != nil {
			return err
		}
		type pair struct{ owner, contact string }
		seen := map[pair]bool{}
		var last int64
		var list []Push
		for rows.Next() {
			var p Push
			var before string
			if err := rows.Scan(&last, &p.Owner, &p.Item.JID, &before); err != nil {
				rows.Close()
				return err
			}
			k := pair{p.Owner, p.Item.JID}
			if seen[k] {
				continue
			}
			seen[k] = true
			p.Before = Subscription(before)
			list = append(list, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(list) == 0 {
			return b.applyLogIfServer(ctx, tx)
		}
		stmts := newTxStmts(tx)
		defer stmts.close()
		for _, p := range list {
			st, err := stmts.get(ctx, selectItems+` WHERE i.owner = ? AND i.contact = ?`)
			if err != nil {
				return err
			}
			r, err := scanRecord(st.QueryRowContext(ctx, p.Owner, p.Item.JID))
			switch {
			case errors.Is(err, sql.ErrNoRows):
				p.Item = Item{JID: p.Item.JID, Subscription: Remove, Groups: []string{}}
			case err != nil:
				return err
			default:
				p.Item = r.item()
			}
			var v int64
			err = stmts.scan(ctx, `SELECT ver FROM roster_versions WHERE owner = ?`,
				[]any{p.Owner}, &v)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			p.Ver = formatVer(v)
			pushes = append(pushes, p)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM roster_book_pushes WHERE id <= ?`, last)
		if err != nil {
			return err
		}
		return b.applyLogIfServer(ctx, tx)
	})
	if err != nil {
		return nil, fmt.Errorf("taking queued roster pushes: %w", err)
	}
	return pushes, nil
}

// JoinedMany is Joined for many new numbers at once (an import): it
// records them all as registered in one write, then runs Joined for those
// that some book holds. The pushes are returned in number order.
func (b *Book) JoinedMany(ctx context.Context, numbers []string) ([]Push, error) {
	err := b.write(ctx, func(tx *sql.Tx) error {
		if err := b.load(ctx, tx); err != nil {
			return err
		}
		if b.logAccounts {
			js, err := json.Marshal(numbers)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO roster_book_accounts (number, joined)
				SELECT value, 1 FROM json_each(?)`, string(js)); err != nil {
				return err
			}
		}
		b.idx.mu.Lock()
		b.idx.addRegistered(numbers)
		b.idx.mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recording %d new numbers: %w", len(numbers), err)
	}
	var held []string
	for _, n := range numbers {
		if strings.HasPrefix(n, "+") && b.idx.held(n) {
			held = append(held, n)
		}
	}
	slices.Sort(held)
	var pushes []Push
	for _, n := range held {
		p, err := b.joined(ctx, n, false)
		if err != nil {
			return pushes, err
		}
		pushes = append(pushes, p...)
	}
	return pushes, nil
}
