package report

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/timeline"
)

// Verdicts.
const (
	Pass    = "PASS"    // nothing lost, nothing unexpected, something acknowledged
	Fail    = "FAIL"    // something lost or unexpected
	Unknown = "UNKNOWN" // no ledger, or nothing was acknowledged, so nothing was proven
)

// Summary is the verdict of a run and its figures, as written to
// summary.json. Durations are in nanoseconds in JSON (fields ending in _ns).
type Summary struct {
	Name     string            `json:"name"`
	Started  time.Time         `json:"started"`
	Duration time.Duration     `json:"duration_ns"` // as configured (Run.Duration)
	Span     time.Duration     `json:"span_ns"`     // start to the last recorded event
	Seed     int64             `json:"seed"`
	Client   string            `json:"client"`
	Versions map[string]string `json:"versions"`
	Config   map[string]any    `json:"config"`
	Schedule []ScheduledFault  `json:"schedule"`
	Faults   []timeline.Window `json:"faults"` // as injected, from the timeline

	Verdict  string   `json:"verdict"` // Pass, Fail or Unknown
	Valid    bool     `json:"valid"`   // Verdict == Pass
	Problems []string `json:"problems,omitempty"`
	Notes    []string `json:"notes,omitempty"` // reported, not failed: duplicates, reordering, ...

	Attempts      int `json:"attempts"`      // publish invocations, retries included
	Attempted     int `json:"attempted"`     // distinct messages invoked
	Acknowledged  int `json:"acknowledged"`  // messages with an OK outcome
	Failed        int `json:"failed"`        // messages whose every attempt definitely failed
	Indeterminate int `json:"indeterminate"` // messages with no definite outcome
	Delivered     int `json:"delivered"`     // distinct messages delivered at least once
	Deliveries    int `json:"deliveries"`    // delivery events, duplicates and unexpected included

	Lost                int              `json:"lost"`                 // acknowledged, never delivered
	Dropped             int              `json:"dropped"`              // lost but allowed by the broker's queue limits
	DroppedBy           map[string]int   `json:"dropped_by,omitempty"` // Dropped per subscriber
	Unexpected          int              `json:"unexpected"`           // deliveries of nothing attempted
	Duplicates          int              `json:"duplicates"`           // (message, subscriber) pairs delivered more than once
	DuplicateDeliveries int              `json:"duplicate_deliveries"` // deliveries beyond the first, summed
	Reordered           int              `json:"reordered"`            // first deliveries out of publish order
	Recovered           int              `json:"recovered"`            // unacknowledged messages delivered anyway
	FalseFailures       int              `json:"false_failures"`       // recovered messages the client said were not sent
	Latency             ledger.Quantiles `json:"latency"`              // invoke → first delivery
	AckLatency          ledger.Quantiles `json:"ack_latency"`          // invoke → acknowledgement

	Outages   int              `json:"outages"`   // summed over clients
	Detection ledger.Quantiles `json:"detection"` // all clients
	Reconnect ledger.Quantiles `json:"reconnect"` // all clients
	Clients   []ClientFigures  `json:"clients"`

	// The first few counterexamples, with their history context.
	LostExamples       []Example `json:"lost_examples,omitempty"`
	UnexpectedExamples []Example `json:"unexpected_examples,omitempty"`
	ReorderedExamples  []string  `json:"reordered_examples,omitempty"`
	DuplicateExamples  []string  `json:"duplicate_examples,omitempty"`
}

// ClientFigures is one client's part of a Summary.
type ClientFigures struct {
	Name      string           `json:"name"`
	Clean     bool             `json:"clean"`
	Outages   int              `json:"outages"`
	Detection ledger.Quantiles `json:"detection"`
	Reconnect ledger.Quantiles `json:"reconnect"`
	Stats     map[string]int64 `json:"stats,omitempty"`
	// Events counts the client's timeline entries by kind (up, down,
	// reconnect, dup-resend, ...).
	Events map[string]int `json:"events,omitempty"`
}

// Example is one counterexample: what went wrong and the history lines
// around it (lines about the message start with '>').
type Example struct {
	What    string   `json:"what"`
	ID      string   `json:"id,omitempty"`
	Context []string `json:"context"`
}

