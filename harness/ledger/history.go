package ledger

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kinds of history line, as Event.Kind names them.
const (
	KindInvoke      = "invoke"
	KindOK          = "ok"
	KindFail        = "fail"
	KindInfo        = "info"
	KindDeliver     = "deliver"
	KindUnexpected  = "unexpected"
	KindSubscribe   = "subscribe"   // a subscription window opens (Ledger.Subscribe)
	KindUnsubscribe = "unsubscribe" // it closes; Op is the index of its subscribe line
	KindDrops       = "drops"       // Ledger.ExpectDrops, summed per subscriber
)

// Event is one history line in exported form, for reports and artifacts.
// The lines Events yields are everything Check reads, so a history written
// by WriteJSONL and read back by ReadJSONL checks to the same Result.
type Event struct {
	Index      int           `json:"i"`
	At         time.Duration `json:"at_ns"` // since the ledger's start
	Kind       string        `json:"kind"`  // one of the Kind constants
	ID         ID            `json:"id,omitzero"`
	Op         int           `json:"op,omitempty"` // completions: index of the invoke; unsubscribe: of the subscribe
	Subscriber string        `json:"subscriber,omitempty"`
	QoS        byte          `json:"qos,omitempty"`
	Dup        bool          `json:"dup,omitempty"`
	Retain     bool          `json:"retain,omitempty"`
	Err        string        `json:"err,omitempty"`
	Topic      string        `json:"topic,omitempty"`   // unexpected deliveries
	Reason     string        `json:"reason,omitempty"`  // unexpected deliveries
	Payload    []byte        `json:"payload,omitempty"` // unexpected deliveries: the first 64 bytes
	Filter     string        `json:"filter,omitempty"`  // subscribe, unsubscribe
	N          int           `json:"n,omitempty"`       // drops
}

// String renders the event as one compact history line.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-10s", rel(e.At), e.Kind)
	switch e.Kind {
	case KindSubscribe, KindUnsubscribe:
		fmt.Fprintf(&b, " %s to %q", e.Subscriber, e.Filter)
	case KindDrops:
		fmt.Fprintf(&b, " %s may miss %d", e.Subscriber, e.N)
	case KindDeliver, KindUnexpected:
		if e.ID != (ID{}) {
			fmt.Fprintf(&b, " %v", e.ID)
		}
		fmt.Fprintf(&b, " -> %s qos%d", e.Subscriber, e.QoS)
		if e.Dup {
			b.WriteString(" dup")
		}
		if e.Retain {
			b.WriteString(" retain")
		}
		if e.Kind == KindUnexpected {
			fmt.Fprintf(&b, " on %q: %s", e.Topic, e.Reason)
		}
	default:
		fmt.Fprintf(&b, " %v", e.ID)
		if e.Kind != KindInvoke {
			fmt.Fprintf(&b, " (op %d)", e.Op)
		}
		if e.Err != "" {
			fmt.Fprintf(&b, ": %s", e.Err)
		}
	}
	return b.String()
}

func (h *history) event(i int) Event {
	e := h.events.at(i)
	out := Event{Index: i, At: h.rel(e.at)}
	switch e.kind {
	case kInvoke:
		out.Kind, out.ID = KindInvoke, h.id(e)
	case kOK, kFail, kInfo:
		out.Kind, out.ID, out.Op, out.Err = outcomeOf(e.kind).String(), h.id(e), int(e.ref), h.errs[int32(i)]
	case kDeliver, kStray:
		out.Kind, out.Subscriber = KindDeliver, h.subs[e.sub]
		out.QoS, out.Dup, out.Retain = e.flags>>flagQoSShift&3, e.flags&flagDup != 0, e.flags&flagRetain != 0
		if e.kind == kDeliver {
			out.ID = h.id(e)
			break
		}
		s := h.strays[e.ref]
		out.Kind, out.ID, out.Topic, out.Reason = KindUnexpected, s.id, s.topic, s.reason
		out.Payload = s.prefix
	}
	return out
}

