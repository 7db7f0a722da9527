package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/crashclient"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/report"
	"github.com/mqttas/mqttas-go/harness/schedule"
	"github.com/mqttas/mqttas-go/harness/soak"
)

func TestMain(m *testing.M) {
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	os.Exit(m.Run())
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestConfigDefaultsEnvAndFlags(t *testing.T) {
	var errOut bytes.Buffer
	c, err := parseConfig(nil, envOf(nil), &errOut, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Duration != 2*time.Minute || c.Clients != 20 || c.Rate != 5 || c.FeedRate != 5 || c.Client != "mqttas" ||
		c.Seed != now.UnixNano() || c.seedSet || c.durationSet || c.Out != "reports/soak-20260102-030405" {
		t.Fatalf("defaults: %+v", c)
	}
	env := envOf(map[string]string{"SOAK_DURATION": "30s", "SOAK_CLIENTS": "4", "SOAK_RATE": "2.5",
		"SOAK_SEED": "42", "SOAK_CLIENT": "paho"})
	c, err = parseConfig(nil, env, &errOut, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Duration != 30*time.Second || !c.durationSet || c.Clients != 4 || c.Rate != 2.5 || c.FeedRate != 2.5 ||
		c.Seed != 42 || !c.seedSet || c.Client != "paho" {
		t.Fatalf("from the environment: %+v", c)
	}
	// Flags win over the environment.
	c, err = parseConfig([]string{"-duration", "1m", "-clients", "6", "-seed", "7", "-client", "mqttas",
		"-feed-rate", "0", "-trace", "x.yaml"}, env, &errOut, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Duration != time.Minute || c.Clients != 6 || c.Seed != 7 || c.Client != "mqttas" || c.FeedRate != 0 ||
		c.Out != "reports/replay-20260102-030405" {
		t.Fatalf("flags over the environment: %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{env: map[string]string{"SOAK_DURATION": "soon"}, want: `SOAK_DURATION="soon"`},
		{env: map[string]string{"SOAK_CLIENTS": "many"}, want: `SOAK_CLIENTS="many"`},
		{env: map[string]string{"SOAK_SEED": "1.5"}, want: `SOAK_SEED="1.5"`},
		{env: map[string]string{"SOAK_CLIENT": "hivemq"}, want: `client "hivemq": want one of c, mqttas, mqttas-durable, node, paho, paho-durable, python`},
		{args: []string{"-crash", "client-melt"}, want: `crash "client-melt": want client faults of client-kill, client-power-cut`},
		{args: []string{"-crash", "1", "-trace", "x.yaml"}, want: "crash: a trace has its own faults"},
		{args: []string{"-clients", "0"}, want: "clients 0"},
		{args: []string{"-rate", "-1"}, want: "rate -1"},
		{args: []string{"-keepalive", "1500ms"}, want: "keepalive 1.5s"},
		{args: []string{"-record-from", "t.jsonl"}, want: "-record-from needs -record"},
		{args: []string{"-heap-profile-every", "500ms"}, want: "-heap-profile-every 500ms: want 0 (none) or at least 1s"},
		{args: []string{"extra"}, want: "unexpected arguments"},
	}
	for _, c := range cases {
		_, err := parseConfig(c.args, envOf(c.env), &bytes.Buffer{}, now)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: got %v, want %q", c.args, c.env, err, c.want)
		}
	}
}

// A bad trace is refused before anything starts, with its file, line and field.
func TestBadTraceIsAUsageError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("version: 1\nfaults:\n  - {at: 1s, fault: blackhole, duration: 2x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	start := time.Now()
	code := run(t.Context(), []string{"-trace", p, "-out", t.TempDir()}, envOf(nil), &out, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), p+":3: faults[0].duration") {
		t.Fatalf("exit %d:\n%s", code, errOut.String())
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("a bad trace took long to refuse: something started")
	}
	// A duration shorter than the trace is refused too.
	code = run(t.Context(), []string{"-trace", "../../traces/ap-reboot.yaml", "-duration", "30s"}, envOf(nil), &out, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "shorter than trace") {
		t.Fatalf("exit %d:\n%s", code, errOut.String())
	}
}

func TestExitCode(t *testing.T) {
	t0 := time.Now()
	id := func(seq uint64) ledger.ID { return ledger.ID{Publisher: "p", Topic: "t", Seq: seq} }
	l := ledger.New(t0)
	l.Subscribe("s", "t", t0)
	l.Complete(l.Invoke(id(1), t0), ledger.OK, t0, nil)
	l.Deliver(ledger.Delivery{Subscriber: "s", Topic: "t", Payload: ledger.Encode(id(1), t0), QoS: 1, At: t0})
	valid := l.Check()
	l.Complete(l.Invoke(id(2), t0), ledger.OK, t0, nil) // acknowledged, never delivered
	lost := l.Check()
	none := ledger.New(t0).Check()
	cases := []struct {
		res  soak.Result
		want int
	}{
		{soak.Result{Ledger: valid}, exitPass},
		{soak.Result{Ledger: lost}, exitFail},
		{soak.Result{Ledger: valid, NotReconnected: []string{"c1"}}, exitFail},
		{soak.Result{Ledger: none}, exitFail},
		{soak.Result{Ledger: valid, Interrupted: true}, exitInterrupted},
		{soak.Result{Ledger: lost, HarnessErrors: []string{"broker gone"}, Interrupted: true}, exitHarness},
	}
	for i, c := range cases {
		if got := exitCode(&c.res); got != c.want {
			t.Errorf("case %d: exit %d, want %d (%s)", i, got, c.want, c.res.Verdict())
		}
	}
	if len(lost.Lost) != 1 || !valid.Valid() {
		t.Fatalf("ledger fixtures: %s / %s", valid.Summary(), lost.Summary())
	}
}

// -crash and SOAK_CRASH opt in to the client faults: all of them, or those named.
func TestConfigCrash(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{want: nil},
		{args: []string{"-crash", "1"}, want: faults.CrashNames()},
		{env: map[string]string{"SOAK_CRASH": "all"}, want: faults.CrashNames()},
		{env: map[string]string{"SOAK_CRASH": "client-kill"}, want: []string{"client-kill"}},
		{args: []string{"-crash", "0"}, env: map[string]string{"SOAK_CRASH": "1"}, want: nil},
	} {
		c, err := parseConfig(append(tc.args, "-client", "mqttas-durable"), envOf(tc.env), &bytes.Buffer{}, now)
		if err != nil || !slices.Equal(c.Crash, tc.want) {
			t.Errorf("%v %v: crash %v, %v; want %v", tc.args, tc.env, c.Crash, err, tc.want)
		}
	}
}

// buildDurableDriver builds drivers/durable where the registry looks for it (make durable-driver does the
// same), so the crash-capable clients run the current code.
func buildDurableDriver(t *testing.T) {
	t.Helper()
	out, err := exec.Command("go", "build", "-o", "../../"+crashclient.DriverPath, "../../drivers/durable").CombinedOutput()
	if err != nil {
		t.Fatalf("building drivers/durable: %v\n%s", err, out)
	}
}

// The shipped crash trace replays against mqttas with its durable outbox: clients killed and their power
// cut, restarted on their stores, and nothing they reported durable is lost.
func TestReplayCrashTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	buildDurableDriver(t)
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "report")
	args := []string{"-trace", "../../traces/client-crash.yaml", "-client", "mqttas-durable", "-clients", "4", "-rate", "10",
		"-tail", "2s", "-out", dir, "-drain-quiet", "2s", "-heal-timeout", "30s", "-drain-timeout", "20s"}
	sum := soakOK(t, args, dir)
	crashes := 0
	for _, f := range sum.Faults {
		if strings.HasPrefix(f.Name, "client-") {
			crashes++
		}
	}
	if crashes != 8 {
		t.Fatalf("client faults injected: %d of %v", crashes, sum.Faults)
	}
	var durable, killed int64
	for _, c := range sum.Clients {
		durable += c.Stats[clients.StatDurable]
		killed += c.Stats["crashes"]
	}
	if durable < 100 || killed < 5 {
		t.Fatalf("%d publications durable, %d crashes: %+v", durable, killed, sum.Clients)
	}
}

