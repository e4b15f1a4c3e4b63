package xmpp

// Idle connections are most of a server's connections, and what each one
// holds while it waits is what a server holds per user. Two things are
// large and avoidable here:
//
//   - The reader goroutine's stack. Go keeps a stack at a power of two at
//     least four times what the goroutine uses, and a goroutine parked in
//     crypto/tls under the XML decoder uses enough to keep 16 KiB. Waiting
//     for the socket to become readable before entering crypto/tls, in a
//     shallow frame, lets the stack shrink to 8 KiB at the next collections.
//   - Read buffers. crypto/tls reads as much as the socket has into a buffer
//     that keeps its capacity; recordConn reads into a pooled buffer instead
//     and hands crypto/tls one record at a time, so that crypto/tls never
//     holds input beyond the record it decrypts, and returns the buffer to
//     the pool once it has been consumed.
//
// Handing over one record at a time is also what makes the shallow wait
// safe: when crypto/tls has returned less than was asked for, it holds no
// plaintext, and recordConn holds no ciphertext, so nothing can be ready
// that the socket would not announce.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// tlsRecordHeaderLen is the length of a TLS record header: content type,
// legacy version and length (RFC 8446 § 5.1).
const tlsRecordHeaderLen = 5

// recordBufSize is the size of the pooled buffers recordConn reads into:
// a few typical stanzas in one system call.
const recordBufSize = 4096

var recordBufs = sync.Pool{New: func() any { b := make([]byte, recordBufSize); return &b }}

// recordConn is the connection under crypto/tls. Read returns at most the
// rest of the current TLS record. It is not safe for concurrent reads,
// which crypto/tls does not make.
type recordConn struct {
	net.Conn
	buf  *[]byte // pooled; nil when empty
	r, w int     // unread input is (*buf)[r:w]

	hdr  [tlsRecordHeaderLen]byte
	hdrN int // header bytes of the current record returned so far
	left int // payload bytes of the current record not yet returned
}

func (rc *recordConn) Read(p []byte) (int, error) {
	if rc.r == rc.w {
		if err := rc.fill(); err != nil {
			return 0, err
		}
	}
	want := rc.left
	if rc.hdrN < tlsRecordHeaderLen {
		want = tlsRecordHeaderLen - rc.hdrN
	}
	n := copy(p[:min(len(p), want)], (*rc.buf)[rc.r:rc.w])
	if rc.hdrN < tlsRecordHeaderLen {
		copy(rc.hdr[rc.hdrN:], p[:n])
		rc.hdrN += n
		if rc.hdrN == tlsRecordHeaderLen {
			rc.left = int(binary.BigEndian.Uint16(rc.hdr[3:]))
		}
	} else {
		rc.left -= n
	}
	if rc.hdrN == tlsRecordHeaderLen && rc.left == 0 {
		rc.hdrN = 0
	}
	rc.r += n
	if rc.r == rc.w {
		rc.release()
	}
	return n, nil
}

// fill reads what the socket has into a pooled buffer. The buffer goes
// back to the pool if the read returns nothing.
func (rc *recordConn) fill() error {
	rc.buf = recordBufs.Get().(*[]byte)
	n, err := rc.Conn.Read(*rc.buf)
	rc.r, rc.w = 0, n
	if n > 0 {
		return nil
	}
	rc.release()
	if err == nil {
		err = errors.New("empty read")
	}
	return err
}

func (rc *recordConn) release() {
	if rc.buf != nil {
		recordBufs.Put(rc.buf)
		rc.buf = nil
	}
	rc.r, rc.w = 0, 0
}

// empty reports whether recordConn holds no input and stands between
// records.
func (rc *recordConn) empty() bool { return rc.r == rc.w && rc.hdrN == 0 }

// waitReadable parks until nc has input, an error, or its read deadline
// passes, without reading anything. Errors are left for the read that
// follows to report.
func waitReadable(nc net.Conn) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var b [1]byte
	raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN && err != syscall.EINTR
	})
}

// onOwnStack runs f on a new goroutine and waits for it, so that the stack
// f grows is not the caller's. A panic in f is returned as an error.
func onOwnStack(f func() error) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic: %v", r)
			}
		}()
		done <- f()
	}()
	return <-done
}

// waitInput parks until the client sends something, when nothing it sent
// is buffered between the socket and the XML decoder. The wire.Reader
// calls it before each element (SetWait), in a frame shallow enough that
// an idle connection's goroutine keeps a 4 KiB stack: parked inside the
// decoder, it uses more than a quarter of 4 KiB and keeps 8 KiB.
func (c *conn) waitInput() {
	if !c.rc.drained || c.rec != nil && !c.rec.empty() {
		return
	}
	if c.rc.idle > 0 {
		// The read that follows keeps this deadline, so that the idle
		// timeout counts from now and not from when the wait ended.
		c.rc.deadline = time.Now().Add(c.rc.idle)
		c.raw.SetReadDeadline(c.rc.deadline)
	}
	waitReadable(c.raw)
}
