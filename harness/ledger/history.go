package ledger

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Event is one history line in exported form, for reports and artifacts.
type Event struct {
	Index      int           `json:"i"`
	At         time.Duration `json:"at_ns"` // since the ledger's start
	Kind       string        `json:"kind"`  // invoke, ok, fail, info, deliver, unexpected
	ID         ID            `json:"id,omitzero"`
	Op         int           `json:"op,omitempty"` // completions: index of the invoke
	Subscriber string        `json:"subscriber,omitempty"`
	QoS        byte          `json:"qos,omitempty"`
	Dup        bool          `json:"dup,omitempty"`
	Retain     bool          `json:"retain,omitempty"`
	Err        string        `json:"err,omitempty"`
	Topic      string        `json:"topic,omitempty"`  // unexpected deliveries
	Reason     string        `json:"reason,omitempty"` // unexpected deliveries
}

// String renders the event as one compact history line.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-10s", rel(e.At), e.Kind)
	switch e.Kind {
	case "deliver", "unexpected":
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
		if e.Kind == "unexpected" {
			fmt.Fprintf(&b, " on %q: %s", e.Topic, e.Reason)
		}
	default:
		fmt.Fprintf(&b, " %v", e.ID)
		if e.Kind != "invoke" {
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
		out.Kind, out.ID = "invoke", h.id(e)
	case kOK, kFail, kInfo:
		out.Kind, out.ID, out.Op, out.Err = outcomeOf(e.kind).String(), h.id(e), int(e.ref), h.errs[int32(i)]
	case kDeliver, kStray:
		out.Kind, out.Subscriber = "deliver", h.subs[e.sub]
		out.QoS, out.Dup, out.Retain = e.flags>>flagQoSShift&3, e.flags&flagDup != 0, e.flags&flagRetain != 0
		if e.kind == kDeliver {
			out.ID = h.id(e)
			break
		}
		s := h.strays[e.ref]
		out.Kind, out.ID, out.Topic, out.Reason = "unexpected", s.id, s.topic, s.reason
	}
	return out
}

// WriteJSONL writes the history recorded so far as JSON lines, one Event per
// line, in record order.
func (l *Ledger) WriteJSONL(w io.Writer) error {
	h, _, _ := l.snapshot()
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i := range h.events.len() {
		if err := enc.Encode(h.event(i)); err != nil {
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
