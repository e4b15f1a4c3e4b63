package xmpp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twotick/twotick/roster"
	"github.com/twotick/twotick/xmpp/auth"
	"github.com/twotick/twotick/xmpp/wire"
)

// Phone accounts of the contact tests. The numbers are US numbers, so that
// an uploader's "(202) 555-0102" reads as bob's.
const (
	numAlice = "+12025550101"
	numBob   = "+12025550102"
	numCarol = "+12025550103"
	numDave  = "+12025550104" // never registered
)

// newContactsServer is a test server with contact discovery: a Book over
// its stores with the given daily limit (0 for the default), and the
// account hook that serve installs.
func newContactsServer(t testing.TB, limit int, opts ...roster.BookOption) *testServer {
	t.Helper()
	ts := newTestServer(t)
	book := roster.NewBook(ts.deps.Roster, AccountDirectory{Accounts: ts.deps.Accounts,
		DB: ts.deps.DB}, testDomain, limit, opts...)
	// New copied Deps before the Book existed. Every connection takes
	// srv.mu (admit) before it reads deps, so writing under it orders this
	// write before those reads, for the race detector too.
	ts.srv.mu.Lock()
	ts.srv.deps.Book = book
	ts.srv.mu.Unlock()
	ts.deps.Book = book
	ts.deps.Accounts.OnChange = func(local string, c auth.Change) {
		if c == auth.ChangePassword || c == auth.ChangeDeleted {
			ts.srv.CloseSessions(local, "not-authorized")
		}
		ts.srv.AccountChanged(local, c)
	}
	return ts
}

// bookOnline logs local in, fetches the roster (so that pushes come) and, if
// avail, sends available presence.
func bookOnline(t testing.TB, ts *testServer, local string, avail bool) *rawClient {
	t.Helper()
	c := login(t, ts, local, "pw", "phone")
	c.rosterGet(t, "-")
	if avail {
		c.sendPresence(t, "")
	}
	c.sync(t)
	return c
}

// contactsIQ sends an IQ with payload and returns the answer.
func (c *rawClient) contactsIQ(t *testing.T, typ, to, payload string) *wire.Element {
	t.Helper()
	id := c.nextID()
	attrs := ""
	if to != "" {
		attrs = " to='" + to + "'"
	}
	c.send(t, "<iq type='"+typ+"' id='"+id+"'"+attrs+">"+payload+"</iq>")
	return c.expect(t, byID(id), 0)
}

// bookPush matches a roster push of item jid with the given subscription.
func bookPush(jid, sub string) func(*wire.Element) bool {
	return func(el *wire.Element) bool {
		if el.Name.Local != "iq" || el.Get("type") != "set" {
			return false
		}
		q := el.Child(nsRoster, "query")
		if q == nil {
			return false
		}
		it := q.Child(nsRoster, "item")
		return it != nil && it.Get("jid") == jid && it.Get("subscription") == sub
	}
}

func phoneBookXML(ver string, numbers ...string) string {
	var b strings.Builder
	b.WriteString("<phone-book xmlns='" + nsQuicksy + "'")
	if ver != "" {
		b.WriteString(" ver='" + ver + "'")
	}
	b.WriteString(">")
	for _, n := range numbers {
		b.WriteString("<entry number='" + n + "'/>")
	}
	b.WriteString("</phone-book>")
	return b.String()
}