// A shipped trace replays end to end, and the outages seen are recorded as a trace that loads.
func TestReplayShippedTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	t.Parallel()
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "report")
	rec := filepath.Join(tmp, "seen.yaml")
	args := []string{"-trace", "../../traces/flapping-link.yaml", "-clients", "3", "-rate", "10", "-tail", "2s",
		"-record", rec, "-out", dir, "-drain-quiet", "2s", "-heal-timeout", "30s", "-drain-timeout", "20s",
		"-heap-profile-every", "5s"}
	sum := soakOK(t, args, dir)
	if len(sum.Faults) != 6 { // 4 resets, 2 downs
		t.Fatalf("faults injected: %v", sum.Faults)
	}
	if profiles, _ := filepath.Glob(filepath.Join(dir, "heap-*.pprof")); len(profiles) < 2 {
		t.Fatalf("heap profiles %v, want one every 5s of the run and one at its end", profiles)
	}
	s, err := schedule.Load(rec)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "seen" || len(s.Faults) < 2 {
		t.Fatalf("recorded %+v", s)
	}
	for _, f := range s.Faults {
		if f.Fault.Name() != "down" || f.At > 15*time.Second {
			t.Fatalf("recorded %+v", f)
		}
	}
	// And a saved timeline converts to the same kind of trace without running anything.
	rec2 := filepath.Join(tmp, "again.yaml")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-record", rec2, "-record-from", filepath.Join(dir, "timeline.jsonl")},
		envOf(nil), &out, &errOut); code != exitPass {
		t.Fatalf("record-from: exit %d\n%s", code, errOut.String())
	}
	if _, err := schedule.Load(rec2); err != nil {
		t.Fatal(err)
	}
	// The saved history checks again to the run's verdict.
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"check", filepath.Join(dir, report.HistoryFile)}, envOf(nil), &out, &errOut); code != exitPass ||
		strings.TrimSpace(out.String()) != "PASS" || !strings.Contains(errOut.String(), "lost 0") {
		t.Fatalf("check: exit %d, stdout %q\n%s", code, out.String(), errOut.String())
	}
}

