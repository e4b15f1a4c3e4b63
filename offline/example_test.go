package offline_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"

	_ "github.com/mattn/go-sqlite3"

	"github.com/twotick/twotick/offline"
)

// The life of a message: stored before the sender is acknowledged, read
// back when the recipient comes online, deleted once the recipient has
// acknowledged it.
func Example() {
	dir, err := os.MkdirTemp("", "offline-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dsn := "file:" + filepath.Join(dir, "twotick.db") +
		"?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate"
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	ctx := context.Background()
	q, err := offline.Open(ctx, db, offline.Options{}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()

	// Sender side: acknowledge with XEP-0198 only after Enqueue returns nil.
	m := &offline.Message{
		To:       "+12025550102@localhost",
		From:     "+12025550101@localhost",
		ClientID: "m1",
		StanzaID: "3kd9",
		Payload:  []byte(`<message id="m1"><body>hello</body></message>`),
	}
	if err := q.Enqueue(ctx, m); err != nil {
		log.Fatal(err) // the sender gets a stanza error, no acknowledgement
	}

	// Recipient side: deliver in order, then purge what was acknowledged.
	pending, err := q.Pending(ctx, "+12025550102@localhost", 0, 100)
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range pending {
		fmt.Printf("deliver %s from %s: %s\n", p.ClientID, p.From, p.Payload)
	}
	if err := q.Delete(ctx, "+12025550102@localhost", []int64{pending[0].ID}); err != nil {
		log.Fatal(err)
	}
	n, _ := q.Count(ctx, "+12025550102@localhost")
	fmt.Println("left:", n)
	// Output:
	// deliver m1 from +12025550101@localhost: <message id="m1"><body>hello</body></message>
	// left: 0
}
