package ledger

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// DefaultHorizon is how long an Online check waits, after a message has
// reached every subscriber that was due it, for a first delivery to one that
// was not (a persistent session that catches up, say) before it forgets the
// message's invoke time.
const DefaultHorizon = time.Minute

// Linger is how long an Online check keeps a message that has reached every
// subscriber known to want it, for a first copy to one not yet known to (its
// first message of a stream, say).
const Linger = time.Second

// Online checks a history as it is recorded, line by line, and gives the
// verdict Check gives for the same history, with memory bounded by what is in
// flight and by the number of (publisher, topic) streams and subscribers,
// not by the number of messages:
//
//   - an acknowledged message is kept until it has reached every subscriber
//     whose window covers it, and the others that get its stream (or for
//     the horizon), and for at least the Linger; one never acknowledged, like
//     a lost one, is kept to the end: they are the findings, few in a healthy
//     run;
//   - what it leaves behind is per (stream, subscriber) sets of sequence
//     numbers delivered, held as ranges (one while a stream arrives in order,
//     one more per gap), which still tell a duplicate or a reordering;
//   - the latency quantiles come from sketches within SketchAccuracy of
//     Check's; N and Max are exact.
//
// The verdict is the same as Check's when the subscription windows are
// recorded before the messages they cover are published (always the case
// live, and ReadOnline reads them first from a file) and no subscriber that
// was not due a message gets its first copy after the message was forgotten:
// more than the horizon after it was published, or more than the Linger after
// if it is the subscriber's first copy of the stream. Such a late copy is
// still checked for duplication and order but its latency is not counted
// (see Untimed). Lost, Recovered and
// Unexpected come in Check's order; Duplicated in order of message and
// subscriber.
//
// Feed Add the lines of a history in index order (Ledger.Events order);
// subscribe lines may come first. Add and Result are not safe for
// concurrent use.
type Online struct {
	horizon time.Duration
	linger  time.Duration
	r       Result // the counters and the findings so far
	lat     sketch
	ack     sketch

	streams   map[ID]*onStream // Seq zero
	inflight  map[onKey]*onMsg
	unacked   map[onKey]*onMsg // settled with no attempt OK: kept for the verdict
	pending   map[int]onOp     // invoke line → attempt not yet completed
	dups      map[onSubKey]int // index into r.Duplicated
	windows   []onWindow
	byLine    map[int]int // subscribe line → index into windows
	subs      map[string]bool
	drops     map[string]int
	last      time.Duration // the latest time seen
	lines     int
	every     int // lines between sweeps
	untimed   int
	evictions int
	lastLat   time.Duration // of the line just added: a timed first delivery's latency, else -1
}

type onStream struct {
	id        ID
	attempted seqSet
	delivered seqSet // to anyone
	subs      map[string]*onSub
	matched   []int // windows whose filter matches the topic
	scanned   int   // windows looked at for matched
}

type onSub struct {
	delivered seqSet
	dupFirst  seqSet // first delivery carried the DUP flag
	maxSeq    uint64
	any       bool
}

type onKey struct {
	s   *onStream
	seq uint64
}

type onSubKey struct {
	k   onKey
	sub string
}

type onOp struct {
	k  onKey
	at time.Duration
}

type onMsg struct {
	firstInvoke          int
	invokeAt, okAt       time.Duration
	invokes, completions int
	outcome              Outcome
	lastErr              string
	hasErr               bool
}

type onWindow struct {
	sub          string
	filter       string
	since, until time.Duration // until is math.MaxInt64 while open
}

// sweepEvery is how many lines pass between looks for messages to forget.
const sweepEvery = 4096

