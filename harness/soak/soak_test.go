package soak

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/report"
	"github.com/mqttas/mqttas-go/harness/schedule"
)

func TestMain(m *testing.M) {
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	os.Exit(m.Run())
}

func TestVmHWM(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	if v := vmHWM(); v < 1<<20 {
		t.Fatalf("peak RSS %d bytes", v)
	}
	m := newMemPeak()
	if _, heap := m.peaks(); heap == 0 {
		t.Fatal("no heap figure")
	}
}

// shortConfig is a short run's configuration: n clients at 10 msg/s, writing to dir.
func shortConfig(dir string, n int) Config {
	cfg := DefaultConfig()
	cfg.Clients, cfg.Rate, cfg.FeedRate, cfg.Out = n, 10, 10, dir
	cfg.DrainQuiet, cfg.HealTimeout, cfg.DrainTimeout = 2*time.Second, 30*time.Second, 20*time.Second
	return cfg
}

// runSoak plans and runs cfg, and returns its result and the summary it wrote.
func runSoak(t *testing.T, cfg Config) (*Result, report.Summary) {
	t.Helper()
	ctx := t.Context()
	sched, err := Plan(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	var progress []Progress
	cfg.ProgressEvery = 500 * time.Millisecond
	cfg.OnProgress = func(p Progress) { progress = append(progress, p) }
	res, err := Run(ctx, cfg, sched)
	if err != nil {
		t.Fatal(err)
	}
	if res.CloseErr != nil {
		t.Error(res.CloseErr)
	}
	if len(progress) < 2 || !progress[len(progress)-1].Final || progress[0].Clients != cfg.Clients {
		t.Errorf("progress %+v", progress)
	}
	for _, f := range []string{report.SummaryFile, report.HistoryFile, report.IndexFile, ScheduleFile, TimelineFile} {
		if fi, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil || fi.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	return res, readSummary(t, cfg.Out)
}

// readSummary reads the summary a run wrote to dir.
func readSummary(t *testing.T, dir string) report.Summary {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, report.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	var sum report.Summary
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	return sum
}

// sameVerdict fails unless the history saved in dir checks again to res.
func sameVerdict(t *testing.T, dir string, res ledger.Result) ledger.Result {
	t.Helper()
	again, err := Check(filepath.Join(dir, report.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	if exactPart(again) != exactPart(res) || len(again.Lost) != len(res.Lost) || !slices.Equal(lostIDs(again), lostIDs(res)) ||
		len(again.Unexpected) != len(res.Unexpected) || again.DuplicateDeliveries != res.DuplicateDeliveries {
		t.Fatalf("the saved history checks to\n%s\nthe run's verdict was\n%s", again.Summary(), res.Summary())
	}
	return again
}

// exactPart is r's summary without the latency quantiles, which the run's online check gives within
// ledger.SketchAccuracy of a check of the saved history (their N is the same).
func exactPart(r ledger.Result) string {
	r.Latency = ledger.Quantiles{N: r.Latency.N}
	r.AckLatency = ledger.Quantiles{N: r.AckLatency.N}
	return r.Summary()
}

func lostIDs(r ledger.Result) []string {
	var out []string
	for _, l := range r.Lost {
		out = append(out, l.ID.String()+"→"+l.Subscriber)
	}
	slices.Sort(out)
	return out
}

// The short soak, end to end in process: a real broker, the link, 3 clients under a seeded random
// schedule of two faults (a blackhole, then the link down); it must pass and write the report, and the
// history it saved must check again to the same verdict.
func TestShortSoakEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "report")
	cfg := shortConfig(dir, 3)
	cfg.Duration, cfg.Seed = 10*time.Second, 18
	res, sum := runSoak(t, cfg)
	if res.Verdict() != "PASS" || res.Failed() || len(res.HarnessErrors) > 0 {
		t.Fatalf("verdict %s: %s; harness errors %v", res.Verdict(), res.Ledger.Summary(), res.HarnessErrors)
	}
	if !sum.Valid || sum.Lost != 0 || sum.Acknowledged < 100 {
		t.Fatalf("summary: valid %t, lost %d, acknowledged %d", sum.Valid, sum.Lost, sum.Acknowledged)
	}
	sched, err := schedule.Load(filepath.Join(dir, ScheduleFile))
	if err != nil {
		t.Fatal(err)
	}
	occ, _ := sched.Occurrences()
	var names []string
	for _, o := range occ {
		names = append(names, o.Fault.Name())
	}
	if !slices.Equal(names, []string{"blackhole", "down"}) {
		t.Fatalf("seed 18 drew %v", names)
	}
	want, _ := schedule.Random(18, 10*time.Second, schedule.RandomOptions{})
	wantYAML, _ := schedule.Marshal(want)
	if got, _ := os.ReadFile(filepath.Join(dir, ScheduleFile)); !bytes.Equal(got, wantYAML) {
		t.Fatalf("schedule.yaml differs from seed 18's schedule:\n%s\nwant\n%s", got, wantYAML)
	}
	if len(sum.Faults) != 2 || len(sum.Schedule) != 2 {
		t.Fatalf("faults injected %v, scheduled %v", sum.Faults, sum.Schedule)
	}
	if sum.Config["clients"] != float64(3) || sum.Seed != 18 || sum.Config["peak_rss_bytes"] == float64(0) {
		t.Fatalf("config %v, seed %d", sum.Config, sum.Seed)
	}
	outages := 0
	for _, c := range sum.Clients {
		outages += c.Outages
	}
	if outages < 3 {
		t.Fatalf("the clients went through %d outages under a blackhole and a down link", outages)
	}
	sameVerdict(t, dir, res.Ledger)
}

func TestPlanAndValidate(t *testing.T) {
	cfg := shortConfig(t.TempDir(), 2)
	cfg.Trace, cfg.Duration, cfg.Tail = "../../traces/ap-reboot.yaml", 0, 2*time.Second
	s, err := Plan(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Duration != s.End()+2*time.Second {
		t.Fatalf("duration %v, trace end %v", cfg.Duration, s.End())
	}
	cfg.Duration = time.Second
	if _, err := Plan(&cfg); err == nil {
		t.Fatal("a duration shorter than the trace was accepted")
	}
	cfg.Trace = filepath.Join(t.TempDir(), "missing.yaml")
	if _, err := Plan(&cfg); err == nil {
		t.Fatal("a missing trace was accepted")
	}
	bad := shortConfig("", 0)
	bad.Client = "hivemq"
	if err := bad.Validate(); err == nil {
		t.Fatal("a bad configuration was accepted")
	}
	if _, err := Check(filepath.Join(t.TempDir(), "none.jsonl")); err == nil {
		t.Fatal("checked a missing history")
	}
}

// A soak drives an out-of-process client like a Go one: two clients of a driver (paho-mqtt for Python,
// MQTT.js for Node) through the driver protocol under seed 18's schedule. Whatever the library's verdict,
// the run must end without a harness error, publish and acknowledge through the driver, record the client
// and its library's version, and its saved history must check again to the same verdict.
func TestShortSoakPython(t *testing.T) { shortDriverSoak(t, "python") }

func TestShortSoakNode(t *testing.T) { shortDriverSoak(t, "node") }

func shortDriverSoak(t *testing.T, client string) {
	if testing.Short() {
		t.Skip("starts a broker and " + client + " drivers")
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "report")
	cfg := shortConfig(dir, 2)
	cfg.Duration, cfg.Seed, cfg.Client = 8*time.Second, 18, client
	res, sum := runSoak(t, cfg)
	if len(res.HarnessErrors) > 0 {
		t.Fatalf("harness errors %v", res.HarnessErrors)
	}
	if !sum.Valid || sum.Acknowledged < 20 || sum.Config["client"] != client {
		t.Fatalf("summary: valid %t, acknowledged %d, client %v", sum.Valid, sum.Acknowledged, sum.Config["client"])
	}
	lib := map[string]string{"python": "paho-mqtt", "node": "mqtt.js"}[client]
	if sum.Versions[lib] == "" {
		t.Errorf("the report's versions %v do not name the driver's library %s", sum.Versions, lib)
	}
	t.Logf("%s (%s %s) under seed 18: %s", client, lib, sum.Versions[lib], res.Ledger.Summary())
	sameVerdict(t, dir, res.Ledger)
}

// A message bound ends the run once that many were published, well before its duration, and the
// summary says so.
func TestSoakEndsAtItsMessageBound(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "report")
	cfg := shortConfig(dir, 2)
	cfg.Duration, cfg.Seed, cfg.Messages = 2*time.Minute, 18, 150 // 30 msg/s: about 5 s
	res, sum := runSoak(t, cfg)
	if res.Verdict() != "PASS" || !res.ReachedMessages || res.Interrupted {
		t.Fatalf("verdict %s, reached %t, interrupted %t: %s", res.Verdict(), res.ReachedMessages, res.Interrupted, res.Ledger.Summary())
	}
	if res.RunWall >= time.Minute || sum.Attempted < 150 {
		t.Fatalf("ran %v for %d messages; the bound was 150 within 2m", res.RunWall, sum.Attempted)
	}
	if sum.Config["messages_bound"] != float64(150) || sum.Config["reached_messages"] != true {
		t.Fatalf("config %v", sum.Config)
	}
	bad := shortConfig(dir, 2)
	bad.Messages = -1
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "messages -1") {
		t.Fatalf("a negative bound: %v", err)
	}
}
