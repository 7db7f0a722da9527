package ledger

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// Result is the verdict of Check. Times are offsets from the ledger's start.
type Result struct {
	Attempts      int `json:"attempts"`      // invoke events
	Attempted     int `json:"attempted"`     // distinct messages invoked at least once
	Acknowledged  int `json:"acknowledged"`  // messages with at least one OK attempt
	Failed        int `json:"failed"`        // messages whose every attempt failed
	Indeterminate int `json:"indeterminate"` // neither: some attempt info or pending
	Delivered     int `json:"delivered"`     // distinct attempted messages delivered at least once
	Deliveries    int `json:"deliveries"`    // delivery events, duplicates and unexpected included

	// Lost: acknowledged, subscribed to, never delivered. Must be empty.
	Lost []Lost `json:"lost"`
	// Dropped: lost messages accounted for by ExpectDrops, per subscriber.
	Dropped map[string]int `json:"dropped,omitempty"`
	// Unexpected: deliveries of something never attempted. Must be empty.
	Unexpected []Unexpected `json:"unexpected"`
	// Duplicated: (message, subscriber) pairs delivered more than once.
	Duplicated []Duplicate `json:"duplicated"`
	// DuplicateDeliveries counts the deliveries beyond the first, summed.
	DuplicateDeliveries int `json:"duplicate_deliveries"`
	// Reordered: first deliveries that came after a later message of the
	// same (publisher, topic) to the same subscriber (MQTT 3.1.1 §4.6).
	Reordered []Reordered `json:"reordered"`
	// Recovered: attempts that failed or were indeterminate but arrived.
	Recovered []Recovered `json:"recovered"`

	Latency    Quantiles `json:"latency"`     // first invoke → first delivery, per (message, subscriber)
	AckLatency Quantiles `json:"ack_latency"` // invoke → OK

	h *history
}

// Valid reports the Jepsen total-queue verdict: nothing lost, nothing
// unexpected. Duplicates, reordering and recoveries are reported, not failed.
func (r *Result) Valid() bool { return len(r.Lost) == 0 && len(r.Unexpected) == 0 }

// Summary is a one-line account of the result.
func (r *Result) Summary() string {
	var dropped int
	for _, n := range r.Dropped {
		dropped += n
	}
	return fmt.Sprintf("valid=%t attempted=%d acked=%d failed=%d indeterminate=%d delivered=%d lost=%d dropped=%d unexpected=%d duplicates=%d reordered=%d recovered=%d latency{%v}",
		r.Valid(), r.Attempted, r.Acknowledged, r.Failed, r.Indeterminate, r.Delivered,
		len(r.Lost), dropped, len(r.Unexpected), r.DuplicateDeliveries, len(r.Reordered), len(r.Recovered), r.Latency)
}

