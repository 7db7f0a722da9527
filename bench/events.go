package bench

import (
	"context"
	"sync"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
)

// eventLog records a client's connection events and lets a measurement wait for one.
type eventLog struct {
	mu   sync.Mutex
	evs  []clients.Event
	next func(clients.Event) // forwarded to, e.g. the rig's timeline; may be nil
}

func (l *eventLog) on(e clients.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
	if l.next != nil {
		l.next(e)
	}
}

// first returns the time of the first event of kind at or after since.
func (l *eventLog) first(kind clients.EventKind, since time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.evs {
		if e.Kind == kind && !e.At.Before(since) {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// count returns how many events of kind happened at or after since.
func (l *eventLog) count(kind clients.EventKind, since time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.evs {
		if e.Kind == kind && !e.At.Before(since) {
			n++
		}
	}
	return n
}

// wait waits for the first event of kind at or after since, polling (the event carries its own time, so
// polling costs no precision).
func (l *eventLog) wait(ctx context.Context, kind clients.EventKind, since time.Time) (time.Time, error) {
	for {
		if at, ok := l.first(kind, since); ok {
			return at, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// downAt reports whether t falls between a down event and the next up event.
func (l *eventLog) downAt(t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	down := false
	for _, e := range l.evs {
		if e.At.After(t) {
			break
		}
		switch e.Kind {
		case clients.EventDown:
			down = true
		case clients.EventUp:
			down = false
		}
	}
	return down
}
