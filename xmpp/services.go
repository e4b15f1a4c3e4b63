package xmpp

import (
	"crypto/sha1"
	"encoding/base64"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twotick/twotick/xmpp/wire"
)

// Namespaces of the services the server answers.
const (
	nsRoster     = "jabber:iq:roster"
	nsRosterVer  = "urn:xmpp:features:rosterver"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsPing       = "urn:xmpp:ping"
	nsVersion    = "jabber:iq:version"
	nsTime       = "urn:xmpp:time"
	nsCaps       = "http://jabber.org/protocol/caps"
	capsNode     = "https://twotick.invalid/caps"
)

// serverFeatures are the features the domain advertises (XEP-0030).
var serverFeatures = []string{
	nsDiscoInfo, nsDiscoItems, nsPing, nsVersion, nsTime, nsRoster, nsRosterVer,
	nsSID, "msgoffline", "urn:xmpp:sm:3", nsSession, nsCommands,
	nsBlocking, nsCarbons, nsCarbonsRules,
}

type identity struct{ category, typ, name string }

var serverIdentity = identity{"server", "im", "twotick"}

// discoInfo is the domain's disco#info; node is echoed as XEP-0115 asks.
func (srv *Server) discoInfo(node string) *wire.Element {
	q := wire.New(nsDiscoInfo, "query")
	if node != "" {
		if node != capsNode+"#"+capsVer() {
			return q // an unknown node has no features
		}
		q.Set("node", node)
	}
	q.Add(wire.New(nsDiscoInfo, "identity", "category", serverIdentity.category,
		"type", serverIdentity.typ, "name", serverIdentity.name))
	for _, f := range sortedFeatures() {
		q.Add(wire.New(nsDiscoInfo, "feature", "var", f))
	}
	return q
}

// discoItems is the domain's disco#items (XEP-0030 § 4): the contact
// discovery service when there is one, and under the commands node the
// ad-hoc commands (XEP-0050 § 2.2).
func (srv *Server) discoItems(node string) *wire.Element {
	q := wire.New(nsDiscoItems, "query")
	if node != "" {
		q.Set("node", node)
	}
	if srv.deps.Book == nil {
		return q
	}
	switch node {
	case "":
		q.Add(wire.New(nsDiscoItems, "item", "jid", srv.apiJID(), "name", "Contact discovery"))
	case nsCommands:
		q.Add(wire.New(nsDiscoItems, "item", "jid", srv.domain, "node", syncNode,
			"name", syncName))
	}
	return q
}

// accountDiscoInfo is disco#info of an account's bare JID (XEP-0030 § 3.1),
// with the PEP service (XEP-0163 § 3) when pep is true.
func accountDiscoInfo(pep bool) *wire.Element {
	q := wire.New(nsDiscoInfo, "query")
	q.Add(wire.New(nsDiscoInfo, "identity", "category", "account", "type", "registered"))
	if pep {
		q.Add(wire.New(nsDiscoInfo, "identity", "category", "pubsub", "type", "pep"))
	}
	q.Add(wire.New(nsDiscoInfo, "feature", "var", nsDiscoInfo))
	q.Add(wire.New(nsDiscoInfo, "feature", "var", nsPush))
	if pep {
		for _, f := range pepFeatures {
			q.Add(wire.New(nsDiscoInfo, "feature", "var", pepFeaturesBase+f))
		}
	}
	return q
}

func sortedFeatures() []string {
	f := append([]string(nil), serverFeatures...)
	sort.Strings(f)
	return f
}

var capsOnce struct {
	sync.Once
	ver string
}

// capsVer is the XEP-0115 § 5.1 verification string of the server's
// identity and features.
func capsVer() string {
	capsOnce.Do(func() {
		var b strings.Builder
		id := serverIdentity
		b.WriteString(id.category + "/" + id.typ + "//" + id.name + "<")
		for _, f := range sortedFeatures() {
			b.WriteString(f + "<")
		}
		sum := sha1.Sum([]byte(b.String()))
		capsOnce.ver = base64.StdEncoding.EncodeToString(sum[:])
	})
	return capsOnce.ver
}

// versionPayload answers XEP-0092. The operating system is the family only,
// so the reply reveals little to an attacker.
func versionPayload() *wire.Element {
	q := wire.New(nsVersion, "query")
	q.AddText(nsVersion, "name", "twotick")
	q.AddText(nsVersion, "version", Version)
	q.AddText(nsVersion, "os", runtime.GOOS)
	return q
}

// timePayload answers XEP-0202 in UTC.
func timePayload() *wire.Element {
	t := wire.New(nsTime, "time")
	t.AddText(nsTime, "tzo", "+00:00")
	t.AddText(nsTime, "utc", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
	return t
}
