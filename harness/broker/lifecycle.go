package broker

import (
	"fmt"
	"sync"
)

// lifecycle is the guard the container and process backends share: it
// serialises their lifecycle operations, fails every operation after Close
// with ErrClosed (naming the operation and the address), runs Close's
// teardown once, and words the state errors the same way for both. What is
// running is left to the backend, which asks the process or the engine rather
// than trusting a copy.
type lifecycle struct {
	addr string

	mu     sync.Mutex
	closed bool
}

// do runs f as operation op, serialised with every other operation, or fails
// with ErrClosed once the broker is closed.
func (l *lifecycle) do(op string, f func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.closedErr(op)
	}
	return f()
}

// restart is operation "restart": stop, then start unless stop failed.
func (l *lifecycle) restart(stop, start func() error) error {
	return l.do("restart", func() error {
		if err := stop(); err != nil {
			return err
		}
		return start()
	})
}

// check fails with ErrClosed once the broker is closed, without waiting for
// a running operation: for reads such as Logs.
func (l *lifecycle) check(op string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.closedErr(op)
	}
	return nil
}

// close runs teardown once, after any running operation; later calls return
// nil at once, and every operation fails with ErrClosed from then on.
func (l *lifecycle) close(teardown func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return teardown()
}

// notRunning is the error of operation op that needs a running broker.
func (l *lifecycle) notRunning(op string) error {
	return fmt.Errorf("%s %s: %w", op, l.addr, ErrNotRunning)
}

func (l *lifecycle) closedErr(op string) error {
	return fmt.Errorf("%s %s: %w", op, l.addr, ErrClosed)
}
