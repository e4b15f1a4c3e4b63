package xmpp

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/wire"
)

// pushRegistrations returns owner's stored registrations as "jid node"
// strings, sorted.
func pushRegistrations(t *testing.T, ts *testServer, owner string) []string {
	t.Helper()
	rows, err := ts.db.QueryContext(context.Background(),
		`SELECT jid, node FROM push_registrations WHERE owner = ? ORDER BY jid, node`, owner)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var j, node string
		if err := rows.Scan(&j, &node); err != nil {
			t.Fatal(err)
		}
		out = append(out, j+" "+node)
	}
	return out
}

// pushFailures returns the failure count of one registration, or -1 if it
// is gone.
func pushFailures(t *testing.T, ts *testServer, owner, node string) int {
	t.Helper()
	n := -1
	err := ts.db.QueryRowContext(context.Background(), `SELECT failures FROM push_registrations
		WHERE owner = ? AND jid = ? AND node = ?`, owner, testPushDomain, node).Scan(&n)
	if err != nil && !strings.Contains(err.Error(), "no rows") {
		t.Fatal(err)
	}
	return n
}

// waitOffline waits until local has no session left: a push notification
// wakes only an account without a connected session, and the server ends
// a closed stream's session a moment after the close.
func waitOffline(t *testing.T, ts *testServer, local string) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for len(ts.srv.router.sessions(ts.jid(local))) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s still has a session after closing its stream", local)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

const pushOptionsForm = "<x xmlns='jabber:x:data' type='submit'>" +
	"<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
	"<field var='secret'><value>eruio234vzxc2kla-91</value></field></x>"

func enablePush(node, form string) string {
	return "<enable xmlns='urn:xmpp:push:0' jid='" + testPushDomain + "' node='" + node + "'>" +
		form + "</enable>"
}

// TestPushEnableDisable walks one account through XEP-0357 § 6 and § 7:
// several devices, the cap, re-enabling a device, and disabling one node
// or all of a service's nodes, checking what is stored after each step.
func TestPushEnableDisable(t *testing.T) {
	ts := newTestServer(t, withPushComponent, func(c *conf.Config) { c.Push.MaxPerAccount = 3 })
	ts.addUser(t, "bob", "pw")
	bob := login(t, ts, "bob", "pw", "phone")
	reg := func(nodes ...string) []string {
		out := []string{}
		for _, n := range nodes {
			out = append(out, testPushDomain+" "+n)
		}
		return out
	}
	steps := []struct {
		name    string
		payload string
		errCond string // "" for a result
		after   []string
	}{
		{"enable with publish options", enablePush("node-a", pushOptionsForm), "", reg("node-a")},
		{"second device", enablePush("node-b", ""), "", reg("node-a", "node-b")},
		{"third device", enablePush("node-c", ""), "", reg("node-a", "node-b", "node-c")},
		{"fourth device is over the cap", enablePush("node-d", ""), "not-allowed",
			reg("node-a", "node-b", "node-c")},
		{"re-enabling a device does not count against the cap", enablePush("node-a", pushOptionsForm),
			"", reg("node-a", "node-b", "node-c")},
		{"enable without a node", "<enable xmlns='urn:xmpp:push:0' jid='" + testPushDomain + "'/>",
			"bad-request", reg("node-a", "node-b", "node-c")},
		{"disable one node", "<disable xmlns='urn:xmpp:push:0' jid='" + testPushDomain +
			"' node='node-b'/>", "", reg("node-a", "node-c")},
		{"disable all nodes of the service", "<disable xmlns='urn:xmpp:push:0' jid='" +
			testPushDomain + "'/>", "", reg()},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			id := "p" + strconv.Itoa(i)
			bob.send(t, "<iq type='set' id='"+id+"'>"+st.payload+"</iq>")
			el := bob.expect(t, byID(id), 0)
			if got := stanzaErrorCond(el); got != st.errCond {
				t.Fatalf("answer %s, want error condition %q", el, st.errCond)
			}
			if got := pushRegistrations(t, ts, ts.jid("bob")); !slices.Equal(got, st.after) {
				t.Fatalf("registrations %v, want %v", got, st.after)
			}
		})
	}
}