// NewOnline returns an empty online check with the given horizon (0 means
// DefaultHorizon).
func NewOnline(horizon time.Duration) *Online {
	if horizon <= 0 {
		horizon = DefaultHorizon
	}
	return &Online{
		horizon:  horizon,
		linger:   min(horizon, Linger),
		every:    sweepEvery,
		lat:      newSketch(SketchAccuracy),
		ack:      newSketch(SketchAccuracy),
		streams:  make(map[ID]*onStream),
		inflight: make(map[onKey]*onMsg),
		unacked:  make(map[onKey]*onMsg),
		pending:  make(map[int]onOp),
		dups:     make(map[onSubKey]int),
		byLine:   make(map[int]int),
		subs:     make(map[string]bool),
		drops:    make(map[string]int),
	}
}

// Add checks one history line. Lines of kinds the ledger does not write are
// ignored. It returns an error wrapping ErrHistory for a line that cannot
// belong to a history.
func (o *Online) Add(ev Event) error {
	o.lines++
	o.lastLat = -1
	o.last = max(o.last, ev.At)
	switch ev.Kind {
	case KindInvoke:
		o.invoke(ev)
	case KindOK, KindFail, KindInfo:
		o.complete(ev)
	case KindDeliver:
		if ev.QoS > 2 {
			return fmt.Errorf("%w: line %d: qos %d", ErrHistory, ev.Index, ev.QoS)
		}
		o.deliver(ev)
	case KindUnexpected:
		o.subs[ev.Subscriber] = true
		o.r.Deliveries++
		o.r.Unexpected = append(o.r.Unexpected, Unexpected{Subscriber: ev.Subscriber, Topic: ev.Topic, ID: ev.ID,
			Reason: ev.Reason, At: ev.At, Payload: string(ev.Payload[:min(len(ev.Payload), strayPrefix)]), ev: int32(ev.Index)})
	case KindSubscribe:
		if _, dup := o.byLine[ev.Index]; dup {
			return fmt.Errorf("%w: two subscribe lines with index %d", ErrHistory, ev.Index)
		}
		o.subs[ev.Subscriber] = true
		o.byLine[ev.Index] = len(o.windows)
		o.windows = append(o.windows, onWindow{sub: ev.Subscriber, filter: ev.Filter, since: ev.At, until: math.MaxInt64})
	case KindUnsubscribe:
		w, ok := o.byLine[ev.Op]
		if !ok {
			return fmt.Errorf("%w: line %d: unsubscribe of line %d, which is no earlier subscribe", ErrHistory, ev.Index, ev.Op)
		}
		if o.windows[w].until != math.MaxInt64 {
			return fmt.Errorf("%w: line %d: subscription %d closed twice", ErrHistory, ev.Index, ev.Op)
		}
		o.windows[w].until = ev.At
	case KindDrops:
		if ev.N < 0 {
			return fmt.Errorf("%w: line %d: %d drops", ErrHistory, ev.Index, ev.N)
		}
		o.drops[ev.Subscriber] += ev.N
	}
	if o.lines%o.every == 0 {
		o.sweep()
	}
	return nil
}

func (o *Online) stream(id ID) *onStream {
	key := ID{Publisher: id.Publisher, Topic: id.Topic}
	s, ok := o.streams[key]
	if !ok {
		s = &onStream{id: key, subs: make(map[string]*onSub)}
		o.streams[key] = s
	}
	return s
}

func (o *Online) invoke(ev Event) {
	o.r.Attempts++
	s := o.stream(ev.ID)
	k := onKey{s, ev.ID.Seq}
	o.pending[ev.Index] = onOp{k, ev.At}
	if m, ok := o.inflight[k]; ok {
		m.invokes++
		return
	}
	if m, ok := o.unacked[k]; ok { // tried again: in flight once more
		delete(o.unacked, k)
		m.invokes++
		o.inflight[k] = m
		return
	}
	if !s.attempted.add(k.seq) {
		return // settled acknowledged: another attempt changes nothing but the ack latency
	}
	o.inflight[k] = &onMsg{firstInvoke: ev.Index, invokeAt: ev.At, invokes: 1}
}

