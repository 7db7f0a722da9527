package bench

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		in             []float64
		n              int
		median, lo, hi float64
	}{
		{[]float64{3, 1, 2}, 3, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 4, 2.5, 1, 4},
		{[]float64{5}, 1, 5, 5, 5},
		{[]float64{nan, 7, math.Inf(1), 9}, 2, 8, 7, 9},
	} {
		s := Summarize(tc.in)
		if s.N != tc.n || s.Median != tc.median || s.Min != tc.lo || s.Max != tc.hi {
			t.Errorf("Summarize(%v) = %+v, want n %d median %v [%v–%v]", tc.in, s, tc.n, tc.median, tc.lo, tc.hi)
		}
	}
	if s := Summarize(nil); s.Valid() || !math.IsNaN(s.Median) {
		t.Errorf("Summarize(nil) = %+v, want no valid statistics", s)
	}
	if s := Summarize([]float64{nan}); s.Valid() || s.Format(fmtFloat) != "n/a" {
		t.Errorf("all-NaN summary = %+v, %q", s, s.Format(fmtFloat))
	}
}

func TestRatios(t *testing.T) {
	// Per-round ratios, not the ratio of the medians: round 2's failure and round 3's zero divisor are skipped.
	s := Ratios([]float64{2, 9, 6, 8}, []float64{1, math.NaN(), 0, 4})
	if s.N != 2 || s.Median != 2 || s.Min != 2 || s.Max != 2 {
		t.Errorf("Ratios = %+v, want two ratios of 2", s)
	}
	s = Ratios([]float64{1, 3, 10}, []float64{2, 2, 5})
	if s.N != 3 || s.Median != 1.5 || s.Min != 0.5 || s.Max != 2 {
		t.Errorf("Ratios = %+v, want median 1.5 [0.5–2]", s)
	}
	if got := s.Format(fmtRatio); got != "1.50× [0.50×–2.00×]" {
		t.Errorf("Format = %q", got)
	}
	if s := Ratios([]float64{1, 2}, []float64{4}); s.N != 1 || s.Median != 0.25 {
		t.Errorf("uneven lengths: %+v", s)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Microsecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Microsecond, 99: 99 * time.Microsecond,
		100: 100 * time.Microsecond, 1: time.Microsecond, 0.1: time.Microsecond} {
		if got := Percentile(ds, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("empty percentile should be 0")
	}
}

func TestFormatters(t *testing.T) {
	for got, want := range map[string]string{
		fmtRate(91_345):    "91.3k",
		fmtRate(950):       "950",
		fmtUS(82.4):        "82 µs",
		fmtUS(1500):        "1.50 ms",
		fmtMS(1002.2):      "1002 ms",
		fmtMS(12.34):       "12.3 ms",
		fmtMS(0.755):       "0.76 ms",
		fmtSec(2280):       "2.28 s",
		fmtKB(12.5 * 1024): "12.5 KB",
		Summarize([]float64{2, 2}).Format(fmtFloat): "2",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestSeriesAndSummaryJSON(t *testing.T) {
	b, err := json.Marshal(struct {
		S Series  `json:"s"`
		Z Summary `json:"z"`
		E Summary `json:"e"`
	}{Series{1.5, math.NaN(), 3}, Summarize([]float64{1, 2, 3}), Summarize(nil)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"s":[1.5,null,3],"z":{"n":3,"median":2,"min":1,"max":3},"e":{"n":0,"median":null,"min":null,"max":null}}`
	if string(b) != want {
		t.Errorf("JSON = %s\nwant   %s", b, want)
	}
	var back Series
	if err := json.Unmarshal([]byte(`[1,null,2]`), &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 3 || back[0] != 1 || !math.IsNaN(back[1]) || back[2] != 2 {
		t.Errorf("Unmarshal = %v", back)
	}
}

func TestMetricRatiosAndCells(t *testing.T) {
	m := newMetric("x", "x", "msg/s", "higher", asRate)
	m.set(MQTTAS, 0, 3000)
	m.set(Paho, 0, 1000)
	m.set(MQTTAS, 2, 6000) // round 1 missing: NaN
	m.set(Paho, 2, 2000)
	m.set(ToolsName, 0, 6000)
	m.fail(ToolsName, 2)
	m.finish()
	if m.Ratio == nil || m.Ratio.N != 2 || m.Ratio.Median != 3 {
		t.Errorf("ratio = %+v, want 3× over 2 rounds", m.Ratio)
	}
	if m.RatioTools == nil || m.RatioTools.N != 1 || m.RatioTools.Median != 0.5 {
		t.Errorf("tools ratio = %+v", m.RatioTools)
	}
	if got := m.cell(MQTTAS); got != "4.5k [3.0k–6.0k]" {
		t.Errorf("cell = %q", got)
	}
	c := newMetric("lost", "lost", "count", "lower", asFloat)
	c.noRatio = true
	c.set(MQTTAS, 0, 0)
	c.set(Paho, 0, 0)
	c.finish()
	if c.Ratio != nil {
		t.Errorf("a count metric got a ratio: %+v", c.Ratio)
	}
}

func TestTableMarkdown(t *testing.T) {
	tb := &Table{Title: "T", Header: []string{"a", "b"}, Notes: []string{"note\none"}}
	tb.AddRow("x|y", "1\n2")
	tb.AddRow("only")
	got := tb.Markdown()
	want := "### T\n\n| a | b |\n|---|---|\n| x\\|y | 1 2 |\n| only |  |\n\n- note one\n"
	if got != want {
		t.Errorf("Markdown =\n%s\nwant\n%s", got, want)
	}
	if (&Table{}).Markdown() != "" {
		t.Error("an empty table should render nothing")
	}
}

func TestGoalsAndTables(t *testing.T) {
	r := &BenchReport{Machine: Machine{Cores: 2}, byID: map[string]*Metric{}}
	set := func(id, better string, vals map[string][]float64) {
		m := r.metric(id, id, "", better, asFloat)
		for key, vs := range vals {
			for i, v := range vs {
				m.set(key, i, v)
			}
		}
	}
	two := func(a, b float64) map[string][]float64 { return map[string][]float64{MQTTAS: {a}, Paho: {b}} }
	set("qos0.rate", "higher", map[string][]float64{MQTTAS: {130}, Paho: {100}, ToolsName: {140}})
	set("qos0.cpu_broker", "lower", two(5000, 5000)) // a whole core: 200 msg/s
	set("qos0.broker_busy", "higher", two(96, 60))
	set("qos0.broker_wait", "lower", two(3, 3))
	set("qos0.broker_idle", "lower", two(1, 37))
	set("qos1win.rate", "higher", two(100, 100)) // level with paho: behind in the ahead goal
	set("qos1win.cpu_broker", "lower", two(8000, 8000))
	set("qos1win.broker_busy", "higher", two(80, 80))
	set("qos1win.broker_wait", "lower", two(5, 5))
	set("qos1win.broker_idle", "lower", two(15, 15))
	set("qos1seq.p50", "lower", map[string][]float64{MQTTAS: {80, 82, 90}, Paho: {100, 100, 100}, RawName: {76, 75, 88}, RawReaderName: {78, 78, 89}})
	set("harness.seq.p50", "lower", map[string][]float64{PathDirect: {80}, PathRelay: {92}, PathToxiproxy: {95}, PathLink: {101}})
	set("harness.seq.p50_added", "lower", map[string][]float64{PathRelay: {12}, PathToxiproxy: {15}, PathLink: {21}})
	set("harness.q0.of_ceiling", "higher", map[string][]float64{PathDirect: {96}, PathLink: {97}})
	set("harness.q0.cpu_broker", "lower", map[string][]float64{PathLink: {20}})
	set("harness.sat.rate", "higher", map[string][]float64{PathLink: {5e6}})
	set("harness.ledger.event", "lower", map[string][]float64{LedgerName: {0.2}})
	set("allocs.publish-qos0", "lower", two(1, 20))
	set("idle.goroutines", "lower", two(3, 10))
	set("idle.heap+stack", "lower", two(40, 100))
	set("outage.silent.recovery", "lower", two(1200, 1000))
	for _, m := range r.Metrics {
		m.finish()
	}
	got := map[string]Goal{}
	for _, g := range benchGoals(r) {
		got[g.Goal] = g
	}
	for goal, want := range map[string]struct{ status, measured, limit string }{
		"qos 0 throughput ≥ 95% of the broker's ceiling": {goalMet, "96% of it",
			"broker ceiling 200 msg/s (a whole core at its CPU per message, 5000.0 µs); the broker waited for a CPU 3% of the run (the machine's load) and was idle, waiting for the client, 1%"},
		"qos 1 with 64 in flight ≥ 95% of the broker's ceiling": {goalMissed, "80% of it", "idle, waiting for the client, 15%"},
		"qos 1 sequential Publish p50 ≤ the raw-socket floor + 5 µs": {goalMet, "4.0 µs [2.0 µs–7.0 µs] above it",
			"raw-socket floor 76 µs [75 µs–88 µs] (one goroutine each doing blocking reads and writes, no client library); " +
				"the same with a reader goroutine handing each PUBACK to the publisher over a channel (the least a client that reads while its caller waits does) " +
				"2.0 µs [1.0 µs–3.0 µs] above it, mqttas 2.0 µs [1.0 µs–4.0 µs] above that; paho 24.0 µs [12.0 µs–25.0 µs] above the floor"},
		"ahead of paho in every throughput, latency, CPU and memory row": {goalMissed, "behind: qos1win.rate 1.00×, qos0.cpu_broker 1.00×", "not measured: qos0.publish_rate"},
		"the link (Toxiproxy + tap) adds ≤ 20 µs to the qos 1 sequential p50": {goalMissed, "21.0 µs (link − direct, per round)",
			"a plain relay in the same place adds 12.0 µs (a goroutine per direction copying: one more pass through loopback and a thread woken per direction, what any proxy hop costs on this machine); beyond it the link adds 9.0 µs; Toxiproxy alone adds 15.0 µs"},
		"qos 0 through the link (Toxiproxy + tap) ≥ 95% of the broker's ceiling": {goalMet, "97% of it",
			"the link alone saturates at 5000.0k msg/s forwarding to a sink, 100.00× the broker's ceiling through it (50.0k msg/s); direct in the same rounds 96% of the ceiling"},
		"the ledger records an event in ≤ 1 µs":                                                       {goalMet, "0.200 µs per event", ""},
		"≤ 10 allocations per message: Publish qos 1":                                                 {goalUnknown, "", ""},
		"≤ 3 goroutines per idle client":                                                              {goalMet, "3.0", ""},
		"≤ half paho's memory (heap + stack) per idle client":                                         {goalMet, "0.40×", ""},
		"recovery ≤ 1 s after the link was down (every round)":                                        {goalUnknown, "", ""},
		"recovery ≤ 1 s after a silent outage, healed during a pending connect attempt (every round)": {goalMissed, "worst 1200 ms", ""},
	} {
		g, ok := got[goal]
		if !ok {
			t.Errorf("no goal %q", goal)
			continue
		}
		if g.Status != want.status || !strings.Contains(g.Measured, want.measured) ||
			!strings.Contains(g.Limit+" "+g.Measured, want.limit) || (want.limit == "" && g.Limit != "") {
			t.Errorf("goal %q:\n got %s, %q, limit %q\nwant %s, …%q…, limit …%q…", goal, g.Status, g.Measured, g.Limit, want.status, want.measured, want.limit)
		}
	}
	if len(got) != 13 {
		t.Errorf("%d goals, want 13: %v", len(got), got)
	}
	for _, old := range []string{"qos 0 throughput ≥ 1.2× paho", "qos 1 with 64 in flight ≥ 1.5× paho", "qos 1 sequential Publish p50 ≤ 0.9× paho"} {
		if _, ok := got[old]; ok {
			t.Errorf("the fixed ratio to paho %q is still a goal", old)
		}
	}
	if md := GoalsTable("Goals", benchGoals(r)).Markdown(); !strings.Contains(md, "| limit in this run |") {
		t.Errorf("goals table without the limit column:\n%s", md)
	}
	md := r.metricTable("Throughput", true, "qos0.").Markdown()
	if !strings.Contains(md, "| qos0.rate | 130 | 100 | 1.30× | mosquitto_pub/sub: 140 | 0.93× |") {
		t.Errorf("throughput table:\n%s", md)
	}
	if md := r.harnessTable().Markdown(); !strings.Contains(md, "| harness.seq.p50 | 80 | 92 | 95 | 101 |  |") ||
		!strings.Contains(md, "| harness.ledger.event |  |  |  |  | 0.2 |") {
		t.Errorf("harness table:\n%s", md)
	}
}

func TestPayloads(t *testing.T) {
	ps := makePayloads(1001, 64)
	for _, i := range []int{0, 7, 1000} {
		if len(ps[i]) != 64 || cap(ps[i]) != 64 {
			t.Fatalf("payload %d: len %d cap %d", i, len(ps[i]), cap(ps[i]))
		}
		if n, ok := parseSeq(ps[i]); !ok || n != i {
			t.Errorf("parseSeq(payload %d) = %d, %t", i, n, ok)
		}
		if strings.ContainsAny(string(ps[i]), "\n\r") {
			t.Errorf("payload %d holds a line break", i)
		}
	}
	if _, ok := parseSeq([]byte("probe")); ok {
		t.Error("parseSeq accepted a foreign payload")
	}
	r := newReceiver(3)
	for _, p := range [][]byte{ps[1], ps[0], ps[1], []byte("x"), ps[2]} {
		r.onMessage(p)
	}
	f := r.result(3, time.Now().Add(-time.Second), time.Second)
	if f.Received != 3 || f.Duplicates != 1 || f.Reordered != 1 || f.Foreign != 1 || f.Lost() != 0 {
		t.Errorf("receiver result %+v", f)
	}
	select {
	case <-r.done:
	default:
		t.Error("receiver not done after every message")
	}
}

func TestOrdered(t *testing.T) {
	if got := ordered(Libs(), 0); got[0] != MQTTAS || got[1] != Paho {
		t.Errorf("round 0: %v", got)
	}
	if got := ordered(Libs(), 1); got[0] != Paho || got[1] != MQTTAS {
		t.Errorf("round 1: %v", got)
	}
}
