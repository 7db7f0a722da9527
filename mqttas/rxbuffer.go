package mqttas

import (
	"errors"
	"io"
	"sync"
	"time"
)

// rxBuffer is the reader's buffer, bufio.Reader's job with one difference: its memory is borrowed from a
// pool only while bytes are buffered or arriving. A connection that has been quiet waits for the next
// bytes without a buffer, so an idle client (a gateway may hold thousands) holds none.
type rxBuffer struct {
	rx    *rxConn
	buf   *[]byte // nil while released
	r, w  int     // read and write positions in *buf
	err   error   // the read error, returned once the buffered bytes are consumed
	quiet bool    // the last wait for bytes was long: wait for the next ones without a buffer

	onBorrow func() // tests: called when a buffer is borrowed
}

// quietAfter is how long a wait for bytes must last for the connection to count as quiet.
const quietAfter = 10 * time.Millisecond

var rxPool = sync.Pool{New: func() any { b := make([]byte, ioBufSize); return &b }}

func newRxBuffer(rx *rxConn) *rxBuffer { return &rxBuffer{rx: rx, quiet: true} }

// Buffered returns the number of bytes that can be read without waiting.
func (b *rxBuffer) Buffered() int { return b.w - b.r }

// release returns the buffer to the pool when it holds nothing.
func (b *rxBuffer) release() {
	if b.buf != nil && b.r == b.w {
		rxPool.Put(b.buf)
		b.buf, b.r, b.w = nil, 0, 0
	}
}

// waitQuiet waits, without a buffer, for the next bytes of a quiet connection whose buffer is released.
// Elsewhere it returns at once.
func (b *rxBuffer) waitQuiet() error {
	if b.buf != nil || !b.quiet {
		return nil
	}
	return b.rx.waitReadable()
}

// fill reads more bytes into an empty buffer, borrowing one if needed.
func (b *rxBuffer) fill() {
	if b.buf == nil {
		b.buf = rxPool.Get().(*[]byte)
		if b.onBorrow != nil {
			b.onBorrow()
		}
	}
	b.r, b.w = 0, 0
	start := time.Now()
	n, err := b.rx.Read(*b.buf)
	b.quiet = time.Since(start) >= quietAfter
	b.w = max(n, 0)
	if err != nil {
		b.err = err
	} else if n == 0 {
		b.err = io.ErrNoProgress
	}
}

func (b *rxBuffer) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// ReadByte implements io.ByteReader.
func (b *rxBuffer) ReadByte() (byte, error) {
	for b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		b.fill()
	}
	c := (*b.buf)[b.r]
	b.r++
	return c, nil
}

// UnreadByte unreads the byte ReadByte just returned.
func (b *rxBuffer) UnreadByte() error {
	if b.r == 0 {
		return errors.New("mqttas: UnreadByte without a byte read")
	}
	b.r--
	return nil
}

// Read implements io.Reader. A read at least as large as the buffer, with nothing buffered, goes straight
// into p.
func (b *rxBuffer) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		if len(p) >= ioBufSize {
			return b.rx.Read(p)
		}
		b.fill()
		if b.r == b.w {
			return 0, b.readErr()
		}
	}
	n := copy(p, (*b.buf)[b.r:b.w])
	b.r += n
	return n, nil
}
