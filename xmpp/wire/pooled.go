package wire

import (
	"io"
	"sync"
)

// waitSize is the read buffer of a pooledReader that has nothing buffered:
// the read that waits for a peer's next input (a keepalive is one byte)
// blocks on these bytes inside the Reader, not on a buffer of full size.
const waitSize = 32

// bufPools holds a *sync.Pool of *[]byte for each buffer size in use.
var bufPools sync.Map

func bufPool(size int) *sync.Pool {
	if p, ok := bufPools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := bufPools.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}})
	return p.(*sync.Pool)
}

// pooledReader is a buffered reader that holds a full-size buffer only
// while input keeps arriving. It takes one from a pool after a read filled
// the small buffer (more input is likely waiting) and gives it back once it
// has been consumed, so that an idle stream, the common case on a server,
// holds waitSize bytes instead of size. It is not safe for concurrent use.
type pooledReader struct {
	src  io.Reader
	pool *sync.Pool
	big  *[]byte // from pool, or nil
	buf  []byte  // (*big) or small[:]
	r, w int     // unread input is buf[r:w]
	more bool    // the last read filled buf: use a full-size buffer next
	// small is where a read that may wait for the peer goes.
	small [waitSize]byte
}

func newPooledReader(src io.Reader, size int) *pooledReader {
	return &pooledReader{src: src, pool: bufPool(size)}
}

// Reset drops buffered input and reads from src from now on.
func (p *pooledReader) Reset(src io.Reader) {
	p.release()
	p.src = src
	p.more = false
}

// Buffered is the number of bytes read ahead and not yet consumed.
func (p *pooledReader) Buffered() int { return p.w - p.r }

func (p *pooledReader) release() {
	if p.big != nil {
		p.pool.Put(p.big)
		p.big = nil
	}
	p.buf = nil
	p.r, p.w = 0, 0
}

// fill reads once into an empty buffer.
func (p *pooledReader) fill() error {
	p.release()
	if p.more {
		p.big = p.pool.Get().(*[]byte)
		p.buf = *p.big
	} else {
		p.buf = p.small[:]
	}
	n, err := p.src.Read(p.buf)
	p.w = n
	p.more = n == len(p.buf)
	if n == 0 {
		p.release()
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	return nil
}

func (p *pooledReader) ReadByte() (byte, error) {
	if p.r == p.w {
		if err := p.fill(); err != nil {
			return 0, err
		}
	}
	b := p.buf[p.r]
	p.r++
	if p.r == p.w {
		p.release()
	}
	return b, nil
}

func (p *pooledReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if p.r == p.w {
		if err := p.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(b, p.buf[p.r:p.w])
	p.r += n
	if p.r == p.w {
		p.release()
	}
	return n, nil
}
