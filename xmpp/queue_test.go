package xmpp

// Tests of the queue as the server uses it: the single check (no <a/>
// before the commit), a queue that cannot commit, offline delivery
// (XEP-0160) with XEP-0203 and XEP-0359 stamps, which messages are queued,
// the per-recipient cap and expiry.

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/offline"
	"github.com/twotick/twotick/xmpp/wire"
)

// holdCommits takes SQLite's write lock on a connection of its own, so that
// the queue's next commit waits in its busy handler (the busy timeout is
// 10 s). The returned function releases the lock.
func holdCommits(t *testing.T, ts *testServer) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := ts.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		conn.Close()
		t.Fatalf("taking the write lock: %v", err)
	}
	var done atomic.Bool
	release = func() {
		if done.Swap(true) {
			return
		}
		if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Errorf("releasing the write lock: %v", err)
		}
		conn.Close()
	}
	t.Cleanup(release)
	return release
}

// storedRows counts the queue's rows for local straight from the table, on
// a connection the queue does not use: what a crash would leave.
func storedRows(t *testing.T, db *sql.DB, bare string) int {
	t.Helper()
	var n int
	err := db.QueryRow("SELECT COUNT(*) FROM offline_messages WHERE recipient = ?", bare).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSingleCheckAfterCommit holds the queue's commit and checks that the
// sender's <a/> waits for it: it fails if the server acknowledges a message
// before the message is committed.
func TestSingleCheckAfterCommit(t *testing.T) {
	ts := newTestServer(t)
	addUsers(t, ts, "alice", "bob")
	alice, _ := smLogin(t, ts, "alice", "", false)

	release := holdCommits(t, ts)
	alice.sendMessage(t, ts.jid("bob"), "held")
	alice.send(t, "<r xmlns='urn:xmpp:sm:3'/>")

	// While the commit is held nothing may acknowledge the message. A
	// server that counts before committing answers <r/> at once.
	deadline := time.Now().Add(300 * time.Millisecond)
	for {
		el, err := alice.next(time.Until(deadline))
		if errors.Is(err, errTimeout) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if isSM("a")(el) && el.Get("h") != "0" {
			t.Fatalf("acknowledged %s before the message was committed", el)
		}
	}
	if n := storedRows(t, ts.db, ts.jid("bob")); n != 0 {
		t.Fatalf("%d rows stored while the commit was held", n)
	}

	release()
	a := alice.expect(t, isSM("a"), 0)
	if a.Get("h") != "1" {
		t.Fatalf("got %s, want h='1'", a)
	}
	// The acknowledgement came; the message must be durable by now.
	if n := storedRows(t, ts.db, ts.jid("bob")); n != 1 {
		t.Fatalf("%d rows stored when the sender saw the ack, want 1", n)
	}
}

// failInserts makes every insert into the queue fail, as a full disk
// would, until the returned function is called.
func failInserts(t *testing.T, ts *testServer) (restore func()) {
	t.Helper()
	_, err := ts.db.Exec(`CREATE TRIGGER test_fail_insert BEFORE INSERT ON offline_messages
		BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END`)
	if err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	restore = func() {
		if done.Swap(true) {
			return
		}
		if _, err := ts.db.Exec("DROP TRIGGER test_fail_insert"); err != nil {
			t.Errorf("dropping the failure trigger: %v", err)
		}
	}
	t.Cleanup(restore)
	return restore
}

// TestQueueFailure checks what a sender sees when the queue cannot commit:
// a wait error, no acknowledgement covering the message, and an unhealthy
// server, which recovers with the next successful commit.
func TestQueueFailure(t *testing.T) {
	ts := newTestServer(t)
	addUsers(t, ts, "alice", "bob")

	t.Run("without stream management", func(t *testing.T) {
		alice := login(t, ts, "alice", "pw-alice", "plain")
		restore := failInserts(t, ts)
		id := alice.sendMessage(t, ts.jid("bob"), "lost")
		el := alice.expect(t, byID(id), 0)
		if el.Get("type") != "error" || el.Child(wire.NSClient, "error").Get("type") != "wait" {
			t.Fatalf("got %s, want a wait error", el)
		}
		if ts.srv.Healthy() == nil {
			t.Fatal("Healthy() = nil while the queue cannot commit")
		}
		restore()
		alice.sendMessage(t, ts.jid("bob"), "kept")
		alice.sync(t)
		if err := ts.srv.Healthy(); err != nil {
			t.Fatalf("Healthy() = %v after a successful commit", err)
		}
		if n := queued(t, ts, "bob"); n != 1 {
			t.Fatalf("%d queued, want 1", n)
		}
	})

	t.Run("with stream management", func(t *testing.T) {
		alice, enabled := smLogin(t, ts, "alice", "phone", true)
		alice.sendMessage(t, ts.jid("bob"), "before")
		if h := requestAck(t, alice); h != 1 {
			t.Fatalf("h = %d, want 1", h)
		}
		restore := failInserts(t, ts)
		id := alice.sendMessage(t, ts.jid("bob"), "not stored")
		alice.send(t, "<r xmlns='urn:xmpp:sm:3'/>")

		// The error comes, and no <a/> ever covers the message: h would
		// have to count it, so the stream ends instead and the client
		// learns at resumption that the message was not handled.
		gotErr := false
		for {
			el, err := alice.next(waitTime)
			if err != nil {
				break
			}
			switch {
			case el.Get("id") == id && el.Get("type") == "error":
				if el.Child(wire.NSClient, "error").Get("type") != "wait" {
					t.Fatalf("got %s, want a wait error", el)
				}
				gotErr = true
			case isSM("a")(el):
				if el.Get("h") != "1" {
					t.Fatalf("%s covers the message the queue did not store", el)
				}
			}
		}
		if ts.srv.Healthy() == nil {
			t.Fatal("Healthy() = nil while the queue cannot commit")
		}
		restore()

		// Resumption: the count says the message was not handled, and the
		// error comes now if it had not before the stream ended.
		c, el := resume(t, ts, "alice", enabled.Get("id"), alice.stanzaCount())
		if el.Name.Local != "resumed" || el.Get("h") != "1" {
			t.Fatalf("got %s, want <resumed h='1'/>", el)
		}
		for _, e := range c.sync(t) {
			if e.Get("id") == id && e.Get("type") == "error" {
				gotErr = true
			}
		}
		if !gotErr {
			t.Fatal("the sender never got an error for the message")
		}
		// The client resends it, and this time it is stored.
		c.send(t, "<message type='chat' id='"+id+"' to='"+ts.jid("bob")+
			"'><body>not stored</body></message>")
		if h := requestAck(t, c); h != 3 {
			t.Fatalf("h = %d, want 3 (sync ping and the resent message)", h)
		}
		if err := ts.srv.Healthy(); err != nil {
			t.Fatalf("Healthy() = %v after a successful commit", err)
		}
	})
}

// TestOfflineDelivery checks XEP-0160 delivery: after initial presence and
// not before, in order, with <delay/> and the server's <stanza-id/> in
// place of a forged one, and never again once acknowledged.
func TestOfflineDelivery(t *testing.T) {
	ts := newTestServer(t)
	addUsers(t, ts, "alice", "bob")
	alice := login(t, ts, "alice", "pw-alice", "")
	sendBodies(t, alice, ts.jid("bob"), "first", "second")
	alice.send(t, "<message type='chat' id='forge' to='"+ts.jid("bob")+"'><body>third</body>"+
		"<stanza-id xmlns='urn:xmpp:sid:0' by='"+ts.jid("bob")+"' id='forged'/></message>")
	alice.sync(t)
	waitQueued(t, ts, "bob", 3)

	bob, _ := smLogin(t, ts, "bob", "phone", false)
	bob.expectNone(t, named("message"))
	bob.sendPresence(t, "")
	var bodies []string
	for _, el := range bob.sync(t) {
		if el.Name.Local != "message" {
			continue
		}
		bodies = append(bodies, el.ChildText(wire.NSClient, "body"))
		d := el.Child(nsDelay, "delay")
		if d == nil || d.Get("from") != testDomain {
			t.Errorf("no <delay from=%q/>: %s", testDomain, el)
		} else if _, err := time.Parse(time.RFC3339, d.Get("stamp")); err != nil {
			t.Errorf("delay stamp %q: %v", d.Get("stamp"), err)
		}
		var ids []*wire.Element
		for _, c := range el.Children() {
			if c.Name.Space == nsSID && c.Name.Local == "stanza-id" {
				ids = append(ids, c)
			}
		}
		if len(ids) != 1 || ids[0].Get("by") != ts.jid("bob") || ids[0].Get("id") == "" ||
			ids[0].Get("id") == "forged" {
			t.Errorf("stanza-ids %v in %s, want one of the server's by %s", ids, el, ts.jid("bob"))
		}
		if !strings.HasPrefix(el.Get("from"), ts.jid("alice")+"/") {
			t.Errorf("from = %q", el.Get("from"))
		}
	}
	if got := strings.Join(bodies, " "); got != "first second third" {
		t.Fatalf("delivered %q, want \"first second third\" in order", got)
	}

	ackAll(t, bob)
	waitQueued(t, ts, "bob", 0)
	bob.closeStream(t)
	again, _ := smLogin(t, ts, "bob", "phone", false)
	again.sendPresence(t, "")
	again.expectNone(t, named("message"))
}

// TestQueuePolicy checks which messages to an offline user are queued.
func TestQueuePolicy(t *testing.T) {
	ts := newTestServer(t)
	addUsers(t, ts, "alice", "bob")
	alice := login(t, ts, "alice", "pw-alice", "")
	bob := ts.jid("bob")

	tests := []struct {
		name   string
		stanza string
		queued bool
	}{
		{"chat with a body", "<message type='chat' to='" + bob + "'><body>hi</body></message>", true},
		{"normal with a body", "<message to='" + bob + "'><body>hi</body></message>", true},
		{"chat state only", "<message type='chat' to='" + bob + "'>" +
			"<composing xmlns='http://jabber.org/protocol/chatstates'/></message>", false},
		{"headline", "<message type='headline' to='" + bob + "'><body>news</body></message>", false},
		{"no-store hint", "<message type='chat' to='" + bob + "'><body>hi</body>" +
			"<no-store xmlns='urn:xmpp:hints'/></message>", false},
		{"store hint without a body", "<message type='chat' to='" + bob + "'>" +
			"<store xmlns='urn:xmpp:hints'/></message>", true},
		{"chat marker", "<message type='chat' to='" + bob + "'>" +
			"<displayed xmlns='urn:xmpp:chat-markers:0' id='x'/></message>", true},
		{"OMEMO payload", "<message type='chat' to='" + bob + "'>" +
			"<encrypted xmlns='urn:xmpp:omemo:2'><payload>AA==</payload>" +
			"</encrypted></message>", true},
		{"legacy OMEMO payload", "<message type='chat' to='" + bob + "'>" +
			"<encrypted xmlns='eu.siacs.conversations.axolotl'><payload>AA==</payload>" +
			"</encrypted></message>", true},
		{"presence", "<presence to='" + bob + "' type='subscribe'/>", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := queued(t, ts, "bob")
			alice.send(t, tt.stanza)
			alice.sync(t) // handled, and committed if it was to be
			after := queued(t, ts, "bob")
			if got := after > before; got != tt.queued {
				t.Fatalf("queued = %v (%d -> %d), want %v", got, before, after, tt.queued)
			}
		})
	}
}

