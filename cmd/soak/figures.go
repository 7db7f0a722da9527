package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mqttas/mqttas-go/harness/report"
)

// runFigures are the scale figures of one soak report, as `soak figures` writes them.
type runFigures struct {
	Report          string  `json:"report"`
	Verdict         string  `json:"verdict"`
	Clients         any     `json:"clients"`
	RatePerClient   any     `json:"rate_per_client"`
	FeedRate        any     `json:"feed_rate"`
	Duration        any     `json:"duration"`
	FaultsInjected  any     `json:"faults_injected"`
	Messages        int     `json:"messages"` // distinct messages published (attempted)
	Acknowledged    int     `json:"acknowledged"`
	Deliveries      int     `json:"deliveries"`
	Lost            int     `json:"lost"`
	Unexpected      int     `json:"unexpected"`
	Duplicates      int     `json:"duplicates"`
	PeakRSSBytes    float64 `json:"peak_rss_bytes"`
	PeakHeapBytes   float64 `json:"peak_heap_bytes"`
	HistoryFile     string  `json:"history_file"`
	HistoryBytes    int64   `json:"history_bytes"`
	BytesPerMessage float64 `json:"history_bytes_per_message"`
	WallRun         any     `json:"wall_run"`
}

// figures reads soak reports (their summary.json and the size of their history) and writes their scale
// figures as JSON to -o (or stdout), one object per report, and a line each to the console.
func figures(args []string, stdout io.Writer, con *console) int {
	fs := flag.NewFlagSet("soak figures", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("o", "", "write the JSON here instead of stdout")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		con.Printf("soak: usage: soak figures [-o file.json] <report dir>...")
		return exitUsage
	}
	var all []runFigures
	for _, dir := range fs.Args() {
		f, err := reportFigures(dir)
		if err != nil {
			con.Printf("soak: figures: %v", err)
			return exitUsage
		}
		con.Printf("soak: %s: %s, %d messages, peak RSS %.1f MiB, history %d bytes (%.1f bytes a message)", dir, f.Verdict,
			f.Messages, f.PeakRSSBytes/(1<<20), f.HistoryBytes, f.BytesPerMessage)
		all = append(all, f)
	}
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		con.Printf("soak: figures: %v", err)
		return exitHarness
	}
	b = append(b, '\n')
	if *out == "" {
		_, _ = stdout.Write(b)
		return exitPass
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		con.Printf("soak: figures: %v", err)
		return exitHarness
	}
	return exitPass
}

func reportFigures(dir string) (runFigures, error) {
	b, err := os.ReadFile(filepath.Join(dir, report.SummaryFile))
	if err != nil {
		return runFigures{}, err
	}
	var s report.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return runFigures{}, fmt.Errorf("%s: %w", filepath.Join(dir, report.SummaryFile), err)
	}
	f := runFigures{Report: filepath.Base(dir), Verdict: s.Verdict, Clients: s.Config["clients"], RatePerClient: s.Config["rate_per_client"],
		FeedRate: s.Config["feed_rate"], Duration: s.Config["duration"], FaultsInjected: s.Config["faults_injected"],
		Messages: s.Attempted, Acknowledged: s.Acknowledged, Deliveries: s.Deliveries, Lost: s.Lost, Unexpected: s.Unexpected,
		Duplicates: s.Duplicates, WallRun: s.Config["wall_run"]}
	f.PeakRSSBytes, _ = s.Config["peak_rss_bytes"].(float64)
	f.PeakHeapBytes, _ = s.Config["peak_heap_bytes"].(float64)
	for _, name := range []string{report.HistoryFile, report.PlainHistoryFile} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
			f.HistoryFile, f.HistoryBytes = name, fi.Size()
			break
		}
	}
	if f.HistoryFile == "" {
		return f, fmt.Errorf("%s: no %s", dir, report.HistoryFile)
	}
	if f.Messages == 0 {
		return f, errors.New(dir + ": no message published")
	}
	f.BytesPerMessage = float64(f.HistoryBytes) / float64(f.Messages)
	return f, nil
}