func TestQuicksyPhoneBook(t *testing.T) {
	ts := newContactsServer(t, 0)
	for _, n := range []string{numAlice, numBob, numCarol} {
		ts.addUser(t, n, "pw")
	}
	alice := bookOnline(t, ts, numAlice, false)
	api := "api." + testDomain

	t.Run("disco", func(t *testing.T) {
		items := alice.contactsIQ(t, "get", testDomain, "<query xmlns='"+nsDiscoItems+"'/>")
		q := items.Child(nsDiscoItems, "query")
		if q == nil || !slices.ContainsFunc(q.Children(), func(e *wire.Element) bool {
			return e.Get("jid") == api
		}) {
			t.Fatalf("domain disco#items does not list %s: %s", api, items)
		}
		info := alice.contactsIQ(t, "get", api, "<query xmlns='"+nsDiscoInfo+"'/>")
		q = info.Child(nsDiscoInfo, "query")
		if q == nil || q.Child(nsDiscoInfo, "identity") == nil ||
			!slices.ContainsFunc(q.Children(), func(e *wire.Element) bool {
				return e.Get("var") == nsQuicksy
			}) {
			t.Fatalf("api disco#info lacks the identity or feature: %s", info)
		}
	})

	var ver string
	t.Run("upload", func(t *testing.T) {
		res := alice.contactsIQ(t, "get", api, phoneBookXML("", numBob, numCarol, numDave, "garbage"))
		pb := res.Child(nsQuicksy, "phone-book")
		if res.Get("type") != "result" || pb == nil {
			t.Fatalf("phone-book answer: %s", res)
		}
		got := map[string]string{}
		for _, e := range pb.Children() {
			got[e.Get("number")] = e.ChildText(nsQuicksy, "jid")
		}
		want := map[string]string{numBob: ts.jid(numBob), numCarol: ts.jid(numCarol)}
		if len(got) != len(want) || got[numBob] != want[numBob] || got[numCarol] != want[numCarol] {
			t.Fatalf("matches = %v, want %v", got, want)
		}
		ver = pb.Get("ver")
		wantVer := roster.QuicksyVer([]roster.Match{
			{Number: numBob, JID: ts.jid(numBob)}, {Number: numCarol, JID: ts.jid(numCarol)}})
		if ver != wantVer {
			t.Errorf("ver = %q, want %q", ver, wantVer)
		}
		// The pushes follow the answer.
		alice.expect(t, bookPush(ts.jid(numBob), "none"), 0)
		alice.expect(t, bookPush(ts.jid(numCarol), "none"), 0)
		_, items, err := ts.deps.Roster.Items(context.Background(), ts.jid(numAlice))
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 2 || items[0].JID != ts.jid(numBob) || items[1].JID != ts.jid(numCarol) {
			t.Fatalf("roster after upload: %+v", items)
		}
	})

	t.Run("unchanged ver", func(t *testing.T) {
		res := alice.contactsIQ(t, "get", api, phoneBookXML(ver, numBob, numCarol, numDave))
		if res.Get("type") != "result" || len(res.Children()) != 0 {
			t.Fatalf("same book with its ver: want an empty result, got %s", res)
		}
	})

	t.Run("number removed", func(t *testing.T) {
		res := alice.contactsIQ(t, "get", api, phoneBookXML(ver, numBob))
		if res.Child(nsQuicksy, "phone-book") == nil {
			t.Fatalf("changed book: want a phone-book, got %s", res)
		}
		alice.expect(t, bookPush(ts.jid(numCarol), "remove"), 0)
	})

	t.Run("bot refused", func(t *testing.T) {
		ts.addUser(t, "weather", "pw")
		bot := login(t, ts, "weather", "pw", "x")
		res := bot.contactsIQ(t, "get", api, phoneBookXML("", numBob))
		if got := stanzaErrorCond(res); got != "not-allowed" {
			t.Fatalf("bot upload: condition %q, want not-allowed: %s", got, res)
		}
	})
}

func TestUploadPushesReachEverySession(t *testing.T) {
	ts := newContactsServer(t, 0)
	ts.addUser(t, numAlice, "pw")
	ts.addUser(t, numBob, "pw")
	phone := bookOnline(t, ts, numAlice, false)
	laptop := login(t, ts, numAlice, "pw", "laptop")
	laptop.rosterGet(t, "-")
	phone.contactsIQ(t, "get", "api."+testDomain, phoneBookXML("", numBob))
	phone.expect(t, bookPush(ts.jid(numBob), "none"), 0)
	laptop.expect(t, bookPush(ts.jid(numBob), "none"), 0)
}