func (o *Online) complete(ev Event) {
	p, ok := o.pending[ev.Op]
	if !ok {
		return // only the first completion of an attempt counts
	}
	delete(o.pending, ev.Op)
	if ev.Kind == KindOK {
		o.ack.add(ev.At - p.at)
	}
	m, ok := o.inflight[p.k]
	if !ok {
		return
	}
	m.completions++
	if ev.Err != "" {
		m.lastErr, m.hasErr = ev.Err, true
	}
	switch k := outcomeNamed(ev.Kind); {
	case k == OK:
		if m.outcome != OK {
			m.outcome, m.okAt = OK, ev.At
		}
	case m.outcome != OK && (k == Info || m.outcome != Info):
		m.outcome = k
	}
	if m.outcome != OK {
		o.settle(p.k, m)
	}
}

func (o *Online) deliver(ev Event) {
	o.r.Deliveries++
	o.subs[ev.Subscriber] = true
	s, ok := o.streams[ID{Publisher: ev.ID.Publisher, Topic: ev.ID.Topic}]
	if !ok || !s.attempted.has(ev.ID.Seq) {
		o.r.Unexpected = append(o.r.Unexpected, Unexpected{Subscriber: ev.Subscriber, Topic: ev.ID.Topic, ID: ev.ID,
			Reason: "never published", At: ev.At, ev: int32(ev.Index)})
		return
	}
	k := onKey{s, ev.ID.Seq}
	if s.delivered.add(k.seq) {
		o.r.Delivered++
	}
	ss, ok := s.subs[ev.Subscriber]
	if !ok {
		ss = &onSub{}
		s.subs[ev.Subscriber] = ss
	}
	m := o.inflight[k]
	if m == nil {
		m = o.unacked[k]
	}
	if ss.delivered.add(k.seq) {
		if m != nil {
			o.lastLat = ev.At - m.invokeAt
			o.lat.add(o.lastLat)
		} else {
			o.untimed++
		}
		if ss.any && k.seq < ss.maxSeq {
			o.r.Reordered = append(o.r.Reordered, Reordered{ID: ev.ID, Subscriber: ev.Subscriber, After: ss.maxSeq, At: ev.At})
		} else {
			ss.maxSeq, ss.any = k.seq, true
		}
		if ev.Dup {
			ss.dupFirst.add(k.seq)
		}
	} else {
		o.r.DuplicateDeliveries++
		dk := onSubKey{k, ev.Subscriber}
		flagged := 0
		if ev.Dup {
			flagged = 1
		}
		if i, ok := o.dups[dk]; ok {
			o.r.Duplicated[i].Count++
			o.r.Duplicated[i].Flagged += flagged
		} else {
			if ss.dupFirst.has(k.seq) {
				flagged++
			}
			o.dups[dk] = len(o.r.Duplicated)
			o.r.Duplicated = append(o.r.Duplicated, Duplicate{ID: ev.ID, Subscriber: ev.Subscriber, Count: 2, Flagged: flagged})
		}
	}
}

// matched returns the windows whose filter matches s's topic.
func (o *Online) matched(s *onStream) []int {
	for ; s.scanned < len(o.windows); s.scanned++ {
		if MatchTopic(o.windows[s.scanned].filter, s.id.Topic) {
			s.matched = append(s.matched, s.scanned)
		}
	}
	return s.matched
}

func (w onWindow) covers(at time.Duration) bool { return at >= w.since && at < w.until }

// settle forgets m if nothing more can be learnt from it but duplicates and
// order. A message never acknowledged is kept; an acknowledged one once every
// subscriber due it has it, it is older than the linger, and either the
// subscribers that get its stream have it too or it is past the horizon.
func (o *Online) settle(k onKey, m *onMsg) {
	if m.outcome != OK {
		if m.completions >= m.invokes {
			delete(o.inflight, k)
			o.unacked[k] = m
		}
		return
	}
	age := o.last - m.invokeAt
	if age <= o.linger {
		return
	}
	got := func(sub string) bool {
		ss, ok := k.s.subs[sub]
		return ok && ss.delivered.has(k.seq)
	}
	if len(o.windows) == 0 {
		if !k.s.delivered.has(k.seq) {
			return
		}
	} else {
		for _, wi := range o.matched(k.s) {
			if w := o.windows[wi]; w.covers(m.invokeAt) && !got(w.sub) {
				return
			}
		}
	}
	if age <= o.horizon { // wait for the subscribers that get this stream
		for _, wi := range o.matched(k.s) {
			if !got(o.windows[wi].sub) {
				return
			}
		}
		for sub := range k.s.subs {
			if !got(sub) {
				return
			}
		}
	}
	delete(o.inflight, k)
	o.r.Attempted++
	o.r.Acknowledged++
	o.evictions++
}

