package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Outcome is what a publisher learned about one publish attempt.
type Outcome uint8

const (
	// Pending: no outcome recorded (yet). Check treats it like Info.
	Pending Outcome = iota
	// OK: the client reported the message acknowledged.
	OK
	// Fail: the client guarantees the message was not and will not be sent.
	Fail
	// Info: indeterminate; the message may or may not reach the broker.
	Info
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Fail:
		return "fail"
	case Info:
		return "info"
	}
	return "pending"
}

// MarshalText makes Outcome readable in JSON.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// OutcomeOf classifies a publish error: nil is OK, an error matching one of
// definite (errors.Is) is Fail, anything else is Info. Publishers pass the
// sentinels their client uses for "certainly not sent".
func OutcomeOf(err error, definite ...error) Outcome {
	if err == nil {
		return OK
	}
	for _, d := range definite {
		if errors.Is(err, d) {
			return Fail
		}
	}
	return Info
}

// Op identifies one recorded publish attempt; pass it to Complete.
type Op int32

// Delivery is one message as a subscriber received it.
type Delivery struct {
	Subscriber string
	Topic      string
	Payload    []byte // read during Deliver only; not retained
	QoS        byte
	Dup        bool // the DUP flag, if the client exposes it
	Retain     bool
	At         time.Time
}

type kind uint8

const (
	kInvoke kind = iota + 1
	kOK
	kFail
	kInfo
	kDeliver
	kStray // a delivery that does not name an attempt: foreign, corrupt or misrouted
)

const (
	flagDup uint8 = 1 << iota
	flagRetain
	flagQoSShift = 2 // QoS in bits 2..3
)

// event is the compact record of one history line (32 bytes), so a million
// events cost 32 MB and no per-event allocation.
type event struct {
	at     int64  // unix ns
	seq    uint64 // message seq
	ref    int32  // completion: index of its invoke event; stray: index into strays
	stream uint32 // index into streams (publisher, topic)
	sub    uint32 // index into subs (deliveries)
	kind   kind
	flags  uint8
}

type window struct {
	sub          uint32
	filter       string
	since, until int64 // unix ns; until == math.MaxInt64 while open
}

type stray struct {
	topic   string
	prefix  []byte // first bytes of the payload, for the report
	reason  string
	id      ID // set when the payload decoded (misrouted)
	decoded bool
}

// strayPrefix bounds how much of an unexpected payload is kept.
const strayPrefix = 64

// Ledger is an append-only, thread-safe history of publish attempts, their
// outcomes and deliveries. The zero value is not usable; call New.
type Ledger struct {
	mu      sync.Mutex
	start   time.Time
	events  eventLog
	streams []ID // Seq unused
	byPub   map[string]map[string]uint32
	subs    []string
	subIdx  map[string]uint32
	windows []window
	errs    map[int32]string // completion event index → error text
	strays  []stray
	drops   map[string]int

	st *streamState // set by NewStreaming: lines are checked online and written out, not kept
}

// New returns an empty ledger. Times in reports and history lines are
// rendered relative to start (use the run's start so they line up with the
// timeline); a zero start means "the first recorded event".
func New(start time.Time) *Ledger {
	return &Ledger{
		start:  start,
		byPub:  make(map[string]map[string]uint32),
		subIdx: make(map[string]uint32),
		errs:   make(map[int32]string),
		drops:  make(map[string]int),
	}
}

