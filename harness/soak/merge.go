package soak

import (
	"bufio"
	"compress/gzip"
	"context"
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

// Merged is what Merge made of a run's shards.
type Merged struct {
	Result  ledger.Result
	Summary report.Summary
	// Stats are the merge's: lines, the most messages held at once (what its memory grew with).
	Stats ledger.MergeStats
	// Untimed is how many first deliveries came after the check had forgotten their message, so
	// their latency is not in the verdict (see ledger.Online).
	Untimed int
}

// mergeCheck is what the merged report says of its verdict.
const mergeCheck = "online, as the shards' histories were merged (ledger.MergeOnline): memory bounded by what was in " +
	"flight; latency quantiles within 1% (N and max exact); the shards' timelines and fault windows stay in their own reports"

// Merge joins the reports of the shards of one run (each a soak's -out directory) into one verdict and
// one report written to out. Each shard's times are moved by the difference between its start and the
// earliest start, as its summary.json states them, and the report states how far those offsets can be
// off (ClockBound, from the clock each shard's summary describes): exact for shards on one host, the
// kernels' error bounds summed for synchronised hosts, unbounded otherwise. Only the shards' times
// against each other depend on it: each message is published and delivered within one shard, so the
// verdict and the latencies are each shard's own. The shards must be disjoint (ledger.ErrOverlap
// otherwise). The histories are merged as they are read (ledger.MergeOnline), in memory bounded by
// what was in flight and by the clients and topics, not by the messages: the merged report's history
// is written as it goes and its verdict judged online (latency quantiles within 1%). The shards'
// timelines and fault windows stay in their own reports.
func Merge(ctx context.Context, out string, dirs ...string) (*Merged, error) {
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%w: no shard to merge", ErrInput)
	}
	type part struct {
		dir     string
		summary report.Summary
		history string
	}
	parts := make([]part, 0, len(dirs))
	for _, dir := range dirs {
		p := part{dir: dir}
		name := filepath.Join(dir, report.SummaryFile)
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("%w: shard %s: %w", ErrInput, dir, err)
		}
		if err := json.Unmarshal(b, &p.summary); err != nil {
			return nil, fmt.Errorf("%w: shard %s: %s: %w", ErrInput, dir, name, err)
		}
		for _, name := range []string{report.HistoryFile, report.PlainHistoryFile} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				p.history = filepath.Join(dir, name)
				break
			}
		}
		if p.history == "" {
			return nil, fmt.Errorf("%w: shard %s: no history: neither %s nor %s", ErrInput, dir,
				filepath.Join(dir, report.HistoryFile), report.PlainHistoryFile)
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
			return nil, fmt.Errorf("%w: %w", ErrInput, err)
		}
		defer f.Close()
		off := p.summary.Started.Sub(start)
		offsets[p.dir] = off.String()
		span = max(span, off+p.summary.Duration)
		shards = append(shards, ledger.Shard{Name: p.history, Offset: off, History: f})
	}
	clocks := make([]*ClockInfo, len(parts))
	names := make([]string, len(parts))
	for i, p := range parts {
		clocks[i], names[i] = clockOf(p.summary.Config), p.dir
	}
	bound, statement := ClockBound(names, clocks)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	series := report.NewSeries()
	m := &Merged{}
	o, err := writeMerged(ctx, filepath.Join(out, report.HistoryFile), shards, series, &m.Stats)
	if err != nil {
		if errors.Is(err, ledger.ErrHistory) || errors.Is(err, ledger.ErrOverlap) {
			err = fmt.Errorf("%w: %w", ErrInput, err)
		}
		return nil, err
	}
	m.Result, m.Untimed = o.Result(), o.Untimed()
	m.Summary, err = report.Write(out, report.Run{
		Name: filepath.Base(out), Started: start, Duration: span, Client: parts[0].summary.Client,
		Config: map[string]any{"shards": dirs, "shard_offsets": offsets, "clock": statement,
			"clock_offset_bound_ns": int64(bound), "verdict_clock": "each message is published and delivered within one shard, " +
				"so the verdict and the latencies are each shard's own clock's; the offsets move only the shards' times against each other",
			"check": mergeCheck, "merge_held_max": m.Stats.MaxHeld, "merge_untimed": m.Untimed,
			"merge_repeated_completions": m.Stats.Repeats},
		Result:   &m.Result,
		Streamed: &report.Streamed{File: report.HistoryFile, Series: series},
	})
	return m, err
}

// writeMerged merges shards into the compressed history path, the plot's figures into series.
func writeMerged(ctx context.Context, path string, shards []ledger.Shard, series *report.Series, st *ledger.MergeStats) (*ledger.Online, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	bw := bufio.NewWriterSize(zw, 256<<10)
	o, stats, err := ledger.MergeOnline(ctx, shards, ledger.MergeOptions{History: bw,
		Observe: func(ev ledger.Event, lat time.Duration) { series.Add(ev.At, ev.Kind, lat) }})
	*st = stats
	if err == nil {
		if werr := errors.Join(bw.Flush(), zw.Close(), f.Close()); werr != nil {
			err = fmt.Errorf("report: %s: %w", path, werr)
		}
	}
	if err != nil {
		f.Close()
		os.Remove(path) // half a history would pass for the run's
		return nil, err
	}
	return o, nil
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
