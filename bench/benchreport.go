package bench

import (
	"fmt"
	"strings"
	"time"
)

// Goal is one of the project's targets for mqttas and whether this run met it.
type Goal struct {
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Status   string `json:"status"` // "met", "MISSED" or "not measured"
	// Limit says, for a goal relative to paho, what bounds any client in this run: the broker's ceiling
	// for a throughput, the raw-socket floor for a latency.
	Limit string `json:"limit,omitempty"`
}

const (
	goalMet     = "met"
	goalMissed  = "MISSED"
	goalUnknown = "not measured"
)

func status(ok bool) string {
	if ok {
		return goalMet
	}
	return goalMissed
}

// benchGoals judges the medians (and, for recovery, the worst case) against the goals.
func benchGoals(r *BenchReport) []Goal {
	var gs []Goal
	ratio := func(goal, id string, tools bool, ok func(float64) bool) {
		m := r.Metric(id)
		g := Goal{Goal: goal, Status: goalUnknown}
		if m != nil {
			s := m.Ratio
			if tools {
				s = m.RatioTools
			}
			if s != nil && s.Valid() {
				g.Measured = s.Format(fmtRatio) + " (per-round ratios, median [min–max])"
				g.Status = status(ok(s.Median))
			}
		}
		gs = append(gs, g)
	}
	value := func(goal, id string, worst bool, format func(float64) string, ok func(float64) bool) {
		m := r.Metric(id)
		g := Goal{Goal: goal, Status: goalUnknown}
		if m != nil {
			if s, found := m.Summary[MQTTAS]; found && s.Valid() {
				v := s.Median
				if worst {
					v = s.Max
					g.Measured = "worst " + format(v) + "; " + s.Format(format)
				} else {
					g.Measured = s.Format(format)
				}
				g.Status = status(ok(v))
			}
		}
		gs = append(gs, g)
	}
	ratio("qos 0 throughput ≥ 1.2× paho", "qos0.rate", false, func(x float64) bool { return x >= 1.2 })
	gs[len(gs)-1].Limit = brokerCeiling(r, "qos0", 1.2)
	ratio("qos 0 throughput ≥ 95% of mosquitto_pub/sub", "qos0.rate", true, func(x float64) bool { return x >= 0.95 })
	ratio("qos 1 with 64 in flight ≥ 1.5× paho", "qos1win.rate", false, func(x float64) bool { return x >= 1.5 })
	gs[len(gs)-1].Limit = brokerCeiling(r, "qos1win", 1.5)
	ratio("qos 1 sequential Publish p50 ≤ 0.9× paho", "qos1seq.p50", false, func(x float64) bool { return x <= 0.9 })
	gs[len(gs)-1].Limit = latencyFloor(r, "qos1seq.p50", 0.9)
	value("≤ 10 allocations per message: Publish qos 0", "allocs.publish-qos0", false, fmtFloat1, func(x float64) bool { return x <= 10 })
	value("≤ 10 allocations per message: Publish qos 1", "allocs.publish-qos1", false, fmtFloat1, func(x float64) bool { return x <= 10 })
	value("≤ 3 goroutines per idle client", "idle.goroutines", false, fmtFloat1, func(x float64) bool { return x <= 3 })
	ratio("≤ half paho's memory (heap + stack) per idle client", "idle.heap+stack", false, func(x float64) bool { return x <= 0.5 })
	value("recovery ≤ 1 s after a silent outage, healed during a pending connect attempt (every round)",
		"outage.silent.recovery", true, fmtMS, func(x float64) bool { return x <= 1000 })
	value("recovery ≤ 1 s after the link was down (every round)", "outage.down.recovery", true, fmtMS,
		func(x float64) bool { return x <= 1000 })
	return gs
}