func TestSyncContactsCommand(t *testing.T) {
	ts := newContactsServer(t, 0)
	for _, n := range []string{numAlice, numBob, numCarol} {
		ts.addUser(t, n, "pw")
	}
	alice := bookOnline(t, ts, numAlice, false)

	t.Run("listed", func(t *testing.T) {
		res := alice.contactsIQ(t, "get", testDomain,
			"<query xmlns='"+nsDiscoItems+"' node='"+nsCommands+"'/>")
		q := res.Child(nsDiscoItems, "query")
		if q == nil || len(q.Children()) != 1 || q.Children()[0].Get("node") != syncNode ||
			q.Children()[0].Get("name") != syncName {
			t.Fatalf("commands: %s", res)
		}
	})

	res := alice.contactsIQ(t, "set", testDomain,
		"<command xmlns='"+nsCommands+"' node='"+syncNode+"' action='execute'/>")
	cmd := res.Child(nsCommands, "command")
	if cmd == nil || cmd.Get("status") != "executing" || cmd.Get("sessionid") == "" {
		t.Fatalf("execute: %s", res)
	}
	form := cmd.Child(nsData, "x")
	if form == nil || form.Get("type") != "form" ||
		!slices.ContainsFunc(form.Children(), func(e *wire.Element) bool {
			return e.Get("var") == syncField && e.Get("type") == "text-multi"
		}) {
		t.Fatalf("execute returned no numbers form: %s", res)
	}

	submit := "<command xmlns='" + nsCommands + "' node='" + syncNode + "' sessionid='" +
		cmd.Get("sessionid") + "' action='complete'><x xmlns='" + nsData + "' type='submit'>" +
		"<field var='numbers'><value>(202) 555-0102, Bob</value>" +
		"<value>Carol: +1 202 555 0103</value><value>not a number</value>" +
		"<value>" + numDave + "</value></field></x></command>"
	res = alice.contactsIQ(t, "set", testDomain, submit)
	cmd = res.Child(nsCommands, "command")
	if cmd == nil || cmd.Get("status") != "completed" {
		t.Fatalf("complete: %s", res)
	}
	note := cmd.ChildText(nsCommands, "note")
	if !strings.Contains(note, "2 of 4") || !strings.Contains(note, "Skipped 1 ") {
		t.Errorf("note %q does not count 2 of 4 matches and 1 skipped line", note)
	}
	alice.expect(t, func(el *wire.Element) bool {
		return bookPush(ts.jid(numBob), "none")(el) &&
			el.Child(nsRoster, "query").Child(nsRoster, "item").Get("name") == "Bob"
	}, 0)

	t.Run("cancel", func(t *testing.T) {
		res := alice.contactsIQ(t, "set", testDomain, "<command xmlns='"+nsCommands+"' node='"+
			syncNode+"' sessionid='x' action='cancel'/>")
		if c := res.Child(nsCommands, "command"); c == nil || c.Get("status") != "canceled" {
			t.Fatalf("cancel: %s", res)
		}
	})
}

// TestJoinedAndPresence follows two users through the life of a contact:
// one-sided while only alice has bob's number, mutual (both, presence both
// ways at once) when bob uploads alice's, gone when bob's account goes.
func TestJoinedAndPresence(t *testing.T) {
	ts := newContactsServer(t, 0)
	ts.addUser(t, numAlice, "pw")
	alice := bookOnline(t, ts, numAlice, true)
	bobJID, aliceJID := ts.jid(numBob), ts.jid(numAlice)

	// Bob is not registered yet: no match, no item.
	alice.contactsIQ(t, "get", "api."+testDomain, phoneBookXML("", numBob))
	alice.expectNone(t, bookPush(bobJID, "none"))

	ts.addUser(t, numBob, "pw") // joined
	alice.expect(t, bookPush(bobJID, "none"), 0)

	bob := bookOnline(t, ts, numBob, true)
	t.Run("one-sided shows no presence", func(t *testing.T) {
		alice.expectNone(t, presenceFrom(bobJID, ""))
		bob.expectNone(t, presenceFrom(aliceJID, ""))
	})

	t.Run("mutual", func(t *testing.T) {
		bob.contactsIQ(t, "get", "api."+testDomain, phoneBookXML("", numAlice))
		bob.expect(t, bookPush(aliceJID, "both"), 0)
		bob.expect(t, presenceFrom(aliceJID, ""), 0)
		alice.expect(t, bookPush(bobJID, "both"), 0)
		alice.expect(t, presenceFrom(bobJID, ""), 0)
		// From now on presence flows as for any subscription.
		bob.send(t, "<presence><show>away</show></presence>")
		alice.expect(t, func(el *wire.Element) bool {
			return presenceFrom(bobJID, "")(el) && el.ChildText(wire.NSClient, "show") == "away"
		}, 0)
	})

	t.Run("number removed ends presence", func(t *testing.T) {
		bob.contactsIQ(t, "get", "api."+testDomain, phoneBookXML(""))
		bob.expect(t, bookPush(aliceJID, "remove"), 0)
		bob.expect(t, stanza("presence", "type", "unavailable"), 0)
		alice.expect(t, bookPush(bobJID, "none"), 0)
		alice.expect(t, stanza("presence", "type", "unavailable"), 0)
	})

	t.Run("deleted account leaves", func(t *testing.T) {
		if err := ts.deps.Accounts.Delete(context.Background(), numBob); err != nil {
			t.Fatal(err)
		}
		alice.expect(t, bookPush(bobJID, "remove"), 0)
	})
}