// soak check refuses what it cannot read, and exits 1 on a history that lost a message.
func TestCheckCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"check"}, envOf(nil), &out, &errOut); code != exitUsage {
		t.Fatalf("no file: exit %d", code)
	}
	if code := run(t.Context(), []string{"check", filepath.Join(t.TempDir(), "none.jsonl")}, envOf(nil), &out, &errOut); code != exitUsage {
		t.Fatalf("a missing file: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{not json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run(t.Context(), []string{"check", bad}, envOf(nil), &out, &errOut); code != exitUsage {
		t.Fatalf("a bad history: exit %d\n%s", code, errOut.String())
	}
	// A history with one acknowledged message that never arrived.
	t0 := time.Now()
	l := ledger.New(t0)
	l.Subscribe("s", "t", t0)
	id := ledger.ID{Publisher: "p", Topic: "t", Seq: 1}
	l.Complete(l.Invoke(id, t0), ledger.OK, t0, nil)
	lost := filepath.Join(t.TempDir(), "lost.jsonl")
	var b bytes.Buffer
	if err := l.WriteJSONL(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lost, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if code := run(t.Context(), []string{"check", lost}, envOf(nil), &out, &errOut); code != exitFail ||
		strings.TrimSpace(out.String()) != "FAIL" || !strings.Contains(errOut.String(), "LOST") {
		t.Fatalf("a lost message: exit %d, stdout %q\n%s", code, out.String(), errOut.String())
	}
	// A history recorded from a broken client's soak.
	out.Reset()
	errOut.Reset()
	if code := run(t.Context(), []string{"check", "../../harness/ledger/testdata/broken-drop7.history.jsonl"}, envOf(nil), &out, &errOut); code != exitFail ||
		strings.TrimSpace(out.String()) != "FAIL" || !strings.Contains(errOut.String(), "lost 15") {
		t.Fatalf("a recorded failing history: exit %d, stdout %q\n%s", code, out.String(), errOut.String())
	}
	// The same, checked online: the same verdict, said to be online.
	for _, path := range []string{"../../harness/ledger/testdata/broken-drop7.history.jsonl", lost} {
		out.Reset()
		errOut.Reset()
		if code := run(t.Context(), []string{"check", "-online", path}, envOf(nil), &out, &errOut); code != exitFail ||
			strings.TrimSpace(out.String()) != "FAIL" || !strings.Contains(errOut.String(), "checked online") ||
			!strings.Contains(errOut.String(), "LOST") {
			t.Fatalf("%s checked online: exit %d, stdout %q\n%s", path, code, out.String(), errOut.String())
		}
	}
	if !strings.Contains(errOut.String(), "lost 1 ") {
		t.Fatalf("online, one lost:\n%s", errOut.String())
	}
	if code := run(t.Context(), []string{"check", "-online", bad}, envOf(nil), &out, &errOut); code != exitUsage {
		t.Fatalf("a bad history online: exit %d\n%s", code, errOut.String())
	}
	if code := run(t.Context(), []string{"check", "-bogus", lost}, envOf(nil), &out, &errOut); code != exitUsage {
		t.Fatalf("a bad flag: exit %d\n%s", code, errOut.String())
	}
}

func TestMergeCommand(t *testing.T) {
	dirs := make([]string, 2)
	parent := t.TempDir()
	t0 := time.Now()
	for k := range dirs {
		l := ledger.New(t0)
		obs := fmt.Sprintf("obs%d", k)
		l.Subscribe(obs, fmt.Sprintf("s%d/#", k), t0)
		for i := range 5 {
			x := ledger.ID{Publisher: fmt.Sprintf("p%d", k), Topic: fmt.Sprintf("s%d/t", k), Seq: uint64(i + 1)}
			l.Complete(l.Invoke(x, t0), ledger.OK, t0, nil)
			if k == 0 || i != 3 {
				l.Deliver(ledger.Delivery{Subscriber: obs, Topic: x.Topic, Payload: ledger.Encode(x, t0), QoS: 1, At: t0})
			}
		}
		dirs[k] = filepath.Join(parent, fmt.Sprintf("shard-%d", k))
		if _, err := report.Write(dirs[k], report.Run{Started: t0, Ledger: l}); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "merged")
	var stdout, errOut bytes.Buffer
	if code := run(t.Context(), []string{"merge", "-out", out, dirs[0], dirs[1]}, envOf(nil), &stdout, &errOut); code != exitFail ||
		strings.TrimSpace(stdout.String()) != "FAIL" || !strings.Contains(errOut.String(), "lost 1 ") ||
		!strings.Contains(errOut.String(), "LOST p1 s1/t#4 never delivered to obs1") || !strings.Contains(errOut.String(), "merged online") {
		t.Fatalf("merge: exit %d, stdout %q\n%s", code, stdout.String(), errOut.String())
	}
	if _, err := os.Stat(filepath.Join(out, report.IndexFile)); err != nil {
		t.Fatal(err)
	}
	// A pattern, as the fleet's merge Job gives it with no shell to expand it: the directories it matches
	// (not the files beside them).
	if err := os.WriteFile(filepath.Join(parent, "shard-0.log"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := run(t.Context(), []string{"merge", "-out", out + "2", filepath.Join(parent, "shard-*")}, envOf(nil), &stdout, &errOut); code != exitFail ||
		!strings.Contains(errOut.String(), "merged 2 shards") {
		t.Fatalf("merge of a pattern: exit %d\n%s", code, errOut.String())
	}
	errOut.Reset()
	if code := run(t.Context(), []string{"merge", "-out", out + "3", filepath.Join(parent, "none-*")}, envOf(nil), &stdout, &errOut); code != exitUsage ||
		!strings.Contains(errOut.String(), "matches no shard report directory") {
		t.Fatalf("merge of a pattern that matches nothing: exit %d\n%s", code, errOut.String())
	}
	stdout.Reset()
	errOut.Reset()
	if code := run(t.Context(), []string{"merge", "-out", out}, envOf(nil), &stdout, &errOut); code != exitUsage {
		t.Fatalf("merge of nothing: exit %d", code)
	}
	if code := run(t.Context(), []string{"merge", "-out", out, t.TempDir()}, envOf(nil), &stdout, &errOut); code != exitUsage {
		t.Fatalf("merge of no report: exit %d\n%s", code, errOut.String())
	}
	// A shard whose history is cut short: a usage error naming the file.
	hist := filepath.Join(dirs[1], report.HistoryFile)
	b, err := os.ReadFile(hist)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hist, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := run(t.Context(), []string{"merge", "-out", out + "4", dirs[0], dirs[1]}, envOf(nil), &stdout, &errOut); code != exitUsage ||
		!strings.Contains(errOut.String(), hist+": ledger: bad history: compressed") {
		t.Fatalf("merge of a damaged shard: exit %d\n%s", code, errOut.String())
	}
}

// soakOK runs the command, expects a pass, and returns the summary it wrote.
func soakOK(t *testing.T, args []string, dir string) report.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, args, envOf(nil), &out, &errOut)
	t.Logf("soak %v:\n%s", args, errOut.String())
	if code != exitPass {
		t.Fatalf("exit %d", code)
	}
	for _, f := range []string{report.SummaryFile, report.HistoryFile, report.IndexFile, "schedule.yaml", "timeline.jsonl"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if strings.TrimSpace(out.String()) != filepath.Join(dir, report.SummaryFile) {
		t.Fatalf("stdout %q", out.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, report.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	var sum report.Summary
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if !sum.Valid || sum.Lost != 0 || sum.Acknowledged < 100 {
		t.Fatalf("summary: valid %t, lost %d, acknowledged %d", sum.Valid, sum.Lost, sum.Acknowledged)
	}
	return sum
}

func TestShardFlags(t *testing.T) {
	c, err := parseConfig([]string{"-shard", "2/4", "-run-id", "fleet-1", "-broker", "127.0.0.1:1883"}, envOf(nil), &bytes.Buffer{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Shard != 2 || c.Shards != 4 || c.RunID != "fleet-1" || c.BrokerAddr != "127.0.0.1:1883" ||
		c.Out != "reports/soak-fleet-1-shard2" {
		t.Fatalf("shard flags: %+v", c)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"-shard", "4/4", "-run-id", "r"}, `shard "4/4"`},
		{[]string{"-shard", "x", "-run-id", "r"}, `shard "x"`},
		{[]string{"-shard", "0/0", "-run-id", "r"}, `shard "0/0"`},
		{[]string{"-shard", "0/2"}, "needs a run id"},
		{[]string{"-run-id", "a b"}, `run-id "a b"`},
		{[]string{"-run-id", strings.Repeat("x", 33)}, "at most 32"},
		{[]string{"-broker", "nohost"}, `broker "nohost"`},
	} {
		if _, err := parseConfig(bad.args, envOf(nil), &bytes.Buffer{}, now); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: got %v, want %q", bad.args, err, bad.want)
		}
	}
}

// soak broker starts the soak's broker, says where it is, and removes it (and its address file) when
// its time is up; bad flags are a usage error.
func TestBrokerCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	for _, args := range [][]string{{"broker", "extra"}, {"broker", "-for", "-1s"}, {"broker", "-bogus"}} {
		if code := run(t.Context(), args, envOf(nil), &out, &errOut); code != exitUsage {
			t.Fatalf("%v: exit %d", args, code)
		}
	}
	addrFile := filepath.Join(t.TempDir(), "broker.addr")
	out.Reset()
	errOut.Reset()
	if code := run(t.Context(), []string{"broker", "-for", "3s", "-addr-file", addrFile}, envOf(nil), &out, &errOut); code != exitPass {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	addr := strings.TrimSpace(out.String())
	if !strings.HasPrefix(addr, "127.0.0.1:") || !strings.Contains(errOut.String(), "max_queued_messages 0") {
		t.Fatalf("stdout %q, stderr %q", addr, errOut.String())
	}
	if _, err := os.Stat(addrFile); !os.IsNotExist(err) {
		t.Fatalf("the address file outlived the broker: %v", err)
	}
}

// soak figures reads a report's verdict, messages, peak memory and history size; a directory with no
// report is a usage error.
func TestFiguresCommand(t *testing.T) {
	t0 := time.Now()
	l := ledger.New(t0)
	l.Subscribe("obs", "t/#", t0)
	for i := range 40 {
		x := ledger.ID{Publisher: "p", Topic: "t/a", Seq: uint64(i + 1)}
		l.Complete(l.Invoke(x, t0), ledger.OK, t0, nil)
		l.Deliver(ledger.Delivery{Subscriber: "obs", Topic: x.Topic, Payload: ledger.Encode(x, t0), QoS: 1, At: t0})
	}
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := report.Write(dir, report.Run{Started: t0, Ledger: l, Config: map[string]any{"clients": 1, "peak_rss_bytes": 5 << 20}}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, report.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "figures.json")
	var stdout, errOut bytes.Buffer
	if code := run(t.Context(), []string{"figures", "-o", out, dir}, envOf(nil), &stdout, &errOut); code != exitPass {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []report.Figures
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Verdict != "PASS" || got[0].Messages != 40 || got[0].PeakRSSBytes != 5<<20 ||
		got[0].HistoryBytes != fi.Size() || got[0].BytesPerMessage != float64(fi.Size())/40 {
		t.Fatalf("figures %+v (history %d bytes)", got, fi.Size())
	}
	if code := run(t.Context(), []string{"figures", t.TempDir()}, envOf(nil), &stdout, &errOut); code != exitUsage {
		t.Fatalf("no report: exit %d", code)
	}
	// Bounds: within them the run passes; each one it exceeds fails it, saying which.
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"-max-peak-rss", "256", "-max-history", "1000000000", "-min-messages", "40"}, exitPass, ""},
		{[]string{"-max-peak-rss", "5"}, exitFail, "peak RSS 5.0 MiB, want below 5 MiB"},
		{[]string{"-max-history", fmt.Sprint(fi.Size())}, exitFail, fmt.Sprintf("history %d bytes", fi.Size())},
		{[]string{"-min-messages", "41"}, exitFail, "40 messages published, want at least 41"},
		{[]string{"-min-messages", "-1"}, exitUsage, "usage"},
	} {
		errOut.Reset()
		args := append(append([]string{"figures"}, c.args...), dir)
		if code := run(t.Context(), args, envOf(nil), &stdout, &errOut); code != c.code || !strings.Contains(errOut.String(), c.says) {
			t.Errorf("figures %v: exit %d, want %d saying %q\n%s", c.args, code, c.code, c.says, errOut.String())
		}
	}
}