// sweep settles what it can.
func (o *Online) sweep() {
	for k, m := range o.inflight {
		if m.outcome == OK {
			o.settle(k, m)
		}
	}
}

// Untimed is the number of first deliveries that came after their message
// was forgotten (see Online), whose latency is not in the verdict.
func (o *Online) Untimed() int { return o.untimed }

// Held is the number of messages the check holds: in flight, lost so far,
// or never acknowledged. Memory grows with it, not with the messages seen.
func (o *Online) Held() int { return len(o.inflight) + len(o.unacked) }

// Result is the verdict of the lines added so far, as Check would give it
// for that history.
func (o *Online) Result() Result {
	r := o.r
	r.Unexpected = slices.Clone(r.Unexpected)
	r.Reordered = slices.Clone(r.Reordered)
	r.Duplicated = slices.Clone(r.Duplicated)
	slices.SortFunc(r.Duplicated, func(a, b Duplicate) int {
		return cmp.Or(cmp.Compare(a.ID.Publisher, b.ID.Publisher), cmp.Compare(a.ID.Topic, b.ID.Topic),
			cmp.Compare(a.ID.Seq, b.ID.Seq), cmp.Compare(a.Subscriber, b.Subscriber))
	})
	type held struct {
		k onKey
		m *onMsg
	}
	var left []held
	for k, m := range o.inflight {
		left = append(left, held{k, m})
	}
	for k, m := range o.unacked {
		left = append(left, held{k, m})
	}
	slices.SortFunc(left, func(a, b held) int { return cmp.Compare(a.m.firstInvoke, b.m.firstInvoke) })
	for _, x := range left {
		k, m := x.k, x.m
		outcome := m.outcome
		if outcome != OK && m.completions < m.invokes {
			outcome = Info
		}
		r.Attempted++
		id := k.s.id
		id.Seq = k.seq
		delivered := k.s.delivered.has(k.seq)
		switch outcome {
		case OK:
			r.Acknowledged++
			r.Lost = o.appendLost(r.Lost, k, m, id)
		case Fail:
			r.Failed++
		default:
			r.Indeterminate++
		}
		if outcome != OK && delivered {
			rec := Recovered{ID: id, Outcome: outcome}
			if m.hasErr {
				rec.Err = m.lastErr
			}
			r.Recovered = append(r.Recovered, rec)
		}
	}
	r.Lost, r.Dropped = applyDrops(r.Lost, maps.Clone(o.drops))
	r.Latency = o.lat.quantiles()
	r.AckLatency = o.ack.quantiles()
	return r
}

func (o *Online) appendLost(lost []Lost, k onKey, m *onMsg, id ID) []Lost {
	mk := func(sub string) Lost { return Lost{ID: id, Subscriber: sub, Invoked: m.invokeAt, Acked: m.okAt} }
	if len(o.windows) == 0 {
		if !k.s.delivered.has(k.seq) {
			lost = append(lost, mk(""))
		}
		return lost
	}
	var done []string
	for _, wi := range o.matched(k.s) {
		w := o.windows[wi]
		if !w.covers(m.invokeAt) || slices.Contains(done, w.sub) {
			continue
		}
		done = append(done, w.sub)
		if ss, ok := k.s.subs[w.sub]; !ok || !ss.delivered.has(k.seq) {
			lost = append(lost, mk(w.sub))
		}
	}
	return lost
}