func TestDailyLimit(t *testing.T) {
	var logs logBuffer
	ts := withLogger(t, newContactsServer(t, 2), slog.New(slog.NewTextHandler(&logs,
		&slog.HandlerOptions{Level: slog.LevelDebug})))
	ts.addUser(t, numAlice, "pw")
	alice := bookOnline(t, ts, numAlice, false)
	api := "api." + testDomain

	res := alice.contactsIQ(t, "get", api, phoneBookXML("", numBob, numCarol))
	if res.Get("type") != "result" {
		t.Fatalf("upload within the limit: %s", res)
	}
	res = alice.contactsIQ(t, "get", api, phoneBookXML("", numBob, numCarol)) // same book: free
	if res.Get("type") != "result" {
		t.Fatalf("re-upload of the same book: %s", res)
	}
	res = alice.contactsIQ(t, "get", api, phoneBookXML("", numBob, numCarol, numDave))
	if got := stanzaErrorCond(res); got != "policy-violation" {
		t.Fatalf("upload past the limit: condition %q, want policy-violation: %s", got, res)
	}
	text := res.Child(wire.NSClient, "error").ChildText(wire.NSStanzas, "text")
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	if !strings.Contains(text, "retry after "+tomorrow+"T00:00:00Z") {
		t.Errorf("error text %q does not say to retry at the start of %s", text, tomorrow)
	}
	// The operator sees who hit the limit: someone may be probing numbers.
	want := `level=WARN msg="address-book upload refused: daily lookup limit reached"`
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, want) {
			line = l
		}
	}
	for _, field := range []string{"jid=" + ts.jid(numAlice), "remote_addr=127.0.0.1",
		"new_numbers=1", "left_today=0", "retry_at=" + tomorrow + "T00:00:00Z"} {
		if !strings.Contains(line, field) {
			t.Errorf("Warn line for the refused upload lacks %s; log:\n%s", field, logs.String())
		}
	}
}

// TestDailyLimitAcrossRestart spends the limit, reopens the roster store
// and the Book on the same database as a restarted server does, and
// checks that the count survived.
func TestDailyLimitAcrossRestart(t *testing.T) {
	ts := newContactsServer(t, 2)
	ts.addUser(t, numAlice, "pw")
	alice := bookOnline(t, ts, numAlice, false)
	api := "api." + testDomain
	if res := alice.contactsIQ(t, "get", api,
		phoneBookXML("", numBob, numCarol)); res.Get("type") != "result" {
		t.Fatalf("upload within the limit: %s", res)
	}

	ctx := context.Background()
	rosters, err := roster.OpenStore(ctx, ts.deps.DB)
	if err != nil {
		t.Fatal(err)
	}
	book := roster.NewBook(rosters, AccountDirectory{Accounts: ts.deps.Accounts, DB: ts.deps.DB},
		testDomain, 2)
	ts.srv.mu.Lock()
	ts.srv.deps.Book = book
	ts.srv.mu.Unlock()

	_, _, err = ts.srv.uploadBook(ctx, ts.jid(numAlice), []roster.Entry{ent(numBob, ""),
		ent(numCarol, ""), ent(numDave, "")})
	if !errors.Is(err, roster.ErrLookupLimit) {
		t.Fatalf("upload past the limit after the restart: %v, want the daily limit", err)
	}
	if _, _, err := ts.srv.uploadBook(ctx, ts.jid(numAlice), []roster.Entry{ent(numBob, ""),
		ent(numCarol, "")}); err != nil {
		t.Errorf("the same book after the restart: %v", err)
	}
}

// TestOneSidedTo runs the "to" policy: holding a number alone shows the
// contact's presence, and the contact gets a from item.
func TestOneSidedTo(t *testing.T) {
	ts := newContactsServer(t, 0, roster.WithOneSided(roster.To))
	ts.addUser(t, numAlice, "pw")
	ts.addUser(t, numBob, "pw")
	alice := bookOnline(t, ts, numAlice, true)
	bob := bookOnline(t, ts, numBob, true)
	bobJID, aliceJID := ts.jid(numBob), ts.jid(numAlice)

	alice.contactsIQ(t, "get", "api."+testDomain, phoneBookXML("", numBob))
	alice.expect(t, bookPush(bobJID, "to"), 0)
	alice.expect(t, presenceFrom(bobJID, ""), 0)
	bob.expect(t, bookPush(aliceJID, "from"), 0)
	bob.expectNone(t, presenceFrom(aliceJID, ""))
}

