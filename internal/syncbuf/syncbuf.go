// Package syncbuf holds the one synchronised buffer of the repository: an
// io.Writer that other goroutines (a child process's output copier, a logger)
// write while a test or the harness reads what has arrived so far, or waits
// for something to arrive.
package syncbuf

import (
	"bytes"
	"context"
	"sync"
)

// DroppedMarker starts String's result once a bounded Buffer has dropped
// output.
const DroppedMarker = "[earlier output dropped]\n"

// Buffer is safe for concurrent use. The zero value is an empty, unbounded
// buffer. A Buffer must not be copied after first use.
type Buffer struct {
	// Max, if positive, bounds what is kept to the last Max bytes written, cut
	// at a line start so the output never begins mid-line (a long run cannot
	// grow captured output without bound). Set it before the first Write.
	Max int

	mu      sync.Mutex
	buf     []byte
	dropped bool
	changed chan struct{} // closed by the next Write; nil when nobody waits
}

// Write appends p. It never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.Max; b.Max > 0 && over > 0 {
		if i := bytes.IndexByte(b.buf[over:], '\n'); i >= 0 {
			over += i + 1
		}
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.dropped = true
	}
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return len(p), nil
}

// String returns what is kept, preceded by DroppedMarker if a bounded buffer
// has dropped output.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stringLocked()
}

func (b *Buffer) stringLocked() string {
	if b.dropped {
		return DroppedMarker + string(b.buf)
	}
	return string(b.buf)
}

// Wait calls ok with the buffer's contents now and after every Write until
// ok returns true or ctx ends. It reports ok's last answer.
func (b *Buffer) Wait(ctx context.Context, ok func(string) bool) bool {
	for {
		b.mu.Lock()
		s := b.stringLocked()
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed
		b.mu.Unlock()
		if ok(s) {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ok(b.String())
		}
	}
}
