package bench

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/report"
)

func testMachine() Machine {
	return Machine{Date: "2026-12-05T00:30:00Z", Commit: "0123456789abcdef0123456789abcdef01234567", CPU: "Test CPU",
		Cores: 2, GOMAXPROCS: 2, MemoryGB: "4000000 kB", Kernel: "6.1.0", OS: "Test OS (linux/amd64)", Go: "go1.26.0",
		Mosquitto: "2.0.11", Paho: "v1.5.1", MQTTAS: "0.8.3", LoadStart: "1.00 0.50 0.25", LoadEnd: "2.00 1.00 0.50",
		LoadRounds: []string{"1.00 0.50 0.25", "3.00 1.00 0.50", "2.50 1.00 0.50"}}
}

// testBenchReport is a small report as RunBench builds it, with a failed round (NaN) among the values.
func testBenchReport() *BenchReport {
	cfg := DefaultBenchConfig()
	cfg.Rounds = 3
	r := &BenchReport{Machine: testMachine(), Command: "go run ./cmd/bench bench", Config: cfg,
		Settings: DefaultSettings().String(), byID: map[string]*Metric{}, Duration: 87 * time.Second}
	set := func(id string, f numFormat, lib string, vs ...float64) {
		m := r.metric(id, "the "+id, "unit", "lower", f)
		for i, v := range vs {
			m.set(lib, i, v)
		}
	}
	set("qos0.rate", asRate, MQTTAS, 201000, 187000, 202000)
	set("qos0.rate", asRate, Paho, 173000, 170000, 175000)
	set("qos0.rate", asRate, ToolsName, 118000, 119000, 117000)
	set("qos0.cpu_broker", asUS1, MQTTAS, 5, 5.1, 4.9)
	set("qos0.cpu_broker", asUS1, Paho, 4.7, 4.8, 4.6)
	set("qos1seq.p50", asUS, MQTTAS, 56, 57, 55)
	set("qos1seq.p50", asUS, Paho, 58, 59, 57)
	set("qos1seq.p50", asUS, RawName, 49, 50, 48)
	set("outage.silent.recovery", asMS, MQTTAS, 70, math.NaN(), 64)
	set("outage.silent.recovery", asMS, Paho, 1001, 1002, 1000)
	set("idle.goroutines", asFloat1, MQTTAS, 3, 3, 3)
	set("idle.goroutines", asFloat1, Paho, 10, 10, 10)
	set("allocs.publish-qos0", asFloat1, MQTTAS, 0, 0, 0)
	set("allocs.publish-qos0", asFloat1, Paho, 20, 20, 20)
	for _, m := range r.Metrics {
		m.finish()
	}
	r.Outages = []OutageRun{{Round: 1, Lib: MQTTAS, Kind: "silent", OutageTrial: OutageTrial{Detection: 1750 * time.Millisecond, PendingAtHeal: true}}}
	r.Goals = benchGoals(r)
	r.Errors = []string{"outage silent mqttas round 2: a test failure"}
	return r
}

