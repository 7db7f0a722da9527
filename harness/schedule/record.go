package schedule

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/timeline"
	"github.com/mqttas/mqttas-go/harness/validate"
)

// RecordOptions tune Record. Zero values take the defaults.
type RecordOptions struct {
	Name        string
	Description string
	// Sources are the clients whose outages count; nil means every source with up or down events except
	// "link", "broker" and "observer" (the observer is connected straight to the broker).
	Sources []string
	// Fault replays each outage; default faults.Down (connections closed and refused for the outage's
	// length). faults.Blackhole replays them as silent links instead. It must be a lasting link fault.
	Fault faults.Fault
	// Merge joins outages (of any of the sources) less than Merge apart; default 500 ms. Clients behind
	// one link see one outage at slightly different moments.
	Merge time.Duration
	// MinDuration is the shortest outage written; shorter ones are lengthened to it. Default 100 ms.
	MinDuration time.Duration
	// Round rounds every time in the trace; default 10 ms.
	Round time.Duration
}

// Record turns the outages clients saw into a replayable schedule: a field log becomes a trace. The
// outages of every source are merged into one sequence (the faults of a trace act on the one link every
// client shares), and each becomes one fault (o.Fault, default down) lasting as long as the outage.
func Record(entries []timeline.Entry, o RecordOptions) (*Schedule, error) {
	if o.Fault == nil {
		o.Fault = faults.Down{}
	}
	f := o.Fault
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("schedule: record: %w", err)
	}
	if f.OneShot() {
		return nil, fmt.Errorf("schedule: record: %s has no duration, so it cannot replay an outage", f.Name())
	}
	if faults.LaneOf(f) != faults.LaneLink {
		return nil, fmt.Errorf("schedule: record: replay outages with a link fault (down, blackhole), not %s", f.Name())
	}
	if o.Merge == 0 {
		o.Merge = 500 * time.Millisecond
	}
	if o.MinDuration == 0 {
		o.MinDuration = 100 * time.Millisecond
	}
	if o.Round == 0 {
		o.Round = 10 * time.Millisecond
	}
	sources := o.Sources
	if sources == nil {
		seen := map[string]bool{}
		for _, e := range entries {
			switch e.Source {
			case "link", "broker", "observer":
				continue
			}
			if (e.Kind == timeline.Up || e.Kind == timeline.Down || e.Kind == timeline.Outage) && !seen[e.Source] {
				seen[e.Source] = true
				sources = append(sources, e.Source)
			}
		}
		slices.Sort(sources)
	}
	var all []validate.Outage
	for _, src := range sources {
		all = append(all, validate.Outages(entries, src)...)
	}
	slices.SortFunc(all, func(a, b validate.Outage) int { return cmp.Compare(a.Start, b.Start) })
	// Merge into a union of intervals.
	var merged []validate.Outage
	for _, x := range all {
		if n := len(merged); n > 0 && x.Start <= merged[n-1].End+o.Merge {
			merged[n-1].End = max(merged[n-1].End, x.End)
			continue
		}
		merged = append(merged, x)
	}
	desc := o.Description
	if desc == "" {
		desc = fmt.Sprintf("Recorded from the outages of %d client(s): each outage replays as %s for as long as it lasted.",
			len(sources), f.Name())
	}
	s := &Schedule{Name: o.Name, Description: desc}
	var prevEnd time.Duration
	for _, x := range merged {
		at := max(x.Start.Round(o.Round), prevEnd)
		d := max((x.End - x.Start).Round(o.Round), o.MinDuration)
		if len(s.Faults) > 0 && at < prevEnd+o.Round {
			// Rounding and lengthening brought two outages together: extend the previous one.
			last := &s.Faults[len(s.Faults)-1]
			last.Duration = max(last.Duration, at+d-last.At)
			prevEnd = last.At + last.Duration
			continue
		}
		s.Faults = append(s.Faults, Entry{At: at, Fault: f, Duration: d})
		prevEnd = at + d
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("schedule: record: %w", err)
	}
	return s, nil
}
