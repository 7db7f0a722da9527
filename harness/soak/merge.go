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
// earliest start, as its summary.json states them, and the report states how far those offsets can be
// off (ClockBound, from the clock each shard's summary describes): exact for shards on one host, the
// kernels' error bounds summed for synchronised hosts, unbounded otherwise. Only the shards' times
// against each other depend on it: each message is published and delivered within one shard, so the
// verdict and the latencies are each shard's own. The shards must be disjoint (ledger.ErrOverlap otherwise). The merged
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
	clocks := make([]*ClockInfo, len(parts))
	names := make([]string, len(parts))
	for i, p := range parts {
		clocks[i], names[i] = clockOf(p.summary.Config), p.dir
	}
	bound, statement := ClockBound(names, clocks)
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
		Config: map[string]any{"shards": dirs, "shard_offsets": offsets, "clock": statement,
			"clock_offset_bound_ns": int64(bound), "verdict_clock": "each message is published and delivered within one shard, " +
				"so the verdict and the latencies are each shard's own clock's; the offsets move only the shards' times against each other"},
		Ledger: l, Result: &res,
	})
	return res, sum, err
}

// ClockBound says how far apart the clocks of the shards named can be, from the clocks their summaries
// describe (nil: not described): 0 when they all read one host's clock, the largest sum of two hosts'
// error bounds when every host's kernel keeps its clock synchronised, and -1 (unbounded) otherwise.
// The text says which, for the report.
func ClockBound(names []string, clocks []*ClockInfo) (time.Duration, string) {
	hosts := map[string]bool{}
	for i, c := range clocks {
		if c == nil {
			return -1, fmt.Sprintf("not bounded: shard %s's summary states no clock", names[i])
		}
		hosts[c.Host] = true
	}
	if len(hosts) <= 1 {
		var host string
		for h := range hosts {
			host = h
		}
		return 0, fmt.Sprintf("every shard read the clock of one host (%s): the offsets between them are exact", host)
	}
	worst := map[string]time.Duration{}
	for i, c := range clocks {
		if !c.Known || !c.Synchronised {
			return -1, fmt.Sprintf("not bounded: shard %s's clock (host %s) is not known to be synchronised", names[i], c.Host)
		}
		worst[c.Host] = max(worst[c.Host], c.MaxError)
	}
	var errs []time.Duration
	for _, e := range worst {
		errs = append(errs, e)
	}
	slices.Sort(errs)
	bound := errs[len(errs)-1] + errs[len(errs)-2]
	return bound, fmt.Sprintf("%d hosts, each synchronised by its kernel: the offsets are within ±%v (the two largest error bounds, summed)",
		len(worst), bound)
}
