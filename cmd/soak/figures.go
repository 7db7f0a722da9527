package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mqttas/mqttas-go/harness/report"
)

// figures reads soak reports (their summary.json and the size of their history) and writes their scale
// figures as JSON to -o (or stdout), one object per report, and a line each to the console. With bounds
// (-max-peak-rss, -max-history, -min-messages) it exits exitFail when a run is outside one of them.
func figures(args []string, stdout io.Writer, con *console) int {
	fs := flag.NewFlagSet("soak figures", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("o", "", "write the JSON here instead of stdout")
	var b bounds
	fs.Float64Var(&b.maxRSSMiB, "max-peak-rss", 0, "fail unless each run's peak RSS is below this many MiB (0: no bound)")
	fs.Int64Var(&b.maxHistory, "max-history", 0, "fail unless each run's history file is below this many bytes (0: no bound)")
	fs.IntVar(&b.minMessages, "min-messages", 0, "fail unless each run published at least this many messages")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 || b.maxRSSMiB < 0 || b.maxHistory < 0 || b.minMessages < 0 {
		con.Printf("soak: usage: soak figures [-o file.json] [-max-peak-rss MiB] [-max-history bytes] [-min-messages n] <report dir>...")
		return exitUsage
	}
	var all []report.Figures
	for _, dir := range fs.Args() {
		f, err := report.FiguresOf(dir)
		if err != nil {
			con.Printf("soak: figures: %v", err)
			return exitUsage
		}
		con.Printf("soak: %s: %s, %d messages, peak RSS %.1f MiB, history %d bytes (%.1f bytes a message)", dir, f.Verdict,
			f.Messages, f.PeakRSSBytes/(1<<20), f.HistoryBytes, f.BytesPerMessage)
		all = append(all, f)
	}
	code := exitPass
	for _, f := range all {
		for _, v := range b.violations(f) {
			con.Printf("soak: figures: %s: %s", f.Report, v)
			code = exitFail
		}
	}
	js, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		con.Printf("soak: figures: %v", err)
		return exitHarness
	}
	js = append(js, '\n')
	if *out == "" {
		_, _ = stdout.Write(js)
		return code
	}
	if err := os.WriteFile(*out, js, 0o644); err != nil {
		con.Printf("soak: figures: %v", err)
		return exitHarness
	}
	return code
}

// bounds are what a long soak must stay within (zero: unbounded); with any of them set, a run must also
// have passed with nothing lost.
type bounds struct {
	maxRSSMiB   float64
	maxHistory  int64
	minMessages int
}

func (b bounds) violations(f report.Figures) []string {
	if b == (bounds{}) {
		return nil
	}
	var v []string
	if f.Verdict != "PASS" || f.Lost > 0 {
		v = append(v, fmt.Sprintf("verdict %s with %d lost, want PASS with 0", f.Verdict, f.Lost))
	}
	if b.maxRSSMiB > 0 && f.PeakRSSBytes/(1<<20) >= b.maxRSSMiB {
		v = append(v, fmt.Sprintf("peak RSS %.1f MiB, want below %g MiB", f.PeakRSSBytes/(1<<20), b.maxRSSMiB))
	}
	if b.maxHistory > 0 && f.HistoryBytes >= b.maxHistory {
		v = append(v, fmt.Sprintf("history %d bytes, want below %d", f.HistoryBytes, b.maxHistory))
	}
	if f.Messages < b.minMessages {
		v = append(v, fmt.Sprintf("%d messages published, want at least %d", f.Messages, b.minMessages))
	}
	return v
}
