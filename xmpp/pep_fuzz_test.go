package xmpp

import (
	"bytes"
	"strings"
	"testing"

	"github.com/twotick/twotick/xmpp/wire"
)

// readElement reads one element as the stream reader delivers a client's.
func readElement(s string) (*wire.Element, error) {
	return wire.NewReader(strings.NewReader(s), wire.Limits{}, 0).Next()
}

// FuzzPEPPayload feeds item payloads the way PEP keeps them: the element
// the stream reader built is serialised for the database and rebuilt for
// retrieval and notifications. Whatever the client published must come
// back as the same element.
//
//	go test ./xmpp/ -run '^$' -fuzz FuzzPEPPayload -fuzztime 5m
func FuzzPEPPayload(f *testing.F) {
	for _, s := range []string{
		`<list xmlns='eu.siacs.conversations.axolotl'><device id='1'/></list>`,
		`<nick xmlns='http://jabber.org/protocol/nick'>A &amp; B</nick>`,
		`<a xmlns='x' xmlns:p='y' p:attr='1' xml:lang='en'><b xmlns=''>t</b>text</a>`,
		`<data xmlns='urn:xmpp:avatar:data'>iVBORw0KGgo=</data>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		el, err := readElement(s)
		if err != nil {
			return
		}
		stored := el.Bytes("")
		item := pepItemElement(nsPubSubEvent, pepItem{id: "i", payload: stored})
		if item == nil || len(item.Children()) != 1 {
			t.Fatalf("stored payload %q does not read back", stored)
		}
		if back := item.Children()[0].Bytes(""); !bytes.Equal(back, stored) {
			t.Fatalf("payload changed: stored %q, read back %q", stored, back)
		}
	})
}

// FuzzPEPOptions feeds publish-options forms. A form that is accepted
// gives a node configuration the service can keep: a known access model
// and max_items within the cap.
//
//	go test ./xmpp/ -run '^$' -fuzz FuzzPEPOptions -fuzztime 5m
func FuzzPEPOptions(f *testing.F) {
	f.Add(publishOptions("pubsub#access_model", "open", "pubsub#max_items", "max"))
	f.Add(publishOptions("pubsub#persist_items", "1", "pubsub#send_last_published_item",
		"never"))
	f.Add(publishOptions("pubsub#max_items", "-1"))
	f.Fuzz(func(t *testing.T, s string) {
		po, err := readElement(s)
		if err != nil {
			return
		}
		opts, err := parsePublishOptions(po)
		if err != nil {
			return
		}
		cfg := opts.apply(pepDefaults)
		if cfg.access != pepOpen && cfg.access != pepPresence && cfg.access != pepWhitelist {
			t.Fatalf("access model %q accepted", cfg.access)
		}
		if cfg.maxItems < 1 || cfg.maxItems > pepMaxItems {
			t.Fatalf("max_items %d accepted", cfg.maxItems)
		}
		if !opts.met(cfg) {
			t.Fatalf("a node created with %+v does not meet its own options", cfg)
		}
	})
}
