// Package storage opens twotick's embedded SQLite database with the settings
// every store relies on: WAL journaling, a busy timeout, foreign keys and
// immediate write transactions.
//
// Each store (accounts, roster, queue) receives the *sql.DB and owns its own
// tables; this package only opens the file.
package storage

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	_ "github.com/mattn/go-sqlite3" // registers the sqlite3 driver
)

// Open opens (creating if needed) the SQLite database at path with the given
// synchronous mode (full, normal or off) and checks that it is usable.
func Open(ctx context.Context, path, synchronous string) (*sql.DB, error) {
	mode := strings.ToUpper(synchronous)
	switch mode {
	case "FULL", "NORMAL", "OFF":
	default:
		return nil, fmt.Errorf("opening %s: synchronous must be full, normal or off, not %q",
			path, synchronous)
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", mode)
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return db, nil
}
