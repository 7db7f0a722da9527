package ledger

import (
	"io"
	"strconv"
)

// HistoryContext reads a history once (as WriteJSONL, a streaming ledger or a report wrote it, plain
// or compressed) and renders the lines about each lost message and each unexpected delivery of r with
// up to radius lines either side, as Result.Context and Result.UnexpectedContext render them from a
// ledger that kept its history: for the verdict of a streaming ledger or an Online check, which keep
// none. The unexpected deliveries are found by their line; give r the verdict of this history.
func HistoryContext(h io.Reader, r *Result, radius int) (lost, unexpected [][]string, err error) {
	var targets []*ctxTarget
	for _, x := range r.Lost {
		id := x.ID
		targets = append(targets, &ctxTarget{match: func(ev Event) bool { return ev.ID == id }, last: -1})
	}
	for _, u := range r.Unexpected {
		line := int(u.ev)
		targets = append(targets, &ctxTarget{match: func(ev Event) bool { return ev.Index == line }, last: -1, one: true})
	}
	ring := make([]Event, max(radius, 1))
	pos := 0
	if err := eachLine(h, func(ev Event) error {
		switch ev.Kind {
		case KindSubscribe, KindUnsubscribe, KindDrops:
			return nil // not events: Context shows none
		}
		for _, t := range targets {
			t.add(ev, pos, ring, radius)
		}
		ring[pos%len(ring)] = ev
		pos++
		return nil
	}); err != nil {
		return nil, nil, err
	}
	out := make([][]string, len(targets))
	for i, t := range targets {
		if len(t.lines) > 0 && !t.full && t.last < pos-1 {
			t.lines = append(t.lines, "  ... ("+strconv.Itoa(pos-1-t.last)+" more events)")
		}
		out[i] = t.lines
	}
	return out[:len(r.Lost)], out[len(r.Lost):], nil
}

// ctxTarget is the context being gathered for one message or delivery.
type ctxTarget struct {
	match func(Event) bool
	one   bool // one line at most is about it
	lines []string
	last  int // position of the last line rendered
	after int // lines still to render after a marked one
	marks int
	full  bool
}

func (t *ctxTarget) add(ev Event, pos int, ring []Event, radius int) {
	if t.full {
		return
	}
	switch {
	case (!t.one || t.marks == 0) && t.marks < maxMarked && t.match(ev):
		start := max(t.last+1, pos-radius)
		if start > t.last+1 {
			t.lines = append(t.lines, "  ...")
		}
		for p := start; p < pos; p++ {
			t.lines = append(t.lines, "  "+ring[p%len(ring)].String())
		}
		t.lines = append(t.lines, "> "+ev.String())
		t.last, t.after = pos, radius
		t.marks++
	case t.after > 0:
		t.lines = append(t.lines, "  "+ev.String())
		t.last = pos
		t.after--
	default:
		return
	}
	if len(t.lines) >= maxContextLines {
		t.lines = append(t.lines[:maxContextLines], "  ... (truncated)")
		t.full = true
	}
}
