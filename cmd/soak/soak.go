package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/report"
	"github.com/mqttas/mqttas-go/harness/soak"
)

// run is the whole command: parse, plan, soak, report (or check a saved history). It returns the exit
// code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "check" {
		return check(args[1:], stdout, newConsole(stderr))
	}
	if len(args) > 0 && args[0] == "render-k8s" {
		return renderK8s(args[1:], stdout, newConsole(stderr))
	}
	if len(args) > 0 && args[0] == "figures" {
		return figures(args[1:], stdout, newConsole(stderr))
	}
	if len(args) > 0 && args[0] == "broker" {
		return brokerCmd(ctx, args[1:], stdout, newConsole(stderr))
	}
	if len(args) > 0 && args[0] == "merge" {
		return merge(ctx, args[1:], stdout, newConsole(stderr), time.Now())
	}
	start := time.Now()
	cfg, err := parseConfig(args, getenv, stderr, start)
	if errors.Is(err, flag.ErrHelp) {
		return exitPass
	}
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return exitUsage
	}
	con := newConsole(stderr)
	if cfg.recordFrom != "" {
		n, err := soak.RecordFrom(cfg.recordFrom, cfg.Record)
		if err != nil {
			con.Printf("soak: %v", err)
			if errors.Is(err, soak.ErrInput) {
				return exitUsage
			}
			return exitHarness
		}
		con.Printf("soak: %d outage(s) from %s written to %s", n, cfg.recordFrom, cfg.Record)
		return exitPass
	}
	sc := cfg.soakConfig()
	sched, err := soak.Plan(&sc)
	if err != nil {
		con.Printf("soak: %v", err)
		return exitUsage
	}
	occ, _ := sched.Occurrences() // validated by Plan
	origin := fmt.Sprintf("seed %d (SOAK_SEED=%d repeats it)", sc.Seed, sc.Seed)
	if sc.Trace != "" {
		origin = "trace " + sc.Trace
	}
	con.Printf("soak: %d %s clients × %g msg/s (+ feeder %g msg/s) for %v; %d faults from %s; report → %s",
		sc.Clients, sc.Client, sc.Rate, sc.FeedRate, sc.Duration, len(occ), origin, sc.Out)
	for i, o := range occ {
		if i == 12 && !cfg.verbose && len(occ) > 14 {
			con.Printf("soak:   … %d more (see %s)", len(occ)-i, filepath.Join(sc.Out, soak.ScheduleFile))
			break
		}
		con.Printf("soak:   %s", o)
	}

	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelInfo
	}
	sc.Logger = slog.New(slog.NewTextHandler(con, &slog.HandlerOptions{Level: level}))
	if con.tty {
		sc.ProgressEvery = time.Second
	}
	sc.OnProgress = func(p soak.Progress) {
		con.Progress(progressLine(p))
		if p.Final {
			con.Done()
		}
	}
	var stopProfiles func() error
	if cfg.heapEvery > 0 {
		stopProfiles = heapProfiles(sc.Out, cfg.heapEvery, time.Now())
	}
	res, err := soak.Run(ctx, sc, sched)
	if stopProfiles != nil {
		if perr := stopProfiles(); perr != nil {
			con.Printf("soak: heap profile: %v", perr)
		} else {
			con.Printf("soak: heap profiles in %s (go tool pprof -base <first> <last>)", sc.Out)
		}
	}
	if err != nil {
		con.Printf("soak: %v", err)
		if ctx.Err() != nil {
			return exitInterrupted
		}
		return exitHarness
	}
	printResult(con, sc, res)
	fmt.Fprintln(stdout, filepath.Join(sc.Out, report.SummaryFile))
	code := exitCode(res)
	if res.CloseErr != nil {
		con.Printf("soak: %v", res.CloseErr)
		if code == exitPass {
			code = exitHarness
		}
	}
	return code
}

// merge joins the reports of a run's shards into one verdict and report.
func merge(ctx context.Context, args []string, stdout io.Writer, con *console, now time.Time) int {
	fs := flag.NewFlagSet("soak merge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("out", "", "report directory for the merged run (default reports/merge-<time>)")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		con.Printf("soak: usage: soak merge [-out dir] <shard report dir>...")
		return exitUsage
	}
	if *out == "" {
		*out = "reports/merge-" + now.Format("20060102-150405")
	}
	dirs, err := expandShards(fs.Args())
	if err != nil {
		con.Printf("soak: %v", err)
		return exitUsage
	}
	m, err := soak.Merge(ctx, *out, dirs...)
	if err != nil {
		con.Printf("soak: %v", err)
		if errors.Is(err, soak.ErrInput) {
			return exitUsage
		}
		return exitHarness
	}
	res := &soak.Result{Ledger: m.Result}
	printVerdict(con, res, filepath.Join(*out, report.IndexFile))
	con.Printf("soak: merged online: %d messages held at most, %d first deliveries untimed, latency quantiles within %.0f%%",
		m.Stats.MaxHeld, m.Untimed, 100*ledger.SketchAccuracy)
	con.Printf("soak: merged %d shards into %s; clocks: %v", len(dirs), filepath.Join(*out, report.IndexFile), m.Summary.Config["clock"])
	fmt.Fprintln(stdout, res.Verdict())
	return exitCode(res)
}

// expandShards expands the arguments of soak merge that are patterns (shard-*) to the directories they
// match, sorted, for callers without a shell (the fleet's merge Job); a pattern that matches no
// directory is an error.
func expandShards(args []string) ([]string, error) {
	var dirs []string
	for _, a := range args {
		if !strings.ContainsAny(a, "*?[") {
			dirs = append(dirs, a)
			continue
		}
		m, err := filepath.Glob(a)
		if err != nil {
			return nil, fmt.Errorf("merge: %q: %w", a, err)
		}
		n := len(dirs)
		for _, p := range m {
			if st, err := os.Stat(p); err == nil && st.IsDir() {
				dirs = append(dirs, p)
			}
		}
		if len(dirs) == n {
			return nil, fmt.Errorf("merge: %q matches no shard report directory", a)
		}
	}
	return dirs, nil
}

