package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ErrFigures marks a figures file that cannot be used: unreadable JSON, or a run without messages.
var ErrFigures = errors.New("report: bad figures")

// Figures are the scale figures of one soak report: what it published and delivered, how much memory it
// peaked at and how large its history grew. `soak figures` writes them, one object per report, and the
// bench's document generator reads them back (bench/results/soak-long.json).
type Figures struct {
	Report          string  `json:"report"`
	Started         string  `json:"started"`
	Seed            int64   `json:"seed"`
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

// FiguresOf reads the figures of the report in dir: its summary and the size of its history.
func FiguresOf(dir string) (Figures, error) {
	b, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		return Figures{}, err
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return Figures{}, fmt.Errorf("%s: %w", filepath.Join(dir, SummaryFile), err)
	}
	f := Figures{Report: filepath.Base(dir), Started: s.Started.UTC().Format(time.RFC3339), Seed: s.Seed, Verdict: s.Verdict,
		Clients: s.Config["clients"], RatePerClient: s.Config["rate_per_client"], FeedRate: s.Config["feed_rate"],
		Duration: s.Config["duration"], FaultsInjected: s.Config["faults_injected"], Messages: s.Attempted,
		Acknowledged: s.Acknowledged, Deliveries: s.Deliveries, Lost: s.Lost, Unexpected: s.Unexpected,
		Duplicates: s.Duplicates, WallRun: s.Config["wall_run"]}
	f.PeakRSSBytes, _ = s.Config["peak_rss_bytes"].(float64)
	f.PeakHeapBytes, _ = s.Config["peak_heap_bytes"].(float64)
	for _, name := range []string{HistoryFile, PlainHistoryFile} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
			f.HistoryFile, f.HistoryBytes = name, fi.Size()
			break
		}
	}
	if f.HistoryFile == "" {
		return f, fmt.Errorf("%s: no %s", dir, HistoryFile)
	}
	if f.Messages == 0 {
		return f, errors.New(dir + ": no message published")
	}
	f.BytesPerMessage = float64(f.HistoryBytes) / float64(f.Messages)
	return f, nil
}

// ReadFigures reads a figures file as `soak figures -o` writes it: a JSON array with one object per
// report, each of a run that published messages.
func ReadFigures(path string) ([]Figures, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var all []Figures
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFigures, path, err)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: %s: no run", ErrFigures, path)
	}
	for i, f := range all {
		if f.Messages <= 0 {
			return nil, fmt.Errorf("%w: %s: run %d (%q) published no message", ErrFigures, path, i+1, f.Report)
		}
	}
	return all, nil
}