// Events yields the history recorded so far: the events in record order
// (Index 0, 1, ...), then a subscribe line for each subscription window
// (at its start) followed by its unsubscribe line if it was closed, then one
// drops line per subscriber given ExpectDrops (at the latest event time).
// Indices go on counting through the windows and drops.
func (l *Ledger) Events() iter.Seq[Event] {
	h, windows, drops := l.snapshot()
	return func(yield func(Event) bool) {
		last := int64(math.MinInt64)
		for i := range h.events.len() {
			last = max(last, h.events.at(i).at)
			if !yield(h.event(i)) {
				return
			}
		}
		next := h.events.len()
		for _, w := range windows {
			sub := Event{Index: next, At: h.rel(w.since), Kind: KindSubscribe, Subscriber: h.subs[w.sub], Filter: w.filter}
			next++
			if !yield(sub) {
				return
			}
			if w.until == math.MaxInt64 {
				continue
			}
			unsub := sub
			unsub.Index, unsub.At, unsub.Kind, unsub.Op = next, h.rel(w.until), KindUnsubscribe, sub.Index
			next++
			if !yield(unsub) {
				return
			}
		}
		if last == math.MinInt64 {
			last = h.start
		}
		for _, sub := range slices.Sorted(maps.Keys(drops)) {
			if !yield(Event{Index: next, At: h.rel(last), Kind: KindDrops, Subscriber: sub, N: drops[sub]}) {
				return
			}
			next++
		}
	}
}

// WriteJSONL writes the history recorded so far as JSON lines, one Event per
// line, in the order of Events. ReadJSONL reads it back.
func (l *Ledger) WriteJSONL(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for ev := range l.Events() {
		if err := enc.Encode(ev); err != nil {
			return fmt.Errorf("ledger: write history: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("ledger: write history: %w", err)
	}
	return nil
}

// WriteText writes the history recorded so far as text lines (Event.String).
func (l *Ledger) WriteText(w io.Writer) error {
	h, _, _ := l.snapshot()
	bw := bufio.NewWriter(w)
	for i := range h.events.len() {
		bw.WriteString(h.event(i).String())
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("ledger: write history: %w", err)
	}
	return nil
}

// Bounds on counter-example context, so a failure message stays readable.
const (
	maxMarked       = 12
	maxContextLines = 40
)

// Context renders the history lines about id, with up to radius events either
// side of each, in record order. Lines about id start with '>', gaps are shown
// as "...". The output is capped at 40 lines.
func (r *Result) Context(id ID, radius int) []string {
	if r.h == nil {
		return nil
	}
	h := r.h
	stream := -1
	for s, x := range h.streams {
		if x.Publisher == id.Publisher && x.Topic == id.Topic {
			stream = s
			break
		}
	}
	var marks []int
	for i, e := range h.events.all {
		about := e.kind != kStray && stream >= 0 && int(e.stream) == stream && e.seq == id.Seq
		if e.kind == kStray {
			s := h.strays[e.ref]
			about = s.decoded && s.id == id
		}
		if about {
			marks = append(marks, i)
			if len(marks) == maxMarked {
				break
			}
		}
	}
	return h.context(marks, radius)
}

// UnexpectedContext renders the history around an unexpected delivery (which
// may name no ID).
func (r *Result) UnexpectedContext(u Unexpected, radius int) []string {
	if r.h == nil {
		return nil
	}
	return r.h.context([]int{int(u.ev)}, radius)
}

func (h *history) context(marks []int, radius int) []string {
	var lines []string
	marked := make(map[int]bool, len(marks))
	for _, m := range marks {
		marked[m] = true
	}
	next := 0 // first event not yet rendered
	for _, m := range marks {
		lo, hi := max(m-radius, next), min(m+radius, h.events.len()-1)
		if lo > next {
			lines = append(lines, "  ...")
		}
		for i := lo; i <= hi; i++ {
			prefix := "  "
			if marked[i] {
				prefix = "> "
			}
			lines = append(lines, prefix+h.event(i).String())
		}
		next = max(next, hi+1)
		if len(lines) >= maxContextLines {
			return append(lines[:maxContextLines], "  ... (truncated)")
		}
	}
	if len(marks) > 0 && next < h.events.len() {
		lines = append(lines, "  ... ("+strconv.Itoa(h.events.len()-next)+" more events)")
	}
	return lines
}