// check re-checks a saved history and prints its verdict.
func check(args []string, stdout io.Writer, con *console) int {
	fs := flag.NewFlagSet("soak check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	online := fs.Bool("online", false, "check line by line in bounded memory (latency quantiles within 1%)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		con.Printf("soak: usage: soak check [-online] <history.jsonl.gz | history.jsonl>")
		return exitUsage
	}
	path := fs.Arg(0)
	var lres ledger.Result
	var err error
	if *online {
		var o *ledger.Online
		if o, err = soak.CheckOnline(path); err == nil {
			lres = o.Result()
			con.Printf("soak: checked online: %d messages held at the end, %d first deliveries untimed, latency quantiles within %.0f%%",
				o.Held(), o.Untimed(), 100*ledger.SketchAccuracy)
		}
	} else {
		lres, err = soak.Check(path)
	}
	if err != nil {
		con.Printf("soak: %v", err)
		if errors.Is(err, soak.ErrInput) {
			return exitUsage
		}
		return exitHarness
	}
	res := &soak.Result{Ledger: lres}
	printVerdict(con, res, path)
	fmt.Fprintln(stdout, res.Verdict())
	return exitCode(res)
}

// exitCode: harness errors first (the verdict cannot be trusted), then an interruption, then the verdict:
// anything lost or unexpected, a client that did not come back, or nothing acknowledged (nothing proven)
// fails.
func exitCode(res *soak.Result) int {
	switch {
	case len(res.HarnessErrors) > 0:
		return exitHarness
	case res.Interrupted:
		return exitInterrupted
	case res.Failed():
		return exitFail
	}
	return exitPass
}

// printVerdict prints the ledger's figures and the first lost and unexpected messages; where names the
// report's page (or the history) for the rest.
func printVerdict(con *console, res *soak.Result, where string) {
	l := res.Ledger
	con.Printf("soak: %s  published %d  acknowledged %d  delivered %d  lost %d  unexpected %d  duplicates %d (%d deliveries)  reordered %d  indeterminate %d",
		res.Verdict(), l.Attempted, l.Acknowledged, l.Delivered, len(l.Lost),
		len(l.Unexpected), len(l.Duplicated), l.DuplicateDeliveries, len(l.Reordered), l.Indeterminate)
	for i, x := range l.Lost {
		if i == 5 {
			con.Printf("soak:   … %d more lost (see %s)", len(l.Lost)-i, where)
			break
		}
		ctx := l.Context(x.ID, 2)
		if ctx == nil && res.Summary != nil && i < len(res.Summary.LostExamples) { // a streamed run's: from its history
			ctx = res.Summary.LostExamples[i].Context
		}
		con.Printf("soak: LOST %s\n%s", x, strings.Join(ctx, "\n"))
	}
	for i, u := range l.Unexpected {
		if i == 5 {
			con.Printf("soak:   … %d more unexpected (see %s)", len(l.Unexpected)-i, where)
			break
		}
		con.Printf("soak: UNEXPECTED %s", u)
	}
}

// printResult tells what the run found.
func printResult(con *console, cfg soak.Config, res *soak.Result) {
	printVerdict(con, res, report.IndexFile)
	l, ms := res.Ledger, time.Millisecond
	con.Printf("soak: latency %v; ack latency %v; wall %v (run %v, heal+reconnect %v, drain %v); peak RSS %.1f MiB, peak heap %.1f MiB",
		l.Latency, l.AckLatency, res.Wall.Round(ms), res.RunWall.Round(ms), res.HealWall.Round(ms), res.DrainWall.Round(ms),
		float64(res.PeakRSS)/(1<<20), float64(res.PeakHeap)/(1<<20))
	if cfg.Record != "" && res.Recorded > 0 {
		con.Printf("soak: %d outage(s) recorded to %s", res.Recorded, cfg.Record)
	}
	if len(res.NotReconnected) > 0 {
		con.Printf("soak: FAIL: not reconnected within %v after the heal: %s", cfg.HealTimeout, strings.Join(res.NotReconnected, ", "))
	}
	if !res.Drained {
		con.Printf("soak: warning: deliveries still arriving after the drain timeout %v", cfg.DrainTimeout)
	}
	for _, e := range res.HarnessErrors {
		con.Printf("soak: harness error: %s", e)
	}
	if s := res.Summary; s != nil && s.Valid != (l.Valid() && l.Acknowledged > 0) {
		con.Printf("soak: warning: the report's verdict (%s) differs from the ledger's (valid=%t)", s.Verdict, l.Valid())
	}
	con.Printf("soak: report %s", filepath.Join(cfg.Out, report.IndexFile))
}

// progressLine: phase, elapsed/total, published, acknowledged, delivered (distinct, to the observer or a
// checked subscriber), pending, deliveries to the clients, the faults in force and the clients connected.
func progressLine(p soak.Progress) string {
	fault := p.Faults
	if len(fault) == 0 {
		fault = []string{"none"}
	}
	return fmt.Sprintf("soak %-9s %v/%v  published %d  acked %d  delivered %d  pending %d  received %d  fault %s (%d/%d injected)  up %d/%d",
		p.Phase, p.Elapsed, p.Duration, p.Published, p.Acked, p.Delivered, p.Pending, p.Received,
		strings.Join(fault, "+"), p.Injected, p.Scheduled, p.Up, p.Clients)
}
