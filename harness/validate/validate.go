// Package validate is the harness's one definition of what a client's outages say when they are measured
// against the faults of a run, the way etcd's tests/robustness/validate judges every robustness run with
// one package. The soak, the scenarios, the client comparison (bench) and the reports all measure here:
//
//   - an outage: from the first down (or outage) event after the client was up to its next up event;
//   - attribution: an outage belongs to the latest fault that started at or before it, if it began no
//     later than a slack after that fault was healed (a blackhole is only noticed through keepalive;
//     healing it closes the connections it held);
//   - detection time: from a fault's start to the start of the first outage at or after it;
//   - reconnect time: from the later of the heal and an outage's start to the client being up again (an
//     outage that ended while its fault was still in force counts its own length);
//   - recovery time: from the heal to the first publication acknowledged at or after it.
//
// Reconnect and recovery are different figures: a client may be connected again long before its first
// publication is acknowledged (a backlog of re-sends, a lost PUBACK), and a client that never lost its
// connection has a recovery time but no reconnect time.
//
// Times are offsets on the run's clock, time.Duration since its start, as the ledger's and the timeline's
// histories record them.
package validate

import (
	"cmp"
	"iter"
	"slices"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/timeline"
)

// Outage is an interval during which a client was down.
type Outage struct {
	Source     string
	Start, End time.Duration
	Open       bool // the client never came back up; End is the timeline's last entry
}

// Outages returns the outages of one source in a timeline: from the first down (or outage) event after
// it was up to the next up event. Entries need not be sorted.
func Outages(entries []timeline.Entry, source string) []Outage {
	entries = timeline.Sorted(entries)
	var last time.Duration
	for _, e := range entries {
		last = max(last, e.At)
	}
	var out []Outage
	down := false
	var since time.Duration
	for _, e := range entries {
		if e.Source != source {
			continue
		}
		switch e.Kind {
		case timeline.Down, timeline.Outage:
			if !down {
				down, since = true, e.At
			}
		case timeline.Up:
			if down {
				out = append(out, Outage{Source: source, Start: since, End: e.At})
				down = false
			}
		}
	}
	if down {
		out = append(out, Outage{Source: source, Start: since, End: last, Open: true})
	}
	return out
}

// Fault is a fault's window on the run's clock: injected at Start, healed at End (End == Start for a
// one-shot fault such as a reset).
type Fault struct {
	Start, End time.Duration
}

// FaultOf is a timeline window as a Fault.
func FaultOf(w timeline.Window) Fault { return Fault{Start: w.Start, End: w.End} }

// Detection is the detection time of fault f: from its start to the start of the first outage that began
// at or after it. ok is false when no outage began after the fault started.
func Detection(f Fault, outs []Outage) (d time.Duration, ok bool) {
	for _, o := range outs {
		if o.Start >= f.Start {
			return o.Start - f.Start, true
		}
	}
	return 0, false
}

// Reconnect is the reconnect time of outage o caused by fault f: from the later of the heal and the
// outage's start to the client being up again; if it was up again while the fault was still in force,
// the outage's own length. ok is false for an open outage (never up again).
func Reconnect(f Fault, o Outage) (d time.Duration, ok bool) {
	if o.Open {
		return 0, false
	}
	from := max(f.End, o.Start)
	if o.End < from {
		from = o.Start
	}
	return o.End - from, true
}

// Recovery is the recovery time after a heal: from healed to the first acknowledgement at or after it.
// acks need not be sorted. ok is false when nothing was acknowledged after the heal.
func Recovery(healed time.Duration, acks []time.Duration) (d time.Duration, ok bool) {
	first, found := time.Duration(0), false
	for _, a := range acks {
		if a >= healed && (!found || a < first) {
			first, found = a, true
		}
	}
	if !found {
		return 0, false
	}
	return first - healed, true
}

// Acks returns when the publications of the named publishers were acknowledged (their "ok" completions
// in a ledger history), in time order.
func Acks(events iter.Seq[ledger.Event], publishers ...string) []time.Duration {
	var out []time.Duration
	for e := range events {
		if e.Kind == ledger.KindOK && slices.Contains(publishers, e.ID.Publisher) {
			out = append(out, e.At)
		}
	}
	slices.Sort(out)
	return out
}

// Began counts the outages that began at or after from.
func Began(outs []Outage, from time.Duration) int {
	n := 0
	for _, o := range outs {
		if o.Start >= from {
			n++
		}
	}
	return n
}

// DownAt reports whether at falls inside one of the outages: at or after its start and before its end
// (an open outage has no end).
func DownAt(outs []Outage, at time.Duration) bool {
	for _, o := range outs {
		if at >= o.Start && (o.Open || at < o.End) {
			return true
		}
	}
	return false
}

// Attributed is one fault with the outages attributed to it, in order.
type Attributed struct {
	Window  timeline.Window
	Outages []Outage
}

// Attribute assigns each outage to the latest fault that started at or before it, if the outage began no
// later than slack after that fault was healed, and returns the faults in order of their start, each with
// its outages. Outages no fault explains are left out.
func Attribute(outs []Outage, windows []timeline.Window, slack time.Duration) []Attributed {
	ws := slices.Clone(windows)
	slices.SortStableFunc(ws, func(a, b timeline.Window) int { return cmp.Compare(a.Start, b.Start) })
	out := make([]Attributed, len(ws))
	for i, w := range ws {
		out[i].Window = w
	}
	for _, o := range outs {
		i := -1
		for j, w := range ws {
			if w.Start <= o.Start {
				i = j
			}
		}
		if i < 0 || o.Start > ws[i].End+slack {
			continue
		}
		out[i].Outages = append(out[i].Outages, o)
	}
	return out
}

// Figures are one client's outages measured against a run's faults.
type Figures struct {
	Outages   int             // every outage, explained by a fault or not
	Detection []time.Duration // per fault with attributed outages: Detection of the first one
	Reconnect []time.Duration // per fault whose last attributed outage ended: its Reconnect
}

// Measure measures the outages of source in a timeline against the fault windows: per fault with
// attributed outages (see Attribute), the detection time of the first one and the reconnect time of the
// last one (open outages have none). Outages no fault explains still count in Figures.Outages.
func Measure(entries []timeline.Entry, windows []timeline.Window, source string, slack time.Duration) Figures {
	outs := Outages(entries, source)
	fig := Figures{Outages: len(outs)}
	for _, a := range Attribute(outs, windows, slack) {
		if len(a.Outages) == 0 {
			continue
		}
		f := FaultOf(a.Window)
		if d, ok := Detection(f, a.Outages); ok {
			fig.Detection = append(fig.Detection, d)
		}
		if d, ok := Reconnect(f, a.Outages[len(a.Outages)-1]); ok {
			fig.Reconnect = append(fig.Reconnect, d)
		}
	}
	return fig
}