// TestBookPresenceRespectsBlocking checks that a pair that becomes mutual
// while one blocks the other gets the roster pushes but no presence.
func TestBookPresenceRespectsBlocking(t *testing.T) {
	ts := newContactsServer(t, 0)
	ts.addUser(t, numAlice, "pw")
	ts.addUser(t, numBob, "pw")
	alice := bookOnline(t, ts, numAlice, true)
	bob := bookOnline(t, ts, numBob, true)
	bobJID, aliceJID := ts.jid(numBob), ts.jid(numAlice)

	res := alice.contactsIQ(t, "set", "", "<block xmlns='urn:xmpp:blocking'><item jid='"+
		bobJID+"'/></block>")
	if res.Get("type") != "result" {
		t.Fatalf("block: %s", res)
	}
	alice.contactsIQ(t, "get", "api."+testDomain, phoneBookXML("", numBob))
	bob.contactsIQ(t, "get", "api."+testDomain, phoneBookXML("", numAlice))
	alice.expect(t, bookPush(bobJID, "both"), 0)
	bob.expect(t, bookPush(aliceJID, "both"), 0)
	alice.expectNone(t, presenceFrom(bobJID, ""))
	bob.expectNone(t, presenceFrom(aliceJID, ""))
}

// TestQueuedPushesReachSessions creates an account the way the command
// line does, in a store without the server's hook, records the roster
// changes on the database and queues their pushes; the polling server
// delivers them.
func TestQueuedPushesReachSessions(t *testing.T) {
	ts := newContactsServer(t, 0)
	ts.addUser(t, numAlice, "pw")
	alice := bookOnline(t, ts, numAlice, false)
	alice.contactsIQ(t, "get", "api."+testDomain, phoneBookXML("", numBob))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ts.srv.PollQueuedPushes(ctx, 10*time.Millisecond)
	}()
	t.Cleanup(func() { cancel(); <-done })

	// The "other process": its own stores over the same database.
	accounts, err := auth.OpenStore(ctx, ts.deps.DB, testDomain)
	if err != nil {
		t.Fatal(err)
	}
	accounts.Iterations = 4096
	if err := accounts.Create(ctx, numBob, auth.KindPhone, "pw"); err != nil {
		t.Fatal(err)
	}
	rosters, err := roster.OpenStore(ctx, ts.deps.DB)
	if err != nil {
		t.Fatal(err)
	}
	book := roster.NewBook(rosters, AccountDirectory{Accounts: accounts}, testDomain, 0)
	pushes, err := book.Joined(ctx, numBob)
	if err != nil {
		t.Fatal(err)
	}
	if err := book.Queue(ctx, pushes); err != nil {
		t.Fatal(err)
	}
	alice.expect(t, bookPush(ts.jid(numBob), "none"), 0)
}

// BenchmarkJoinedPushes registers a number held in the books of 10,000
// users, 100 or 1,000 of them online with their roster fetched, and times
// the registration until every online holder has the roster push: the
// store transaction (roster.Book.Joined) and the pushes.
func BenchmarkJoinedPushes(b *testing.B) {
	for _, online := range []int{100, 1000} {
		b.Run(fmt.Sprintf("online=%d", online), func(b *testing.B) {
			benchJoinedPushes(b, 10000, online)
		})
	}
}

