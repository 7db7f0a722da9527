package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The durable section on its own, scaled down: both clients report every message durable, mqttas with at
// most one fsync per message and fewer once publishers are concurrent (group commit), paho with none.
func TestDurableSection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and clients")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := RunBench(ctx, BenchConfig{Rounds: 1, Sections: []string{SectionDurable}, DurableMsgs: 256, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.Errors {
		t.Error(e)
	}
	median := func(id, lib string) float64 {
		t.Helper()
		m := rep.Metric(id)
		if m == nil {
			t.Fatalf("metric %s missing", id)
		}
		s := m.Summary[lib]
		if !s.Valid() {
			t.Fatalf("%s %s: %+v", id, lib, s)
		}
		return s.Median
	}
	for _, p := range []string{"p1", "p16", "p64"} {
		for _, lib := range Libs() {
			if r := median("durable."+p+".rate", lib); r <= 0 {
				t.Errorf("%s %s: %v msg/s", p, lib, r)
			}
		}
		if f := median("durable."+p+".fsyncs", Paho); f != 0 {
			t.Errorf("%s paho: %v fsyncs/msg", p, f)
		}
	}
	one, many := median("durable.p1.fsyncs", MQTTAS), median("durable.p64.fsyncs", MQTTAS)
	if one < 0.99 || one > 1.01 || many >= one/2 {
		t.Errorf("mqttas fsyncs/msg: %v with 1 publisher (want 1), %v with 64 (want under half: group commit)", one, many)
	}
	if md := rep.Markdown(); !strings.Contains(md, "### Durable publication") || !strings.Contains(md, "durable qos 1, 64 publishers") {
		t.Errorf("bench.md lacks the durable table:\n%s", md)
	}
}

// The crash scenarios run for the crash-capable clients only (the power cut for mqttas's alone), and those
// clients run nothing else: the other scenarios have no crash to survive.
func TestCrashScenariosRunFor(t *testing.T) {
	ran := map[string][]string{}
	for _, sc := range scenarios() {
		for _, lib := range CompareLibs() {
			if sc.runsFor(lib) {
				ran[lib] = append(ran[lib], sc.name)
			}
		}
	}
	if got := strings.Join(ran["mqttas-durable"], ","); got != "client-kill,client-power-cut" {
		t.Errorf("mqttas-durable runs %s", got)
	}
	if got := strings.Join(ran["paho-durable"], ","); got != "client-kill" {
		t.Errorf("paho-durable runs %s", got)
	}
	for _, lib := range []string{MQTTAS, Paho, "python", "node", "c"} {
		if len(ran[lib]) != len(scenarios())-2 || strings.Contains(strings.Join(ran[lib], ","), "client-") {
			t.Errorf("%s runs %v", lib, ran[lib])
		}
	}
}
