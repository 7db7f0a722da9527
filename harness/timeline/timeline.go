// Package timeline is an append-only, thread-safe record of what happened to a
// run over time: faults injected (with start, end and parameters) and client
// events (up, down, reconnect attempts, DUP re-sends, packet-id renewals,
// outages detected). Times are offsets from the run's start, so they line up
// with the ledger's history. Entries serialise to JSON lines for artifacts and
// render as compact text for failure dumps.
package timeline

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Kind says what an entry records. The client event kinds use the same
// strings as harness/clients, so events convert with Kind(ev.Kind).
type Kind string

const (
	FaultStart    Kind = "fault-start"
	FaultEnd      Kind = "fault-end"
	Up            Kind = "up"             // connected (CONNACK accepted)
	Down          Kind = "down"           // connection lost
	Reconnect     Kind = "reconnect"      // a reconnect attempt began
	ConnectFailed Kind = "connect-failed" // a connect attempt failed
	Resend        Kind = "dup-resend"     // a PUBLISH re-sent with DUP
	PIDRenew      Kind = "pid-renew"      // a message re-sent under a new packet id
	Outage        Kind = "outage"         // the client decided the link is dead
	Note          Kind = "note"           // anything else worth seeing in a dump
)

// Entry is one line of the timeline.
type Entry struct {
	At     time.Duration  `json:"at_ns"` // since the run's start
	Kind   Kind           `json:"kind"`
	Source string         `json:"source"` // who: a client name, "link", "broker", "observer"
	Fault  int            `json:"fault,omitempty"`
	Name   string         `json:"name,omitempty"`   // fault type, e.g. "latency"
	Params map[string]any `json:"params,omitempty"` // fault parameters or event details
	Detail string         `json:"detail,omitempty"` // free text, e.g. an error
}

// Window is one fault as an interval.
type Window struct {
	Fault  int            `json:"fault"`
	Name   string         `json:"name"`
	Source string         `json:"source"`
	Params map[string]any `json:"params,omitempty"`
	Start  time.Duration  `json:"start_ns"`
	End    time.Duration  `json:"end_ns"`
	Open   bool           `json:"open,omitempty"` // not ended; End is the last entry's time
}

// Contains reports whether at falls in [Start, End).
func (w Window) Contains(at time.Duration) bool { return at >= w.Start && at < w.End }

// ErrUnknownFault is returned by EndFault for a fault that was never begun or
// has already ended.
var ErrUnknownFault = errors.New("timeline: unknown or ended fault")

// Timeline records entries. The zero value is not usable; call New.
type Timeline struct {
	mu      sync.Mutex
	start   time.Time
	entries []Entry
	open    map[int]Entry // begun faults not yet ended
	faults  int
}

// New returns an empty timeline for a run that started at start.
func New(start time.Time) *Timeline {
	return &Timeline{start: start, open: make(map[int]Entry)}
}

// Start returns the run's start.
func (t *Timeline) Start() time.Time { return t.start }

// Record appends a client or harness event that happened at at.
func (t *Timeline) Record(at time.Time, source string, kind Kind, detail string) {
	t.Add(Entry{At: at.Sub(t.start), Kind: kind, Source: source, Detail: detail})
}

// Add appends e as is, for callers that build entries themselves (with Params)
// or merge another timeline.
func (t *Timeline) Add(e Entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entries = append(t.entries, e)
}

// BeginFault records that source started injecting fault name with params at
// at, and returns the fault's id for EndFault.
func (t *Timeline) BeginFault(at time.Time, source, name string, params map[string]any) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.faults++
	e := Entry{At: at.Sub(t.start), Kind: FaultStart, Source: source, Fault: t.faults, Name: name, Params: params}
	t.open[t.faults] = e
	t.entries = append(t.entries, e)
	return t.faults
}

// EndFault records that fault ended (was healed) at at.
func (t *Timeline) EndFault(at time.Time, fault int, detail string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.open[fault]
	if !ok {
		return fmt.Errorf("%w: %d", ErrUnknownFault, fault)
	}
	delete(t.open, fault)
	t.entries = append(t.entries, Entry{At: at.Sub(t.start), Kind: FaultEnd, Source: b.Source, Fault: fault, Name: b.Name, Detail: detail})
	return nil
}