// Limits on how much of each kind of counterexample a report carries.
const (
	maxExamples   = 5
	contextRadius = 4
)

// analysis is what Write works out before writing anything.
type analysis struct {
	summary Summary
	result  ledger.Result
	entries []timeline.Entry // timeline entries, ordered by time
	history string           // the history's file name
	series  *Series          // a streamed run's plot figures
	checked bool             // a ledger's verdict, or a streamed run's
}

func analyse(run Run) *analysis {
	an := &analysis{checked: run.Ledger != nil || run.Streamed != nil}
	switch {
	case an.checked && run.Result != nil:
		an.result = *run.Result
	case run.Ledger != nil:
		an.result = run.Ledger.Check()
	}
	if run.Timeline != nil {
		an.entries = timeline.Sorted(run.Timeline.Entries())
	}
	s := &an.summary
	*s = Summary{
		Name:     run.Name,
		Started:  run.Started,
		Duration: run.Duration,
		Seed:     run.Seed,
		Client:   run.Client,
		Versions: nonNilMap(run.Versions),
		Config:   jsonSafe(run.Config),
		Schedule: nonNilSlice(run.Schedule),
		Faults:   nonNilSlice(timeline.Faults(an.entries)),
	}
	r := &an.result
	s.Attempts, s.Attempted, s.Acknowledged = r.Attempts, r.Attempted, r.Acknowledged
	s.Failed, s.Indeterminate, s.Delivered, s.Deliveries = r.Failed, r.Indeterminate, r.Delivered, r.Deliveries
	s.Lost, s.Unexpected = len(r.Lost), len(r.Unexpected)
	s.Duplicates, s.DuplicateDeliveries = len(r.Duplicated), r.DuplicateDeliveries
	s.Reordered, s.Recovered = len(r.Reordered), len(r.Recovered)
	for _, x := range r.Recovered {
		if x.Outcome == ledger.Fail {
			s.FalseFailures++
		}
	}
	for _, n := range r.Dropped {
		s.Dropped += n
	}
	if len(r.Dropped) > 0 {
		s.DroppedBy = maps.Clone(r.Dropped)
	}
	s.Latency, s.AckLatency = r.Latency, r.AckLatency

	an.clients(run)
	an.verdict(run)
	an.examples()
	return an
}

// clients fills the per-client figures: the runner's ClientSummary, in its
// order, plus every timeline source that recorded client events.
func (an *analysis) clients(run Run) {
	s := &an.summary
	events := map[string]map[string]int{}
	for _, e := range an.entries {
		if e.Kind == timeline.FaultStart || e.Kind == timeline.FaultEnd {
			continue
		}
		if events[e.Source] == nil {
			events[e.Source] = map[string]int{}
		}
		events[e.Source][string(e.Kind)]++
	}
	var detection, reconnect []time.Duration
	seen := map[string]bool{}
	for _, c := range run.Clients {
		seen[c.Name] = true
		s.Outages += c.Outages
		detection = append(detection, c.Detection...)
		reconnect = append(reconnect, c.Reconnect...)
		s.Clients = append(s.Clients, ClientFigures{
			Name:      c.Name,
			Clean:     c.Clean,
			Outages:   c.Outages,
			Detection: quantiles(c.Detection),
			Reconnect: quantiles(c.Reconnect),
			Stats:     maps.Clone(c.Stats),
			Events:    events[c.Name],
		})
	}
	for _, src := range slices.Sorted(maps.Keys(events)) {
		if !seen[src] && isClientSource(events[src]) {
			s.Clients = append(s.Clients, ClientFigures{Name: src, Events: events[src]})
		}
	}
	s.Clients = nonNilSlice(s.Clients)
	s.Detection, s.Reconnect = quantiles(detection), quantiles(reconnect)
}

// isClientSource reports whether a timeline source recorded connection
// events, which only clients do.
func isClientSource(kinds map[string]int) bool {
	for _, k := range []timeline.Kind{timeline.Up, timeline.Down, timeline.Reconnect, timeline.ConnectFailed, timeline.Outage} {
		if kinds[string(k)] > 0 {
			return true
		}
	}
	return false
}