// TestPushPublishOptions: the publish-options a device gave when enabling
// are stored and sent with each of its notifications (XEP-0357 § 5, § 6).
func TestPushPublishOptions(t *testing.T) {
	ts := newTestServer(t, withPushComponent)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	comp, _ := dialComponent(t, ts, testPushSecret)
	bob := login(t, ts, "bob", "pw", "phone")
	bob.send(t, "<iq type='set' id='e1'>"+enablePush("node-1", pushOptionsForm)+"</iq>")
	bob.expect(t, stanza("iq", "id", "e1", "type", "result"), 0)
	bob.closeStream(t)
	waitOffline(t, ts, "bob")

	alice := login(t, ts, "alice", "pw", "laptop")
	alice.sendMessage(t, ts.jid("bob"), "hello")
	iq := comp.expectPublish(t)
	po := iq.Child(nsPubSub, "pubsub").Child(nsPubSub, "publish-options")
	if po == nil {
		t.Fatalf("publish without publish-options: %s", iq)
	}
	x := po.Child(nsDataForm, "x")
	if x == nil {
		t.Fatalf("publish-options without a data form: %s", po)
	}
	fields := map[string]string{}
	for _, f := range x.Children() {
		fields[f.Get("var")] = f.ChildText(nsDataForm, "value")
	}
	if fields["FORM_TYPE"] != "http://jabber.org/protocol/pubsub#publish-options" ||
		fields["secret"] != "eruio234vzxc2kla-91" {
		t.Fatalf("publish-options fields %v", fields)
	}
}

// TestPushCoalesce: a burst of messages to an offline user wakes the
// device with fewer notifications than messages, and the last one counts
// them all.
func TestPushCoalesce(t *testing.T) {
	const burst = 10
	ts := newTestServer(t, withPushComponent, func(c *conf.Config) {
		// Long enough that the burst falls within one window even on a
		// loaded machine.
		c.Push.Coalesce = conf.Duration{Duration: 2 * time.Second}
	})
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	comp, _ := dialComponent(t, ts, testPushSecret)
	bob := login(t, ts, "bob", "pw", "phone")
	bob.send(t, "<iq type='set' id='e1'>"+enablePush("node-1", "")+"</iq>")
	bob.expect(t, stanza("iq", "id", "e1", "type", "result"), 0)
	bob.closeStream(t)
	waitOffline(t, ts, "bob")

	alice := login(t, ts, "alice", "pw", "laptop")
	for i := range burst {
		alice.sendMessage(t, ts.jid("bob"), "burst "+strconv.Itoa(i))
	}
	notifications := 0
	for {
		iq := comp.expectPublish(t)
		notifications++
		if formFields(iq)["message-count"] == strconv.Itoa(burst) {
			break
		}
	}
	if notifications >= burst {
		t.Fatalf("%d notifications for a burst of %d messages", notifications, burst)
	}
	t.Logf("%d notifications for %d messages", notifications, burst)
}

// answerPublish sends the app server's error answer to a publish.
func (c *testComponent) answerError(t *testing.T, iq *wire.Element, typ, cond string) {
	t.Helper()
	if _, err := c.nc.Write([]byte("<iq type='error' id='" + iq.Get("id") + "' from='" +
		testPushDomain + "' to='" + testDomain + "'><error type='" + typ + "'><" + cond +
		" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")); err != nil {
		t.Fatal(err)
	}
}

