package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// ErrFinished is returned by Finish called twice.
var ErrFinished = errors.New("ledger: streaming ledger already finished")

// StreamOptions configure a streaming ledger (NewStreaming).
type StreamOptions struct {
	// History, if set, receives every history line as it is recorded, JSON lines as WriteJSONL writes
	// them but in record order with the subscription windows and drops where they happened (ReadJSONL,
	// ReadOnline and Merge read it); a completion of an attempt after its first, which changes nothing
	// (only the first counts), is not written. Wrap a file in a gzip.Writer for a compressed history. Writes are
	// made under the ledger's lock: buffer it.
	History io.Writer
	// Horizon is the online check's (see Online); 0 means DefaultHorizon.
	Horizon time.Duration
	// Observe, if set, is called with every history line as it is recorded, under the ledger's lock
	// (keep it short), and for a subscriber's first delivery of a message whose invoke is still held,
	// the latency since that invoke; -1 otherwise.
	Observe func(ev Event, latency time.Duration)
}

// streamState is a streaming ledger's: the online check, the next line's index, the attempts in
// flight and the open windows, nothing per message once it is settled.
type streamState struct {
	o       *Online
	w       io.Writer
	observe func(Event, time.Duration)
	n       int                // the next line's index
	ops     map[int32]opRecord // invoke line → what it invoked, until its first completion
	open    map[[2]string][]int
	buf     []byte
	err     error // the first failure to write the history
	done    bool
}

type opRecord struct {
	stream uint32
	seq    uint64
}

// NewStreaming returns a ledger that checks online as it records (see Online), keeping in memory
// what is in flight and per (publisher, topic) stream and subscriber, not the history: every line goes
// to o.History as it is recorded, if set, and then is forgotten. Check gives the online verdict: its
// counters and findings are Check's for the same history, its latency quantiles within
// SketchAccuracy; a Result has no history to draw context from (Context returns nil: read the
// history written). Events and WriteJSONL have nothing to give; Len counts the lines. Call Finish
// once the run is over, to flush the history and learn whether it was written whole.
func NewStreaming(start time.Time, o StreamOptions) *Ledger {
	l := New(start)
	l.st = &streamState{o: NewOnline(o.Horizon), w: o.History, observe: o.Observe,
		ops: make(map[int32]opRecord), open: make(map[[2]string][]int)}
	return l
}

// Streaming reports whether l was made by NewStreaming.
func (l *Ledger) Streaming() bool { return l.st != nil }

// Finish ends a streaming ledger's recording: what is recorded after it is neither checked nor
// written. It returns the first error writing the history, if any (the verdict still stands: the
// check saw every line). It is ErrFinished the second time, and does nothing on a ledger not made by
// NewStreaming.
func (l *Ledger) Finish() error {
	if l.st == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st.done {
		return ErrFinished
	}
	l.st.done = true
	if l.st.err != nil {
		return fmt.Errorf("ledger: write history: %w", l.st.err)
	}
	return nil
}

// emitLocked checks and writes one line.
func (l *Ledger) emitLocked(ev Event) {
	st := l.st
	ev.Index = st.n
	st.n++
	if st.done {
		return
	}
	if err := st.o.Add(ev); err != nil && st.err == nil {
		st.err = err // cannot happen for lines the ledger makes; kept rather than lost
	}
	if st.w != nil && st.err == nil {
		st.buf = appendEventJSON(st.buf[:0], &ev)
		if _, err := st.w.Write(st.buf); err != nil {
			st.err = err
		}
	}
	if st.observe != nil {
		st.observe(ev, st.o.lastLat)
	}
}

func (l *Ledger) relLocked(at time.Time) time.Duration {
	if l.start.IsZero() {
		l.start = at
	}
	return at.Sub(l.start)
}

func (l *Ledger) streamInvoke(id ID, at time.Time) Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st.n == math.MaxInt32 {
		panic("ledger: more than 2^31 events")
	}
	s := l.streamLocked(id.Publisher, id.Topic)
	op := int32(l.st.n)
	if !l.st.done {
		l.st.ops[op] = opRecord{stream: s, seq: id.Seq}
	}
	l.emitLocked(Event{At: l.relLocked(at), Kind: KindInvoke, ID: l.idOf(s, id.Seq)})
	return Op(op)
}

func (l *Ledger) idOf(s uint32, seq uint64) ID {
	id := l.streams[s]
	id.Seq = seq
	return id
}

