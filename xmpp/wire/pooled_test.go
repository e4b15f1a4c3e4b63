package wire

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestPooledReaderContent reads the same input through sources that return
// it in different pieces, byte by byte and in blocks, and checks that
// nothing is lost or repeated and that a drained reader holds no pooled
// buffer.
func TestPooledReaderContent(t *testing.T) {
	in := strings.Repeat("<message to='a@b'><body>hello</body></message> ", 200)
	tests := []struct {
		name string
		src  func() io.Reader
		size int
	}{
		{"one byte at a time",
			func() io.Reader { return iotest.OneByteReader(strings.NewReader(in)) }, 2048},
		{"half reads", func() io.Reader { return iotest.HalfReader(strings.NewReader(in)) }, 2048},
		{"whole reads", func() io.Reader { return strings.NewReader(in) }, 2048},
		{"data with EOF", func() io.Reader { return iotest.DataErrReader(strings.NewReader(in)) }, 512},
		{"buffer smaller than the wait buffer", func() io.Reader { return strings.NewReader(in) }, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPooledReader(tc.src(), tc.size)
			var got strings.Builder
			var chunk [100]byte
			for i := 0; ; i++ {
				var err error
				if i%2 == 0 {
					var b byte
					if b, err = p.ReadByte(); err == nil {
						got.WriteByte(b)
					}
				} else {
					var n int
					n, err = p.Read(chunk[:1+i%len(chunk)])
					got.Write(chunk[:n])
				}
				if p.Buffered() == 0 && p.big != nil {
					t.Fatalf("drained reader holds a pooled buffer")
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if got.String() != in {
				t.Fatalf("read %d bytes that differ from the %d written", got.Len(), len(in))
			}
		})
	}
}

// TestPooledReaderWaitsSmall checks that a read that may wait for the peer
// goes into the small buffer, and that a full one follows a read that
// filled it.
func TestPooledReaderWaitsSmall(t *testing.T) {
	var asked []int
	src := readerFunc(func(b []byte) (int, error) {
		asked = append(asked, len(b))
		return copy(b, strings.Repeat("x", 100)), nil
	})
	p := newPooledReader(src, 1024)
	buf := make([]byte, 1000)
	p.Read(buf) // small buffer filled: more is likely waiting
	p.Read(buf) // a full-size buffer, not filled: drained
	p.Read(buf)
	want := []int{waitSize, 1024, waitSize}
	for i := range want {
		if asked[i] != want[i] {
			t.Fatalf("read sizes %v, want %v", asked, want)
		}
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// TestReaderWaitHook checks that Next calls the wait function only when
// nothing is buffered.
func TestReaderWaitHook(t *testing.T) {
	in := header + "<a/><b/>"
	r := NewReader(iotest.OneByteReader(strings.NewReader(in)), Limits{}, 0)
	if _, err := r.StreamHeader(); err != nil {
		t.Fatal(err)
	}
	waits := 0
	r.SetWait(func() { waits++ })
	for _, want := range []string{"a", "b"} {
		el, err := r.Next()
		if err != nil || el.Name.Local != want {
			t.Fatalf("Next = %v, %v; want <%s/>", el, err, want)
		}
	}
	if waits != 2 {
		t.Fatalf("wait called %d times for 2 elements read one byte at a time, want 2", waits)
	}

	r = NewReader(strings.NewReader(in), Limits{}, 0)
	r.StreamHeader()
	waits = 0
	r.SetWait(func() { waits++ })
	r.Next()
	r.Next()
	if waits != 0 {
		t.Fatalf("wait called %d times with the input buffered, want 0", waits)
	}
}