// brokerCeiling says how fast the broker could go at all: at the CPU per message it spent in mqttas's
// rounds, one whole core delivers 1/cpu messages a second. Compared, round by round, with paho's rate in
// the same round, that is the highest ratio any client could reach against paho; below the goal, the goal
// is out of reach on this broker and machine as long as that cost holds.
func brokerCeiling(r *BenchReport, prefix string, goal float64) string {
	cpu, rate := r.Metric(prefix+".cpu_broker"), r.Metric(prefix+".rate")
	if cpu == nil || rate == nil {
		return ""
	}
	c := cpu.Values[MQTTAS]
	ceil := make([]float64, len(c))
	for i, us := range c {
		ceil[i] = 1e6 / us // µs per message → messages per second (a failed or zero reading is skipped below)
	}
	cs, rs := Summarize(ceil), Ratios(ceil, rate.Values[Paho])
	if !cs.Valid() || !rs.Valid() {
		return ""
	}
	// An estimate (the broker's cost per message varies a little with the load), so the verdict says where
	// the goal lies against it rather than that no client could get there.
	verdict := "the goal is within it"
	if rs.Median < goal {
		verdict = "the goal is beyond it"
	}
	return fmt.Sprintf("broker ceiling %s msg/s (a whole core at its CPU per message in mqttas's rounds) = %s paho: %s",
		fmtRate(cs.Median), fmtRatio(rs.Median), verdict)
}

// latencyFloor compares the goal with the raw-socket floor: no client can be faster than a goroutine
// doing blocking reads and writes on its own socket.
func latencyFloor(r *BenchReport, id string, goal float64) string {
	m := r.Metric(id)
	if m == nil {
		return ""
	}
	raw, paho := m.Values[RawName], m.Values[Paho]
	if len(raw) == 0 || len(paho) == 0 {
		return ""
	}
	rs := Ratios(raw, paho)
	if !rs.Valid() {
		return ""
	}
	verdict := "the goal is above it"
	if rs.Median > goal {
		verdict = "the goal is below it"
	}
	return fmt.Sprintf("raw-socket floor %s = %s paho; the goal leaves a client %s above it: %s",
		fmtUS(m.Summary[RawName].Median), fmtRatio(rs.Median),
		fmtUS(max(goal*m.Summary[Paho].Median-m.Summary[RawName].Median, 0)), verdict)
}

// GoalsTable renders goals as a table, with a column for their limits when any goal has one.
func GoalsTable(title string, gs []Goal) *Table {
	t := &Table{Title: title, Header: []string{"goal (mqttas)", "measured", "status"}}
	limits := false
	for _, g := range gs {
		limits = limits || g.Limit != ""
	}
	if limits {
		t.Header = append(t.Header, "limit in this run")
	}
	for _, g := range gs {
		row := []string{g.Goal, g.Measured, g.Status}
		if limits {
			row = append(row, g.Limit)
		}
		t.AddRow(row...)
	}
	return t
}

// metricTable renders the metrics whose ID starts with one of prefixes, one row each. With ref, two more
// columns show the reference measured in the same rounds (mosquitto_pub/sub for qos 0, the raw socket floor
// for qos 1 sequential) and mqttas's ratio to it.
func (r *BenchReport) metricTable(title string, ref bool, prefixes ...string) *Table {
	t := &Table{Title: title, Header: []string{"measurement", MQTTAS, Paho, "mqttas/paho"}}
	if ref {
		t.Header = append(t.Header, "reference", "mqttas/reference")
	}
	for _, m := range r.Metrics {
		match := false
		for _, p := range prefixes {
			match = match || strings.HasPrefix(m.ID, p)
		}
		if match {
			t.AddRow(m.row(ref)...)
		}
	}
	return t
}

// metricRow renders one metric: its name, both clients, their ratio and, with ref, the reference measured
// in the same rounds and mqttas's ratio to it.
func (m *Metric) row(ref bool) []string {
	row := []string{m.Name, m.cell(MQTTAS), m.cell(Paho), ratioCell(m.Ratio)}
	if ref {
		switch {
		case m.Values[ToolsName] != nil:
			row = append(row, ToolsName+": "+m.cell(ToolsName), ratioCell(m.RatioTools))
		case m.Values[RawName] != nil:
			row = append(row, RawName+": "+m.cell(RawName), ratioCell(m.RatioRaw))
		}
	}
	return row
}