// Entries returns a copy of every entry, in record order.
func (t *Timeline) Entries() []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.entries)
}

// Faults returns the fault windows, ordered by start.
func (t *Timeline) Faults() []Window { return Faults(t.Entries()) }

// Events returns the entries of source that are not faults, in record order.
func (t *Timeline) Events(source string) []Entry {
	var out []Entry
	for _, e := range t.Entries() {
		if e.Source == source && e.Kind != FaultStart && e.Kind != FaultEnd {
			out = append(out, e)
		}
	}
	return out
}

// Sources returns every source that recorded an entry, sorted.
func (t *Timeline) Sources() []string {
	seen := map[string]bool{}
	for _, e := range t.Entries() {
		seen[e.Source] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// Between returns the entries with from <= At < to, ordered by time.
func (t *Timeline) Between(from, to time.Duration) []Entry {
	var out []Entry
	for _, e := range Sorted(t.Entries()) {
		if e.At >= from && e.At < to {
			out = append(out, e)
		}
	}
	return out
}

// String renders the whole timeline, ordered by time.
func (t *Timeline) String() string {
	var b strings.Builder
	_ = Render(&b, Sorted(t.Entries())) // a strings.Builder does not fail
	return b.String()
}

// WriteJSONL writes every entry as one JSON object per line.
func (t *Timeline) WriteJSONL(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, e := range t.Entries() {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("timeline: write: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("timeline: write: %w", err)
	}
	return nil
}

// WriteFile writes every entry to the file at path (created or truncated) as WriteJSONL does.
func (t *Timeline) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := errors.Join(t.WriteJSONL(f), f.Close()); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ReadJSONL reads entries written by WriteJSONL. Numbers in Params come back
// as float64, as encoding/json decodes them into an any.
func ReadJSONL(r io.Reader) ([]Entry, error) {
	var out []Entry
	dec := json.NewDecoder(r)
	for {
		var e Entry
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("timeline: read entry %d: %w", len(out)+1, err)
		}
		out = append(out, e)
	}
}

// Sorted returns entries ordered by time; entries at the same time keep their
// record order.
func Sorted(entries []Entry) []Entry {
	out := slices.Clone(entries)
	slices.SortStableFunc(out, func(a, b Entry) int { return cmp.Compare(a.At, b.At) })
	return out
}

// Faults pairs fault-start and fault-end entries into windows, ordered by
// start. A fault with no end is Open and ends at the latest entry's time.
func Faults(entries []Entry) []Window {
	var last time.Duration
	byID := map[int]*Window{}
	var out []*Window
	for _, e := range entries {
		last = max(last, e.At)
		switch e.Kind {
		case FaultStart:
			w := &Window{Fault: e.Fault, Name: e.Name, Source: e.Source, Params: e.Params, Start: e.At, Open: true}
			byID[e.Fault] = w
			out = append(out, w)
		case FaultEnd:
			if w, ok := byID[e.Fault]; ok && w.Open {
				w.End, w.Open = e.At, false
			}
		}
	}
	windows := make([]Window, 0, len(out))
	for _, w := range out {
		if w.Open {
			w.End = last
		}
		windows = append(windows, *w)
	}
	slices.SortStableFunc(windows, func(a, b Window) int { return cmp.Compare(a.Start, b.Start) })
	return windows
}

// Render writes one compact line per entry:
//
//	+1.200000s  link      fault-start    #1 latency latency=200
//	+1.950000s  paho      down           EOF
func Render(w io.Writer, entries []Entry) error {
	for _, e := range entries {
		var b strings.Builder
		fmt.Fprintf(&b, "%+.6fs  %-9s %-14s", e.At.Seconds(), e.Source, e.Kind)
		if e.Fault != 0 {
			fmt.Fprintf(&b, " #%d %s", e.Fault, e.Name)
		}
		for _, k := range slices.Sorted(maps.Keys(e.Params)) {
			fmt.Fprintf(&b, " %s=%v", k, e.Params[k])
		}
		if e.Detail != "" {
			fmt.Fprintf(&b, " %s", e.Detail)
		}
		if _, err := fmt.Fprintln(w, strings.TrimRight(b.String(), " ")); err != nil {
			return fmt.Errorf("timeline: render: %w", err)
		}
	}
	return nil
}
