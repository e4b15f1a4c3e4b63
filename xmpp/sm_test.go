package xmpp

// Tests of XEP-0198 stream management: enabling, counts both ways, the
// purge an acknowledgement causes, h wrap-around, resumption and its
// refusals, the resumption timeout and the bound on unacknowledged stanzas.

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/wire"
)

// smLogin logs local in as resource, enables stream management (with
// resumption if resume) and returns the client and <enabled/>.
func smLogin(t *testing.T, ts *testServer, local, resource string,
	resume bool) (*rawClient, *wire.Element) {
	t.Helper()
	c := login(t, ts, local, "pw-"+local, resource)
	return c, c.enableSM(t, resume)
}

// addUsers creates each account with the password "pw-" + local.
func addUsers(t *testing.T, ts *testServer, locals ...string) {
	t.Helper()
	for _, l := range locals {
		ts.addUser(t, l, "pw-"+l)
	}
}

// ackAll makes sure every stanza the server had sent before now has been
// read, then acknowledges all of them. It returns the h sent.
func ackAll(t *testing.T, c *rawClient) uint32 {
	t.Helper()
	c.sync(t)
	h := uint32(c.stanzaCount())
	c.send(t, "<a xmlns='"+nsSM+"' h='"+strconv.FormatUint(uint64(h), 10)+"'/>")
	return h
}

// requestAck sends <r/> and returns the h of the server's <a/>.
func requestAck(t *testing.T, c *rawClient) uint32 {
	t.Helper()
	c.send(t, "<r xmlns='"+nsSM+"'/>")
	a := c.expect(t, func(el *wire.Element) bool {
		return el.Name.Space == nsSM && el.Name.Local == "a"
	}, 0)
	h, err := strconv.ParseUint(a.Get("h"), 10, 32)
	if err != nil {
		t.Fatalf("bad <a/>: %s", a)
	}
	return uint32(h)
}

// queued returns the number of messages queued for local.
func queued(t *testing.T, ts *testServer, local string) int {
	t.Helper()
	n, err := ts.srv.deps.Queue.Count(context.Background(), ts.jid(local))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitQueued polls until local has want queued messages.
func waitQueued(t *testing.T, ts *testServer, local string, want int) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for {
		n := queued(t, ts, local)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d queued messages, want %d", local, n, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sessionOf returns local's only bound session.
func sessionOf(t *testing.T, ts *testServer, local string) *Session {
	t.Helper()
	list := ts.srv.router.sessions(ts.jid(local))
	if len(list) != 1 {
		t.Fatalf("%s has %d sessions, want 1", local, len(list))
	}
	return list[0]
}

// bodyIs matches a message (not an error) with the given body.
func bodyIs(body string) func(*wire.Element) bool {
	return func(el *wire.Element) bool {
		return el.Name.Local == "message" && el.Get("type") != "error" &&
			el.ChildText(wire.NSClient, "body") == body
	}
}

// isSM matches the stream management element local.
func isSM(local string) func(*wire.Element) bool {
	return func(el *wire.Element) bool { return el.Name.Space == nsSM && el.Name.Local == local }
}

// sendBodies sends a chat message for each body from c to to.
func sendBodies(t *testing.T, c *rawClient, to string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		c.sendMessage(t, to, b)
	}
}

func TestSMEnable(t *testing.T) {
	ts := newTestServer(t, func(c *conf.Config) {
		c.SM.ResumeTimeout = conf.Duration{Duration: 300 * time.Second}
		c.SM.MaxResumeTimeout = conf.Duration{Duration: 600 * time.Second}
	})
	addUsers(t, ts, "alice")

	tests := []struct {
		name      string
		enable    string
		wantID    bool
		wantMax   string
		wantState string
	}{
		{"without resumption", "<enable xmlns='urn:xmpp:sm:3'/>", false, "", ""},
		{"resumption, default timeout", "<enable xmlns='urn:xmpp:sm:3' resume='true'/>",
			true, "300", "true"},
		{"client max below the cap", "<enable xmlns='urn:xmpp:sm:3' resume='1' max='60'/>",
			true, "60", "true"},
		{"client max above the cap", "<enable xmlns='urn:xmpp:sm:3' resume='true' max='99999'/>",
			true, "600", "true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := login(t, ts, "alice", "pw-alice", "")
			c.send(t, tt.enable)
			el := c.expect(t, isSM("enabled"), 0)
			if got := el.Get("id") != ""; got != tt.wantID {
				t.Errorf("id present = %v, want %v: %s", got, tt.wantID, el)
			}
			if el.Get("max") != tt.wantMax || el.Get("resume") != tt.wantState {
				t.Errorf("got %s, want max=%q resume=%q", el, tt.wantMax, tt.wantState)
			}
			c.send(t, tt.enable)
			f := c.expect(t, isSM("failed"), 0)
			if f.Child(wire.NSStanzas, "unexpected-request") == nil {
				t.Errorf("second <enable/>: %s", f)
			}
		})
	}

	t.Run("before binding", func(t *testing.T) {
		c := connectAuth(t, ts, "alice", "pw-alice")
		c.send(t, "<enable xmlns='urn:xmpp:sm:3'/>")
		if f := c.nextSync(t); f.Name.Local != "failed" {
			t.Fatalf("got %s, want <failed/>", f)
		}
		c.bind(t, "")
	})
}

