package broker

import (
	"bytes"
	"sync"
)

// tailBuffer is an io.Writer that keeps the last max bytes written, so a long
// soak cannot grow the captured broker output without bound.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped bool
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		// Cut at a line start so the output never begins mid-line.
		if i := bytes.IndexByte(t.buf[over:], '\n'); i >= 0 {
			over += i + 1
		}
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.dropped = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dropped {
		return "[earlier output dropped]\n" + string(t.buf)
	}
	return string(t.buf)
}

// lastLines returns at most n trailing lines, for error messages.
func lastLines(s string, n int) string {
	s = string(bytes.TrimRight([]byte(s), "\n"))
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			n--
			if n == 0 {
				return s[i+1:]
			}
		}
	}
	return s
}
