package xmpp

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/twotick/twotick/conf"
	"github.com/twotick/twotick/xmpp/wire"
)

// pepIQ sends an IQ of type typ with payload to to ("" for none) and
// returns the answer.
func (c *rawClient) pepIQ(t *testing.T, typ, to, payload string) *wire.Element {
	t.Helper()
	id := c.nextID()
	toAttr := ""
	if to != "" {
		toAttr = " to='" + to + "'"
	}
	c.send(t, "<iq type='"+typ+"' id='"+id+"'"+toAttr+">"+payload+"</iq>")
	return c.expect(t, byID(id), 0)
}

// publishOptions is a publish-options form with the given var/value pairs.
func publishOptions(kv ...string) string {
	return "<publish-options>" + submitForm(nsPublishOpts, kv...) + "</publish-options>"
}

// submitForm is a submitted data form of formType with var/value pairs.
func submitForm(formType string, kv ...string) string {
	var b strings.Builder
	b.WriteString("<x xmlns='jabber:x:data' type='submit'>" +
		"<field var='FORM_TYPE' type='hidden'><value>" + formType + "</value></field>")
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString("<field var='" + kv[i] + "'><value>" + kv[i+1] + "</value></field>")
	}
	b.WriteString("</x>")
	return b.String()
}

// publish publishes payload as item id (none when "") to node, with
// options (a publishOptions form or ""), and returns the answer.
func (c *rawClient) publish(t *testing.T, node, id, payload, options string) *wire.Element {
	t.Helper()
	idAttr := ""
	if id != "" {
		idAttr = " id='" + id + "'"
	}
	return c.pepIQ(t, "set", "", "<pubsub xmlns='"+nsPubSub+"'><publish node='"+node+
		"'><item"+idAttr+">"+payload+"</item></publish>"+options+"</pubsub>")
}

// pepItemsOf asks owner's node for items (extra: attributes and children
// of <items/>) and returns the answer.
func (c *rawClient) pepItemsOf(t *testing.T, owner, node, attrs, children string) *wire.Element {
	t.Helper()
	return c.pepIQ(t, "get", owner, "<pubsub xmlns='"+nsPubSub+"'><items node='"+node+"'"+
		attrs+">"+children+"</items></pubsub>")
}

// itemIDs returns the ids of the items in a retrieval result.
func itemIDs(t *testing.T, res *wire.Element) []string {
	t.Helper()
	if res.Get("type") != "result" {
		t.Fatalf("items request failed: %s", res)
	}
	var ids []string
	for _, it := range res.Child(nsPubSub, "pubsub").Child(nsPubSub, "items").Children() {
		ids = append(ids, it.Get("id"))
	}
	return ids
}

// expectPEPError fails t unless res is an error with cond and, when
// pubsubCond is not empty, that pubsub#errors condition.
func expectPEPError(t *testing.T, res *wire.Element, cond, pubsubCond string) {
	t.Helper()
	if res.Get("type") != "error" || stanzaErrorCond(res) != cond {
		t.Fatalf("want %s error, got %s", cond, res)
	}
	if pubsubCond != "" &&
		res.Child(wire.NSClient, "error").Child(nsPubSubErrors, pubsubCond) == nil {
		t.Fatalf("want pubsub condition %s, got %s", pubsubCond, res)
	}
}

const nickNode = "http://jabber.org/protocol/nick"

func nick(name string) string { return "<nick xmlns='" + nickNode + "'>" + name + "</nick>" }

// TestPEPDisco checks that an account's bare JID answers disco#info with
// the pep identity and the pubsub features (XEP-0163 § 3), to its owner and
// to others.
func TestPEPDisco(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	alice := login(t, ts, "alice", "pw", "phone")
	bob := login(t, ts, "bob", "pw", "desk")
	for name, c := range map[string]*rawClient{"owner": alice, "other": bob} {
		t.Run(name, func(t *testing.T) {
			res := c.pepIQ(t, "get", ts.jid("alice"), "<query xmlns='"+nsDiscoInfo+"'/>")
			q := res.Child(nsDiscoInfo, "query")
			if res.Get("type") != "result" || q == nil {
				t.Fatalf("disco#info failed: %s", res)
			}
			pep, feats := false, map[string]bool{}
			for _, el := range q.Children() {
				if el.Name.Local == "identity" && el.Get("category") == "pubsub" &&
					el.Get("type") == "pep" {
					pep = true
				}
				feats[el.Get("var")] = true
			}
			if !pep {
				t.Errorf("no pubsub/pep identity in %s", res)
			}
			for _, f := range []string{"publish", "publish-options", "auto-create",
				"retrieve-items", "persistent-items", "access-open", "access-presence",
				"item-ids", "retract-items", "last-published", "filtered-notifications"} {
				if !feats[nsPubSub+"#"+f] {
					t.Errorf("feature %s missing from %s", f, res)
				}
			}
		})
	}
}