// TestPushWaitErrors: 'wait' errors from the app server (it is
// overloaded) do not count toward disabling the registration; other
// errors do.
func TestPushWaitErrors(t *testing.T) {
	ts := newTestServer(t, withPushComponent)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	comp, _ := dialComponent(t, ts, testPushSecret)
	bob := login(t, ts, "bob", "pw", "phone")
	bob.send(t, "<iq type='set' id='e1'>"+enablePush("node-1", "")+"</iq>")
	bob.expect(t, stanza("iq", "id", "e1", "type", "result"), 0)
	bob.closeStream(t)
	waitOffline(t, ts, "bob")
	alice := login(t, ts, "alice", "pw", "laptop")

	for i := 0; i < ts.cfg.Push.MaxFailures+1; i++ {
		alice.sendMessage(t, ts.jid("bob"), "ping")
		comp.answerError(t, comp.expectPublish(t), "wait", "resource-constraint")
	}
	// The component's stanzas are handled in order: once the cancel error
	// has counted, every wait error before it was handled too.
	alice.sendMessage(t, ts.jid("bob"), "ping")
	comp.answerError(t, comp.expectPublish(t), "cancel", "item-not-found")
	deadline := time.Now().Add(waitTime)
	for {
		n := pushFailures(t, ts, ts.jid("bob"), "node-1")
		if n == 1 {
			return
		}
		if n != 0 || time.Now().After(deadline) {
			t.Fatalf("failures = %d after %d wait errors and one cancel error, want 1",
				n, ts.cfg.Push.MaxFailures+1)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPushResumeWindow: a session that enabled push waits to be resumed
// for push.resume_timeout, beyond stream_management.resume_timeout, which
// a session without push gets. Both are cut; once the one without push
// has expired, the push-enabled one, cut earlier, can still be resumed.
func TestPushResumeWindow(t *testing.T) {
	ts := newTestServer(t, withPushComponent, func(c *conf.Config) {
		c.SM.ResumeTimeout = conf.Duration{Duration: 200 * time.Millisecond}
		c.Push.ResumeTimeout = conf.Duration{Duration: time.Hour}
	})
	addUsers(t, ts, "bob", "carol")

	bob, bobSM := smLogin(t, ts, "bob", "phone", true)
	bob.send(t, "<iq type='set' id='e1'>"+enablePush("node-1", "")+"</iq>")
	bob.expect(t, stanza("iq", "id", "e1", "type", "result"), 0)
	bob.sync(t)
	bob.cut()
	waitDetached(t, ts, bobSM.Get("id"))

	carol, carolSM := smLogin(t, ts, "carol", "phone", true)
	carol.sync(t)
	carol.cut()
	deadline := time.Now().Add(waitTime)
	for ts.srv.sm.lookup(carolSM.Get("id")) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the session without push did not time out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, el := resume(t, ts, "bob", bobSM.Get("id"), 0); el.Name.Local != "resumed" {
		t.Fatalf("the push-enabled session could not be resumed after %s: %s",
			ts.cfg.SM.ResumeTimeout, el)
	}
}

// TestPushStateForgotten: the coalescing state of an account is dropped
// once its window has passed, so that it does not grow with every account
// ever notified.
func TestPushStateForgotten(t *testing.T) {
	ts := newTestServer(t, withPushComponent)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	comp, _ := dialComponent(t, ts, testPushSecret)
	bob := login(t, ts, "bob", "pw", "phone")
	bob.send(t, "<iq type='set' id='e1'>"+enablePush("node-1", "")+"</iq>")
	bob.expect(t, stanza("iq", "id", "e1", "type", "result"), 0)
	bob.closeStream(t)
	waitOffline(t, ts, "bob")
	alice := login(t, ts, "alice", "pw", "laptop")
	alice.sendMessage(t, ts.jid("bob"), "hello")
	comp.expectPublish(t)

	deadline := time.Now().Add(waitTime)
	for {
		ps := ts.srv.push
		ps.mu.Lock()
		n := len(ps.state)
		ps.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d coalescing states kept after the window", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
