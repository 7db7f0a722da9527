package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients/procclient"
)

// A tiny run of every bench section: the numbers must be sane, not good.
func TestSmokeBench(t *testing.T) {
	if testing.Short() {
		t.Skip("starts brokers and clients")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := BenchConfig{Rounds: 1, PayloadSize: 64, QoS0Msgs: 2000, QoS1SeqMsgs: 200, WindowMsgs: 1000, Window: 16,
		AllocMsgs: 400, DownHold: 300 * time.Millisecond, IdleClients: 20, IdleSettle: 200 * time.Millisecond,
		IdleExe: os.Args[0], Log: t.Logf}
	rep, err := RunBench(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.Errors {
		t.Error(e)
	}
	within := func(id, client string, lo, hi float64) {
		t.Helper()
		m := rep.Metric(id)
		if m == nil {
			t.Errorf("metric %s missing", id)
			return
		}
		s := m.Summary[client]
		if !s.Valid() || s.Median < lo || s.Median > hi || math.IsNaN(s.Median) {
			t.Errorf("%s %s = %+v, want within [%v, %v]", id, client, s, lo, hi)
		}
	}
	for _, lib := range Libs() {
		within("qos0.rate", lib, 100, 1e7)
		within("qos0.lost", lib, 0, 0)
		within("qos1seq.p50", lib, 1, 1e5) // µs
		within("qos1seq.p99", lib, 1, 1e6)
		within("qos1seq.lost", lib, 0, 0)
		within("qos1win.rate", lib, 10, 1e7)
		within("qos1win.lost", lib, 0, 0)
		within("allocs.publish-qos0", lib, 0, 200)
		within("allocs.publish-qos1", lib, 1, 400)
		within("outage.silent.detection", lib, 1000, 6000) // ms, KeepAlive 2 s
		within("outage.silent.recovery", lib, 0, 5000)
		within("outage.down.recovery", lib, 0, 5000)
		within("idle.goroutines", lib, 1, 20)
		within("idle.heap+stack", lib, 1000, 1<<20)
	}
	within("qos0.rate", ToolsName, 100, 1e7)
	within("qos0.lost", ToolsName, 0, 0)
	within("qos0.broker_wait", MQTTAS, 0, 100)
	within("qos0.broker_idle", MQTTAS, 0, 100)
	for _, path := range []string{PathDirect, PathRelay, PathToxiproxy, PathLink} {
		within("harness.seq.p50", path, 1, 1e5) // µs
		within("harness.seq.cpu", path, 0.1, 1e5)
		within("harness.q0.rate", path, 100, 1e7)
		within("harness.sat.rate", path, 1000, 1e9)
	}
	within("harness.seq.p50_added", PathLink, -1e4, 1e4) // a difference: noise can make it negative
	within("harness.ledger.event", LedgerName, 0.001, 100)
	if len(rep.Goals) == 0 {
		t.Error("no goals judged")
	}
	md := rep.Markdown()
	for _, want := range []string{"### Machine", "### Goals", "### Throughput and latency", "### Outage detection and recovery",
		"### Harness overhead", "### Idle connections", "### Allocations per message", "| mosquitto |"} {
		if !strings.Contains(md, want) {
			t.Errorf("bench.md lacks %q", want)
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Errorf("bench.json: %v", err)
	}
}

// A few compare scenarios, scaled down: the verdicts must be well formed, and mqttas must lose nothing.
func TestSmokeCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("starts brokers and clients")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := RunCompare(ctx, CompareConfig{Rounds: 1, Libs: Libs(), Scenarios: []string{"reset", "qos0-down", "backlog"},
		Scale: 0.3, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.Errors {
		t.Error(e)
	}
	if len(rep.Verdicts) != 6 {
		t.Fatalf("%d verdicts, want 6", len(rep.Verdicts))
	}
	for _, v := range rep.Verdicts {
		if v.Attempted == 0 || v.Delivered == 0 || v.Acked > v.Attempted || v.Outages < 1 {
			t.Errorf("implausible verdict %+v", v)
		}
		if v.DetectionMS == nil || *v.DetectionMS > 1000 {
			t.Errorf("%s %s: a closed connection should be detected at once: %v", v.Scenario, v.Client, optMS(v.DetectionMS))
		}
		// qos 0 may lose what was in transit when the connection was cut; qos 1 may lose nothing.
		if v.Client == MQTTAS && v.Scenario != "qos0-down" && (v.Lost != 0 || v.FalseSuccesses > 0 || v.Stalled) {
			t.Errorf("mqttas in %s: %s", v.Scenario, v.summary())
		}
	}
	md := rep.Markdown()
	for _, want := range []string{"### Verdicts: mqttas", "### Verdicts: paho", "### paho's known gaps", "FALSE SUCCESSES"} {
		if !strings.Contains(md, want) {
			t.Errorf("compare.md lacks %q", want)
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Errorf("compare.json: %v", err)
	}
}

// The out-of-process clients go through compare scenarios like the Go ones: a reset and the link down under
// qos 0, scaled down, for each driver. Whatever their verdicts, the runs must be well formed, carry the
// library's version from the driver's hello, show evidence of every defect (messages lost without a false
// success too), and fill the verdict table's column of each.
func TestSmokeCompareDrivers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts brokers and driver processes")
	}
	if out, err := exec.Command("make", "--no-print-directory", "-C", "..", "c-driver").CombinedOutput(); err != nil {
		t.Fatalf("make c-driver: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	libs := []string{procclient.NamePython, procclient.NameNode, procclient.NameC}
	rep, err := RunCompare(ctx, CompareConfig{Rounds: 1, Libs: libs, Scenarios: []string{"reset", "qos0-down"}, Scale: 0.3, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.Errors {
		t.Error(e)
	}
	if len(rep.Verdicts) != 2*len(libs) {
		t.Fatalf("%d verdicts, want %d", len(rep.Verdicts), 2*len(libs))
	}
	library := map[string]string{procclient.NamePython: "paho-mqtt ", procclient.NameNode: "mqtt.js ", procclient.NameC: "libmosquitto "}
	for _, v := range rep.Verdicts {
		if v.Attempted == 0 || v.Delivered == 0 || v.Acked > v.Attempted || v.Outages < 1 || v.DetectionMS == nil {
			t.Errorf("implausible verdict %+v", v)
		}
		if !strings.HasPrefix(v.Library, library[v.Client]) || len(v.Library) == len(library[v.Client]) {
			t.Errorf("%s: library %q", v.Client, v.Library)
		}
		if (v.Lost > 0 || v.Duplicates > 0) != (len(v.Evidence) > 0) {
			t.Errorf("%s %s: lost %d, duplicates %d, evidence %q", v.Scenario, v.Client, v.Lost, v.Duplicates, v.Evidence)
		}
		if unacked := v.Lost - v.FalseSuccesses; unacked > 0 && !strings.Contains(strings.Join(v.Evidence, "\n"),
			fmt.Sprintf("lost without an acknowledgement (%d in all", unacked)) {
			t.Errorf("%s %s: %d lost without a false success, evidence %q", v.Scenario, v.Client, unacked, v.Evidence)
		}
	}
	md := rep.Markdown()
	for _, want := range []string{"# MQTT clients under faults: python, node, c", "### Verdicts, one column per client",
		"| scenario | verdict | python | node | c |", "| reset | lost |", "### Defects found", "### Verdicts: python"} {
		if !strings.Contains(md, want) {
			t.Errorf("compare.md lacks %q:\n%s", want, md)
		}
	}
}
