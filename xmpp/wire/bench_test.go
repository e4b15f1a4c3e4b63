package wire

import (
	"strings"
	"testing"
)

// BenchmarkReaderNext reads the stanzas of a chat under stream management:
// a message with a receipt request, its receipt, and the acks and ack
// requests between them; "reference" is the same with the reader built on
// encoding/xml that the parser replaced.
//
//	go test -run '^$' -bench ReaderNext -benchmem ./xmpp/wire/
func BenchmarkReaderNext(b *testing.B) {
	const round = `<message xmlns='jabber:client' to='+12025550002@localhost' ` +
		`id='b7c9a2e1-5f3d-4c8e-9a1b-2d4e6f8a0c13' type='chat'>` +
		`<body>message 12345 from the load tool, about sixty bytes long</body>` +
		`<request xmlns='urn:xmpp:receipts'/><markable xmlns='urn:xmpp:chat-markers:0'/>` +
		`</message><r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='12345'/>` +
		`<message to='+12025550001@localhost' id='x1' type='chat'>` +
		`<received xmlns='urn:xmpp:receipts' id='b7c9a2e1-5f3d-4c8e-9a1b-2d4e6f8a0c13'/>` +
		`</message>` + "\n"
	const perRound = 4
	in := header + strings.Repeat(round, 1000)
	type reader interface {
		StreamHeader() (Header, error)
		Next() (*Element, error)
	}
	for _, bc := range []struct {
		name string
		open func() reader
	}{
		{"parser", func() reader { return NewReader(strings.NewReader(in), Limits{}, 0) }},
		{"reference", func() reader { return newRefReader(strings.NewReader(in), Limits{}, 0) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				r := bc.open()
				if _, err := r.StreamHeader(); err != nil {
					b.Fatal(err)
				}
				for range 1000 * perRound {
					if _, err := r.Next(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
