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

// Goal thresholds of make bench.
const (
	ceilingGoal    = 95.0 // % of the broker's ceiling: qos 0, qos 1 with 64 in flight, qos 0 through the link
	floorSlackGoal = 5.0  // µs above the raw-socket floor: qos 1 sequential p50
	linkAddedGoal  = 20.0 // µs the link (Toxiproxy + tap) may add to the qos 1 sequential p50
	ledgerGoal     = 1.0  // µs per recorded event
)

// aheadRows are the throughput, latency, CPU and memory rows in which mqttas must be ahead of paho (the
// median of the per-round ratios on the better side of 1).
func aheadRows() []string {
	return []string{
		"qos0.rate", "qos0.publish_rate", "qos1seq.rate", "qos1win.rate", "qos1win.ack_rate",
		"qos1seq.p50", "qos1seq.p99",
		"qos0.cpu_client", "qos0.cpu_broker", "qos1seq.cpu_client", "qos1seq.cpu_broker", "qos1win.cpu_client", "qos1win.cpu_broker",
		"idle.heap+stack", "idle.heap", "idle.stack", "idle.rss",
	}
}

// benchGoals judges the medians over the rounds (recovery: the worst round) against the goals, each with
// what bounds it in this run.
func benchGoals(r *BenchReport) []Goal {
	var gs []Goal
	add := func(goal string, s Summary, format func(float64) string, measured string, ok func(float64) bool, limit string) {
		g := Goal{Goal: goal, Status: goalUnknown, Limit: limit}
		if s.Valid() {
			g.Measured = s.Format(format) + measured
			g.Status = status(ok(s.Median))
		}
		gs = append(gs, g)
	}
	series := func(id, key string) Series {
		if m := r.Metric(id); m != nil {
			return m.Values[key]
		}
		return nil
	}
	atLeast := func(goal float64) func(float64) bool { return func(x float64) bool { return x >= goal } }
	atMost := func(goal float64) func(float64) bool { return func(x float64) bool { return x <= goal } }
	for _, c := range []struct{ prefix, what string }{{"qos0", "qos 0 throughput"}, {"qos1win", "qos 1 with 64 in flight"}} {
		add(fmt.Sprintf("%s ≥ %.0f%% of the broker's ceiling", c.what, ceilingGoal), Summarize(series(c.prefix+".broker_busy", MQTTAS)), fmtPct,
			" of it (received msg/s × broker CPU per message, per round)", atLeast(ceilingGoal), brokerLimit(r, c.prefix))
	}
	add(fmt.Sprintf("qos 1 sequential Publish p50 ≤ the raw-socket floor + %.0f µs", floorSlackGoal),
		Summarize(differences(series("qos1seq.p50", MQTTAS), series("qos1seq.p50", RawName))), fmtUS1,
		" above it (per round)", atMost(floorSlackGoal), floorLimit(r))
	gs = append(gs, aheadGoal(r))
	add(fmt.Sprintf("the link (Toxiproxy + tap) adds ≤ %.0f µs to the qos 1 sequential p50", linkAddedGoal),
		Summarize(series("harness.seq.p50_added", PathLink)), fmtUS1, " (link − direct, per round)", atMost(linkAddedGoal), linkLatencyLimit(r))
	add(fmt.Sprintf("qos 0 through the link (Toxiproxy + tap) ≥ %.0f%% of the broker's ceiling", ceilingGoal),
		Summarize(series("harness.q0.of_ceiling", PathLink)), fmtPct, " of it (per round)", atLeast(ceilingGoal), linkRateLimit(r))
	add(fmt.Sprintf("the ledger records an event in ≤ %.0f µs", ledgerGoal), Summarize(series("harness.ledger.event", LedgerName)), fmtUS3,
		" per event", atMost(ledgerGoal), "")
	value := func(goal, id string, worst bool, format func(float64) string, ok func(float64) bool) {
		g := Goal{Goal: goal, Status: goalUnknown}
		if m := r.Metric(id); m != nil {
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
	value("≤ 10 allocations per message: Publish qos 0", "allocs.publish-qos0", false, fmtFloat1, atMost(10))
	value("≤ 10 allocations per message: Publish qos 1", "allocs.publish-qos1", false, fmtFloat1, atMost(10))
	value("≤ 3 goroutines per idle client", "idle.goroutines", false, fmtFloat1, atMost(3))
	g := Goal{Goal: "≤ half paho's memory (heap + stack) per idle client", Status: goalUnknown}
	if m := r.Metric("idle.heap+stack"); m != nil && m.Ratio != nil && m.Ratio.Valid() {
		g.Measured = m.Ratio.Format(fmtRatio) + " (per-round ratios, median [min–max])"
		g.Status = status(m.Ratio.Median <= 0.5)
	}
	gs = append(gs, g)
	value("recovery ≤ 1 s after a silent outage, healed during a pending connect attempt (every round)",
		"outage.silent.recovery", true, fmtMS, atMost(1000))
	value("recovery ≤ 1 s after the link was down (every round)", "outage.down.recovery", true, fmtMS, atMost(1000))
	return gs
}

// differences subtracts b from a round by round (NaN where either failed).
func differences(a, b Series) []float64 {
	n := min(len(a), len(b))
	d := make([]float64, n)
	for i := range n {
		d[i] = a[i] - b[i]
	}
	return d
}

// median returns the median of metric id's values for key, and false when there is none.
func (r *BenchReport) median(id, key string) (float64, bool) {
	m := r.Metric(id)
	if m == nil {
		return 0, false
	}
	s := Summarize(m.Values[key])
	return s.Median, s.Valid()
}

// brokerLimit says what bounded the broker in mqttas's rounds of prefix: its ceiling (a whole core at the
// CPU per message it spent: no client can get more out of it), and where the rest of the run went — the
// broker waiting for a CPU (the machine's load, this run's clients included) or idle, waiting for the
// clients. Only the idle share is lost to the client.
func brokerLimit(r *BenchReport, prefix string) string {
	cpu, ok := r.median(prefix+".cpu_broker", MQTTAS)
	if !ok || cpu <= 0 {
		return ""
	}
	out := fmt.Sprintf("broker ceiling %s msg/s (a whole core at its CPU per message, %s)", fmtRate(1e6/cpu), fmtUS1(cpu))
	wait, ok1 := r.median(prefix+".broker_wait", MQTTAS)
	idle, ok2 := r.median(prefix+".broker_idle", MQTTAS)
	if ok1 && ok2 {
		out += fmt.Sprintf("; the broker waited for a CPU %s of the run (the machine's load) and was idle, waiting for the client, %s", fmtPct(wait), fmtPct(idle))
	}
	if cw, ok := r.median(prefix+".client_wait", MQTTAS); ok {
		out += fmt.Sprintf("; the client's threads waited for a CPU %s (summed)", fmtPct(cw))
	}
	return out
}

// floorLimit states the raw-socket floor of the run and how far above it paho is.
func floorLimit(r *BenchReport) string {
	m := r.Metric("qos1seq.p50")
	if m == nil {
		return ""
	}
	raw := Summarize(m.Values[RawName])
	if !raw.Valid() {
		return ""
	}
	out := "raw-socket floor " + raw.Format(fmtUS) + " (one goroutine each doing blocking reads and writes, no client library)"
	if h := Summarize(differences(m.Values[RawReaderName], m.Values[RawName])); h.Valid() {
		out += "; the same with a reader goroutine handing each PUBACK to the publisher over a channel (the least a client " +
			"that reads while its caller waits does) " + h.Format(fmtUS1) + " above it"
		if c := Summarize(differences(m.Values[MQTTAS], m.Values[RawReaderName])); c.Valid() {
			out += ", mqttas " + c.Format(fmtUS1) + " above that"
		}
	}
	if p := Summarize(differences(m.Values[Paho], m.Values[RawName])); p.Valid() {
		out += "; paho " + p.Format(fmtUS1) + " above the floor"
	}
	return out
}

// aheadGoal judges mqttas against paho in every row of aheadRows.
func aheadGoal(r *BenchReport) Goal {
	g := Goal{Goal: "ahead of paho in every throughput, latency, CPU and memory row", Status: goalUnknown}
	var behind, missing []string
	n := 0
	for _, id := range aheadRows() {
		m := r.Metric(id)
		if m == nil || m.Ratio == nil || !m.Ratio.Valid() {
			missing = append(missing, id)
			continue
		}
		n++
		ahead := m.Ratio.Median > 1
		if m.Better == "lower" {
			ahead = m.Ratio.Median < 1
		}
		if !ahead {
			behind = append(behind, fmt.Sprintf("%s %s", m.Name, fmtRatio(m.Ratio.Median)))
		}
	}
	if n == 0 {
		return g
	}
	g.Measured = fmt.Sprintf("ahead in %d of %d rows (medians of the per-round mqttas/paho ratios)", n-len(behind), n)
	if len(behind) > 0 {
		g.Measured += "; behind: " + strings.Join(behind, ", ")
	}
	g.Status = status(len(behind) == 0 && len(missing) == 0)
	if len(missing) > 0 {
		g.Measured += "; not measured: " + strings.Join(missing, ", ")
	}
	return g
}

// linkLatencyLimit splits what the link adds to the p50 between the hop itself (a plain relay in the same
// place), Toxiproxy and the tap.
func linkLatencyLimit(r *BenchReport) string {
	tp, ok1 := r.median("harness.seq.p50_added", PathToxiproxy)
	d, ok2 := r.median("harness.seq.p50", PathDirect)
	if !ok1 || !ok2 {
		return ""
	}
	out := ""
	if rl, ok := r.median("harness.seq.p50_added", PathRelay); ok {
		out = fmt.Sprintf("a plain relay in the same place adds %s (a goroutine per direction copying: one more pass through loopback "+
			"and a thread woken per direction, what any proxy hop costs on this machine); ", fmtUS1(rl))
		if l, ok := r.median("harness.seq.p50_added", PathLink); ok {
			out = fmt.Sprintf("%sbeyond it the link adds %s; ", out, fmtUS1(l-rl))
		}
	}
	out += fmt.Sprintf("Toxiproxy alone adds %s (each direction a chain of goroutines handing chunks over channels), the tap the rest; direct p50 %s",
		fmtUS1(tp), fmtUS(d))
	if c, ok := r.median("harness.seq.cpu_added", PathLink); ok {
		out += fmt.Sprintf("; the link costs %s of CPU per message", fmtUS1(c))
	}
	return out
}

// linkRateLimit compares the link's own ceiling (forwarding to a sink) with the broker's, and says where
// the run went while the clients spoke through it.
func linkRateLimit(r *BenchReport) string {
	sat, ok1 := r.median("harness.sat.rate", PathLink)
	cpu, ok2 := r.median("harness.q0.cpu_broker", PathLink)
	if !ok1 || !ok2 || cpu <= 0 {
		return ""
	}
	out := fmt.Sprintf("the link alone saturates at %s msg/s forwarding to a sink, %s the broker's ceiling through it (%s msg/s)",
		fmtRate(sat), fmtRatio(sat*cpu/1e6), fmtRate(1e6/cpu))
	if d, ok := r.median("harness.q0.of_ceiling", PathDirect); ok {
		out += fmt.Sprintf("; direct in the same rounds %s of the ceiling", fmtPct(d))
	}
	if rl, ok := r.median("harness.q0.of_ceiling", PathRelay); ok {
		out += fmt.Sprintf(", through a plain relay %s", fmtPct(rl))
	}
	wait, ok1 := r.median("harness.q0.broker_wait", PathLink)
	idle, ok2 := r.median("harness.q0.broker_idle", PathLink)
	if ok1 && ok2 {
		out += fmt.Sprintf("; through the link the broker waited for a CPU %s of the run and was idle %s", fmtPct(wait), fmtPct(idle))
	}
	if c, ok := r.median("harness.q0.cpu", PathLink); ok {
		if dc, ok := r.median("harness.q0.cpu", PathDirect); ok {
			out += fmt.Sprintf(", the clients and the link spending %s of CPU per message (direct %s) on the same %d CPUs", fmtUS1(c), fmtUS1(dc), r.Machine.Cores)
			if c > dc {
				// The link's own cost for this traffic: where it would saturate a whole core by itself.
				out += fmt.Sprintf(": for this traffic the link costs %s per message, so a whole core of it forwards %s msg/s against the broker's %s",
					fmtUS1(c-dc), fmtRate(1e6/(c-dc)), fmtRate(1e6/cpu))
			}
		}
	}
	return out
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
			ref := RawName + ": " + m.cell(RawName)
			if m.Values[RawReaderName] != nil {
				ref += "; " + RawReaderName + ": " + m.cell(RawReaderName)
			}
			row = append(row, ref, ratioCell(m.RatioRaw))
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
	gt.Notes = []string{"Judged on the medians over the rounds (recovery: on the worst round); the cells show the range. " +
		"The broker's ceiling is a whole core at the CPU per message the broker spent in the same rounds: no client can get more " +
		"out of it. The limit column says where the rest of those rounds went: the broker waiting for a CPU (the machine's load, " +
		"this run's own clients included) is not the client's to win back; the broker idle, waiting for the client, is. " +
		"The raw-socket floor is the latency without any client library. On a shared machine the CPU each client spends per " +
		"message (below) is the steadier measure of efficiency."}
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
		"broker waiting for a CPU: the time the broker's threads were runnable but not running (run_delay in /proc/<pid>/task/*/schedstat) " +
			"over the run; idle: the rest of the run in which it neither ran nor waited for a CPU, i.e. had nothing to do until a client sent " +
			"more. Client threads waiting: the same for this process's threads, summed (it can exceed 100%).",
		"CPU per message: this process's user + system time (publisher and subscriber; for the reference, the mosquitto_pub and " +
			"mosquitto_sub processes') and the broker process's, over the run, per message received. Broker busy is its CPU " +
			"time over the run's duration: below 100% the broker was not the bottleneck (or was starved of CPU).",
		fmt.Sprintf("qos 1 with %d in flight: mqttas with %d goroutines publishing on one client, paho with a window of %d outstanding tokens; "+
			"received msg/s by a qos 1 subscriber of the same library.", c.Window, c.Window, c.Window),
		"lost + duplicated + reordered should be 0 everywhere: the broker never drops (`max_queued_messages 0`).",
		"Stalls: `go run ./cmd/bench -trace FILE …` records the Go execution trace of the run; mqttas logs to it every batched read whose " +
			"deadline fired with bytes waiting (`go tool trace -d=parsed FILE | grep mqttas.rxbatch`), beside the goroutines' blocking on the network.",
	}
	b.WriteString(tp.Markdown())
	b.WriteString("\n")
	if h := r.harnessTable(); len(h.Rows) > 0 {
		b.WriteString(h.Markdown())
		b.WriteString("\n")
	}
	if dt := r.durableTable(); len(dt.Rows) > 0 {
		b.WriteString(dt.Markdown())
		b.WriteString("\n")
	}
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

// harnessTable renders the harness-overhead rows: one column per path, the ledger's figures in a column
// of their own.
func (r *BenchReport) harnessTable() *Table {
	cols := []string{PathDirect, PathRelay, PathToxiproxy, PathLink, LedgerName}
	t := &Table{Title: "Harness overhead", Header: append([]string{"measurement"}, cols...)}
	for _, m := range r.Metrics {
		if !strings.HasPrefix(m.ID, "harness.") {
			continue
		}
		row := []string{m.Name}
		for _, c := range cols {
			row = append(row, m.cell(c))
		}
		t.AddRow(row...)
	}
	t.Notes = []string{
		"What every soak and scenario pays for the harness: the client under test speaks to the broker through the link " +
			"(the embedded Toxiproxy with the MQTT tap, no fault applied); Toxiproxy alone (no toxic) tells the tap's share, " +
			"and a plain relay (a goroutine per direction copying through a buffer) what any proxy hop in that place costs on this machine.",
		"qos 1 sequential: mqttas, one Publish at a time, the publisher through the path and the subscriber direct; CPU is this " +
			"process's (both clients and the proxy, which runs in it) per message. Added: path − direct in the same round.",
		"qos 0 through the path: mqttas's publisher and subscriber both through it, as the qos 0 row above; the broker's ceiling is a " +
			"whole core at the broker CPU per message of the same run, so the percentage is the broker's CPU over the run's duration.",
		fmt.Sprintf("saturation: a writer sends qos 0 PUBLISH packets in %d KB writes (as fast as its socket takes them) through the path to a sink that "+
			"reads and discards them: the path's own ceiling on this machine, with no broker in the way.", satChunk>>10),
		"ledger: a soak's recording of a message (invoke, completion, delivery whose payload carries the message's identity) " +
			"into an in-memory ledger, payloads encoded beforehand; time and allocations per event.",
	}
	return t
}
