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
	r := &BenchReport{byID: map[string]*Metric{}}
	set := func(id string, a, b float64) {
		m := r.metric(id, id, "", "", asFloat)
		m.set(MQTTAS, 0, a)
		m.set(Paho, 0, b)
	}
	set("qos0.rate", 130, 100)
	r.metric("qos0.rate", "", "", "", asFloat).set(ToolsName, 0, 140)
	set("qos1win.rate", 100, 100)
	set("qos1seq.p50", 80, 100)
	r.metric("qos1seq.p50", "", "", "", asFloat).set(RawName, 0, 95) // the floor is 0.95× paho: 0.9× is out of reach
	set("qos0.cpu_broker", 5000, 5000)                               // a whole core: 200 msg/s, 2× paho
	set("qos1win.cpu_broker", 8000, 8000)                            // 125 msg/s: 1.25× paho, short of 1.5×
	set("allocs.publish-qos0", 1, 20)
	set("idle.goroutines", 3, 10)
	set("idle.heap+stack", 40, 100)
	set("outage.silent.recovery", 1200, 1000)
	for _, m := range r.Metrics {
		m.finish()
	}
	got, limits := map[string]string{}, map[string]string{}
	for _, g := range benchGoals(r) {
		got[g.Goal], limits[g.Goal] = g.Status, g.Limit
	}
	for goal, want := range map[string]string{
		"qos 0 throughput ≥ 1.2× paho":             "broker ceiling 200 msg/s (a whole core at its CPU per message in mqttas's rounds) = 2.00× paho: the goal is within it",
		"qos 1 with 64 in flight ≥ 1.5× paho":      "broker ceiling 125 msg/s (a whole core at its CPU per message in mqttas's rounds) = 1.25× paho: the goal is beyond it",
		"qos 1 sequential Publish p50 ≤ 0.9× paho": "raw-socket floor 95 µs = 0.95× paho; the goal leaves a client 0 µs above it: the goal is below it",
		"≤ 3 goroutines per idle client":           "",
	} {
		if limits[goal] != want {
			t.Errorf("limit of %q:\n got %q\nwant %q", goal, limits[goal], want)
		}
	}
	if md := GoalsTable("Goals", benchGoals(r)).Markdown(); !strings.Contains(md, "| limit in this run |") {
		t.Errorf("goals table without the limit column:\n%s", md)
	}
	for goal, want := range map[string]string{
		"qos 0 throughput ≥ 1.2× paho":                         goalMet,
		"qos 0 throughput ≥ 95% of mosquitto_pub/sub":          goalMissed, // 130/140
		"qos 1 with 64 in flight ≥ 1.5× paho":                  goalMissed,
		"qos 1 sequential Publish p50 ≤ 0.9× paho":             goalMet,
		"≤ 10 allocations per message: Publish qos 1":          goalUnknown,
		"≤ 3 goroutines per idle client":                       goalMet,
		"≤ half paho's memory (heap + stack) per idle client":  goalMet,
		"recovery ≤ 1 s after the link was down (every round)": goalUnknown,
	} {
		if got[goal] != want {
			t.Errorf("goal %q: %q, want %q", goal, got[goal], want)
		}
	}
	md := r.metricTable("Throughput", true, "qos0.").Markdown()
	if !strings.Contains(md, "| qos0.rate | 130 | 100 | 1.30× | mosquitto_pub/sub: 140 | 0.93× |") {
		t.Errorf("throughput table:\n%s", md)
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