func (l *Ledger) streamComplete(op Op, o Outcome, at time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec, ok := l.st.ops[int32(op)]
	if !ok {
		if op < 0 || int(op) >= l.st.n {
			panic(fmt.Sprintf("ledger: Complete with unknown op %d", op))
		}
		return // completed already (only the first completion counts), or recorded after Finish
	}
	delete(l.st.ops, int32(op))
	ev := Event{At: l.relLocked(at), Kind: o.String(), ID: l.idOf(rec.stream, rec.seq), Op: int(op)}
	if err != nil {
		ev.Err = err.Error()
	}
	l.emitLocked(ev)
}

func (l *Ledger) streamDeliver(d Delivery) {
	pub, topic, seq, _, err := decode(d.Payload)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subLocked(d.Subscriber)
	ev := Event{At: l.relLocked(d.At), Kind: KindDeliver, Subscriber: d.Subscriber, QoS: d.QoS & 3, Dup: d.Dup, Retain: d.Retain}
	switch {
	case err != nil:
		ev.Kind, ev.Topic, ev.Reason, ev.Payload = KindUnexpected, d.Topic, err.Error(), clonePrefix(d.Payload)
	case !escapedEqual(topic, d.Topic):
		id := ID{Publisher: unescape(pub), Topic: unescape(topic), Seq: seq}
		ev.Kind, ev.ID, ev.Topic, ev.Payload = KindUnexpected, id, d.Topic, clonePrefix(d.Payload)
		ev.Reason = "delivered on topic " + d.Topic + ", published on " + id.Topic
	default:
		ev.ID = l.idOf(l.streamBytesLocked(pub, topic), seq)
	}
	l.emitLocked(ev)
}

func (l *Ledger) streamSubscribe(subscriber, filter string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subLocked(subscriber)
	k := [2]string{subscriber, filter}
	if !l.st.done {
		l.st.open[k] = append(l.st.open[k], l.st.n)
	}
	l.emitLocked(Event{At: l.relLocked(at), Kind: KindSubscribe, Subscriber: subscriber, Filter: filter})
}

func (l *Ledger) streamUnsubscribe(subscriber, filter string, at time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := [2]string{subscriber, filter}
	open := l.st.open[k]
	delete(l.st.open, k)
	for _, line := range open {
		l.emitLocked(Event{At: l.relLocked(at), Kind: KindUnsubscribe, Subscriber: subscriber, Filter: filter, Op: line})
	}
	return len(open) > 0
}

func (l *Ledger) streamDrops(subscriber string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.emitLocked(Event{At: l.st.o.last, Kind: KindDrops, Subscriber: subscriber, N: n})
}

func (l *Ledger) streamCheck() Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.o.Result()
}

// appendEventJSON appends ev as one JSON line that decodes (decodeLine) to ev, as encoding/json's
// would, without reflection for the lines that make up a history's bulk.
func appendEventJSON(b []byte, ev *Event) []byte {
	switch ev.Kind {
	case KindInvoke, KindOK, KindFail, KindInfo, KindDeliver:
	default:
		line, err := json.Marshal(ev)
		if err != nil { // an Event always encodes; keep the line's index and kind anyway
			line = fmt.Appendf(nil, `{"i":%d,"at_ns":%d,"kind":%q}`, ev.Index, int64(ev.At), ev.Kind)
		}
		return append(append(b, line...), '\n')
	}
	b = append(b, `{"i":`...)
	b = strconv.AppendInt(b, int64(ev.Index), 10)
	b = append(b, `,"at_ns":`...)
	b = strconv.AppendInt(b, int64(ev.At), 10)
	b = append(b, `,"kind":"`...)
	b = append(b, ev.Kind...)
	b = append(b, `","id":{"publisher":`...)
	b = appendJSONString(b, ev.ID.Publisher)
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, ev.ID.Topic)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, ev.ID.Seq, 10)
	b = append(b, '}')
	if ev.Op != 0 {
		b = append(b, `,"op":`...)
		b = strconv.AppendInt(b, int64(ev.Op), 10)
	}
	if ev.Subscriber != "" {
		b = append(b, `,"subscriber":`...)
		b = appendJSONString(b, ev.Subscriber)
	}
	if ev.QoS != 0 {
		b = append(b, `,"qos":`...)
		b = strconv.AppendUint(b, uint64(ev.QoS), 10)
	}
	if ev.Dup {
		b = append(b, `,"dup":true`...)
	}
	if ev.Retain {
		b = append(b, `,"retain":true`...)
	}
	if ev.Err != "" {
		b = append(b, `,"err":`...)
		b = appendJSONString(b, ev.Err)
	}
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string: as it is when nothing in it needs escaping, else as
// encoding/json writes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
