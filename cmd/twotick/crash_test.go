package main

// The crash test: senders stream messages under XEP-0198 while the real
// server is killed with SIGKILL; after a restart on the same data directory
// every message the server had acknowledged with <a h=…/> must reach its
// recipient (DESIGN.md, "The two checks": the single check means the
// message is committed). Duplicates are allowed, losses are not.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/twotick/twotick/xmpp/wire"
)

const (
	crashSenders    = 4   // sending accounts, and as many recipients
	crashKillAfter  = 600 // acknowledged messages before the kill
	crashWindow     = 64  // messages a sender has sent and not seen acknowledged
	crashFlowLimit  = 30 * time.Second
	crashDeliverFor = 30 * time.Second

	nsSASLTest = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBindTest = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSMTest   = "urn:xmpp:sm:3"
)

func TestCrashKeepsAcknowledgedMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: builds and kills the real server; skipped with -short")
	}
	bin := buildTwotick(t)
	dir := t.TempDir()
	addrs := freeAddrs(t, 3)
	config := filepath.Join(dir, "twotick.toml")
	text := fmt.Sprintf(`domain = "localhost"
data_dir = %q

[c2s]
starttls_addr = %q
direct_tls_addr = %q
allow_plaintext_loopback = true

[metrics]
addr = %q
`, filepath.Join(dir, "data"), addrs[0], addrs[1], addrs[2])
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	const password = "crash-test-password"
	senders := make([]string, crashSenders)
	recipients := make([]string, crashSenders)
	for i := range crashSenders {
		senders[i] = fmt.Sprintf("+1202555%04d", 110+i)
		recipients[i] = fmt.Sprintf("+1202555%04d", 210+i)
		runCLI(t, bin, "user", "add", senders[i], "--password", password, "--config", config)
		runCLI(t, bin, "user", "add", recipients[i], "--password", password, "--config", config)
	}

	first := &xmppServer{name: "twotick (before the kill)", domain: "localhost", c2s: addrs[0]}
	first.start(t, exec.Command(bin, "serve", "--config", config))

	flows := make([]*crashFlow, crashSenders)
	var wg sync.WaitGroup
	var total atomic.Int64
	for i := range crashSenders {
		c, err := dialCrashConn(addrs[0], "localhost", senders[i], password, true)
		if err != nil {
			t.Fatalf("sender %s: %v", senders[i], err)
		}
		flows[i] = &crashFlow{conn: c, sender: i, recipients: recipients, total: &total}
		wg.Add(1)
		go func() {
			defer wg.Done()
			flows[i].run()
		}()
	}

	// Kill while every sender still has messages in flight.
	deadline := time.Now().Add(crashFlowLimit)
	for total.Load() < crashKillAfter {
		if time.Now().After(deadline) {
			first.kill(t)
			wg.Wait()
			t.Fatalf("only %d messages acknowledged in %v", total.Load(), crashFlowLimit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	first.kill(t)
	wg.Wait()

	// What the senders were told is committed, per recipient.
	want := make(map[string]map[string]bool)
	sent, acked, refused := 0, 0, 0
	for _, f := range flows {
		sent += len(f.sent)
		refused += len(f.refused)
		for _, m := range f.sent[:f.acked] {
			if f.refused[m.id] {
				continue // answered with an error: not a message the server owns
			}
			if want[m.to] == nil {
				want[m.to] = make(map[string]bool)
			}
			want[m.to][m.id] = true
			acked++
		}
	}
	if refused > 0 {
		t.Errorf("%d messages were refused by a healthy server", refused)
	}

	second := &xmppServer{name: "twotick (after the restart)", domain: "localhost", c2s: addrs[0]}
	second.start(t, exec.Command(bin, "serve", "--config", config))

	delivered, extra := 0, 0
	deliverBy := time.Now().Add(crashDeliverFor) // for all recipients together
	for _, r := range recipients {
		got, err := receiveAll(addrs[0], r, password, want[r], deliverBy)
		if err != nil {
			t.Errorf("recipient %s: %v", r, err)
		}
		for id := range want[r] {
			if got[id] == 0 {
				t.Errorf("recipient %s: acknowledged message %s was lost", r, id)
			}
		}
		for id, n := range got {
			if want[r][id] {
				delivered++
			} else if n > 0 {
				extra++
			}
		}
	}
	t.Logf("sent %d, acknowledged %d, delivered %d of those after SIGKILL and restart, "+
		"plus %d committed but not yet acknowledged", sent, acked, delivered, extra)
}

// crashMessage is one message a sender wrote, in order.
type crashMessage struct {
	id string
	to string // bare JID of the recipient
}

// crashFlow is one sender: it keeps crashWindow messages in flight, each
// followed by <r/>, until its connection dies.
type crashFlow struct {
	conn       *crashConn
	sender     int
	recipients []string
	total      *atomic.Int64 // acknowledged messages of every sender

	sent    []crashMessage  // in the order written; sent[i] is count i+1
	acked   int             // the latest h: sent[:acked] are acknowledged
	refused map[string]bool // ids answered with an error
}

func (f *crashFlow) run() {
	f.refused = make(map[string]bool)
	in := make(chan *wire.Element, 256)
	go func() {
		defer close(in)
		for {
			el, err := f.conn.rd.Next()
			if err != nil {
				return
			}
			in <- el
		}
	}()
	defer func() {
		f.conn.nc.Close()
		for range in { // let the reader reach the closed connection
		}
	}()

	for {
		for len(f.sent)-f.acked < crashWindow {
			n := len(f.sent)
			to := f.recipients[(f.sender+n)%len(f.recipients)] + "@localhost"
			id := fmt.Sprintf("s%d-m%d", f.sender, n)
			msg := fmt.Sprintf("<message to='%s' id='%s' type='chat'><body>message %d</body>"+
				"<request xmlns='urn:xmpp:receipts'/></message><r xmlns='%s'/>",
				to, id, n, nsSMTest)
			if err := f.conn.write(msg); err != nil {
				return
			}
			f.sent = append(f.sent, crashMessage{id: id, to: strings.TrimSuffix(to, "@localhost")})
		}
		el, ok := <-in
		if !ok {
			return
		}
		switch {
		case el.Name.Space == nsSMTest && el.Name.Local == "a":
			h, err := strconv.ParseUint(el.Get("h"), 10, 32)
			if err != nil || int(h) > len(f.sent) {
				return // the count is wrong; what was acknowledged is unknown
			}
			if int(h) > f.acked {
				f.total.Add(int64(int(h) - f.acked))
				f.acked = int(h)
			}
		case el.Name.Local == "message" && el.Get("type") == "error":
			f.refused[el.Get("id")] = true
		}
	}
}

// receiveAll logs in as local after the restart, sends initial presence and
// reads messages until every id in want has arrived or the deadline. It
// returns how often each message id arrived.
func receiveAll(addr, local, password string, want map[string]bool,
	deadline time.Time) (map[string]int, error) {
	c, err := dialCrashConn(addr, "localhost", local, password, false)
	if err != nil {
		return nil, err
	}
	defer c.nc.Close()
	if err := c.write("<presence/>"); err != nil {
		return nil, err
	}
	got := make(map[string]int)
	missing := len(want)
	c.nc.SetReadDeadline(deadline)
	for missing > 0 {
		el, err := c.rd.Next()
		if err != nil {
			return got, fmt.Errorf("%d acknowledged messages still missing: %w", missing, err)
		}
		if el.Name.Local != "message" || el.Get("type") == "error" {
			continue
		}
		id := el.Get("id")
		if got[id]++; got[id] == 1 && want[id] {
			missing--
		}
	}
	return got, nil
}

// crashConn is a minimal client stream: plaintext on loopback (the server
// allows it with allow_plaintext_loopback), SCRAM-SHA-256, a bound resource
// and optionally stream management.
type crashConn struct {
	nc  net.Conn
	rd  *wire.Reader
	wmu sync.Mutex
}

func (c *crashConn) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.nc.Write([]byte(s))
	return err
}

// dialCrashConn connects, authenticates and binds within ten seconds.
func dialCrashConn(addr, domain, local, password string, sm bool) (*crashConn, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &crashConn{nc: nc, rd: wire.NewReader(nc, wire.Limits{MaxBytes: 1 << 20}, 0)}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.negotiate(domain, local, password, sm); err != nil {
		nc.Close()
		return nil, fmt.Errorf("logging in as %s: %w", local, err)
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *crashConn) negotiate(domain, local, password string, sm bool) error {
	feats, err := c.open(domain)
	if err != nil {
		return err
	}
	if err := c.scram(feats, local, password); err != nil {
		return err
	}
	c.rd.Reset(c.nc)
	if _, err := c.open(domain); err != nil {
		return err
	}
	bind := "<iq type='set' id='bind'><bind xmlns='" + nsBindTest +
		"'><resource>crash</resource></bind></iq>"
	if _, err := c.exchange(bind, "iq"); err != nil {
		return err
	}
	if sm {
		if _, err := c.exchange("<enable xmlns='"+nsSMTest+"'/>", "enabled"); err != nil {
			return err
		}
	}
	return nil
}

// open sends a stream header and returns the server's features.
func (c *crashConn) open(domain string) (*wire.Element, error) {
	err := c.write("<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
		"xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "' version='1.0'>")
	if err != nil {
		return nil, err
	}
	if _, err := c.rd.StreamHeader(); err != nil {
		return nil, err
	}
	feats, err := c.rd.Next()
	if err != nil {
		return nil, err
	}
	if feats.Name.Local != "features" {
		return nil, fmt.Errorf("expected stream features, got <%s/>", feats.Name.Local)
	}
	return feats, nil
}

// exchange writes out and returns the next element, which must be named
// want.
func (c *crashConn) exchange(out, want string) (*wire.Element, error) {
	if err := c.write(out); err != nil {
		return nil, err
	}
	el, err := c.rd.Next()
	if err != nil {
		return nil, err
	}
	if el.Name.Local != want || el.Get("type") == "error" {
		return nil, fmt.Errorf("expected <%s/>, got %s", want, el)
	}
	return el, nil
}

// scram runs SCRAM-SHA-256 with mellium.im/sasl's client.
func (c *crashConn) scram(feats *wire.Element, local, password string) error {
	var offered []string
	if m := feats.Child(nsSASLTest, "mechanisms"); m != nil {
		for _, e := range m.Children() {
			offered = append(offered, e.Text())
		}
	}
	client := sasl.NewClient(sasl.ScramSha256,
		sasl.Credentials(func() ([]byte, []byte, []byte) {
			return []byte(local), []byte(password), nil
		}),
		sasl.RemoteMechanisms(offered...))
	_, resp, err := client.Step(nil)
	if err != nil {
		return err
	}
	out := "<auth xmlns='" + nsSASLTest + "' mechanism='SCRAM-SHA-256'>" +
		base64.StdEncoding.EncodeToString(resp) + "</auth>"
	for {
		if err := c.write(out); err != nil {
			return err
		}
		el, err := c.rd.Next()
		if err != nil {
			return err
		}
		data, err := base64.StdEncoding.DecodeString(el.Text())
		if err != nil {
			return fmt.Errorf("server sent bad base64: %w", err)
		}
		switch el.Name.Local {
		case "success":
			if len(data) > 0 {
				if _, _, err := client.Step(data); err != nil {
					return fmt.Errorf("verifying the server's signature: %w", err)
				}
			}
			return nil
		case "challenge":
			if _, resp, err = client.Step(data); err != nil {
				return err
			}
			out = "<response xmlns='" + nsSASLTest + "'>" +
				base64.StdEncoding.EncodeToString(resp) + "</response>"
		default:
			return errors.New("authentication failed: " + el.String())
		}
	}
}