// TestPEPPublishRetrieve checks publishing (auto-create, defaults,
// publish-options, conflicts, max_items), retrieval under each access
// model, retraction, node deletion and the bounds.
func TestPEPPublishRetrieve(t *testing.T) {
	ts := newTestServer(t)
	for _, u := range []string{"alice", "bob", "dave"} {
		ts.addUser(t, u, "pw")
	}
	alice := login(t, ts, "alice", "pw", "phone")
	bob := login(t, ts, "bob", "pw", "desk")
	dave := login(t, ts, "dave", "pw", "pc")
	for _, c := range []*rawClient{alice, bob, dave} {
		c.sendPresence(t, "")
	}
	mutualSubscribe(t, alice, bob)
	aliceJID := ts.jid("alice")

	t.Run("auto-create with a generated id", func(t *testing.T) {
		res := alice.publish(t, nickNode, "", nick("Alice"), "")
		it := res.Child(nsPubSub, "pubsub").Child(nsPubSub, "publish").Child(nsPubSub, "item")
		if res.Get("type") != "result" || it == nil || it.Get("id") == "" {
			t.Fatalf("publish failed: %s", res)
		}
		got := alice.pepItemsOf(t, "", nickNode, "", "")
		if ids := itemIDs(t, got); len(ids) != 1 || ids[0] != it.Get("id") {
			t.Fatalf("owner got %v, want [%s]", ids, it.Get("id"))
		}
		payload := got.Child(nsPubSub, "pubsub").Child(nsPubSub, "items").
			Child(nsPubSub, "item").Child(nickNode, "nick")
		if payload == nil || payload.Text() != "Alice" {
			t.Fatalf("payload not kept: %s", got)
		}
	})
	t.Run("presence node: contact reads, stranger refused", func(t *testing.T) {
		if ids := itemIDs(t, bob.pepItemsOf(t, aliceJID, nickNode, "", "")); len(ids) != 1 {
			t.Fatalf("contact got %v", ids)
		}
		res := dave.pepItemsOf(t, aliceJID, nickNode, "", "")
		expectPEPError(t, res, "not-authorized", "presence-subscription-required")
	})
	t.Run("default max_items is one", func(t *testing.T) {
		alice.publish(t, nickNode, "second", nick("Alice 2"), "")
		if ids := itemIDs(t, alice.pepItemsOf(t, "", nickNode, "", "")); len(ids) != 1 ||
			ids[0] != "second" {
			t.Fatalf("got %v, want [second]", ids)
		}
	})
	const devices = "eu.siacs.conversations.axolotl.devicelist"
	list := "<list xmlns='eu.siacs.conversations.axolotl'><device id='1'/></list>"
	t.Run("open node via publish-options", func(t *testing.T) {
		res := alice.publish(t, devices, "current", list,
			publishOptions("pubsub#access_model", "open"))
		if res.Get("type") != "result" {
			t.Fatalf("publish failed: %s", res)
		}
		if ids := itemIDs(t, dave.pepItemsOf(t, aliceJID, devices, "", "")); len(ids) != 1 {
			t.Fatalf("stranger got %v on an open node", ids)
		}
	})
	t.Run("publish-options conflict", func(t *testing.T) {
		res := alice.publish(t, devices, "current", list,
			publishOptions("pubsub#access_model", "presence"))
		expectPEPError(t, res, "conflict", "precondition-not-met")
		res = alice.publish(t, devices, "current", list,
			publishOptions("pubsub#deliver_notifications", "1"))
		expectPEPError(t, res, "conflict", "precondition-not-met")
		res = alice.publish(t, devices, "current", list,
			publishOptions("pubsub#access_model", "open", "pubsub#persist_items", "true"))
		if res.Get("type") != "result" {
			t.Fatalf("matching options refused: %s", res)
		}
	})
	t.Run("max_items, retrieval by count and id", func(t *testing.T) {
		opts := publishOptions("pubsub#max_items", "2")
		for _, id := range []string{"a", "b", "c"} {
			if res := alice.publish(t, "n", id, nick(id), opts); res.Get("type") != "result" {
				t.Fatalf("publish %s failed: %s", id, res)
			}
		}
		ids := itemIDs(t, alice.pepItemsOf(t, "", "n", "", ""))
		if fmt.Sprint(ids) != "[c b]" {
			t.Fatalf("got %v, want the two newest [c b]", ids)
		}
		ids = itemIDs(t, alice.pepItemsOf(t, "", "n", " max_items='1'", ""))
		if fmt.Sprint(ids) != "[c]" {
			t.Fatalf("max_items=1 got %v", ids)
		}
		ids = itemIDs(t, alice.pepItemsOf(t, "", "n", "", "<item id='b'/>"))
		if fmt.Sprint(ids) != "[b]" {
			t.Fatalf("item b got %v", ids)
		}
		expectPEPError(t, alice.pepItemsOf(t, "", "n", "", "<item id='a'/>"),
			"item-not-found", "")
		res := alice.publish(t, "m", "", nick("x"), publishOptions("pubsub#max_items", "max"))
		if res.Get("type") != "result" {
			t.Fatalf("max_items=max refused: %s", res)
		}
		res = alice.publish(t, "m2", "", nick("x"), publishOptions("pubsub#max_items", "5000"))
		expectPEPError(t, res, "conflict", "precondition-not-met")
	})
	t.Run("configure after a conflict, as Conversations does", func(t *testing.T) {
		presence := publishOptions("pubsub#access_model", "presence", "pubsub#max_items", "1")
		expectPEPError(t, alice.publish(t, devices, "current", list, presence),
			"conflict", "precondition-not-met")
		form := submitForm(nsNodeConfig, "pubsub#access_model", "presence",
			"pubsub#max_items", "1")
		res := alice.pepIQ(t, "set", "", "<pubsub xmlns='"+nsPubSubOwner+"'><configure node='"+
			devices+"'>"+form+"</configure></pubsub>")
		if res.Get("type") != "result" {
			t.Fatalf("configure failed: %s", res)
		}
		if res := alice.publish(t, devices, "current", list, presence); res.Get("type") != "result" {
			t.Fatalf("publish after configure failed: %s", res)
		}
		got := alice.pepIQ(t, "get", "", "<pubsub xmlns='"+nsPubSubOwner+"'><configure node='"+
			devices+"'/></pubsub>")
		x := got.Child(nsPubSubOwner, "pubsub").Child(nsPubSubOwner, "configure").
			Child(nsDataForm, "x")
		if v := formValues(x)["pubsub#access_model"]; v != "presence" {
			t.Fatalf("configuration form says access_model %q: %s", v, got)
		}
		expectPEPError(t, dave.pepItemsOf(t, aliceJID, devices, "", ""),
			"not-authorized", "presence-subscription-required")
		// Back to open, for what follows.
		open := submitForm(nsNodeConfig, "pubsub#access_model", "open")
		alice.pepIQ(t, "set", "", "<pubsub xmlns='"+nsPubSubOwner+"'><configure node='"+
			devices+"'>"+open+"</configure></pubsub>")
	})
	t.Run("whitelist node is the owner's", func(t *testing.T) {
		res := alice.publish(t, "urn:xmpp:bookmarks:1", "room@muc", "<conference xmlns="+
			"'urn:xmpp:bookmarks:1'/>", publishOptions("pubsub#access_model", "whitelist",
			"pubsub#send_last_published_item", "never"))
		if res.Get("type") != "result" {
			t.Fatalf("publish failed: %s", res)
		}
		expectPEPError(t, bob.pepItemsOf(t, aliceJID, "urn:xmpp:bookmarks:1", "", ""),
			"not-allowed", "closed-node")
	})
	t.Run("only the owner publishes", func(t *testing.T) {
		res := bob.pepIQ(t, "set", aliceJID, "<pubsub xmlns='"+nsPubSub+"'><publish node='x'>"+
			"<item>"+nick("bob")+"</item></publish></pubsub>")
		expectPEPError(t, res, "forbidden", "")
		res = bob.pepIQ(t, "get", aliceJID, "<pubsub xmlns='"+nsPubSubOwner+"'>"+
			"<configure node='"+devices+"'/></pubsub>")
		expectPEPError(t, res, "forbidden", "")
	})
	t.Run("retract", func(t *testing.T) {
		retract := func(id string) *wire.Element {
			return alice.pepIQ(t, "set", "", "<pubsub xmlns='"+nsPubSub+"'><retract node='n'>"+
				"<item id='"+id+"'/></retract></pubsub>")
		}
		if res := retract("c"); res.Get("type") != "result" {
			t.Fatalf("retract failed: %s", res)
		}
		if ids := itemIDs(t, alice.pepItemsOf(t, "", "n", "", "")); fmt.Sprint(ids) != "[b]" {
			t.Fatalf("after retract got %v", ids)
		}
		expectPEPError(t, retract("c"), "item-not-found", "")
	})
	t.Run("delete node", func(t *testing.T) {
		del := "<pubsub xmlns='" + nsPubSubOwner + "'><delete node='n'/></pubsub>"
		if res := alice.pepIQ(t, "set", aliceJID, del); res.Get("type") != "result" {
			t.Fatalf("delete failed: %s", res)
		}
		expectPEPError(t, alice.pepItemsOf(t, "", "n", "", ""), "item-not-found", "")
		expectPEPError(t, alice.pepIQ(t, "set", "", del), "item-not-found", "")
		expectPEPError(t, bob.pepItemsOf(t, aliceJID, "nothing", "", ""), "item-not-found", "")
	})
	t.Run("payload too big", func(t *testing.T) {
		big := nick(strings.Repeat("x", pepMaxItemBytes))
		expectPEPError(t, alice.publish(t, "big", "", big, ""), "not-acceptable",
			"payload-too-big")
	})
	t.Run("node cap", func(t *testing.T) {
		ctx, cancel := storeCtx()
		defer cancel()
		// Fill the account up to the cap directly, then publish once more.
		st := ts.srv.pep().store
		for i := 0; ; i++ {
			var n int
			ts.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pep_nodes WHERE owner = ?`,
				aliceJID).Scan(&n)
			if n >= pepMaxNodes {
				break
			}
			_, err := st.publish(ctx, aliceJID, pepOptions{},
				pepItem{node: fmt.Sprint("fill", i), id: "1", payload: []byte("<a xmlns='x'/>")})
			if err != nil {
				t.Fatal(err)
			}
		}
		expectPEPError(t, alice.publish(t, "one-more", "", nick("x"), ""),
			"policy-violation", "max-nodes-exceeded")
		if res := alice.publish(t, nickNode, "", nick("still"), ""); res.Get("type") != "result" {
			t.Fatalf("publishing to an existing node refused at the cap: %s", res)
		}
	})
}

// TestPEPPersistence checks that items survive a restart of the server on
// the same database.
func TestPEPPersistence(t *testing.T) {
	dir := t.TempDir()
	sameDir := func(c *conf.Config) { c.DataDir = dir }
	ts := newTestServer(t, sameDir)
	ts.addUser(t, "alice", "pw")
	alice := login(t, ts, "alice", "pw", "phone")
	if res := alice.publish(t, nickNode, "kept", nick("Alice"), ""); res.Get("type") != "result" {
		t.Fatalf("publish failed: %s", res)
	}
	if err := ts.stop(t); err != nil {
		t.Fatal(err)
	}

	ts2 := newTestServer(t, sameDir)
	alice2 := login(t, ts2, "alice", "pw", "phone")
	if ids := itemIDs(t, alice2.pepItemsOf(t, "", nickNode, "", "")); fmt.Sprint(ids) != "[kept]" {
		t.Fatalf("after restart got %v, want [kept]", ids)
	}
}

// capsPresence is a presence with XEP-0115 caps for a client that has the
// given features (and disco#info), and the disco#info answer that matches
// it when correct, or a different one when not.
func capsPresence(features []string, correct bool) (presence string,
	answer func(id, node string) string) {
	all := append([]string{nsDiscoInfo}, features...)
	var s strings.Builder
	s.WriteString("client/pc//test<")
	sorted := append([]string(nil), all...)
	sort.Strings(sorted)
	for _, f := range sorted {
		s.WriteString(f + "<")
	}
	sum := sha1.Sum([]byte(s.String()))
	ver := base64.StdEncoding.EncodeToString(sum[:])
	presence = "<c xmlns='" + nsCaps + "' hash='sha-1' node='https://test' ver='" + ver + "'/>"
	answer = func(id, node string) string {
		var b strings.Builder
		b.WriteString("<iq type='result' id='" + id + "' to='" + testDomain + "'><query xmlns='" +
			nsDiscoInfo + "' node='" + node + "'><identity category='client' type='pc' " +
			"name='test'/>")
		for _, f := range all {
			b.WriteString("<feature var='" + f + "'/>")
		}
		if !correct {
			b.WriteString("<feature var='urn:extra'/>")
		}
		b.WriteString("</query></iq>")
		return b.String()
	}
	return presence, answer
}

// answerCaps waits for the server's disco#info query and answers it.
func (c *rawClient) answerCaps(t *testing.T, answer func(id, node string) string) {
	t.Helper()
	q := c.expect(t, func(el *wire.Element) bool {
		return el.Name.Local == "iq" && el.Get("type") == "get" &&
			el.Child(nsDiscoInfo, "query") != nil
	}, 0)
	c.send(t, answer(q.Get("id"), q.Child(nsDiscoInfo, "query").Get("node")))
}

// pepEventOf matches a headline from owner carrying node's item with id.
func pepEventOf(owner, node, id string) func(*wire.Element) bool {
	return func(el *wire.Element) bool {
		items := el.Child(nsPubSubEvent, "event")
		if el.Name.Local != "message" || el.Get("from") != owner || items == nil {
			return false
		}
		items = items.Child(nsPubSubEvent, "items")
		return items != nil && items.Get("node") == node &&
			items.Child(nsPubSubEvent, "item") != nil &&
			items.Child(nsPubSubEvent, "item").Get("id") == id
	}
}

// TestPEPNotifications checks XEP-0163 § 4: events to the owner's
// resources and to contacts whose verified caps ask for the node, the last
// item when a contact comes online, nothing for unverified caps, strangers
// or blocked contacts.
func TestPEPNotifications(t *testing.T) {
	ts := newTestServer(t)
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		ts.addUser(t, u, "pw")
	}
	alice := login(t, ts, "alice", "pw", "phone")
	bob := login(t, ts, "bob", "pw", "desk")
	carol := login(t, ts, "carol", "pw", "pc")
	dave := login(t, ts, "dave", "pw", "pc")
	for _, c := range []*rawClient{alice, bob, carol, dave} {
		c.sendPresence(t, "")
	}
	mutualSubscribe(t, alice, bob)
	mutualSubscribe(t, alice, carol)
	aliceJID := ts.jid("alice")
	wants := []string{nickNode + "+notify"}

	alice.publish(t, nickNode, "n1", nick("one"), "")
	alice.expect(t, pepEventOf(aliceJID, nickNode, "n1"), 0)

	pres, answer := capsPresence(wants, true)
	t.Run("last item after the caps are verified", func(t *testing.T) {
		bob.sendPresence(t, pres)
		bob.answerCaps(t, answer)
		bob.expect(t, pepEventOf(aliceJID, nickNode, "n1"), 0)
	})
	t.Run("event on publish", func(t *testing.T) {
		alice.publish(t, nickNode, "n2", nick("two"), "")
		alice.expect(t, pepEventOf(aliceJID, nickNode, "n2"), 0)
		bob.expect(t, pepEventOf(aliceJID, nickNode, "n2"), 0)
		dave.expectNone(t, named("message"))
	})
	t.Run("known caps are not asked again", func(t *testing.T) {
		bob2 := login(t, ts, "bob", "pw", "tablet")
		bob2.sendPresence(t, pres)
		bob2.expect(t, pepEventOf(aliceJID, nickNode, "n2"), 0)
		bob2.expectNone(t, named("iq"))
	})
	t.Run("caps that do not match their hash", func(t *testing.T) {
		bad, badAnswer := capsPresence(append(wants, "urn:other"), false)
		carol.sendPresence(t, bad)
		carol.answerCaps(t, badAnswer)
		alice.publish(t, nickNode, "n3", nick("three"), "")
		alice.expect(t, pepEventOf(aliceJID, nickNode, "n3"), 0)
		bob.expect(t, pepEventOf(aliceJID, nickNode, "n3"), 0)
		carol.expectNone(t, named("message"))
	})
	t.Run("no +notify, no event", func(t *testing.T) {
		other, otherAnswer := capsPresence([]string{"urn:xmpp:avatar:metadata+notify"}, true)
		carol.sendPresence(t, other)
		carol.answerCaps(t, otherAnswer)
		alice.publish(t, nickNode, "n4", nick("four"), "")
		alice.expect(t, pepEventOf(aliceJID, nickNode, "n4"), 0)
		bob.expect(t, pepEventOf(aliceJID, nickNode, "n4"), 0)
		carol.expectNone(t, named("message"))
	})
	t.Run("last item when a subscription is approved", func(t *testing.T) {
		dave.sendPresence(t, pres) // caps known by now: no query
		dave.send(t, "<presence type='subscribe' to='"+aliceJID+"'/>")
		alice.expect(t, presenceFrom(ts.jid("dave"), "subscribe"), 0)
		alice.send(t, "<presence type='subscribed' to='"+ts.jid("dave")+"'/>")
		dave.expect(t, pepEventOf(aliceJID, nickNode, "n4"), 0)
	})
	t.Run("blocked contact gets nothing", func(t *testing.T) {
		res := bob.blockingIQ(t, "set", "<block xmlns='"+nsBlocking+"'><item jid='"+aliceJID+
			"'/></block>")
		if res.Get("type") != "result" {
			t.Fatalf("block failed: %s", res)
		}
		alice.publish(t, nickNode, "n5", nick("five"), "")
		alice.expect(t, pepEventOf(aliceJID, nickNode, "n5"), 0)
		bob.expectNone(t, pepEventOf(aliceJID, nickNode, "n5"))
	})
}

// TestCapsHash checks the verification string against the examples of
// XEP-0115 § 5.2 and § 5.3 and one that slixmpp sends, and the rules of
// § 5.4 for forms that are left out and results that are ill-formed.
func TestCapsHash(t *testing.T) {
	cases := []struct{ name, query, ver string }{
		{"simple", `<query xmlns='http://jabber.org/protocol/disco#info'>
			<identity category='client' name='Exodus 0.9.1' type='pc'/>
			<feature var='http://jabber.org/protocol/caps'/>
			<feature var='http://jabber.org/protocol/disco#info'/>
			<feature var='http://jabber.org/protocol/disco#items'/>
			<feature var='http://jabber.org/protocol/muc'/></query>`,
			"QgayPKawpkPSDYmwT/WM94uAlu0="},
		{"complex", `<query xmlns='http://jabber.org/protocol/disco#info'>
			<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
			<identity xml:lang='el' category='client' name='&#936; 0.11' type='pc'/>
			<feature var='http://jabber.org/protocol/caps'/>
			<feature var='http://jabber.org/protocol/disco#info'/>
			<feature var='http://jabber.org/protocol/disco#items'/>
			<feature var='http://jabber.org/protocol/muc'/>
			<x xmlns='jabber:x:data' type='result'>
			<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value>
			</field><field var='ip_version' type='text-multi'><value>ipv4</value>
			<value>ipv6</value></field><field var='os'><value>Mac</value></field>
			<field var='os_version'><value>10.5.1</value></field>
			<field var='software'><value>Psi</value></field>
			<field var='software_version'><value>0.11</value></field></x></query>`,
			"q07IKJEyjvHSyhy//CH0CxmKi8w="},
		// slixmpp 1.8.3 with xep_0163 interest in OMEMO device lists:
		// "shim" sorts before "shim#SubID" only when compared without
		// the "<" that follows each feature.
		{"prefix", `<query xmlns='http://jabber.org/protocol/disco#info'>
			<identity category='client' type='bot'/>
			<feature var='http://jabber.org/protocol/disco#info'/>
			<feature var='jabber:x:data'/>
			<feature var='http://jabber.org/protocol/shim'/>
			<feature var='http://jabber.org/protocol/shim#SubID'/>
			<feature var='http://jabber.org/protocol/caps'/>
			<feature var='eu.siacs.conversations.axolotl.devicelist+notify'/></query>`,
			"IbTWeQHBiM7chw/muOV0/gMgZF8="},
		// XEP-0115 § 5.4: a form without a hidden FORM_TYPE is left out,
		// so this is the simple example's ver again.
		{"form without FORM_TYPE ignored", `<query xmlns='http://jabber.org/protocol/disco#info'>
			<identity category='client' name='Exodus 0.9.1' type='pc'/>
			<feature var='http://jabber.org/protocol/caps'/>
			<feature var='http://jabber.org/protocol/disco#info'/>
			<feature var='http://jabber.org/protocol/disco#items'/>
			<feature var='http://jabber.org/protocol/muc'/>
			<x xmlns='jabber:x:data' type='result'><field var='os'><value>Mac</value></field></x>
			<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>urn:x</value>
			</field></x></query>`,
			"QgayPKawpkPSDYmwT/WM94uAlu0="},
		// Ill-formed results match no ver: a client cannot make the server
		// cache features under a ver that another client's caps name.
		{"feature twice", `<query xmlns='http://jabber.org/protocol/disco#info'>
			<identity category='client' type='pc'/><feature var='urn:a'/>
			<feature var='urn:a'/></query>`, ""},
		{"identity twice", `<query xmlns='http://jabber.org/protocol/disco#info'>
			<identity category='client' type='pc'/><identity category='client' type='pc'/>
			<feature var='urn:a'/></query>`, ""},
		{"FORM_TYPE twice", `<query xmlns='http://jabber.org/protocol/disco#info'>
			<identity category='client' type='pc'/>
			<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>
			<value>urn:x</value></field></x>
			<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>
			<value>urn:x</value></field></x></query>`, ""},
		{"FORM_TYPE with two values", `<query xmlns='http://jabber.org/protocol/disco#info'>
			<identity category='client' type='pc'/>
			<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>
			<value>urn:x</value><value>urn:y</value></field></x></query>`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rd := wire.NewReader(bytes.NewReader([]byte(tc.query)), wire.Limits{}, 0)
			q, err := rd.Next()
			if err != nil {
				t.Fatal(err)
			}
			if got := capsHash("sha-1", q); got != tc.ver {
				t.Fatalf("got %s, want %s", got, tc.ver)
			}
		})
	}
}

// formValues returns a data form's first values by field var.
func formValues(x *wire.Element) map[string]string {
	out := map[string]string{}
	if x == nil {
		return out
	}
	for _, f := range x.Children() {
		out[f.Get("var")] = f.ChildText(nsDataForm, "value")
	}
	return out
}

// TestPEPStoreBounds checks the store's trimming when a node's
// configuration shrinks and the per-account byte quota.
func TestPEPStoreBounds(t *testing.T) {
	ts := newTestServer(t)
	st := ts.srv.pep().store
	ctx, cancel := storeCtx()
	defer cancel()
	const owner = "alice@example.net"
	max := pepMaxItems
	many := pepOptions{maxItems: &max}
	for i := range 5 {
		it := pepItem{node: "n", id: fmt.Sprint(i), payload: []byte("<a xmlns='x'/>")}
		if _, err := st.publish(ctx, owner, many, it); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		items, err := st.items(ctx, owner, "n", 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		return len(items)
	}
	two, off := 2, false
	steps := []struct {
		name string
		opts pepOptions
		want int
	}{
		{"max_items lowered to two", pepOptions{maxItems: &two}, 2},
		{"persist_items off", pepOptions{persist: &off}, 0},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := st.configure(ctx, owner, "n", s.opts); err != nil {
				t.Fatal(err)
			}
			if got := count(); got != s.want {
				t.Fatalf("%d items left, want %d", got, s.want)
			}
		})
	}
	t.Run("a deleted account's nodes go", func(t *testing.T) {
		if err := ts.srv.forgetPEP(ctx, owner); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := st.node(ctx, owner, "n"); err != nil || ok {
			t.Fatalf("node still there (%v, %v)", ok, err)
		}
	})
	t.Run("account quota", func(t *testing.T) {
		big := []byte("<a xmlns='x'>" + strings.Repeat("y", pepMaxItemBytes-20) + "</a>")
		var err error
		for i := 0; i <= pepMaxAccountBytes/len(big) && err == nil; i++ {
			_, err = st.publish(ctx, owner, many, pepItem{node: "big", id: fmt.Sprint(i),
				payload: big})
		}
		if !errors.Is(err, errPEPQuota) {
			t.Fatalf("got %v, want errPEPQuota", err)
		}
	})
}
