// Package schedule plans faults in time: a schedule is an ordered list of timed faults of the harness's
// fault registry (harness/faults), each with a start, a duration and optional repetitions. Schedules come
// from three places, and one thing runs them:
//
//   - Random draws a seeded schedule, so a soak run can be repeated exactly from its seed;
//   - Parse and Load read a YAML trace (format version 1, see traces/README.md), validated in full,
//     with errors naming the line and the field, before anything starts;
//   - Record turns the outages clients saw (timeline down/up events) into a replayable trace;
//   - a Player runs a schedule through an Injector (a rig's), injecting and healing each fault on time.
//
// Marshal writes any of them as a trace file. Toxiproxy's own randomness cannot be seeded, so every
// variation a run needs (which fault, when, how long, with which parameters) is drawn here.
package schedule

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/harness/faults"
)

// Version is the trace format version this package reads and writes.
const Version = 1

// Limits that keep every schedule finite and every loop over it bounded.
const (
	MaxCount       = 10_000  // repetitions of one entry
	MaxOccurrences = 100_000 // faults in a whole schedule, repetitions included
	MaxTime        = 7 * 24 * time.Hour
)

// Repeat makes an entry happen Count times in all, Every apart (start to start).
type Repeat struct {
	Every time.Duration
	Count int
}

// Entry is one line of a schedule: Fault (with its parameters), injected At after the start and healed
// Duration later. One-shot faults (reset) have no duration.
type Entry struct {
	At       time.Duration
	Fault    faults.Fault
	Duration time.Duration
	Repeat   *Repeat

	// Line is where the entry starts in its trace file (0 when it was not read from one).
	Line     int
	lines    map[string]int // field path within the entry → line, for errors
	broken   bool           // the file form was wrong; already reported, not checked further
	badFault bool           // the fault could not be made; already reported
}

// Schedule is a named, ordered list of timed faults.
type Schedule struct {
	Name        string
	Description string
	Faults      []Entry
}

// Occurrence is one fault of a schedule with its repetition expanded: what a Player injects.
type Occurrence struct {
	Entry    int // index in Schedule.Faults
	Rep      int // repetition, 0 for the first
	At       time.Duration
	Duration time.Duration // 0 for one-shot faults
	Fault    faults.Fault
}

// End is when the occurrence is healed (At for a one-shot fault).
func (o Occurrence) End() time.Duration { return o.At + o.Duration }

// String renders the occurrence as "faults[2]#1 latency(jitter=0s, latency=200ms) at 5s for 3s".
func (o Occurrence) String() string {
	s := fmt.Sprintf("faults[%d]", o.Entry)
	if o.Rep > 0 {
		s += fmt.Sprintf("#%d", o.Rep)
	}
	s += fmt.Sprintf(" %s at %v", o.Fault, o.At)
	if o.Duration > 0 {
		s += fmt.Sprintf(" for %v", o.Duration)
	}
	return s
}

// FieldError is one problem with a schedule, located by line (when read from a file) and field path,
// e.g. "faults[2].params.latency".
type FieldError struct {
	Line  int
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Msg)
	}
	return e.Field + ": " + e.Msg
}

// ValidationError lists every problem found in a schedule, ordered by line. Source names the file, if
// any; errors.As reaches it through Load's and Parse's errors.
type ValidationError struct {
	Source string
	Errs   []*FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	what := "schedule"
	if e.Source != "" {
		what = e.Source
	}
	fmt.Fprintf(&b, "%s: %d problem", what, len(e.Errs))
	if len(e.Errs) != 1 {
		b.WriteString("s")
	}
	for _, fe := range e.Errs {
		b.WriteString("\n  ")
		if e.Source != "" && fe.Line > 0 {
			fmt.Fprintf(&b, "%s:%d: %s: %s", e.Source, fe.Line, fe.Field, fe.Msg)
		} else {
			b.WriteString(fe.Error())
		}
	}
	return b.String()
}

// Unwrap exposes the individual problems to errors.Is and errors.As.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Errs))
	for i, fe := range e.Errs {
		errs[i] = fe
	}
	return errs
}

// problems collects field errors.
type problems struct{ errs []*FieldError }