func benchJoinedPushes(b *testing.B, holders, online int) {
	ts := newContactsServer(b, 0)
	ctx := context.Background()
	owner := func(i int) string { return fmt.Sprintf("+1303555%04d", i) }
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < holders; i += 8 {
				_, err := ts.deps.Book.Sync(ctx, ts.jid(owner(i)), []roster.Entry{{Number: numBob,
					Name: "Bob"}})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	clients := make([]*rawClient, online)
	for i := range clients {
		ts.addUser(b, owner(i*(holders/online)), "pw")
		clients[i] = bookOnline(b, ts, owner(i*(holders/online)), false)
	}
	bobJID := ts.jid(numBob)
	for b.Loop() {
		if err := ts.deps.Accounts.Create(ctx, numBob, auth.KindPhone, "pw"); err != nil {
			b.Fatal(err)
		}
		for _, c := range clients {
			c.expect(b, bookPush(bobJID, "none"), 0)
		}
		b.StopTimer()
		if err := ts.deps.Accounts.Delete(ctx, numBob); err != nil {
			b.Fatal(err)
		}
		for _, c := range clients {
			c.expect(b, bookPush(bobJID, "remove"), 0)
		}
		b.StartTimer()
	}
}

// TestUploadTimeFloor checks that an answer never comes before one
// quantum, whether every number matched or none did.
func TestUploadTimeFloor(t *testing.T) {
	ts := newContactsServer(t, 0)
	ts.addUser(t, numAlice, "pw")
	ts.addUser(t, numBob, "pw")
	owner := ts.jid(numAlice)
	for _, tc := range []struct {
		name    string
		numbers []string
	}{
		{"all match", []string{numBob}},
		{"none match", []string{numDave}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var entries []roster.Entry
			for _, n := range tc.numbers {
				entries = append(entries, roster.Entry{Number: n})
			}
			start := time.Now()
			_, pushes, err := ts.srv.uploadBook(context.Background(), owner, entries)
			if err != nil {
				t.Fatal(err)
			}
			if got, floor := time.Since(start), uploadQuantum(len(entries)); got < floor {
				t.Errorf("answered after %v, before the floor of %v", got, floor)
			}
			pushes()
		})
	}
}

func TestContactsHTTP(t *testing.T) {
	ts := newContactsServer(t, 0)
	for _, n := range []string{numAlice, numBob, numCarol} {
		ts.addUser(t, n, "pw")
	}
	h, err := ts.srv.ListenContactsHTTP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("shutting down: %v", err)
		}
	})
	client := &http.Client{Timeout: waitTime, Transport: &http.Transport{TLSClientConfig: clientTLS()}}
	url := "https://" + h.Addr().String() + contactsPath

	vcard := "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Bob\r\n  Builder\r\nTEL;TYPE=CELL:(202) 555-0102\r\n" +
		"END:VCARD\r\nBEGIN:VCARD\r\nVERSION:4.0\r\nFN:Dave\r\nTEL;VALUE=uri:tel:" + numDave +
		"\r\nEND:VCARD\r\n"
	for _, tc := range []struct {
		name, user, password, ctype, body string
		status                            int
		matches                           []string
	}{
		{"vcard", numAlice, "pw", "text/vcard", vcard, 200, []string{numBob}},
		{"csv", numAlice, "pw", "text/csv",
			"number,name\n\"(202) 555-0103\",Carol\n" + numDave + ",Dave\n", 200, []string{numCarol}},
		{"sniffed vcard as bare JID", ts.jid(numAlice), "pw", "application/x-www-form-urlencoded",
			vcard, 200, []string{numBob}},
		{"wrong password", numAlice, "nope", "text/csv", numBob + "\n", 401, nil},
		{"unknown account", numDave, "pw", "text/csv", numBob + "\n", 401, nil},
		{"no credentials", "", "", "text/csv", numBob + "\n", 401, nil},
		{"bad type", numAlice, "pw", "image/png", "x", 415, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tc.ctype)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.password)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if tc.status != 200 {
				return
			}
			var out struct {
				Matches []struct{ Number, JID string }
				Skipped int
			}
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatalf("answer %s: %v", body, err)
			}
			var got []string
			for _, m := range out.Matches {
				got = append(got, m.Number)
			}
			if !slices.Equal(got, tc.matches) {
				t.Errorf("matches %v, want %v", got, tc.matches)
			}
		})
	}
}

func ent(number, name string) roster.Entry { return roster.Entry{Number: number, Name: name} }

