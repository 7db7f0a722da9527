// Command bench measures mqttas against eclipse/paho.mqtt.golang on this machine and writes the results
// to bench/results/ (-out), where they are committed:
//
//	bench [flags] bench     throughput, latency, outage detection and recovery, idle memory, allocations
//	                        → bench.json, bench.md
//	bench [flags] compare   the harness's fault scenarios through both clients' adapters, judged by the
//	                        delivery ledger → compare.json, compare.md
//	bench [flags] readme    renders bench.json and compare.json in -out again: bench.md and compare.md, and
//	                        the README's generated sections (between <!-- results:begin NAME … --> and
//	                        <!-- results:end -->), with soak-long.json (make long-soak) the README's
//	                        paragraph and docs/scale.md's table; a results file not produced yet leaves its
//	                        sections empty
//
// bench and compare run the clients interleaved over several rounds (-rounds) against a private
// mosquitto process; each report records the machine, the date, the commit and the command line.
// Run it from the repository's root. Progress goes to stderr. Exit status: 0 done, 1 a measurement
// failed or usage error, 2 interrupted.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mqttas/mqttas-go/bench"
)

func main() {
	if ran, err := bench.IdleChildMain(); ran {
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench idle child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := bench.DefaultBenchConfig()
	dc := bench.DefaultCompareConfig()
	out := fs.String("out", bench.ResultsDir, "directory for the reports (readme: where it reads them)")
	readme := fs.String("readme", bench.README, "readme: the file whose generated sections it rewrites")
	rounds := fs.Int("rounds", 0, "rounds, the clients interleaved in each (default 5 for bench, 2 for compare)")
	libs := fs.String("clients", "", "clients to measure (default: bench "+strings.Join(bench.Libs(), ",")+
		"; compare "+strings.Join(bench.CompareLibs(), ",")+")")
	sections := fs.String("sections", strings.Join(bench.AllSections(), ","), "bench: sections to run")
	scenarios := fs.String("scenarios", strings.Join(bench.ScenarioNames(), ","), "compare: scenarios to run")
	payload := fs.Int("payload", d.PayloadSize, "bench: payload size in bytes")
	q0 := fs.Int("qos0-msgs", d.QoS0Msgs, "bench: qos 0 messages per round")
	q1 := fs.Int("qos1-msgs", d.QoS1SeqMsgs, "bench: qos 1 sequential messages per round")
	wm := fs.Int("window-msgs", d.WindowMsgs, "bench: qos 1 messages per round with -window in flight")
	w := fs.Int("window", d.Window, "bench: qos 1 publications in flight")
	am := fs.Int("alloc-msgs", d.AllocMsgs, "bench: messages per allocation measurement (qos 1: a quarter)")
	idle := fs.Int("idle-clients", d.IdleClients, "bench: idle clients per library")
	downHold := fs.Duration("down-hold", d.DownHold, "bench: how long the link refuses connections in the down trial (+0–1 s)")
	cpuProfileFile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	traceFile := fs.String("trace", "", "write the Go execution trace of the whole run to this file (go tool trace FILE)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: bench [flags] bench|compare|readme\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "bench" && fs.Arg(0) != "compare" && fs.Arg(0) != "readme") {
		fs.Usage()
		return 1
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	if fs.Arg(0) == "readme" {
		changed, err := bench.Update(*readme, *out)
		if err != nil {
			fmt.Fprintln(stderr, "bench readme:", err)
			return 1
		}
		for _, f := range changed {
			logf("rewrote %s from the results in %s", f, *out)
		}
		if len(changed) == 0 {
			logf("%s and the pages in %s are up to date with the results", *readme, *out)
		}
		return 0
	}
	command := commandLine(args)
	for _, p := range []struct {
		file string
		p    profile
	}{{*cpuProfileFile, cpuProfile}, {*traceFile, execTrace}} {
		if p.file == "" {
			continue
		}
		stop, err := p.p.record(p.file)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer stop()
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	var (
		jsonV any
		md    string
		nerr  int
		err   error
	)
	switch fs.Arg(0) {
	case "bench":
		cfg := d
		cfg.Rounds, cfg.Libs, cfg.Sections = *rounds, split(*libs), split(*sections)
		cfg.PayloadSize, cfg.QoS0Msgs, cfg.QoS1SeqMsgs, cfg.WindowMsgs, cfg.Window = *payload, *q0, *q1, *wm, *w
		cfg.AllocMsgs, cfg.IdleClients, cfg.DownHold = *am, *idle, *downHold
		cfg.Log = logf
		if cfg.IdleExe, err = os.Executable(); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		var rep *bench.BenchReport
		if rep, err = bench.RunBench(ctx, cfg); err == nil {
			rep.Command = command
			jsonV, md, nerr = rep, rep.Markdown(), len(rep.Errors)
		}
	case "compare":
		cfg := dc
		cfg.Rounds, cfg.Libs, cfg.Scenarios = *rounds, split(*libs), split(*scenarios)
		cfg.Log = logf
		var rep *bench.CompareReport
		if rep, err = bench.RunCompare(ctx, cfg); err == nil {
			rep.Command = command
			jsonV, md, nerr = rep, rep.Markdown(), len(rep.Errors)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		if errors.Is(err, context.Canceled) {
			return 2
		}
		return 1
	}
	base := filepath.Join(*out, fs.Arg(0))
	if err := writeReports(base, jsonV, md); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	fmt.Fprint(stdout, md)
	logf("wrote %s.json and %s.md", base, base)
	if nerr > 0 {
		logf("%d measurements failed: see the Errors section", nerr)
		return 1
	}
	return 0
}

// commandLine renders how this run was started, as a reader would type it from the repository's root.
func commandLine(args []string) string {
	parts := []string{"go run ./cmd/bench"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func split(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func writeReports(base string, v any, md string) error {
	j, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", append(j, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(base+".md", []byte(md), 0o644)
}