func testCompareReport() *CompareReport {
	cfg := DefaultCompareConfig()
	r := &CompareReport{Machine: testMachine(), Command: "go run ./cmd/bench compare", Config: cfg,
		Settings: DefaultSettings().String(), Duration: 443 * time.Second}
	for _, s := range scenarios() {
		r.Scenarios = append(r.Scenarios, ScenarioInfo{s.name, s.desc})
	}
	f := func(x float64) *float64 { return &x }
	for round := 1; round <= cfg.Rounds; round++ {
		r.Verdicts = append(r.Verdicts,
			Verdict{Scenario: "reset", Client: MQTTAS, Round: round, QoS: 1, Attempted: 500, Acked: 500, Delivered: 500,
				Duplicates: round - 1, Outages: 1, DetectionMS: f(0.5), RecoveryMS: f(float64(400 * round)), SuccessWithoutPuback: 0, SuccessNeverSent: -1},
			Verdict{Scenario: "reset", Client: Paho, Round: round, QoS: 1, Attempted: 500, Acked: 500, Delivered: 500,
				Outages: 1, DetectionMS: f(0.7), RecoveryMS: f(898), ErrorButDelivered: 1, SuccessWithoutPuback: 0, SuccessNeverSent: -1},
			Verdict{Scenario: "drop-pubacks", Client: MQTTAS, Round: round, QoS: 1, Attempted: 600, Acked: 600, Delivered: 600,
				Duplicates: 2, RecoveryMS: f(float64(700 + 600*round)), SuccessWithoutPuback: 0, SuccessNeverSent: -1},
			Verdict{Scenario: "drop-pubacks", Client: Paho, Round: round, QoS: 1, Attempted: 300, Acked: 100, Delivered: 300,
				Stalled: true, Notes: []string{"no publication completed within 6s of the heal"}, SuccessWithoutPuback: 0, SuccessNeverSent: -1},
			Verdict{Scenario: "qos0-down", Client: Paho, Round: round, QoS: 0, Attempted: 1000, Acked: 1000, Delivered: 400, Lost: 600,
				FalseSuccesses: 600, FalseSuccessesWhileDown: 550, Outages: 1, SuccessWithoutPuback: -1, SuccessNeverSent: 500})
	}
	r.Gaps = gapChecks(r.Verdicts)
	r.Goals = compareGoals(r.Verdicts, DefaultSettings())
	return r
}

func writeJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// A saved report renders exactly the tables the live one did: everything the tables need is in the JSON.
func TestResultsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	br, cr := testBenchReport(), testCompareReport()
	bfile, cfile := writeJSON(t, dir, BenchFile, br), writeJSON(t, dir, CompareFile, cr)
	bl, err := LoadBenchReport(bfile)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := LoadCompareReport(cfile)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := bl.Markdown(), br.Markdown(); got != want {
		t.Errorf("bench.md from the saved report differs at %s", FirstDifference(got, want))
	}
	if got, want := ReadmeBench(bl), ReadmeBench(br); got != want {
		t.Errorf("the README's bench section from the saved report differs at %s", FirstDifference(got, want))
	}
	if got, want := cl.Markdown(), cr.Markdown(); got != want {
		t.Errorf("compare.md from the saved report differs at %s", FirstDifference(got, want))
	}
	if got, want := ReadmeCompare(cl), ReadmeCompare(cr); got != want {
		t.Errorf("the README's compare section from the saved report differs at %s", FirstDifference(got, want))
	}
	if s := bl.Metric("outage.silent.recovery").Summary[MQTTAS]; s.N != 2 || s.Median != 67 {
		t.Errorf("a failed round must stay out of the summary: %+v", s)
	}
	if v := bl.Metric("outage.silent.recovery").Values[MQTTAS]; len(v) != 3 || !math.IsNaN(v[1]) {
		t.Errorf("a failed round must read back as NaN: %v", v)
	}
	md := ReadmeBench(bl)
	for _, want := range []string{
		"Measured by `make bench` (`go run ./cmd/bench bench`) on Test CPU, 2 logical CPUs",
		"started 2026-12-05T00:30:00Z at commit `0123456789abcdef0123456789abcdef01234567`, took 1m27s",
		"load average (1/5/15 min) 1.00 0.50 0.25 at the start, 1.00 0.50 0.25 / 3.00 1.00 0.50 / 2.50 1.00 0.50 as the rounds started, 2.00 1.00 0.50 at the end",
		"### Goals of `make bench`", "| limit in this run |",
		"| the qos0.rate | 201.0k [187.0k–202.0k] | 173.0k [170.0k–175.0k] | 1.15× [1.10×–1.16×] | mosquitto_pub/sub: 118.0k [117.0k–119.0k] | 1.70× [1.57×–1.73×] |",
		"| the outage.silent.recovery | 67.0 ms [64.0 ms–70.0 ms] | 1001 ms [1000 ms–1002 ms] |",
		"1 measurements failed in this run",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the bench section lacks %q:\n%s", want, md)
		}
	}
	cmd := ReadmeCompare(cl)
	for _, want := range []string{"Measured by `make compare` (`go run ./cmd/bench compare`)", "### Goals of `make compare`",
		"### Verdicts, one column per client", "### Verdicts: mqttas", "### Verdicts: paho", "| reset | 1000 | 1000 | 0 | 0 | 1 | 2 |"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("the compare section lacks %q:\n%s", want, cmd)
		}
	}
}

