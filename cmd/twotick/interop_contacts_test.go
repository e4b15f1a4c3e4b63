package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twotick/twotick/roster"
	"github.com/twotick/twotick/xmpp/auth"
	"github.com/twotick/twotick/xmpp/storage"
)

// TestInteropContactJoins has a slixmpp user upload an address book with
// the number of someone not yet registered; the test then creates that
// account with "twotick user add", a separate process, and the user must
// get the roster push from the running server (the command queues it,
// the server polls the queue every second).
func TestInteropContactJoins(t *testing.T) {
	needClients(t)
	srv := startTwotick(t)
	alice := srv.addUser(t, "+1 (202) 555-0101", "alice-secret")
	const bobNumber = "+12025550102"
	bob := bobNumber + "@" + srv.domain

	timeout := strconv.Itoa(int(scenarioTimeout.Seconds()))
	slix := startClient(t, "slixmpp", debianPython, "slix_contacts.py",
		"--jid", alice, "--password", "alice-secret", "--host", "127.0.0.1",
		"--port", portOf(t, srv.c2s), "--peer", bob, "--timeout", timeout)
	deadline := time.Now().Add(scenarioTimeout + 10*time.Second)
	if err := slix.waitLine("uploaded", deadline); err != nil {
		t.Fatal(err)
	}
	if got := srv.addUser(t, bobNumber, "bob-secret"); got != bob {
		t.Fatalf("user add printed %q, want %q", got, bob)
	}
	if err := slix.wait(deadline); err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
}

// TestInteropSyncContactsCommand has slixmpp run the server's "Sync
// contacts" ad-hoc command (XEP-0050) with its own command and data-form
// plugins, as Gajim and other clients with command support do, with the
// number of an account that exists already: the command's answer must
// list it and the roster push must bring it, named as in the form.
func TestInteropSyncContactsCommand(t *testing.T) {
	needClients(t)
	srv := startTwotick(t)
	alice := srv.addUser(t, "+12025550101", "alice-secret")
	bob := srv.addUser(t, "+12025550102", "bob-secret")
	// The server learns of accounts that the command line creates from
	// the account log, within a second; until then an upload would not
	// match Bob (he would join Alice's roster afterwards instead).
	waitAccountLogTaken(t, srv.db, 15*time.Second)

	timeout := strconv.Itoa(int(scenarioTimeout.Seconds()))
	slix := startClient(t, "slixmpp", debianPython, "slix_contacts_command.py",
		"--jid", alice, "--password", "alice-secret", "--host", "127.0.0.1",
		"--port", portOf(t, srv.c2s), "--peer", bob, "--timeout", timeout)
	if err := slix.wait(time.Now().Add(scenarioTimeout + 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
}

// TestUserCommandsUpdateBooks checks that "user add", "user import" and
// "user del" change the address-book rosters on the database and queue
// the pushes for a running server.
func TestUserCommandsUpdateBooks(t *testing.T) {
	env, _, _ := testEnv(t)
	ctx := context.Background()
	const alice = "+12025550101@localhost"
	if _, err := run(t, env, "", runUser, "add", "+12025550101", "--password", "pw"); err != nil {
		t.Fatal(err)
	}
	accounts, err := auth.OpenStore(ctx, env.DB, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	rosters, err := roster.OpenStore(ctx, env.DB)
	if err != nil {
		t.Fatal(err)
	}
	book := newBook(env.Cfg, rosters, accounts, env.DB)
	_, err = book.Sync(ctx, alice, []roster.Entry{{Number: "+12025550102", Name: "Bob"},
		{Number: "+12025550103", Name: "Carol"}})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := run(t, env, "", runUser, "add", "+12025550102", "--password", "pw"); err != nil {
		t.Fatal(err)
	}
	csv := writeTemp(t, "number,password\n+12025550103,pw\n+12025550104,pw\n")
	if _, err := run(t, env, "", runUser, "import", csv); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ jid, name string }{
		{"+12025550102@localhost", "Bob"}, {"+12025550103@localhost", "Carol"},
	} {
		it, ok, err := rosters.Get(ctx, alice, c.jid)
		if err != nil || !ok || it.Name != c.name || it.Origin != roster.OriginBook {
			t.Errorf("after creating %s Alice has %+v, %v, %v", c.jid, it, ok, err)
		}
	}
	if _, err := run(t, env, "", runUser, "del", "+12025550102"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := rosters.Get(ctx, alice, "+12025550102@localhost"); ok {
		t.Error("deleted account still in Alice's roster")
	}

	queued, err := book.TakeQueued(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]roster.Subscription{
		"+12025550102@localhost": roster.Remove, "+12025550103@localhost": roster.None,
	}
	if len(queued) != len(want) {
		t.Fatalf("queued pushes %+v, want one for each of %v", queued, want)
	}
	for _, p := range queued {
		if p.Owner != alice || want[p.Item.JID] != p.Item.Subscription {
			t.Errorf("queued push %+v", p)
		}
	}
}

// waitAccountLogTaken polls the database at path until the running server
// has applied and removed every account change that the command line
// logged for it (table roster_book_accounts), or fails after timeout.
func waitAccountLogTaken(t *testing.T, path string, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	db, err := storage.Open(ctx, path, "normal")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(timeout)
	for {
		var n int
		err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM roster_book_accounts`).Scan(&n)
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not take the account log within %v: %d left, %v",
				timeout, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeTemp(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "users.csv")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