func (an *analysis) verdict(run Run) {
	s := &an.summary
	switch {
	case s.Lost > 0 || s.Unexpected > 0:
		s.Verdict = Fail
	case !an.checked || s.Acknowledged == 0:
		s.Verdict = Unknown
	default:
		s.Verdict = Pass
	}
	s.Valid = s.Verdict == Pass
	if !an.checked {
		s.Problems = append(s.Problems, "no ledger: nothing was checked")
	} else if s.Acknowledged == 0 {
		s.Problems = append(s.Problems, "no message was acknowledged: nothing was proven")
	}
	if s.Lost > 0 {
		s.Problems = append(s.Problems, fmt.Sprintf("%s lost: acknowledged, never delivered", plural(s.Lost, "message")))
	}
	if s.Unexpected > 0 {
		s.Problems = append(s.Problems, fmt.Sprintf("%s of nothing published", plural(s.Unexpected, "unexpected delivery")))
	}
	if s.Dropped > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%s dropped by the broker within its declared queue limits", plural(s.Dropped, "message")))
	}
	if s.Duplicates > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%s delivered more than once (%s in all)", plural(s.Duplicates, "message"), plural(s.DuplicateDeliveries, "extra delivery")))
	}
	if s.Reordered > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%s out of publish order", plural(s.Reordered, "first delivery")))
	}
	if s.Recovered > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%s not acknowledged but delivered", plural(s.Recovered, "message")))
	}
	if s.FalseFailures > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%s reported as not sent but delivered", plural(s.FalseFailures, "message")))
	}
	for _, w := range s.Faults {
		if w.Open {
			s.Notes = append(s.Notes, fmt.Sprintf("fault #%d %s was never healed", w.Fault, w.Name))
		}
	}
}

func (an *analysis) examples() {
	s, r := &an.summary, &an.result
	for _, x := range r.Lost[:min(len(r.Lost), maxExamples)] {
		s.LostExamples = append(s.LostExamples, Example{What: x.String(), ID: x.ID.String(), Context: r.Context(x.ID, contextRadius)})
	}
	for _, x := range r.Unexpected[:min(len(r.Unexpected), maxExamples)] {
		e := Example{What: x.String(), Context: r.UnexpectedContext(x, contextRadius)}
		if x.ID != (ledger.ID{}) {
			e.ID = x.ID.String()
		}
		s.UnexpectedExamples = append(s.UnexpectedExamples, e)
	}
	for _, x := range r.Reordered[:min(len(r.Reordered), maxExamples)] {
		s.ReorderedExamples = append(s.ReorderedExamples, x.String())
	}
	for _, x := range r.Duplicated[:min(len(r.Duplicated), maxExamples)] {
		s.DuplicateExamples = append(s.DuplicateExamples, x.String())
	}
}

// quantiles summarises durations by nearest rank, as the ledger does.
func quantiles(d []time.Duration) ledger.Quantiles {
	if len(d) == 0 {
		return ledger.Quantiles{}
	}
	d = slices.Clone(d)
	slices.Sort(d)
	at := func(p float64) time.Duration {
		return d[max(int(math.Ceil(p*float64(len(d))))-1, 0)]
	}
	return ledger.Quantiles{N: len(d), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: d[len(d)-1]}
}

// jsonSafe copies config, replacing values encoding/json cannot write (funcs,
// channels, cyclic or failing values) with their fmt rendering, so that one
// odd parameter cannot cost the whole summary.
func jsonSafe(config map[string]any) map[string]any {
	out := make(map[string]any, len(config))
	for k, v := range config {
		if _, err := json.Marshal(v); err != nil {
			v = fmt.Sprint(v)
		}
		out[k] = v
	}
	return out
}

func nonNilMap[M ~map[K]V, K comparable, V any](m M) M {
	if m == nil {
		return M{}
	}
	return m
}

func nonNilSlice[S ~[]E, E any](s S) S {
	if s == nil {
		return S{}
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	switch {
	case len(what) > 1 && what[len(what)-1] == 'y':
		return fmt.Sprintf("%d %sies", n, what[:len(what)-1])
	default:
		return fmt.Sprintf("%d %ss", n, what)
	}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