func (p *problems) add(line int, field, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) err(source string) error {
	if len(p.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(p.errs, func(a, b *FieldError) int { return cmp.Compare(a.Line, b.Line) })
	return &ValidationError{Source: source, Errs: p.errs}
}

// line returns where field (a path within the entry, like "duration" or "params.rate") was written, else
// where the entry starts.
func (e *Entry) line(field string) int {
	if l, ok := e.lines[field]; ok {
		return l
	}
	return e.Line
}

// Validate checks the whole schedule: known faults and parameters, times, repetitions, and overlaps that
// cannot work. The error is a *ValidationError listing every problem.
func (s *Schedule) Validate() error {
	_, err := s.expand()
	return err
}

// Occurrences validates the schedule and returns its faults with repetitions expanded, ordered by start.
func (s *Schedule) Occurrences() ([]Occurrence, error) { return s.expand() }

// End is when the schedule's last fault is healed; 0 for an empty or invalid schedule.
func (s *Schedule) End() time.Duration {
	occ, err := s.expand()
	if err != nil {
		return 0
	}
	var end time.Duration
	for _, o := range occ {
		end = max(end, o.End())
	}
	return end
}

func (s *Schedule) expand() ([]Occurrence, error) {
	var p problems
	occ := s.expandInto(&p)
	if err := p.err(""); err != nil {
		return nil, err
	}
	return occ, nil
}

// expandInto adds the schedule's problems to p and returns its occurrences, sorted by start.
func (s *Schedule) expandInto(p *problems) []Occurrence {
	var occ []Occurrence
	total := 0
	for i := range s.Faults {
		e := &s.Faults[i]
		if e.broken {
			continue
		}
		field := func(f string) string { return fmt.Sprintf("faults[%d].%s", i, f) }
		f, ok := e.check(p, field)
		if !ok {
			continue
		}
		count, every := 1, time.Duration(0)
		if e.Repeat != nil {
			count, every = e.Repeat.Count, e.Repeat.Every
		}
		if total += count; total > MaxOccurrences {
			p.add(e.line("repeat.count"), field("repeat.count"), "the schedule would hold more than %d faults", MaxOccurrences)
			break
		}
		for r := range count {
			occ = append(occ, Occurrence{Entry: i, Rep: r, At: e.At + time.Duration(r)*every, Duration: e.Duration, Fault: f})
		}
	}
	slices.SortStableFunc(occ, func(a, b Occurrence) int { return cmp.Compare(a.At, b.At) })
	// Overlaps within a lane: occurrences are sorted by start, so each one only needs checking against
	// the latest-ending earlier occurrence of its lane.
	last := map[faults.Lane]Occurrence{}
	for _, o := range occ {
		g := faults.LaneOf(o.Fault)
		if g == "" {
			continue
		}
		if prev, ok := last[g]; ok && o.At < prev.End() {
			e := &s.Faults[o.Entry]
			p.add(e.line("at"), fmt.Sprintf("faults[%d].at", o.Entry), "%s (%v–%v) overlaps %s (%v–%v): %s",
				label(o), o.At, o.End(), label(prev), prev.At, prev.End(), g.Why())
			if o.End() <= prev.End() {
				continue
			}
		}
		last[g] = o
	}
	return occ
}

func label(o Occurrence) string {
	s := fmt.Sprintf("%s (faults[%d]", o.Fault.Name(), o.Entry)
	if o.Rep > 0 {
		s += fmt.Sprintf(" repetition %d", o.Rep+1)
	}
	return s + ")"
}

// check validates one entry on its own and returns its fault.
func (e *Entry) check(p *problems, field func(string) string) (faults.Fault, bool) {
	n := len(p.errs)
	if e.At < 0 {
		p.add(e.line("at"), field("at"), "%v is negative: times count from the start of the run", e.At)
	} else if e.At > MaxTime {
		p.add(e.line("at"), field("at"), "%v is later than %v", e.At, MaxTime)
	}
	if e.Duration < 0 {
		p.add(e.line("duration"), field("duration"), "%v is negative", e.Duration)
	} else if e.Duration > MaxTime {
		p.add(e.line("duration"), field("duration"), "%v is longer than %v", e.Duration, MaxTime)
	}
	if e.Fault == nil {
		if !e.badFault {
			p.add(e.line("fault"), field("fault"), "missing: name the fault (one of %s)", strings.Join(faults.Names(), ", "))
		}
	} else {
		var pe *faults.ParamError
		switch err := e.Fault.Validate(); {
		case errors.As(err, &pe):
			p.add(e.line("params."+pe.Param), field("params."+pe.Param), "%s", pe.Reason)
		case err != nil:
			p.add(e.line("fault"), field("fault"), "%v", err)
		}
		switch name := e.Fault.Name(); {
		case e.Fault.OneShot() && e.Duration > 0:
			p.add(e.line("duration"), field("duration"), "%s happens at once and is not healed: leave the duration out", name)
		case !e.Fault.OneShot() && e.Duration == 0:
			p.add(e.line("duration"), field("duration"), "missing: %s needs a duration > 0 (when to heal it)", name)
		}
	}
	if r := e.Repeat; r != nil {
		switch {
		case r.Count < 1 || r.Count > MaxCount:
			p.add(e.line("repeat.count"), field("repeat.count"), "%d is not between 1 and %d (the number of times in all)", r.Count, MaxCount)
		case r.Every <= 0:
			p.add(e.line("repeat.every"), field("repeat.every"), "must be a duration > 0")
		case r.Count > 1 && r.Every < e.Duration:
			p.add(e.line("repeat.every"), field("repeat.every"), "%v is shorter than the duration %v: each repetition would overlap the one before", r.Every, e.Duration)
		case e.At+time.Duration(r.Count-1)*r.Every > MaxTime:
			p.add(e.line("repeat.count"), field("repeat.count"), "the last repetition would start after %v", MaxTime)
		}
	}
	return e.Fault, len(p.errs) == n && e.Fault != nil
}

// Clone returns a deep copy of s.
func (s *Schedule) Clone() *Schedule {
	c := *s
	c.Faults = make([]Entry, len(s.Faults))
	for i, e := range s.Faults {
		if e.Repeat != nil {
			r := *e.Repeat
			e.Repeat = &r
		}
		e.lines, e.broken = nil, false
		c.Faults[i] = e
	}
	return &c
}