// TestQueueCap fills a recipient's queue: the next sender gets
// resource-constraint, and nothing is lost silently.
func TestQueueCap(t *testing.T) {
	ts := newTestServer(t, func(c *conf.Config) { c.Offline.MaxPerUser = 2 })
	addUsers(t, ts, "alice", "bob")
	alice, _ := smLogin(t, ts, "alice", "", false)
	sendBodies(t, alice, ts.jid("bob"), "c1", "c2")
	id := alice.sendMessage(t, ts.jid("bob"), "c3")
	el := alice.expect(t, byID(id), 0)
	if el.Get("type") != "error" || stanzaErrorCond(el) != "resource-constraint" {
		t.Fatalf("got %s, want resource-constraint", el)
	}
	if n := queued(t, ts, "bob"); n != 2 {
		t.Fatalf("%d queued, want 2", n)
	}
}

// swapQueue replaces the server's queue with one opened on the same
// database with opts, before any client connects. The server's lock
// orders the write before every connection's reads.
func swapQueue(t *testing.T, ts *testServer, opts offline.Options) *offline.Queue {
	t.Helper()
	q, err := offline.Open(context.Background(), ts.db, opts, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	ts.srv.mu.Lock()
	ts.srv.deps.Queue = q
	ts.srv.mu.Unlock()
	ts.deps.Queue = q
	return q
}

// TestQueueExpiry checks that undelivered messages older than the
// configured age are deleted by the expiry run and never delivered.
func TestQueueExpiry(t *testing.T) {
	ts := newTestServer(t, func(c *conf.Config) {
		c.Offline.MaxAge = conf.Duration{Duration: time.Hour}
	})
	var skew atomic.Int64 // how far the queue's clock runs ahead
	swapQueue(t, ts, offline.Options{
		MaxAge:      ts.cfg.Offline.MaxAge.Duration,
		ExpireEvery: 20 * time.Millisecond,
		Synchronous: "off",
		Now:         func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
	})
	addUsers(t, ts, "alice", "bob")
	alice := login(t, ts, "alice", "pw-alice", "")
	sendBodies(t, alice, ts.jid("bob"), "old1", "old2")
	alice.sync(t)
	if n := queued(t, ts, "bob"); n != 2 {
		t.Fatalf("%d queued, want 2", n)
	}

	skew.Store(int64(2 * time.Hour)) // the messages are now two hours old
	waitQueued(t, ts, "bob", 0)
	skew.Store(0)
	alice.sendMessage(t, ts.jid("bob"), "fresh")
	alice.sync(t)

	bob := login(t, ts, "bob", "pw-bob", "")
	bob.sendPresence(t, "")
	var bodies []string
	for _, el := range bob.sync(t) {
		if el.Name.Local == "message" {
			bodies = append(bodies, el.ChildText(wire.NSClient, "body"))
		}
	}
	if got := strings.Join(bodies, " "); got != "fresh" {
		t.Fatalf("delivered %q, want only \"fresh\"", got)
	}
}