func TestParseNumberLines(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []roster.Entry
	}{
		{"number alone", "+49 30 1234567", []roster.Entry{{Number: "+49 30 1234567"}}},
		{"number, name", "030 1234567, Anna", []roster.Entry{ent("030 1234567", "Anna")}},
		{"name: number", "Anna Maier: (030) 123-4567",
			[]roster.Entry{ent("(030) 123-4567", "Anna Maier")}},
		{"name, number", "Anna; +4930", []roster.Entry{ent("+4930", "Anna")}},
		{"tab", "+1 202\tBob", []roster.Entry{ent("+1 202", "Bob")}},
		{"blank and comment", "\n  \n# mine\n", nil},
		{"neither a number", "a, b", []roster.Entry{ent("a", "b")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseNumberLines(strings.Split(tc.in, "\n"))
			if !slices.Equal(got, tc.want) {
				t.Errorf("ParseNumberLines(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseVCards(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []roster.Entry
	}{
		{"folded 3.0 with two numbers",
			"BEGIN:VCARD\nVERSION:3.0\nFN:Anna\n Maier\nitem1.TEL;TYPE=CELL:+49 30 1\n" +
				"TEL:030 2\nEND:VCARD\n",
			[]roster.Entry{ent("+49 30 1", "AnnaMaier"), ent("030 2", "AnnaMaier")}},
		{"escapes and tel uri",
			"BEGIN:VCARD\r\nFN:Maier\\, Anna\r\nTEL;VALUE=uri:tel:+1-202-555-0101;ext=5\r\nEND:VCARD\r\n",
			[]roster.Entry{ent("+1-202-555-0101", "Maier, Anna")}},
		{"quoted-printable 2.1 with soft break",
			"BEGIN:VCARD\nVERSION:2.1\nFN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:J=C3=B6=\nrg\n" +
				"TEL;CELL:0301\nEND:VCARD\n",
			[]roster.Entry{ent("0301", "Jörg")}},
		{"photo dropped",
			"BEGIN:VCARD\nFN:P\nPHOTO;ENCODING=b:" + strings.Repeat("A", 70) + "\n" +
				strings.Repeat(" "+strings.Repeat("A", 1000)+"\n", 100) + "TEL:1\nEND:VCARD\n",
			[]roster.Entry{ent("1", "P")}},
		{"no end", "BEGIN:VCARD\nFN:X\nTEL:5", []roster.Entry{ent("5", "X")}},
		{"name per card", "BEGIN:VCARD\nFN:A\nTEL:1\nEND:VCARD\nBEGIN:VCARD\nTEL:2\nEND:VCARD",
			[]roster.Entry{ent("1", "A"), ent("2", "")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVCards(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("parseVCards = %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzReadUpload feeds untrusted bodies to every upload parser: none may
// panic or return more than maxUploadEntries entries.
func FuzzReadUpload(f *testing.F) {
	f.Add("text/vcard", "BEGIN:VCARD\nFN;ENCODING=QUOTED-PRINTABLE:=\nTEL:1\nEND:VCARD")
	f.Add("text/csv", "number,name\n\"1,2\",x\n")
	f.Add("text/plain", "a: 1\nb, 2\n")
	f.Add("", "BEGIN:VCARD\n TEL:1")
	f.Fuzz(func(t *testing.T, ctype, body string) {
		entries, err := readUpload(ctype, strings.NewReader(body))
		if err == nil && len(entries) > maxUploadEntries {
			t.Fatalf("%d entries", len(entries))
		}
	})
}

// TestSyncSummary checks the wording of the note that completes "Sync
// contacts", singular and plural.
func TestSyncSummary(t *testing.T) {
	match := func(n int) []roster.Match { return make([]roster.Match, n) }
	for _, tc := range []struct {
		entries int
		res     roster.SyncResult
		want    string
	}{
		{2, roster.SyncResult{Matches: match(1), Skipped: 1},
			"1 of 2 entries has an account and is in your roster. " +
				"Skipped 1 entry that is not a phone number."},
		{5, roster.SyncResult{Matches: match(3), Skipped: 2},
			"3 of 5 entries have an account and are in your roster. " +
				"Skipped 2 entries that are not phone numbers."},
		{3, roster.SyncResult{},
			"0 of 3 entries have an account and are in your roster."},
		{4, roster.SyncResult{Matches: match(4), OverCap: 1},
			"3 of 4 entries have an account and are in your roster. " +
				"1 contact was left out because your roster is full."},
		{4, roster.SyncResult{Matches: match(4), OverCap: 2},
			"2 of 4 entries have an account and are in your roster. " +
				"2 contacts were left out because your roster is full."},
	} {
		if got := syncSummary(tc.entries, tc.res); got != tc.want {
			t.Errorf("syncSummary(%d, %d matches, %d skipped, %d over cap) =\n%q, want\n%q",
				tc.entries, len(tc.res.Matches), tc.res.Skipped, tc.res.OverCap, got, tc.want)
		}
	}
}