// Invoke records an attempt to publish id at time at (normally the send time
// encoded in its payload) and returns the Op to complete. Record the invoke
// before handing the message to the client: a delivery recorded before any
// invoke of its ID counts as unexpected.
func (l *Ledger) Invoke(id ID, at time.Time) Op {
	if l.st != nil {
		return l.streamInvoke(id, at)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.streamLocked(id.Publisher, id.Topic)
	return Op(l.appendLocked(event{at: at.UnixNano(), seq: id.Seq, stream: s, kind: kInvoke}))
}

// Complete records the outcome of op at time at. err may be nil; its text is
// kept for the report. Only the first completion of an op counts. It panics
// if op was not returned by Invoke on this ledger.
func (l *Ledger) Complete(op Op, o Outcome, at time.Time, err error) {
	var k kind
	switch o {
	case OK:
		k = kOK
	case Fail:
		k = kFail
	case Info:
		k = kInfo
	default:
		panic(fmt.Sprintf("ledger: Complete with outcome %v", o))
	}
	if l.st != nil {
		l.streamComplete(op, o, at, err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if op < 0 || int(op) >= l.events.len() || l.events.at(int(op)).kind != kInvoke {
		panic(fmt.Sprintf("ledger: Complete with unknown op %d", op))
	}
	inv := l.events.at(int(op))
	i := l.appendLocked(event{at: at.UnixNano(), seq: inv.seq, stream: inv.stream, ref: int32(op), kind: k})
	if err != nil {
		l.errs[i] = err.Error()
	}
}

// Deliver records that a subscriber received a message. Payloads that are not
// ledger payloads, fail their checksum, or arrive on a topic other than the
// one they name are recorded as unexpected.
func (l *Ledger) Deliver(d Delivery) {
	if l.st != nil {
		l.streamDeliver(d)
		return
	}
	pub, topic, seq, _, err := decode(d.Payload)
	flags := (d.QoS & 3) << flagQoSShift
	if d.Dup {
		flags |= flagDup
	}
	if d.Retain {
		flags |= flagRetain
	}
	misrouted := err == nil && !escapedEqual(topic, d.Topic)
	l.mu.Lock()
	defer l.mu.Unlock()
	sub := l.subLocked(d.Subscriber)
	if err != nil || misrouted {
		st := stray{topic: d.Topic, prefix: clonePrefix(d.Payload)}
		if err != nil {
			st.reason = err.Error()
		} else {
			st.id = ID{Publisher: unescape(pub), Topic: unescape(topic), Seq: seq}
			st.decoded = true
			st.reason = "delivered on topic " + d.Topic + ", published on " + st.id.Topic
		}
		l.strays = append(l.strays, st)
		l.appendLocked(event{at: d.At.UnixNano(), ref: int32(len(l.strays) - 1), sub: sub, kind: kStray, flags: flags})
		return
	}
	s := l.streamBytesLocked(pub, topic)
	l.appendLocked(event{at: d.At.UnixNano(), seq: seq, stream: s, sub: sub, kind: kDeliver, flags: flags})
}

// Subscribe records that from time at, subscriber should receive every
// message published (invoked) on a topic matching filter, until a matching
// Unsubscribe. Without any subscription recorded, Check expects every
// acknowledged message to reach at least one subscriber.
func (l *Ledger) Subscribe(subscriber, filter string, at time.Time) {
	if l.st != nil {
		l.streamSubscribe(subscriber, filter, at)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.windows = append(l.windows, window{sub: l.subLocked(subscriber), filter: filter, since: at.UnixNano(), until: math.MaxInt64})
}

// Unsubscribe ends subscriber's open subscriptions to filter at time at, for
// example when its broker lost the session. It reports whether any was open.
func (l *Ledger) Unsubscribe(subscriber, filter string, at time.Time) bool {
	if l.st != nil {
		return l.streamUnsubscribe(subscriber, filter, at)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	sub, ok := l.subIdx[subscriber]
	if !ok {
		return false
	}
	closed := false
	for i := range l.windows {
		w := &l.windows[i]
		if w.sub == sub && w.filter == filter && w.until == math.MaxInt64 {
			w.until = at.UnixNano()
			closed = true
		}
	}
	return closed
}

// ExpectDrops declares that the broker may drop up to n of the messages
// subscriber should have received (see QueueLimits.OfflineDrops). Check moves
// that many of the subscriber's lost messages, newest first, from Lost to
// Dropped. Calls add up.
func (l *Ledger) ExpectDrops(subscriber string, n int) {
	if l.st != nil {
		l.streamDrops(subscriber, n)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drops[subscriber] += n
}

// Len returns the number of recorded events.
func (l *Ledger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st != nil {
		return l.st.n
	}
	return l.events.len()
}

func (l *Ledger) appendLocked(e event) int32 {
	if l.start.IsZero() {
		l.start = time.Unix(0, e.at)
	}
	return l.events.append(e)
}

func (l *Ledger) streamLocked(pub, topic string) uint32 {
	if s, ok := l.byPub[pub][topic]; ok {
		return s
	}
	return l.newStreamLocked(pub, topic)
}

// streamBytesLocked looks up escaped names without allocating; the map index
// with string(b) does not copy.
func (l *Ledger) streamBytesLocked(pub, topic []byte) uint32 {
	if bytes.IndexByte(pub, '%') < 0 && bytes.IndexByte(topic, '%') < 0 {
		if s, ok := l.byPub[string(pub)][string(topic)]; ok {
			return s
		}
	}
	return l.streamLocked(unescape(pub), unescape(topic))
}

func (l *Ledger) newStreamLocked(pub, topic string) uint32 {
	m, ok := l.byPub[pub]
	if !ok {
		m = make(map[string]uint32)
		l.byPub[pub] = m
	}
	s := uint32(len(l.streams))
	m[topic] = s
	l.streams = append(l.streams, ID{Publisher: pub, Topic: topic})
	return s
}

func (l *Ledger) subLocked(name string) uint32 {
	if i, ok := l.subIdx[name]; ok {
		return i
	}
	i := uint32(len(l.subs))
	l.subIdx[name] = i
	l.subs = append(l.subs, name)
	return i
}

func clonePrefix(b []byte) []byte {
	return append([]byte(nil), b[:min(len(b), strayPrefix)]...)
}

// escapedEqual reports whether escaped b unescapes to s, without allocating in
// the common case of nothing escaped.
func escapedEqual(b []byte, s string) bool {
	if bytes.IndexByte(b, '%') < 0 {
		return string(b) == s
	}
	return unescape(b) == s
}
