package mqttas

import (
	"context"
	"sync"
	"sync/atomic"
)

// Event is a flag that goroutines can wait on, like mqtt_as's asyncio events: setting it wakes every waiter
// and the flag stays set until Clear. Only the client sets it (Up after every successful connection, Down
// after every detected outage), so an application cannot fake a connection or an outage; the client never
// clears it: the application does, typically right after Wait returns.
type Event struct {
	mu    sync.Mutex
	isSet bool
	ch    chan struct{} // closed while set; nil until first needed
}

func (e *Event) chLocked() chan struct{} {
	if e.ch == nil {
		e.ch = make(chan struct{})
		if e.isSet {
			close(e.ch)
		}
	}
	return e.ch
}

// set sets the flag and wakes every waiter.
func (e *Event) set() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.isSet {
		e.isSet = true
		if e.ch != nil {
			close(e.ch)
		}
	}
}

// Clear resets the flag; later Waits block until the client sets it again.
func (e *Event) Clear() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.isSet {
		e.isSet = false
		e.ch = nil
	}
}

// IsSet reports whether the flag is set.
func (e *Event) IsSet() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.isSet
}

// Wait blocks until the flag is set or ctx ends.
func (e *Event) Wait(ctx context.Context) error {
	e.mu.Lock()
	ch := e.chLocked()
	e.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Queue holds received messages in event mode (Config.QueueLen > 0). It holds exactly QueueLen messages;
// a message that arrives when it is full displaces the oldest one, which is counted in Discards.
// (mqtt_as's ring buffer held only QueueLen−1, and nothing at all with QueueLen 1.)
//
// The broker's PUBACK for a qos 1 message goes out when the message is queued, so a discarded message is
// not redelivered: size the queue for the bursts you expect, and watch Discards.
type Queue struct {
	mu       sync.Mutex
	buf      []Message
	head     int // index of the oldest message
	n        int // messages held
	ready    chan struct{}
	discards atomic.Uint64
}

func newQueue(capacity int) *Queue {
	return &Queue{buf: make([]Message, capacity), ready: make(chan struct{}, 1)}
}

// put adds m, displacing the oldest message when full. It never blocks: the reader must keep reading.
func (q *Queue) put(m Message) {
	q.mu.Lock()
	if q.n == len(q.buf) {
		q.buf[q.head] = Message{}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
		q.discards.Add(1)
	}
	q.buf[(q.head+q.n)%len(q.buf)] = m
	q.n++
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// TryNext returns the oldest message without blocking; ok is false when the queue is empty.
func (q *Queue) TryNext() (m Message, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return Message{}, false
	}
	m = q.buf[q.head]
	q.buf[q.head] = Message{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	if q.n > 0 {
		// Keep the wake-up token for the next consumer.
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return m, true
}

// Next blocks until a message is available or ctx ends.
func (q *Queue) Next(ctx context.Context) (Message, error) {
	for {
		if m, ok := q.TryNext(); ok {
			return m, nil
		}
		select {
		case <-q.ready:
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}

// Len is the number of messages waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Cap is the number of messages the queue holds before it discards.
func (q *Queue) Cap() int { return len(q.buf) }

// Discards counts messages displaced because the queue was full.
func (q *Queue) Discards() uint64 { return q.discards.Load() }

// Stats are counters since New. All are cumulative.
type Stats struct {
	Connects       uint64 // successful connections, the first included
	Reconnects     uint64 // successful connections after an outage
	Outages        uint64 // detected outages (each fires Down)
	FailedAttempts uint64 // reconnection attempts that failed
	Repubs         uint64 // DUP re-sends of qos 1 publications (mqtt_as's REPUB_COUNT)
	Renewals       uint64 // qos 1 publications re-sent with a new packet id after an outage
	Published      uint64 // publications completed (qos 0 queued for writing, qos 1 acknowledged)
	Received       uint64 // PUBLISH packets received
	Discards       uint64 // messages the event queue displaced
	StrayAcks      uint64 // acknowledgements for unknown or completed packet ids, ignored
	ProtocolErrors uint64 // malformed or unexpected packets from the broker
	SessionPresent bool   // the session-present flag of the last CONNACK
}

type counters struct {
	connects, reconnects, outages, failedAttempts, repubs, renewals atomic.Uint64
	published, received, strayAcks, protocolErrors                  atomic.Uint64
	sessionPresent                                                  atomic.Bool
}