// TestSMCounts checks <r/> and <a/> in both directions: the server counts
// every stanza it handled, and asks an idle client for its count.
func TestSMCounts(t *testing.T) {
	ts := newTestServer(t, func(c *conf.Config) {
		c.C2S.IdleTimeout = conf.Duration{Duration: 400 * time.Millisecond}
	})
	addUsers(t, ts, "alice", "bob")
	alice, _ := smLogin(t, ts, "alice", "", false)

	if h := requestAck(t, alice); h != 0 {
		t.Fatalf("h = %d before any stanza, want 0", h)
	}
	sendBodies(t, alice, ts.jid("bob"), "one", "two")
	alice.send(t, "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
	alice.sendPresence(t, "")
	if h := requestAck(t, alice); h != 4 {
		t.Fatalf("h = %d after four stanzas, want 4", h)
	}

	// Silent past the idle timeout: the server asks for the client's count
	// instead of pinging, and the answer keeps the stream open.
	alice.expect(t, isSM("r"), 2*waitTime)
	ackAll(t, alice)
	if h := requestAck(t, alice); h != 5 {
		t.Fatalf("h = %d, want 5 (the sync ping counted too)", h)
	}
}

// TestSMAckPurges checks that the recipient's <a/> deletes what it covers
// from the queue, and only that.
func TestSMAckPurges(t *testing.T) {
	ts := newTestServer(t)
	addUsers(t, ts, "alice", "bob")
	alice := login(t, ts, "alice", "pw-alice", "")
	sendBodies(t, alice, ts.jid("bob"), "m1", "m2", "m3")
	alice.sync(t)
	waitQueued(t, ts, "bob", 3)

	bob, _ := smLogin(t, ts, "bob", "phone", false)
	bob.sendPresence(t, "")
	bob.expect(t, bodyIs("m3"), 0)
	if n := queued(t, ts, "bob"); n != 3 {
		t.Fatalf("%d queued before any <a/>, want 3", n)
	}
	// m1, m2, m3 and the ping result are the last four stanzas.
	bob.sync(t)
	h1 := bob.stanzaCount() - 3

	bob.send(t, "<a xmlns='urn:xmpp:sm:3' h='"+strconv.FormatInt(h1, 10)+"'/>")
	waitQueued(t, ts, "bob", 2)
	ackAll(t, bob)
	waitQueued(t, ts, "bob", 0)
}

// TestSMWrap sets both counts just below 2^32 and checks that they wrap
// to 0 (XEP-0198 § 4) and that acknowledgements across the wrap purge.
func TestSMWrap(t *testing.T) {
	ts := newTestServer(t)
	addUsers(t, ts, "alice", "bob")
	alice := login(t, ts, "alice", "pw-alice", "")
	alice.sendPresence(t, "")
	bob, _ := smLogin(t, ts, "bob", "", false)
	bob.sendPresence(t, "")
	base := ackAll(t, bob)

	// Once the server has applied the ack, nothing is in flight to bob.
	const near = 1<<32 - 2
	s := sessionOf(t, ts, "bob")
	deadline := time.Now().Add(waitTime)
	for {
		s.mu.Lock()
		if len(s.sm.unacked) == 0 && s.sm.hAcked == base {
			s.sm.hIn, s.sm.hOut, s.sm.hAcked = near, near, near
			s.mu.Unlock()
			break
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("bob's acknowledgement was not applied")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Four stanzas from bob: h goes near+1, near+2 (2^32-1... wraps), 0, 1, 2.
	sendBodies(t, bob, ts.jid("alice"), "w1", "w2", "w3", "w4")
	if h := requestAck(t, bob); h != 2 {
		t.Fatalf("h = %d after four stanzas from 2^32-2, want 2", h)
	}

	// Four messages to bob: the server's count wraps the same way.
	sendBodies(t, alice, ts.jid("bob"), "x1", "x2", "x3", "x4")
	bob.expect(t, bodyIs("x4"), 0)
	waitQueued(t, ts, "bob", 4)
	got := uint32(near) + uint32(bob.stanzaCount()-int64(base))
	if got > 10 {
		t.Fatalf("client count %d did not wrap", got)
	}
	bob.send(t, "<a xmlns='urn:xmpp:sm:3' h='"+strconv.FormatUint(uint64(got), 10)+"'/>")
	waitQueued(t, ts, "bob", 0)
	s.mu.Lock()
	left, acked := len(s.sm.unacked), s.sm.hAcked
	s.mu.Unlock()
	if left != 0 || acked != got {
		t.Fatalf("after the ack: %d unacknowledged, hAcked %d, want 0 and %d", left, acked, got)
	}
	if h := requestAck(t, bob); h != 2 {
		t.Fatalf("h = %d, want still 2: <a/> and <r/> are not stanzas", h)
	}
}

// TestSMHandledCountTooHigh acknowledges more than was sent.
func TestSMHandledCountTooHigh(t *testing.T) {
	ts := newTestServer(t)
	addUsers(t, ts, "alice", "bob")
	alice := login(t, ts, "alice", "pw-alice", "")
	bob, _ := smLogin(t, ts, "bob", "", false)
	bob.sendPresence(t, "")
	alice.sendMessage(t, ts.jid("bob"), "one")
	bob.expect(t, bodyIs("one"), 0)
	sent := bob.stanzaCount()

	bob.send(t, "<a xmlns='urn:xmpp:sm:3' h='"+strconv.FormatInt(sent+5, 10)+"'/>")
	el := bob.expect(t, streamError("undefined-condition"), 0)
	tooHigh := el.Child(nsSM, "handled-count-too-high")
	if tooHigh == nil || tooHigh.Get("h") != strconv.FormatInt(sent+5, 10) ||
		tooHigh.Get("send-count") != strconv.FormatInt(sent, 10) {
		t.Fatalf("stream error %s, want handled-count-too-high h=%d send-count=%d",
			el, sent+5, sent)
	}
	bob.expectClosed(t)
	// The message was never acknowledged: it is still queued.
	if n := queued(t, ts, "bob"); n != 1 {
		t.Fatalf("%d queued, want 1", n)
	}
}

// resume connects a new stream for local and sends <resume/>; it returns
// the client and the server's answer, <resumed/> or <failed/>.
func resume(t *testing.T, ts *testServer, local, previd string,
	h int64) (*rawClient, *wire.Element) {
	t.Helper()
	waitDetached(t, ts, previd)
	c := connectAuth(t, ts, local, "pw-"+local)
	c.send(t, "<resume xmlns='urn:xmpp:sm:3' previd='"+previd+"' h='"+
		strconv.FormatInt(h, 10)+"'/>")
	// Read synchronously: after <failed/> the test may bind on this stream.
	el := c.nextSync(t)
	if !isSM("resumed")(el) && !isSM("failed")(el) {
		t.Fatalf("got %s, want <resumed/> or <failed/>", el)
	}
	return c, el
}

// TestSMResume cuts bob's TCP connection with messages unacknowledged and
// resumes: exactly those come again, after <resumed/> with the server's
// count of bob's stanzas.
func TestSMResume(t *testing.T) {
	ts := newTestServer(t)
	addUsers(t, ts, "alice", "bob")
	alice := login(t, ts, "alice", "pw-alice", "")
	alice.sendPresence(t, "")
	bob, enabled := smLogin(t, ts, "bob", "phone", true)
	bob.sendPresence(t, "")
	bob.sync(t) // bob's stanzas: presence, ping

	alice.sendMessage(t, ts.jid("bob"), "m1")
	bob.expect(t, bodyIs("m1"), 0)
	h1 := bob.stanzaCount()
	sendBodies(t, alice, ts.jid("bob"), "m2", "m3")
	bob.expect(t, bodyIs("m3"), 0)
	bob.cut()
	alice.sendMessage(t, ts.jid("bob"), "m4") // while bob is away
	alice.sync(t)
	waitQueued(t, ts, "bob", 4)

	nb, el := resume(t, ts, "bob", enabled.Get("id"), h1)
	if el.Name.Local != "resumed" || el.Get("h") != "2" || el.Get("previd") != enabled.Get("id") {
		t.Fatalf("got %s, want <resumed h='2' previd=%q/>", el, enabled.Get("id"))
	}
	waitQueued(t, ts, "bob", 3) // m1 acknowledged by <resume h/>

	var bodies []string
	for _, el := range nb.sync(t) {
		bodies = append(bodies, el.ChildText(wire.NSClient, "body"))
	}
	if got := strings.Join(bodies, " "); got != "m2 m3 m4" {
		t.Fatalf("retransmitted %q, want exactly \"m2 m3 m4\"", got)
	}

	// The resumed stream works both ways.
	nb.sendMessage(t, ts.jid("alice"), "back")
	alice.expectMessage(t, ts.jid("bob"), "back")
	// Its count continues from the old one: the four stanzas resent, the
	// ping result, and nothing else.
	nb.send(t, "<a xmlns='urn:xmpp:sm:3' h='"+strconv.FormatInt(h1+int64(nb.stanzaCount()), 10)+"'/>")
	waitQueued(t, ts, "bob", 0)
}

// TestSMResumeTakesOver resumes a session whose old connection the server
// still holds, as a phone does that changed networks before the server
// noticed: the old stream ends with a conflict (XEP-0198 § 5), the new one
// gets the session with what the client had not acknowledged, and
// nothing is sent twice or lost.
func TestSMResumeTakesOver(t *testing.T) {
	ts := newTestServer(t)
	addUsers(t, ts, "alice", "bob")
	alice := login(t, ts, "alice", "pw-alice", "")
	alice.sendPresence(t, "")
	bob, enabled := smLogin(t, ts, "bob", "phone", true)
	bob.sendPresence(t, "")
	bob.sync(t)

	alice.sendMessage(t, ts.jid("bob"), "m1")
	bob.expect(t, bodyIs("m1"), 0)
	h1 := bob.stanzaCount()
	alice.sendMessage(t, ts.jid("bob"), "m2")
	bob.expect(t, bodyIs("m2"), 0)
	// bob's old connection stays open; bob acknowledged nothing after m1.
	bob.sendMessage(t, ts.jid("alice"), "sent on the old stream")
	alice.expectMessage(t, ts.jid("bob"), "sent on the old stream")

	nb, el := resume(t, ts, "bob", enabled.Get("id"), h1)
	if el.Name.Local != "resumed" || el.Get("previd") != enabled.Get("id") {
		t.Fatalf("got %s, want <resumed/>", el)
	}
	// The message bob sent on the old stream is counted: bob does not
	// send it again. presence, the ping result and the message make 3.
	if el.Get("h") != "3" {
		t.Fatalf("<resumed h=%q/>, want 3", el.Get("h"))
	}
	bob.expectStreamError(t, "conflict") // and the old connection closes

	var bodies []string
	for _, el := range nb.sync(t) {
		bodies = append(bodies, el.ChildText(wire.NSClient, "body"))
	}
	if got := strings.Join(bodies, " "); got != "m2" {
		t.Fatalf("retransmitted %q, want exactly \"m2\"", got)
	}
	alice.sendMessage(t, ts.jid("bob"), "m3")
	nb.expect(t, bodyIs("m3"), 0)
	nb.sendMessage(t, ts.jid("alice"), "back")
	alice.expectMessage(t, ts.jid("bob"), "back")
}

// TestSMResumeRefused checks the resumptions the server must refuse, and
// that the session they name is not touched.
func TestSMResumeRefused(t *testing.T) {
	ts := newTestServer(t)
	addUsers(t, ts, "alice", "bob", "mallory")
	alice := login(t, ts, "alice", "pw-alice", "")
	bob, enabled := smLogin(t, ts, "bob", "phone", true)
	bob.sendPresence(t, "")
	bob.sync(t)
	id := enabled.Get("id")

	stillWorks := func(t *testing.T, body string) {
		t.Helper()
		alice.sendMessage(t, ts.jid("bob"), body)
		bob.expect(t, bodyIs(body), 0)
	}

	t.Run("another account's token", func(t *testing.T) {
		m, el := resume(t, ts, "mallory", id, 0)
		if el.Name.Local != "failed" || el.Child(wire.NSStanzas, "item-not-found") == nil {
			t.Fatalf("got %s, want <failed><item-not-found/></failed>", el)
		}
		m.bind(t, "") // the stream goes on as a new session of mallory's
		stillWorks(t, "after mallory")
		s := ts.srv.sm.lookup(id)
		if s == nil {
			t.Fatal("bob's session was removed")
		}
		s.mu.Lock()
		detached := s.c == nil
		s.mu.Unlock()
		if detached {
			t.Fatal("bob's session was detached")
		}
	})
	t.Run("unknown token", func(t *testing.T) {
		_, el := resume(t, ts, "bob", "no-such-token", 0)
		if el.Name.Local != "failed" {
			t.Fatalf("got %s, want <failed/>", el)
		}
		stillWorks(t, "after unknown")
	})
	t.Run("after binding", func(t *testing.T) {
		b2, _ := smLogin(t, ts, "bob", "laptop", false)
		b2.send(t, "<resume xmlns='urn:xmpp:sm:3' previd='"+id+"' h='0'/>")
		el := b2.expect(t, func(el *wire.Element) bool {
			return isSM("failed")(el) || isSM("resumed")(el) ||
				el.Name.Space == wire.NSStream && el.Name.Local == "error"
		}, 0)
		if el.Name.Local == "resumed" {
			t.Fatalf("resumed a session on a bound stream: %s", el)
		}
		stillWorks(t, "after resume on a bound stream")
	})
}

// TestSMResumeRace sends two resumptions of one session at once: exactly
// one connection ends up with the session.
func TestSMResumeRace(t *testing.T) {
	ts := newTestServer(t)
	addUsers(t, ts, "alice", "bob")
	alice := login(t, ts, "alice", "pw-alice", "")
	bob, enabled := smLogin(t, ts, "bob", "phone", true)
	bob.sendPresence(t, "")
	bob.sync(t)
	bob.cut()
	waitDetached(t, ts, enabled.Get("id"))

	c1 := connectAuth(t, ts, "bob", "pw-bob")
	c2 := connectAuth(t, ts, "bob", "pw-bob")
	req := "<resume xmlns='urn:xmpp:sm:3' previd='" + enabled.Get("id") + "' h='0'/>"
	var wg sync.WaitGroup
	for _, c := range []*rawClient{c1, c2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.trySend(req)
		}()
	}
	wg.Wait()
	// Each connection gets <resumed/>, <failed/>, or is closed by the
	// resumption that won, possibly before its own answer was written.
	// Once both have their outcome, both resumptions are over.
	clients := []*rawClient{c1, c2}
	resumed := make([]bool, 2)
	var answers []string
	for i, c := range clients {
		el, err := c.next(waitTime)
		for err == nil && !isSM("resumed")(el) && !isSM("failed")(el) {
			el, err = c.next(waitTime)
		}
		switch {
		case errors.Is(err, errTimeout):
			t.Fatalf("connection %d got no answer to <resume/>", i+1)
		case err == nil:
			answers = append(answers, el.String())
			resumed[i] = el.Name.Local == "resumed"
		}
	}

	alice.sendMessage(t, ts.jid("bob"), "who has it")
	winners := 0
	for i, c := range clients {
		if !resumed[i] {
			continue
		}
		// A resumed connection either has the session or was replaced by
		// the other resumption and closed.
		el, err := c.next(waitTime)
		for err == nil && !bodyIs("who has it")(el) {
			el, err = c.next(waitTime)
		}
		if errors.Is(err, errTimeout) {
			t.Fatalf("connection %d neither got the message nor was closed", i+1)
		}
		if err == nil {
			winners++
		}
	}
	if winners != 1 {
		t.Fatalf("%d connections have the session (answers %v), want 1", winners, answers)
	}
}

// TestSMResumeTimeout lets a detached session time out: resumption then
// fails, and its unacknowledged messages come at the next login.
func TestSMResumeTimeout(t *testing.T) {
	ts := newTestServer(t, func(c *conf.Config) {
		c.SM.ResumeTimeout = conf.Duration{Duration: 200 * time.Millisecond}
	})
	addUsers(t, ts, "alice", "bob")
	alice := login(t, ts, "alice", "pw-alice", "")
	bob, enabled := smLogin(t, ts, "bob", "phone", true)
	bob.sendPresence(t, "")
	sendBodies(t, alice, ts.jid("bob"), "t1", "t2")
	bob.expect(t, bodyIs("t2"), 0)
	bob.cut()

	id := enabled.Get("id")
	deadline := time.Now().Add(waitTime)
	for ts.srv.sm.lookup(id) != nil || len(ts.srv.router.sessions(ts.jid("bob"))) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the detached session did not time out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, el := resume(t, ts, "bob", id, 0)
	if el.Name.Local != "failed" {
		t.Fatalf("resumed after the timeout: %s", el)
	}
	if n := queued(t, ts, "bob"); n != 2 {
		t.Fatalf("%d queued after the timeout, want 2", n)
	}

	again := login(t, ts, "bob", "pw-bob", "phone")
	again.sendPresence(t, "")
	for _, body := range []string{"t1", "t2"} {
		if el := again.expect(t, bodyIs(body), 0); el.Child(nsDelay, "delay") == nil {
			t.Errorf("%s came again without <delay/>: %s", body, el)
		}
	}
}

// TestSMMaxUnacked stops a session that takes stanzas and never
// acknowledges them; its messages stay queued for the next login.
func TestSMMaxUnacked(t *testing.T) {
	const max = 100
	ts := newTestServer(t, func(c *conf.Config) { c.SM.MaxUnacked = max })
	addUsers(t, ts, "alice", "bob")
	alice := login(t, ts, "alice", "pw-alice", "")
	bob, _ := smLogin(t, ts, "bob", "phone", false)
	bob.sendPresence(t, "")
	bob.sync(t) // the queue is loaded (empty); the ping result is unacknowledged
	var bodies []string
	for i := range max + 5 {
		bodies = append(bodies, "u"+strconv.Itoa(i))
	}
	sendBodies(t, alice, ts.jid("bob"), bodies...)
	alice.sync(t)
	bob.expectStreamError(t, "policy-violation")
	if n := queued(t, ts, "bob"); n != len(bodies) {
		t.Fatalf("%d queued after the session was stopped, want %d", n, len(bodies))
	}

	again := login(t, ts, "bob", "pw-bob", "phone")
	again.sendPresence(t, "")
	for _, body := range bodies {
		again.expect(t, bodyIs(body), 0)
	}
}

// waitDetached waits until the server has noticed that the connection of
// the session previd is gone, so that a test resumes a detached session
// rather than taking one over.
func waitDetached(t *testing.T, ts *testServer, previd string) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for {
		s := ts.srv.sm.lookup(previd)
		if s == nil {
			return
		}
		s.mu.Lock()
		detached := s.c == nil
		s.mu.Unlock()
		if detached || time.Now().After(deadline) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}