// Markdown renders the report.
func (r *BenchReport) Markdown() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "# mqttas vs paho.mqtt.golang: benchmark\n\n")
	fmt.Fprintf(&b, "%d rounds, the clients interleaved (mqttas first in odd rounds, paho first in even ones), against one "+
		"private mosquitto process (`max_queued_messages 0`, no persistence) on loopback; %d-byte payloads. "+
		"Cells are median [min–max] over the rounds; ratios are the median [min–max] of the per-round ratios. "+
		"Run took %v.\n\n", c.Rounds, c.PayloadSize, r.Duration.Round(time.Second))
	if r.Command != "" {
		fmt.Fprintf(&b, "Produced by `%s`.\n\n", r.Command)
	}
	b.WriteString(r.Machine.Table().Markdown())
	b.WriteString("\n")
	gt := GoalsTable("Goals", r.Goals)
	gt.Notes = []string{"Judged on the medians of the per-round ratios (recovery: on the worst round). On a shared 2-core " +
		"machine the throughput ratios swing with other processes' load from round to round; the CPU each client spends " +
		"per message (below) is the steadier measure of efficiency."}
	b.WriteString(gt.Markdown())
	b.WriteString("\n")
	tp := r.metricTable("Throughput and latency", true, "qos0.", "qos1seq.", "qos1win.")
	tp.Notes = []string{
		"qos 0: one publisher and one subscriber of the same library in one process; received msg/s is first Publish → last message received. " +
			"The reference is `mosquitto_pub -l` → `mosquitto_sub -C n` on the same broker, timed from starting mosquitto_pub to mosquitto_sub's exit.",
		"qos 1 sequential: each Publish waits for its PUBACK; a qos 1 subscriber of the same library receives everything. " +
			"The reference is the floor: a publisher and a subscriber written as one goroutine each doing blocking reads and writes on " +
			"its socket (no client library), so latency minus the floor is what a client adds.",
		"system calls: /proc/self/io syscr and syscw over the run, publisher and subscriber together, per message received " +
			"(Go's reads include the one that finds the socket empty before waiting).",
		"CPU per message: this process's user + system time (publisher and subscriber; for the reference, the mosquitto_pub and " +
			"mosquitto_sub processes') and the broker process's, over the run, per message received. Broker busy is its CPU " +
			"time over the run's duration: below 100% the broker was not the bottleneck (or was starved of CPU).",
		fmt.Sprintf("qos 1 with %d in flight: mqttas with %d goroutines publishing on one client, paho with a window of %d outstanding tokens; "+
			"received msg/s by a qos 1 subscriber of the same library.", c.Window, c.Window, c.Window),
		"lost + duplicated + reordered should be 0 everywhere: the broker never drops (`max_queued_messages 0`).",
	}
	b.WriteString(tp.Markdown())
	b.WriteString("\n")
	ot := r.metricTable("Outage detection and recovery", false, "outage.")
	ot.Notes = []string{"Through the harness's link (embedded Toxiproxy) and the client adapters. Settings: " + r.Settings + ".",
		"silent: both directions blackholed, no FIN; the heal comes once a reconnection attempt has sent its CONNECT into the " +
			"blackhole (healing closes that connection). down: the link refuses connections and closes the open one; the heal comes at a random phase of the retry schedule.",
		"\"publish acked\": a qos 1 Publish issued right after the heal returns success (for paho, its token completes)."}
	pend := 0
	silent := 0
	for _, o := range r.Outages {
		if o.Kind == "silent" {
			silent++
			if o.PendingAtHeal {
				pend++
			}
		}
	}
	if silent > 0 {
		ot.Notes = append(ot.Notes, fmt.Sprintf("A connect attempt was verifiably pending at the heal in %d of %d silent trials.", pend, silent))
	}
	b.WriteString(ot.Markdown())
	b.WriteString("\n")
	it := r.metricTable("Idle connections", false, "idle.")
	it.Notes = []string{fmt.Sprintf("%d clients connected in a child process per library (no subscriptions, KeepAlive 30 s, the "+
		"library's defaults otherwise); runtime.MemStats after GC before connecting and %v after, divided by the number of clients.",
		c.IdleClients, c.IdleSettle)}
	b.WriteString(it.Markdown())
	b.WriteString("\n")
	at := r.metricTable("Allocations per message", false, "allocs.")
	at.Notes = []string{fmt.Sprintf("runtime.MemStats Mallocs and TotalAlloc over %d messages (qos 1: %d) after a warm-up, "+
		"everything the process allocated meanwhile (the client's goroutines included), divided by the messages. "+
		"The same paths run as Go benchmarks: `go test -run '^$' -bench . -benchmem ./bench`.", c.AllocMsgs, max(c.AllocMsgs/4, 1))}
	b.WriteString(at.Markdown())
	if len(r.Errors) > 0 {
		b.WriteString("\n### Errors\n\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	return b.String()
}
