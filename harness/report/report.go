// Package report turns a finished run (its ledger, timeline, schedule and
// per-client figures) into artifacts people can look at:
//
//   - summary.json: environment (versions, config, seed, schedule), the
//     verdict and every figure (attempted, acknowledged, delivered, lost,
//     unexpected, duplicates, reordered, recovered, latency quantiles,
//     outages, detection and reconnect time quantiles per client and overall);
//   - history.jsonl.gz: every publish, completion, delivery, fault and
//     client event, ordered by time, one JSON object per line, each with a
//     "kind", gzip compressed (a few dozen bytes a message; Run.PlainHistory
//     writes history.jsonl uncompressed instead; a Streamed run's history
//     is the ledger's lines as they were streamed, and Write leaves it be);
//   - index.html: one self-contained page (inline CSS and SVG, no scripts, no
//     network) with a verdict banner, the verdict table, a timeline plot with
//     fault windows shaded, the schedule, the per-client table and the first
//     lost or unexpected messages with their history context.
//
// Write is the only entry point. It checks the ledger itself unless the run
// carries a Result. Its cost grows with the history (spooled to disk, a few
// dozen bytes of memory per event); the page does not: the plot is bucketed
// to at most 400 time slices and 40 client lanes and the tables are capped,
// so a run of a million messages still gives a page of tens of kilobytes.
// Every string on the page goes through html/template.
package report

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/timeline"
)

// Names of the files Write creates in its directory.
const (
	SummaryFile = "summary.json"
	HistoryFile = "history.jsonl.gz"
	// PlainHistoryFile is the history uncompressed, with Run.PlainHistory.
	PlainHistoryFile = "history.jsonl"
	IndexFile        = "index.html"
)

// ScheduledFault is one entry of the fault schedule a run was given: fault
// Fault with Params, injected At after the start, for Duration.
type ScheduledFault struct {
	At       time.Duration     `json:"at_ns"`
	Fault    string            `json:"fault"`
	Params   map[string]string `json:"params,omitempty"`
	Duration time.Duration     `json:"duration_ns"`
}

// ClientSummary is what the runner measured about one client: whether it used
// a clean session, its own counters, how many outages it went through, how
// long it took to notice each one (Detection) and to be connected again
// (Reconnect).
type ClientSummary struct {
	Name      string           `json:"name"`
	Clean     bool             `json:"clean"`
	Stats     map[string]int64 `json:"stats,omitempty"`
	Outages   int              `json:"outages"`
	Detection []time.Duration  `json:"detection_ns,omitempty"`
	Reconnect []time.Duration  `json:"reconnect_ns,omitempty"`
}

// Run is everything a report is made from. Ledger and Timeline must share the
// run's start (ledger.New(Started), timeline.New(Started)) so their offsets
// line up. Either may be nil, leaving its part of the report empty; without a
// ledger nothing is checked and the verdict is UNKNOWN.
type Run struct {
	Name     string
	Started  time.Time
	Duration time.Duration
	Seed     int64
	Client   string
	Config   map[string]any    // soak parameters: clients, rate, duration, ...
	Versions map[string]string // go, mqttas, mosquitto, toxiproxy, broker backend
	Schedule []ScheduledFault
	Ledger   *ledger.Ledger
	Timeline *timeline.Timeline
	Clients  []ClientSummary

	// Result, if set, is Ledger.Check() as the caller already computed it
	// after the last event was recorded; Write uses it instead of checking
	// again (which takes seconds for millions of messages).
	Result *ledger.Result

	// PlainHistory writes the history uncompressed, as PlainHistoryFile.
	PlainHistory bool

	// Streamed, if set, says the history is already in the directory, streamed there as the run
	// went (see Streamed); Result must be set then, and Ledger is not read.
	Streamed *Streamed
}

// historyFile is the name of the history Write writes for run.
func historyFile(run Run) string {
	if run.PlainHistory {
		return PlainHistoryFile
	}
	return HistoryFile
}

// Write checks run's ledger and writes dir/summary.json, dir/history.jsonl.gz and
// dir/index.html, creating dir if needed. It returns the summary it wrote.
// The summary is returned even when writing fails part way, so a caller can
// still print the verdict.
func Write(dir string, run Run) (Summary, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Summary{}, fmt.Errorf("report: %w", err)
	}
	if run.Streamed != nil {
		if run.Result == nil {
			return Summary{}, errors.New("report: a streamed run needs its Result")
		}
		run.Ledger = nil
	}
	an := analyse(run)
	var h *history
	if run.Streamed != nil {
		an.history, an.series = run.Streamed.File, run.Streamed.Series
		h = &history{}
		if an.series != nil {
			h.last = an.series.Last()
		}
		if n := len(an.entries); n > 0 {
			h.last = max(h.last, an.entries[n-1].At)
		}
		if err := an.streamedContext(filepath.Join(dir, an.history)); err != nil {
			return an.summary, err
		}
	} else {
		an.history = historyFile(run)
		var err error
		if h, err = writeHistory(filepath.Join(dir, an.history), run, an); err != nil {
			return an.summary, err
		}
	}
	an.summary.Span = h.last
	if err := writeJSON(filepath.Join(dir, SummaryFile), an.summary); err != nil {
		return an.summary, err
	}
	if err := writePage(filepath.Join(dir, IndexFile), an, h); err != nil {
		return an.summary, err
	}
	return an.summary, nil
}
