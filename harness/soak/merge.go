package soak

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/report"
)

// Merge joins the reports of the shards of one run (each a soak's -out directory) into one verdict and
// one report written to out. Each shard's times are moved by the difference between its start and the
// earliest start, as its summary.json states them: the shards' clocks are taken to agree, so run them
// on one machine or on machines kept in sync (NTP keeps them within milliseconds, far below the
// latencies a soak measures). The shards must be disjoint (ledger.ErrOverlap otherwise). The merged
// report has the ledger's history and verdict; the shards' timelines and fault windows stay in their
// own reports.
func Merge(out string, dirs ...string) (ledger.Result, report.Summary, error) {
	if len(dirs) == 0 {
		return ledger.Result{}, report.Summary{}, fmt.Errorf("%w: no shard to merge", ErrInput)
	}
	type part struct {
		dir     string
		summary report.Summary
		history string
	}
	parts := make([]part, 0, len(dirs))
	for _, dir := range dirs {
		p := part{dir: dir}
		b, err := os.ReadFile(filepath.Join(dir, report.SummaryFile))
		if err != nil {
			return ledger.Result{}, report.Summary{}, fmt.Errorf("%w: shard %s: %w", ErrInput, dir, err)
		}
		if err := json.Unmarshal(b, &p.summary); err != nil {
			return ledger.Result{}, report.Summary{}, fmt.Errorf("%w: shard %s: %s: %w", ErrInput, dir, report.SummaryFile, err)
		}
		for _, name := range []string{report.HistoryFile, report.PlainHistoryFile} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				p.history = filepath.Join(dir, name)
				break
			}
		}
		if p.history == "" {
			return ledger.Result{}, report.Summary{}, fmt.Errorf("%w: shard %s has no %s", ErrInput, dir, report.HistoryFile)
		}
		parts = append(parts, p)
	}
	start := slices.MinFunc(parts, func(a, b part) int { return a.summary.Started.Compare(b.summary.Started) }).summary.Started
	shards := make([]ledger.Shard, 0, len(parts))
	offsets := map[string]string{}
	var span time.Duration
	for _, p := range parts {
		f, err := os.Open(p.history)
		if err != nil {
			return ledger.Result{}, report.Summary{}, fmt.Errorf("%w: %w", ErrInput, err)
		}
		defer f.Close()
		off := p.summary.Started.Sub(start)
		offsets[p.dir] = off.String()
		span = max(span, off+p.summary.Duration)
		shards = append(shards, ledger.Shard{Name: p.dir, Offset: off, History: f})
	}
	l, err := ledger.Merge(shards...)
	if err != nil {
		if errors.Is(err, ledger.ErrHistory) || errors.Is(err, ledger.ErrOverlap) {
			err = fmt.Errorf("%w: %w", ErrInput, err)
		}
		return ledger.Result{}, report.Summary{}, err
	}
	res := l.Check()
	sum, err := report.Write(out, report.Run{
		Name: filepath.Base(out), Started: start, Duration: span, Client: parts[0].summary.Client,
		Config: map[string]any{"shards": dirs, "shard_offsets": offsets,
			"clock": "shard offsets from each shard's start in its summary.json; the shards' clocks are taken to agree"},
		Ledger: l, Result: &res,
	})
	return res, sum, err
}
