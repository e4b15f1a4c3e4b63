package xmpp

import (
	"bytes"
	"io"
	"net"
	"testing"
	"testing/iotest"
)

// chunkConn is a net.Conn whose reads come from r.
type chunkConn struct {
	net.Conn
	r io.Reader
}

func (c chunkConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// tlsRecord returns a record header and payload of n bytes of b.
func tlsRecord(n int, b byte) []byte {
	return append([]byte{23, 3, 3, byte(n >> 8), byte(n)}, bytes.Repeat([]byte{b}, n)...)
}

// TestRecordConnBoundaries reads several records, arriving together or
// piecemeal, and checks that no read crosses the end of a record, that
// nothing is lost, and that the connection reports itself empty exactly
// between records with nothing buffered.
func TestRecordConnBoundaries(t *testing.T) {
	var stream []byte
	var ends []int // offsets where a record ends
	for i, n := range []int{1, 300, 0, 5000, 17} {
		stream = append(stream, tlsRecord(n, byte('a'+i))...)
		ends = append(ends, len(stream))
	}
	tests := []struct {
		name string
		src  func() io.Reader
		ask  int
	}{
		{"all at once", func() io.Reader { return bytes.NewReader(stream) }, 16 << 10},
		{"one byte at a time",
			func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) }, 16 << 10},
		{"half reads, small asks",
			func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) }, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := &recordConn{Conn: chunkConn{r: tc.src()}}
			var got []byte
			p := make([]byte, tc.ask)
			for {
				n, err := rc.Read(p)
				start := len(got)
				got = append(got, p[:n]...)
				for _, e := range ends {
					if start < e && len(got) > e {
						t.Fatalf("a read of %d bytes from offset %d crosses the record end at %d", n, start, e)
					}
				}
				atEnd := false
				for _, e := range ends {
					atEnd = atEnd || len(got) == e
				}
				if rc.empty() && !atEnd {
					t.Fatalf("empty() at offset %d, inside a record", len(got))
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, stream) {
				t.Fatalf("read %d bytes that differ from the %d sent", len(got), len(stream))
			}
			if rc.buf != nil {
				t.Fatal("a drained recordConn holds a pooled buffer")
			}
		})
	}
}