// Quantiles summarise a latency distribution (nearest-rank).
type Quantiles struct {
	N   int           `json:"n"`
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

func (q Quantiles) String() string {
	return fmt.Sprintf("n=%d p50=%v p90=%v p99=%v max=%v", q.N, q.P50, q.P90, q.P99, q.Max)
}

// Lost is an acknowledged message a subscriber should have received and never
// did.
type Lost struct {
	ID         ID            `json:"id"`
	Subscriber string        `json:"subscriber,omitempty"` // "" when no subscription was recorded
	Invoked    time.Duration `json:"invoked_ns"`
	Acked      time.Duration `json:"acked_ns"`
}

func (x Lost) String() string {
	to := x.Subscriber
	if to == "" {
		to = "any subscriber"
	}
	return fmt.Sprintf("%v never delivered to %s (invoked %s, acked %s)", x.ID, to, rel(x.Invoked), rel(x.Acked))
}

// Unexpected is a delivery that names no attempt.
type Unexpected struct {
	Subscriber string        `json:"subscriber"`
	Topic      string        `json:"topic"`
	ID         ID            `json:"id,omitzero"` // zero if the payload did not decode
	Reason     string        `json:"reason"`
	At         time.Duration `json:"at_ns"`
	Payload    string        `json:"payload"` // at most the first 64 bytes

	ev int32 // the delivery event, for UnexpectedContext
}

func (x Unexpected) String() string {
	return fmt.Sprintf("%s got %q on %q at %s: %s", x.Subscriber, x.Payload, x.Topic, rel(x.At), x.Reason)
}

// Duplicate is a message delivered Count times to one subscriber.
type Duplicate struct {
	ID         ID     `json:"id"`
	Subscriber string `json:"subscriber"`
	Count      int    `json:"count"`
	Flagged    int    `json:"flagged"` // deliveries that carried the DUP flag
}

func (x Duplicate) String() string {
	return fmt.Sprintf("%v delivered %d times to %s (%d with DUP)", x.ID, x.Count, x.Subscriber, x.Flagged)
}

// Reordered is a first delivery that arrived after a higher seq of the same
// (publisher, topic) had already been delivered to the subscriber.
type Reordered struct {
	ID         ID            `json:"id"`
	Subscriber string        `json:"subscriber"`
	After      uint64        `json:"after_seq"`
	At         time.Duration `json:"at_ns"`
}

func (x Reordered) String() string {
	return fmt.Sprintf("%v first delivered to %s at %s, after #%d", x.ID, x.Subscriber, rel(x.At), x.After)
}

// Recovered is a message never acknowledged that was delivered anyway. With
// Outcome Fail the client said it was not sent, which is a false negative.
type Recovered struct {
	ID      ID      `json:"id"`
	Outcome Outcome `json:"outcome"`
	Err     string  `json:"err,omitempty"`
}

func (x Recovered) String() string {
	if x.Err == "" {
		return fmt.Sprintf("%v delivered though %v", x.ID, x.Outcome)
	}
	return fmt.Sprintf("%v delivered though %v (%s)", x.ID, x.Outcome, x.Err)
}

// history is the immutable snapshot a Result explains itself from.
type history struct {
	start   int64
	events  eventLog
	streams []ID
	subs    []string
	strays  []stray
	errs    map[int32]string
}

type msgKey struct {
	stream uint32
	seq    uint64
}

type msgState struct {
	invokeAt    int64
	okAt        int64
	firstInvoke int32
	lastErr     int32 // completion event with an error text, or -1
	invokes     int32
	completions int32
	outcome     Outcome // OK once any attempt is OK, else the latest non-OK
	delivered   bool
}

type subKey struct {
	msg msgKey
	sub uint32
}

type delState struct {
	count   int
	flagged int
	first   int32
}

type orderKey struct {
	sub    uint32
	stream uint32
}

// Check analyses everything recorded so far. It is safe to call while
// recording continues; later events are not included.
func (l *Ledger) Check() Result {
	if l.st != nil {
		return l.streamCheck()
	}
	h, windows, drops := l.snapshot()
	var r Result
	r.h = h

	msgs := make(map[msgKey]int32)
	var states []msgState
	dels := make(map[subKey]int32) // index into delStates
	var delStates []delState
	maxSeq := make(map[orderKey]uint64)
	completed := make([]uint64, (h.events.len()+63)/64)
	var lat, ack []time.Duration

	for i, e := range h.events.all {
		switch e.kind {
		case kInvoke:
			r.Attempts++
			k := msgKey{e.stream, e.seq}
			si, ok := msgs[k]
			if !ok {
				si = int32(len(states))
				msgs[k] = si
				states = append(states, msgState{invokeAt: e.at, firstInvoke: int32(i), lastErr: -1})
			}
			states[si].invokes++
		case kOK, kFail, kInfo:
			if completed[e.ref/64]&(1<<(e.ref%64)) != 0 {
				continue
			}
			completed[e.ref/64] |= 1 << (e.ref % 64)
			st := &states[msgs[msgKey{e.stream, e.seq}]]
			st.completions++
			if _, ok := h.errs[int32(i)]; ok {
				st.lastErr = int32(i)
			}
			switch {
			case e.kind == kOK:
				if st.outcome != OK {
					st.outcome, st.okAt = OK, e.at
				}
				ack = append(ack, time.Duration(e.at-h.events.at(int(e.ref)).at))
			case st.outcome != OK && (e.kind == kInfo || st.outcome != Info):
				st.outcome = outcomeOf(e.kind)
			}
		case kDeliver:
			r.Deliveries++
			k := msgKey{e.stream, e.seq}
			si, ok := msgs[k]
			if !ok {
				id := h.id(e)
				r.Unexpected = append(r.Unexpected, Unexpected{
					Subscriber: h.subs[e.sub], Topic: id.Topic, ID: id,
					Reason: "never published", At: h.rel(e.at), ev: int32(i),
				})
				continue
			}
			st := &states[si]
			st.delivered = true
			dk := subKey{k, e.sub}
			di, seen := dels[dk]
			if !seen {
				di = int32(len(delStates))
				delStates = append(delStates, delState{first: int32(i)})
				dels[dk] = di
				lat = append(lat, time.Duration(e.at-st.invokeAt))
				order := orderKey{e.sub, e.stream}
				if m, has := maxSeq[order]; has && e.seq < m {
					r.Reordered = append(r.Reordered, Reordered{ID: h.id(e), Subscriber: h.subs[e.sub], After: m, At: h.rel(e.at)})
				} else {
					maxSeq[order] = e.seq
				}
			}
			d := &delStates[di]
			d.count++
			if e.flags&flagDup != 0 {
				d.flagged++
			}
		case kStray:
			r.Deliveries++
			s := h.strays[e.ref]
			r.Unexpected = append(r.Unexpected, Unexpected{
				Subscriber: h.subs[e.sub], Topic: s.topic, ID: s.id,
				Reason: s.reason, At: h.rel(e.at), Payload: string(s.prefix), ev: int32(i),
			})
		}
	}

	expect := expectations(h.streams, windows)
	keys := slices.Collect(maps.Keys(msgs))
	// Report in publish order so the first entries are the earliest failures.
	slices.SortFunc(keys, func(a, b msgKey) int {
		return cmp.Compare(states[msgs[a]].firstInvoke, states[msgs[b]].firstInvoke)
	})
	for _, k := range keys {
		st := &states[msgs[k]]
		if st.outcome != OK && st.completions < st.invokes {
			st.outcome = Info // a pending attempt is indeterminate
		}
		r.Attempted++
		if st.delivered {
			r.Delivered++
		}
		id := h.id(h.events.at(int(st.firstInvoke)))
		switch st.outcome {
		case OK:
			r.Acknowledged++
			r.Lost = appendLost(r.Lost, h, k, st, id, expect, dels, len(windows) > 0)
		case Fail:
			r.Failed++
		default:
			r.Indeterminate++
		}
		if st.outcome != OK && st.delivered {
			rec := Recovered{ID: id, Outcome: st.outcome}
			if st.lastErr >= 0 {
				rec.Err = h.errs[st.lastErr]
			}
			r.Recovered = append(r.Recovered, rec)
		}
		dups := len(r.Duplicated)
		for sub := range h.subs {
			di, ok := dels[subKey{k, uint32(sub)}]
			if !ok {
				continue
			}
			if d := delStates[di]; d.count > 1 {
				r.Duplicated = append(r.Duplicated, Duplicate{ID: id, Subscriber: h.subs[sub], Count: d.count, Flagged: d.flagged})
				r.DuplicateDeliveries += d.count - 1
			}
		}
		// By name, not by the order subscribers were first seen, which a
		// history read back does not keep.
		slices.SortFunc(r.Duplicated[dups:], func(a, b Duplicate) int { return cmp.Compare(a.Subscriber, b.Subscriber) })
	}
	r.Lost, r.Dropped = applyDrops(r.Lost, drops)
	r.Latency = quantiles(lat)
	r.AckLatency = quantiles(ack)
	return r
}

func (l *Ledger) snapshot() (*history, []window, map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Appends after this point never write below these lengths, so the
	// three-index slices can be read without the lock.
	h := &history{
		events:  l.events.snapshot(),
		streams: l.streams[:len(l.streams):len(l.streams)],
		subs:    l.subs[:len(l.subs):len(l.subs)],
		strays:  l.strays[:len(l.strays):len(l.strays)],
		errs:    maps.Clone(l.errs),
	}
	if !l.start.IsZero() {
		h.start = l.start.UnixNano()
	}
	return h, slices.Clone(l.windows), maps.Clone(l.drops)
}

// expectations lists, per stream, the subscription windows whose filter
// matches the stream's topic.
func expectations(streams []ID, windows []window) [][]window {
	out := make([][]window, len(streams))
	for s, id := range streams {
		for _, w := range windows {
			if MatchTopic(w.filter, id.Topic) {
				out[s] = append(out[s], w)
			}
		}
	}
	return out
}

func appendLost(lost []Lost, h *history, k msgKey, st *msgState, id ID, expect [][]window, dels map[subKey]int32, subscribed bool) []Lost {
	mk := func(sub string) Lost {
		return Lost{ID: id, Subscriber: sub, Invoked: h.rel(st.invokeAt), Acked: h.rel(st.okAt)}
	}
	if !subscribed {
		if !st.delivered {
			lost = append(lost, mk(""))
		}
		return lost
	}
	var done []uint32 // subscribers already judged for this message; few
	for _, w := range expect[k.stream] {
		if st.invokeAt < w.since || st.invokeAt >= w.until || slices.Contains(done, w.sub) {
			continue
		}
		done = append(done, w.sub)
		if _, ok := dels[subKey{k, w.sub}]; !ok {
			lost = append(lost, mk(h.subs[w.sub]))
		}
	}
	return lost
}

// applyDrops moves up to drops[sub] of each subscriber's lost messages, newest
// first (a full queue drops the newcomers), out of lost.
func applyDrops(lost []Lost, drops map[string]int) ([]Lost, map[string]int) {
	if len(drops) == 0 || len(lost) == 0 {
		return lost, nil
	}
	dropped := make(map[string]int)
	keep := make([]bool, len(lost))
	for i := len(lost) - 1; i >= 0; i-- {
		sub := lost[i].Subscriber
		if dropped[sub] < drops[sub] {
			dropped[sub]++
			continue
		}
		keep[i] = true
	}
	out := lost[:0]
	for i, x := range lost {
		if keep[i] {
			out = append(out, x)
		}
	}
	return out, dropped
}

func outcomeOf(k kind) Outcome {
	switch k {
	case kOK:
		return OK
	case kFail:
		return Fail
	}
	return Info
}

func quantiles(d []time.Duration) Quantiles {
	if len(d) == 0 {
		return Quantiles{}
	}
	slices.Sort(d)
	at := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return d[max(i, 0)]
	}
	return Quantiles{N: len(d), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: d[len(d)-1]}
}

func (h *history) id(e event) ID {
	id := h.streams[e.stream]
	id.Seq = e.seq
	return id
}

func (h *history) rel(at int64) time.Duration { return time.Duration(at - h.start) }

func rel(d time.Duration) string {
	return fmt.Sprintf("%+.6fs", d.Seconds())
}