// Damaged, foreign or incomplete results files are rejected with an error that names the file.
func TestLoadRejectsDamagedResults(t *testing.T) {
	dir := t.TempDir()
	good := func(v any) map[string]any {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	encode := func(m map[string]any) string {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	edit := func(v any, f func(map[string]any)) string { m := good(v); f(m); return encode(m) }
	br, cr := testBenchReport(), testCompareReport()
	machine := func(m map[string]any) map[string]any { return m["machine"].(map[string]any) }
	metric0 := func(m map[string]any) map[string]any { return m["metrics"].([]any)[0].(map[string]any) }
	goodBench := encode(good(br))
	cases := []struct {
		name, text string
		compare    bool
	}{
		{"empty", "", false},
		{"truncated", goodBench[:len(goodBench)/2], false},
		{"not JSON", "mqttas was faster\n", false},
		{"trailing data", goodBench + "\n{}", false},
		{"unknown field", edit(br, func(m map[string]any) { m["speedup"] = 2 }), false},
		{"unknown nested field", edit(br, func(m map[string]any) {
			metric0(m)["summary"].(map[string]any)[MQTTAS].(map[string]any)["mean"] = 1
		}), false},
		{"wrong type", edit(br, func(m map[string]any) { machine(m)["cores"] = "two" }), false},
		{"no commit", edit(br, func(m map[string]any) { machine(m)["commit"] = "" }), false},
		{"no date", edit(br, func(m map[string]any) { delete(machine(m), "date") }), false},
		{"no command", edit(br, func(m map[string]any) { delete(m, "command") }), false},
		{"unknown format", edit(br, func(m map[string]any) { metric0(m)["format"] = "roman" }), false},
		{"no format", edit(br, func(m map[string]any) { delete(metric0(m), "format") }), false},
		{"summary without statistics", edit(br, func(m map[string]any) {
			metric0(m)["summary"].(map[string]any)[MQTTAS].(map[string]any)["median"] = nil
		}), false},
		{"more values than rounds", edit(br, func(m map[string]any) {
			metric0(m)["values"].(map[string]any)[MQTTAS] = []any{1, 2, 3, 4}
		}), false},
		{"a goal without a verdict", edit(br, func(m map[string]any) {
			m["goals"].([]any)[0].(map[string]any)["status"] = "nearly"
		}), false},
		{"a compare report read as a bench report", encode(good(cr)), false},
		{"a bench report read as a compare report", goodBench, true},
		{"a verdict of an unknown scenario", edit(cr, func(m map[string]any) {
			m["verdicts"].([]any)[0].(map[string]any)["scenario"] = "meteor"
		}), true},
		{"a verdict of an unknown round", edit(cr, func(m map[string]any) {
			m["verdicts"].([]any)[0].(map[string]any)["round"] = 9
		}), true},
		{"no verdicts", edit(cr, func(m map[string]any) { m["verdicts"] = []any{} }), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".json")
			if err := os.WriteFile(file, []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			var err error
			if c.compare {
				_, err = LoadCompareReport(file)
			} else {
				_, err = LoadBenchReport(file)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrBadResults) || !strings.Contains(err.Error(), file) {
				t.Errorf("error %q: want ErrBadResults naming %s", err, file)
			}
		})
	}
	if _, err := LoadBenchReport(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("a missing file: %v", err)
	}
}

func TestSplice(t *testing.T) {
	sections := map[string]string{"bench": "B1\nB2\n", "compare": "C1"}
	doc := "# Title\r\nintro\n" + BeginMarker("bench") + "\nold bench\n" + EndMarker + "\nmiddle\n" +
		"<!-- results:begin compare (generated by: an older command) -->\n" + EndMarker + "\ntail"
	got, err := Splice(doc, sections)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Title\r\nintro\n" + BeginMarker("bench") + "\n\nB1\nB2\n\n" + EndMarker + "\nmiddle\n" +
		BeginMarker("compare") + "\n\nC1\n\n" + EndMarker + "\ntail"
	if got != want {
		t.Errorf("Splice =\n%q\nwant\n%q", got, want)
	}
	if again, err := Splice(got, sections); err != nil || again != got {
		t.Errorf("splicing twice changed the document (%v):\n%q", err, again)
	}
	for _, c := range []struct{ name, doc, want string }{
		{"no markers", "# README\nno results here\n", "none found"},
		{"never closed", BeginMarker("bench") + "\nB\n", `section "bench" opened at line 1 is never closed`},
		{"closed without opening", "x\n" + EndMarker + "\n", "line 2 closes a section that was not opened"},
		{"nested", BeginMarker("bench") + "\n" + BeginMarker("compare") + "\n" + EndMarker + "\n" + EndMarker + "\n",
			`line 2 opens section "compare" inside section "bench"`},
		{"twice", BeginMarker("bench") + "\n" + EndMarker + "\n" + BeginMarker("bench") + "\n" + EndMarker + "\n",
			`line 3 opens section "bench" a second time`},
		{"unknown section", "<!-- results:begin soak -->\n" + EndMarker + "\n", `section "soak", which is not generated (known: bench, compare)`},
		{"missing section", BeginMarker("bench") + "\n" + EndMarker + "\n", "no section compare"},
		{"malformed marker", "<!-- results:begn bench -->\n", "a malformed marker"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := Splice(c.doc, sections)
			if err == nil {
				t.Fatalf("accepted:\n%s", out)
			}
			if !errors.Is(err, ErrMarkers) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q: want ErrMarkers with %q", err, c.want)
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	dir := t.TempDir()
	br, cr := testBenchReport(), testCompareReport()
	writeJSON(t, dir, BenchFile, br)
	writeJSON(t, dir, CompareFile, cr)
	readme := filepath.Join(dir, "README.md")
	doc := "# R\n" + BeginMarker("bench") + "\n" + EndMarker + "\n\n" + BeginMarker("compare") + "\n" + EndMarker + "\n" +
		BeginMarker(longSoakSection) + "\n" + EndMarker + "\n"
	if err := os.WriteFile(readme, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	benchMD, compareMD := filepath.Join(dir, "bench.md"), filepath.Join(dir, "compare.md")
	if err := os.WriteFile(compareMD, []byte("edited by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := Update(readme, dir)
	if err != nil || strings.Join(changed, " ") != strings.Join([]string{benchMD, compareMD, readme}, " ") {
		t.Fatalf("Update = %q, %v; want the two pages and the README", changed, err)
	}
	if changed, err := Update(readme, dir); err != nil || len(changed) != 0 {
		t.Fatalf("a second Update = %q, %v; want no change", changed, err)
	}
	for file, want := range map[string]string{benchMD: br.Markdown(), compareMD: cr.Markdown()} {
		if b, err := os.ReadFile(file); err != nil || string(b) != want {
			t.Errorf("%s is not the report's page (%v)", file, err)
		}
	}
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "### Goals of `make bench`") || !strings.Contains(string(b), "### Verdicts: paho") {
		t.Errorf("README without the generated tables:\n%s", b)
	}
	if err := os.WriteFile(readme, []byte("# R\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Update(readme, dir); !errors.Is(err, ErrMarkers) || !strings.Contains(err.Error(), readme) {
		t.Errorf("a README without markers: %v, want ErrMarkers naming %s", err, readme)
	}
}

// The recovery goals: ≤ 1 s after faults that break the connection, ResponseTime + PubackLossSlack after
// PUBACK loss; met only when a run shows it.
func TestCompareRecoveryGoals(t *testing.T) {
	s := DefaultSettings()
	f := func(x float64) *float64 { return &x }
	goal := func(vs []Verdict, prefix string) Goal {
		t.Helper()
		for _, g := range compareGoals(vs, s) {
			if strings.HasPrefix(g.Goal, prefix) {
				return g
			}
		}
		t.Fatalf("no goal %q", prefix)
		return Goal{}
	}
	const conn, puback = "recovery ≤ 1 s after every fault but PUBACK loss", "recovery after PUBACK loss ≤ ResponseTime + 250ms = 2.25s"
	vs := []Verdict{
		{Scenario: "reset", Client: MQTTAS, Round: 1, QoS: 1, RecoveryMS: f(900)},
		{Scenario: "drop-pubacks", Client: MQTTAS, Round: 1, QoS: 1, RecoveryMS: f(1900)},
		{Scenario: "drop-pubacks+reset", Client: MQTTAS, Round: 1, QoS: 1, RecoveryMS: f(3)},
		{Scenario: "slow-handler", Client: MQTTAS, Round: 1, QoS: 1},
		{Scenario: "reset", Client: Paho, Round: 1, QoS: 1, RecoveryMS: f(5000)},
	}
	if g := goal(vs, conn); g.Status != goalMet || g.Measured != "worst 900 ms (reset (round 1)) in 1 runs" {
		t.Errorf("%+v", g)
	}
	if g := goal(vs, puback); g.Status != goalMet || g.Measured != "worst 1900 ms (drop-pubacks (round 1)) in 2 runs" {
		t.Errorf("%+v", g)
	}
	vs[1].RecoveryMS = f(2300)
	if g := goal(vs, puback); g.Status != goalMissed || g.Measured != "drop-pubacks (round 1): 2300 ms" {
		t.Errorf("over ResponseTime + slack: %+v", g)
	}
	vs[0].RecoveryMS, vs[0].Stalled = nil, true
	if g := goal(vs, conn); g.Status != goalMissed || g.Measured != "reset (round 1): never recovered" {
		t.Errorf("a stall: %+v", g)
	}
	if g := goal(vs[3:], conn); g.Status != goalUnknown {
		t.Errorf("no run of a connection fault: %+v", g)
	}
	failed := []Verdict{vs[2], {Scenario: "drop-pubacks", Client: MQTTAS, Round: 2, QoS: 1, Error: "rig: no broker"}}
	if g := goal(failed, puback); g.Status != goalUnknown || !strings.Contains(g.Measured, "1 runs failed") {
		t.Errorf("a failed run: %+v", g)
	}
	if g := goal(failed, "0 messages lost"); g.Status != goalUnknown || !strings.Contains(g.Measured, "1 runs failed") {
		t.Errorf("a failed run: %+v", g)
	}
}

// With only one of the results files, readme renders the sections it has results for and leaves the other
// as its bare markers (and its page alone); with neither it fails, naming both files.
func TestUpdateWithOneResultsFile(t *testing.T) {
	doc := "# R\n" + BeginMarker("bench") + "\n" + EndMarker + "\n\ntext\n" + BeginMarker("compare") + "\n" + EndMarker + "\n" +
		BeginMarker(longSoakSection) + "\n" + EndMarker + "\n"
	for _, c := range []struct {
		have, missing, haveSection, missingSection string
		v                                          any
		want                                       string
	}{
		{BenchFile, CompareFile, "bench", "compare", testBenchReport(), "### Goals of `make bench`"},
		{CompareFile, BenchFile, "compare", "bench", testCompareReport(), "### Goals of `make compare`"},
	} {
		t.Run(c.have, func(t *testing.T) {
			dir := t.TempDir()
			writeJSON(t, dir, c.have, c.v)
			readme := filepath.Join(dir, "README.md")
			if err := os.WriteFile(readme, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			page := filepath.Join(dir, strings.TrimSuffix(c.have, ".json")+".md")
			changed, err := Update(readme, dir)
			if err != nil || strings.Join(changed, " ") != page+" "+readme {
				t.Fatalf("Update = %q, %v; want %s and the README", changed, err, page)
			}
			if _, err := os.Stat(filepath.Join(dir, strings.TrimSuffix(c.missing, ".json")+".md")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a page was written for the missing %s (%v)", c.missing, err)
			}
			b, err := os.ReadFile(readme)
			if err != nil {
				t.Fatal(err)
			}
			got := string(b)
			if !strings.Contains(got, c.want) {
				t.Errorf("the %s section was not rendered:\n%s", c.haveSection, got)
			}
			if empty := BeginMarker(c.missingSection) + "\n" + EndMarker + "\n"; !strings.Contains(got, empty) {
				t.Errorf("the %s section is not its bare markers %q:\n%s", c.missingSection, empty, got)
			}
			if !strings.Contains(got, EndMarker+"\n\ntext\n") {
				t.Errorf("the text between the sections changed:\n%s", got)
			}
			if changed, err := Update(readme, dir); err != nil || len(changed) != 0 {
				t.Errorf("a second Update = %q, %v; want no change", changed, err)
			}
		})
	}
	dir := t.TempDir()
	readme := filepath.Join(dir, "README.md")
	if err := os.WriteFile(readme, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Update(readme, dir)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(dir, BenchFile)) ||
		!strings.Contains(err.Error(), filepath.Join(dir, CompareFile)) {
		t.Errorf("Update without results: %v; want ErrNotExist naming both files", err)
	}
	if b, _ := os.ReadFile(readme); string(b) != doc {
		t.Errorf("Update without results changed the README:\n%s", b)
	}
}

// The repository's README and result pages are what the committed results render: a figure in them that
// no results file holds, or a results file whose tables were not rendered, fails here. A results file not
// committed yet leaves its section as the bare markers and has no page. (Fix with: go run ./cmd/bench readme.)
func TestRepositoryReadmeMatchesResults(t *testing.T) {
	root := ".." // the package's directory is bench/
	dir := filepath.Join(root, ResultsDir)
	readme := filepath.Join(root, README)
	br, berr := LoadBenchReport(filepath.Join(dir, BenchFile))
	cr, cerr := LoadCompareReport(filepath.Join(dir, CompareFile))
	checkPage(t, dir, BenchFile, berr, func() string { return br.Markdown() })
	checkPage(t, dir, CompareFile, cerr, func() string { return cr.Markdown() })
	if berr != nil {
		br = nil
	}
	if cerr != nil {
		cr = nil
	}
	doc, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	long, err := LoadLongSoak(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Splice(string(doc), ReadmeSections(br, cr, long))
	if err != nil {
		t.Fatal(err)
	}
	if string(doc) != want {
		t.Errorf("README.md's generated sections are not what the committed results render, at %s (run %s)",
			FirstDifference(string(doc), want), ReadmeCommand)
	}
	scale, err := os.ReadFile(filepath.Join(root, ScaleDoc))
	if err != nil {
		t.Fatal(err)
	}
	if want, err := Splice(string(scale), ScaleSections(long)); err != nil {
		t.Fatalf("%s: %v", ScaleDoc, err)
	} else if string(scale) != want {
		t.Errorf("%s's generated sections are not what the committed results render, at %s (run %s)",
			ScaleDoc, FirstDifference(string(scale), want), ReadmeCommand)
	}
	for name, r := range map[string]bool{"bench": br == nil, "compare": cr == nil} {
		if empty := BeginMarker(name) + "\n" + EndMarker + "\n"; r && !strings.Contains(string(doc), empty) {
			t.Errorf("README.md's %s section is not empty although its results are not committed", name)
		}
	}
}

// checkPage checks the page next to the results file name in dir against what render makes of it, given
// the error of loading it: no results file, no page.
func checkPage(t *testing.T, dir, name string, loadErr error, render func() string) {
	t.Helper()
	page := strings.TrimSuffix(name, ".json") + ".md"
	have, perr := os.ReadFile(filepath.Join(dir, page))
	switch {
	case errors.Is(loadErr, os.ErrNotExist):
		if perr == nil {
			t.Errorf("%s exists without %s: a page no results file renders", page, name)
		}
	case loadErr != nil:
		t.Errorf("the committed results: %v", loadErr)
	case perr != nil:
		t.Errorf("%s has no page: %v (run %s)", name, perr, ReadmeCommand)
	default:
		if want := render(); string(have) != want {
			t.Errorf("%s is not what %s renders, at %s (run %s)", page, name, FirstDifference(string(have), want), ReadmeCommand)
		}
	}
}

// The long soak's figures render the README's paragraph and docs/scale.md's table; a damaged figures file
// is an error that names it and changes neither document.
func TestUpdateRendersTheLongSoak(t *testing.T) {
	dir := t.TempDir()
	writeJSON(t, dir, BenchFile, testBenchReport())
	readme := filepath.Join(dir, "README.md")
	doc := "# R\n" + BeginMarker("bench") + "\n" + EndMarker + "\n" + BeginMarker("compare") + "\n" + EndMarker + "\n" +
		BeginMarker(longSoakSection) + "\n" + EndMarker + "\n"
	scale := filepath.Join(dir, ScaleDoc)
	scaleDoc := "# Scale\n" + BeginMarker(longSoakTable) + "\n" + EndMarker + "\ntail\n"
	if err := os.MkdirAll(filepath.Dir(scale), 0o755); err != nil {
		t.Fatal(err)
	}
	for file, body := range map[string]string{readme: doc, scale: scaleDoc} {
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Without figures both sections stay their bare markers.
	if _, err := Update(readme, dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(scale); string(b) != scaleDoc {
		t.Errorf("docs/scale.md changed without figures:\n%s", b)
	}
	writeJSON(t, dir, SoakLongFile, []report.Figures{{Report: "long-1", Started: "2026-12-06T19:15:25Z", Seed: 10,
		Verdict: "PASS", Clients: 200, RatePerClient: 50, FeedRate: 50, Duration: "1h30m0s", FaultsInjected: 256,
		Messages: 10_000_219, Acknowledged: 10_000_219, Deliveries: 36_650_453, Duplicates: 35_291,
		PeakRSSBytes: 232_128_512, PeakHeapBytes: 156_874_192, HistoryFile: "history.jsonl.gz",
		HistoryBytes: 857_637_025, BytesPerMessage: 85.76, WallRun: "32m55.51s"}})
	changed, err := Update(readme, dir)
	if err != nil || strings.Join(changed, " ") != readme+" "+scale {
		t.Fatalf("Update = %q, %v; want the README and %s", changed, err, scale)
	}
	b, _ := os.ReadFile(readme)
	for _, want := range []string{"10,000,219 messages published", "36,650,453 times", "0 lost", "peak RSS 221.4 MiB", "history 858 MB"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the README's long-soak paragraph lacks %q:\n%s", want, b)
		}
	}
	b, _ = os.ReadFile(scale)
	for _, want := range []string{"| messages published / acknowledged | 10,000,219 / 10,000,219 |", "| peak RSS (VmHWM) / peak heap | 221.4 MiB / 149.6 MiB |", "\ntail\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("docs/scale.md lacks %q:\n%s", want, b)
		}
	}
	rendered := string(b)
	if err := os.WriteFile(filepath.Join(dir, SoakLongFile), []byte(`[{"report": "long-1", "messages": `), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Update(readme, dir); !errors.Is(err, report.ErrFigures) || !strings.Contains(err.Error(), SoakLongFile) {
		t.Errorf("Update with damaged figures: %v, want report.ErrFigures naming %s", err, SoakLongFile)
	}
	if b, _ := os.ReadFile(scale); string(b) != rendered {
		t.Error("Update with damaged figures changed docs/scale.md")
	}
}

func TestGrouped(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 35291: "35,291", 10000219: "10,000,219", -1234567: "-1,234,567"} {
		if got := grouped(n); got != want {
			t.Errorf("grouped(%d) = %q, want %q", n, got, want)
		}
	}
}
