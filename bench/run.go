package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/rig"
)

// Sections of RunBench, in the order a round runs them.
const (
	SectionQoS0    = "qos0"
	SectionQoS1Seq = "qos1seq"
	SectionWindow  = "qos1window"
	SectionAllocs  = "allocs"
	SectionOutage  = "outage"
	SectionIdle    = "idle"
	SectionHarness = "harness"
	SectionDurable = "durable"
)

// AllSections lists every section of RunBench.
func AllSections() []string {
	return []string{SectionQoS0, SectionQoS1Seq, SectionWindow, SectionHarness, SectionDurable, SectionAllocs, SectionOutage, SectionIdle}
}

// BenchConfig sizes a RunBench run. Zero fields take the defaults of DefaultBenchConfig.
type BenchConfig struct {
	Rounds      int      `json:"rounds"`
	Libs        []string `json:"libs"`
	Sections    []string `json:"sections"`
	PayloadSize int      `json:"payload_bytes"`
	QoS0Msgs    int      `json:"qos0_msgs"`
	QoS1SeqMsgs int      `json:"qos1_seq_msgs"`
	WindowMsgs  int      `json:"qos1_window_msgs"`
	Window      int      `json:"qos1_window"`
	AllocMsgs   int      `json:"alloc_msgs"` // qos 0 cases; qos 1 uses a quarter
	// DurableMsgs is how many messages each durable run publishes (DurablePublishers).
	DurableMsgs int `json:"durable_msgs,omitempty"`
	// DownHold is how long the link refuses connections in the down trial (plus 0–1 s at random).
	DownHold    time.Duration `json:"down_hold_ns"`
	IdleClients int           `json:"idle_clients"`
	IdleSettle  time.Duration `json:"idle_settle_ns"`
	// IdleExe and IdleArgs run the idle measurement in a child process (which must call IdleChildMain);
	// an empty IdleExe measures in this process (for tests only: the figures are polluted).
	IdleExe  string   `json:"-"`
	IdleArgs []string `json:"-"`
	Settings Settings `json:"-"`
	Tools    Tools    `json:"-"`
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any) `json:"-"`
}

// DefaultBenchConfig returns the sizes "make bench" uses: a few minutes on a 2-core machine.
func DefaultBenchConfig() BenchConfig {
	return BenchConfig{Rounds: 5, Libs: Libs(), Sections: AllSections(), PayloadSize: 64, QoS0Msgs: 100_000,
		QoS1SeqMsgs: 5_000, WindowMsgs: 20_000, Window: 64, AllocMsgs: 20_000, DurableMsgs: 2_000, DownHold: 2500 * time.Millisecond,
		IdleClients: 1000, IdleSettle: 3 * time.Second, Settings: DefaultSettings()}
}

func (c *BenchConfig) fill() {
	d := DefaultBenchConfig()
	if c.Rounds <= 0 {
		c.Rounds = d.Rounds
	}
	if len(c.Libs) == 0 {
		c.Libs = d.Libs
	}
	if len(c.Sections) == 0 {
		c.Sections = d.Sections
	}
	for _, p := range []struct {
		v *int
		d int
	}{{&c.PayloadSize, d.PayloadSize}, {&c.QoS0Msgs, d.QoS0Msgs},
		{&c.QoS1SeqMsgs, d.QoS1SeqMsgs}, {&c.WindowMsgs, d.WindowMsgs}, {&c.Window, d.Window},
		{&c.AllocMsgs, d.AllocMsgs}, {&c.DurableMsgs, d.DurableMsgs}, {&c.IdleClients, d.IdleClients}} {
		if *p.v <= 0 {
			*p.v = p.d
		}
	}
	if c.DownHold <= 0 {
		c.DownHold = d.DownHold
	}
	if c.IdleSettle <= 0 {
		c.IdleSettle = d.IdleSettle
	}
	if c.Settings == (Settings{}) {
		c.Settings = d.Settings
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
}

func (c *BenchConfig) has(section string) bool { return slices.Contains(c.Sections, section) }

// checkNames rejects names not in known.
func checkNames(what string, names, known []string) error {
	for _, n := range names {
		if !slices.Contains(known, n) {
			return fmt.Errorf("bench: unknown %s %q (known: %v)", what, n, known)
		}
	}
	return nil
}

// BenchReport is what RunBench measured.
type BenchReport struct {
	Machine Machine `json:"machine"`
	// Command is the command line that produced the report (set by its caller).
	Command  string        `json:"command"`
	Config   BenchConfig   `json:"config"`
	Settings string        `json:"outage_settings"`
	Metrics  []*Metric     `json:"metrics"`
	Idle     []IdleResult  `json:"idle_runs,omitempty"`
	Allocs   []AllocResult `json:"alloc_runs,omitempty"`
	Outages  []OutageRun   `json:"outage_runs,omitempty"`
	Goals    []Goal        `json:"goals"`
	Errors   []string      `json:"errors,omitempty"`
	Duration time.Duration `json:"duration_ns"`

	byID map[string]*Metric
}

// OutageRun is one outage trial as measured.
type OutageRun struct {
	Round int    `json:"round"`
	Lib   string `json:"lib"`
	Kind  string `json:"kind"` // silent or down
	OutageTrial
}

func (r *BenchReport) metric(id, name, unit, better string, f numFormat) *Metric {
	if m, ok := r.byID[id]; ok {
		return m
	}
	m := newMetric(id, name, unit, better, f)
	r.byID[id] = m
	r.Metrics = append(r.Metrics, m)
	return m
}

// Metric returns the metric with id, or nil.
func (r *BenchReport) Metric(id string) *Metric { return r.byID[id] }

func (r *BenchReport) errorf(format string, args ...any) {
	r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
}

// RunBench runs the benchmark: every section, every round, the clients interleaved.
func RunBench(ctx context.Context, cfg BenchConfig) (*BenchReport, error) {
	cfg.fill()
	if err := checkNames("client", cfg.Libs, Libs()); err != nil {
		return nil, err
	}
	if err := checkNames("section", cfg.Sections, AllSections()); err != nil {
		return nil, err
	}
	began := time.Now()
	rep := &BenchReport{Config: cfg, Settings: cfg.Settings.String(), byID: map[string]*Metric{}}
	b, err := broker.New(ctx, broker.Options{Backend: broker.KindProcess, NoPersistence: true,
		Config: []string{"max_queued_messages 0", "log_type subscribe"}})
	if err != nil {
		return nil, fmt.Errorf("bench broker: %w", err)
	}
	defer b.Close(context.WithoutCancel(ctx))
	rep.Machine = CollectMachine(ctx, "")
	addr := b.Addr()
	pid := 0
	if _, port, err := net.SplitHostPort(addr); err == nil {
		if p, err := strconv.Atoi(port); err == nil {
			pid = listenerPID(p)
		}
	}
	if pid == 0 {
		cfg.Log("broker process not found: no broker CPU figures")
	}
	tmp, err := os.MkdirTemp("", "mqttas-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for round := range cfg.Rounds {
		libs := ordered(cfg.Libs, round)
		load := LoadAvg()
		rep.Machine.LoadRounds = append(rep.Machine.LoadRounds, load)
		cfg.Log("round %d/%d (order %v), load %s", round+1, cfg.Rounds, libs, load)
		if cfg.has(SectionQoS0) {
			benchQoS0(ctx, rep, &cfg, addr, round, libs, tmp, b, pid)
		}
		if cfg.has(SectionQoS1Seq) {
			benchQoS1Seq(ctx, rep, &cfg, addr, round, libs, pid)
		}
		if cfg.has(SectionWindow) {
			benchWindow(ctx, rep, &cfg, addr, round, libs, pid)
		}
		if cfg.has(SectionHarness) {
			benchHarness(ctx, rep, &cfg, addr, round, pid)
		}
		if cfg.has(SectionDurable) {
			benchDurable(ctx, rep, &cfg, addr, round, libs, tmp)
		}
		if cfg.has(SectionAllocs) {
			benchAllocs(ctx, rep, &cfg, addr, round, libs)
		}
		if cfg.has(SectionOutage) {
			benchOutage(ctx, rep, &cfg, round, libs)
		}
		if cfg.has(SectionIdle) {
			benchIdle(ctx, rep, &cfg, addr, round, libs)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	for _, m := range rep.Metrics {
		m.finish()
	}
	rep.Machine.LoadEnd = LoadAvg()
	rep.Goals = benchGoals(rep)
	rep.Duration = time.Since(began)
	return rep, nil
}

func tag(section, lib string, round int) string { return fmt.Sprintf("%s-%s-r%d", section, lib, round) }

func benchQoS0(ctx context.Context, rep *BenchReport, cfg *BenchConfig, addr string, round int, libs []string, tmp string, b broker.Broker, pid int) {
	rate := rep.metric("qos0.rate", fmt.Sprintf("qos 0 throughput, %d × %d B, received msg/s", cfg.QoS0Msgs, cfg.PayloadSize), "msg/s", "higher", asRate)
	prate := rep.metric("qos0.publish_rate", "qos 0 publish loop (Publish calls/s)", "msg/s", "higher", asRate)
	lost := rep.metric("qos0.lost", "qos 0 lost + duplicated + reordered", "count", "lower", asFloat)
	lost.noRatio = true
	run := func(name string, f func() (flowResult, error)) {
		res, err := f()
		if err != nil {
			rep.errorf("qos0 %s round %d: %v", name, round+1, err)
			rate.fail(name, round)
			prate.fail(name, round)
			lost.fail(name, round)
			return
		}
		cfg.Log("  qos0 %-18s %8.0f msg/s received, publish loop %8.0f/s, lost %d dup %d reordered %d",
			name, res.Rate(), res.PublishRate(), res.Lost(), res.Duplicates, res.Reordered)
		costMetrics(rep, "qos0", "qos 0", name, round, res)
		rate.set(name, round, res.Rate())
		prate.set(name, round, res.PublishRate())
		lost.set(name, round, float64(res.Lost()+res.Duplicates+res.Reordered))
	}
	// The tools run first in even rounds and last in odd ones, like the clients.
	tools := func() {
		run(ToolsName, func() (flowResult, error) {
			return runTools(ctx, cfg.Tools, addr, cfg.QoS0Msgs, cfg.PayloadSize, tag("tools", "q0", round), tmp,
				BrokerLogSubscribed(b.Logs), pid)
		})
	}
	if round%2 == 0 {
		tools()
	}
	for _, lib := range libs {
		run(lib, func() (flowResult, error) {
			return runQoS0(ctx, lib, addr, cfg.QoS0Msgs, cfg.PayloadSize, tag("q0", lib, round), pid)
		})
	}
	if round%2 == 1 {
		tools()
	}
}

func benchQoS1Seq(ctx context.Context, rep *BenchReport, cfg *BenchConfig, addr string, round int, libs []string, pid int) {
	p50 := rep.metric("qos1seq.p50", fmt.Sprintf("qos 1 sequential, %d msgs: Publish latency p50", cfg.QoS1SeqMsgs), "µs", "lower", asUS)
	p99 := rep.metric("qos1seq.p99", "qos 1 sequential: Publish latency p99", "µs", "lower", asUS)
	rate := rep.metric("qos1seq.rate", "qos 1 sequential: throughput (msg/s)", "msg/s", "higher", asRate)
	lost := rep.metric("qos1seq.lost", "qos 1 sequential: lost + duplicated", "count", "lower", asFloat)
	lost.noRatio = true
	names := slices.Clone(libs)
	if round%2 == 0 {
		names = append([]string{RawName, RawReaderName}, names...)
	} else {
		names = append(names, RawReaderName, RawName)
	}
	for _, lib := range names {
		var res flowResult
		var err error
		switch lib {
		case RawName:
			res, err = runRawQoS1Seq(ctx, addr, cfg.QoS1SeqMsgs, cfg.PayloadSize, tag("q1s", "raw", round), pid, false)
		case RawReaderName:
			res, err = runRawQoS1Seq(ctx, addr, cfg.QoS1SeqMsgs, cfg.PayloadSize, tag("q1s", "rawreader", round), pid, true)
		default:
			res, err = runQoS1Seq(ctx, lib, addr, cfg.QoS1SeqMsgs, cfg.PayloadSize, tag("q1s", lib, round), pid)
		}
		if err != nil {
			rep.errorf("qos1 sequential %s round %d: %v", lib, round+1, err)
			for _, m := range []*Metric{p50, p99, rate, lost} {
				m.fail(lib, round)
			}
			continue
		}
		costMetrics(rep, "qos1seq", "qos 1 sequential", lib, round, res)
		a, b := Percentile(res.Latencies, 50), Percentile(res.Latencies, 99)
		cfg.Log("  qos1 sequential %-18s p50 %v p99 %v, %.0f msg/s, lost %d dup %d", lib, a, b, res.PublishRate(), res.Lost(), res.Duplicates)
		p50.set(lib, round, us(a))
		p99.set(lib, round, us(b))
		rate.set(lib, round, res.PublishRate())
		lost.set(lib, round, float64(res.Lost()+res.Duplicates))
	}
}

func benchWindow(ctx context.Context, rep *BenchReport, cfg *BenchConfig, addr string, round int, libs []string, pid int) {
	rate := rep.metric("qos1win.rate", fmt.Sprintf("qos 1, %d in flight, %d msgs: received msg/s", cfg.Window, cfg.WindowMsgs), "msg/s", "higher", asRate)
	ack := rep.metric("qos1win.ack_rate", fmt.Sprintf("qos 1, %d in flight: acknowledged msg/s", cfg.Window), "msg/s", "higher", asRate)
	lost := rep.metric("qos1win.lost", fmt.Sprintf("qos 1, %d in flight: lost + duplicated", cfg.Window), "count", "lower", asFloat)
	lost.noRatio = true
	for _, lib := range libs {
		res, err := runQoS1Window(ctx, lib, addr, cfg.WindowMsgs, cfg.Window, cfg.PayloadSize, tag("q1w", lib, round), pid)
		if err != nil {
			rep.errorf("qos1 window %s round %d: %v", lib, round+1, err)
			for _, m := range []*Metric{rate, ack, lost} {
				m.fail(lib, round)
			}
			continue
		}
		cfg.Log("  qos1 %d in flight %-7s %8.0f msg/s received, %8.0f acked/s, lost %d dup %d", cfg.Window, lib,
			res.Rate(), res.PublishRate(), res.Lost(), res.Duplicates)
		costMetrics(rep, "qos1win", fmt.Sprintf("qos 1, %d in flight", cfg.Window), lib, round, res)
		rate.set(lib, round, res.Rate())
		ack.set(lib, round, res.PublishRate())
		lost.set(lib, round, float64(res.Lost()+res.Duplicates))
	}
}

func benchAllocs(ctx context.Context, rep *BenchReport, cfg *BenchConfig, addr string, round int, libs []string) {
	for _, c := range AllocCases() {
		allocs := rep.metric("allocs."+c.Name, "allocations per message: "+c.Desc, "allocs", "lower", asFloat1)
		bytes := rep.metric("allocs."+c.Name+".bytes", "bytes allocated per message: "+c.Desc, "bytes", "lower", asInt)
		n := cfg.AllocMsgs
		if c.Name == "publish-qos1" {
			n = max(n/4, 1)
		}
		for _, lib := range libs {
			res, err := measureAllocs(ctx, c, lib, addr, n)
			if err != nil {
				rep.errorf("allocs %s %s round %d: %v", c.Name, lib, round+1, err)
				allocs.fail(lib, round)
				bytes.fail(lib, round)
				continue
			}
			cfg.Log("  allocs %-13s %-7s %.1f allocs/msg, %.0f B/msg, %.0f ns/msg", c.Name, lib, res.AllocsPerOp, res.BytesPerOp, res.NsPerOp)
			rep.Allocs = append(rep.Allocs, res)
			allocs.set(lib, round, res.AllocsPerOp)
			bytes.set(lib, round, res.BytesPerOp)
		}
	}
}

func benchOutage(ctx context.Context, rep *BenchReport, cfg *BenchConfig, round int, libs []string) {
	det := rep.metric("outage.silent.detection", "silent blackhole: fault → client reports the link lost", "ms", "lower", asSec)
	srec := rep.metric("outage.silent.recovery", "silent blackhole, healed during a pending connect attempt: heal → qos 1 publish acked", "ms", "lower", asMS)
	sup := rep.metric("outage.silent.reconnect", "silent blackhole, healed during a pending connect attempt: heal → connected", "ms", "lower", asMS)
	drec := rep.metric("outage.down.recovery", fmt.Sprintf("link down (connections refused) %v–%v: heal → qos 1 publish acked", cfg.DownHold, cfg.DownHold+time.Second), "ms", "lower", asMS)
	dup := rep.metric("outage.down.reconnect", "link down: heal → connected", "ms", "lower", asMS)
	r, err := rig.New(ctx, cfg.Settings.RigOptions())
	if err != nil {
		rep.errorf("outage round %d: rig: %v", round+1, err)
		for _, lib := range libs {
			for _, m := range []*Metric{det, srec, sup, drec, dup} {
				m.fail(lib, round)
			}
		}
		return
	}
	defer r.Close(context.WithoutCancel(ctx))
	for _, lib := range libs {
		t, err := silentTrial(ctx, r, cfg.Settings, lib, tag("silent", lib, round))
		if err != nil {
			rep.errorf("outage silent %s round %d: %v", lib, round+1, err)
			for _, m := range []*Metric{det, srec, sup} {
				m.fail(lib, round)
			}
		} else {
			cfg.Log("  silent %-7s detected in %v; healed with a connect attempt pending=%t; reconnected %v, publish acked %v after heal",
				lib, t.Detection.Round(time.Millisecond), t.PendingAtHeal, t.Reconnect.Round(time.Millisecond), t.Recovery.Round(time.Millisecond))
			rep.Outages = append(rep.Outages, OutageRun{Round: round + 1, Lib: lib, Kind: "silent", OutageTrial: t})
			det.set(lib, round, ms(t.Detection))
			srec.set(lib, round, ms(t.Recovery))
			sup.set(lib, round, ms(t.Reconnect))
		}
	}
	for _, lib := range libs {
		t, err := downTrial(ctx, r, cfg.Settings, lib, tag("down", lib, round), cfg.DownHold)
		if err != nil {
			rep.errorf("outage down %s round %d: %v", lib, round+1, err)
			drec.fail(lib, round)
			dup.fail(lib, round)
			continue
		}
		cfg.Log("  down   %-7s reconnected %v, publish acked %v after heal", lib, t.Reconnect.Round(time.Millisecond), t.Recovery.Round(time.Millisecond))
		rep.Outages = append(rep.Outages, OutageRun{Round: round + 1, Lib: lib, Kind: "down", OutageTrial: t})
		drec.set(lib, round, ms(t.Recovery))
		dup.set(lib, round, ms(t.Reconnect))
	}
}

func benchIdle(ctx context.Context, rep *BenchReport, cfg *BenchConfig, addr string, round int, libs []string) {
	n := cfg.IdleClients
	metrics := []struct {
		m   *Metric
		get func(IdleResult) float64
	}{
		{rep.metric("idle.heap+stack", fmt.Sprintf("idle client (%d in one process): heap in use + stack in use", n), "bytes", "lower", asKB), IdleResult.HeapPlusStack},
		{rep.metric("idle.heap", "idle client: HeapInuse", "bytes", "lower", asKB), func(r IdleResult) float64 { return r.HeapInuse }},
		{rep.metric("idle.stack", "idle client: StackInuse", "bytes", "lower", asKB), func(r IdleResult) float64 { return r.StackInuse }},
		{rep.metric("idle.objects", "idle client: heap objects", "count", "lower", asFloat1), func(r IdleResult) float64 { return r.HeapObjects }},
		{rep.metric("idle.goroutines", "idle client: goroutines", "count", "lower", asFloat1), func(r IdleResult) float64 { return r.Goroutines }},
		{rep.metric("idle.rss", "idle client: RSS", "bytes", "lower", asKB), func(r IdleResult) float64 { return r.RSS }},
		{rep.metric("idle.connect", fmt.Sprintf("connecting %d clients, 20 at a time", n), "s", "lower", asSecs), func(r IdleResult) float64 { return r.ConnectSecs }},
	}
	for _, lib := range libs {
		var res IdleResult
		var err error
		if cfg.IdleExe != "" {
			res, err = RunIdleChild(ctx, cfg.IdleExe, cfg.IdleArgs, lib, addr, n, cfg.IdleSettle)
		} else {
			res, err = MeasureIdle(ctx, lib, addr, n, cfg.IdleSettle)
		}
		if err != nil {
			rep.errorf("idle %s round %d: %v", lib, round+1, err)
			for _, x := range metrics {
				x.m.fail(lib, round)
			}
			continue
		}
		cfg.Log("  idle %-7s %d/%d connected: heap %.1f KB + stack %.1f KB, %.1f goroutines, RSS %.1f KB per client",
			lib, res.Connected, res.Clients, res.HeapInuse/1024, res.StackInuse/1024, res.Goroutines, res.RSS/1024)
		rep.Idle = append(rep.Idle, res)
		for _, x := range metrics {
			x.m.set(lib, round, x.get(res))
		}
	}
}

func fmtFloat1(x float64) string { return fmt.Sprintf("%.1f", x) }

func fmtFloat2(x float64) string { return fmt.Sprintf("%.2f", x) }

// costMetrics records what a flow cost per message under prefix: CPU of the clients and of the broker,
// how busy the broker was, and (for clients in this process) system calls.
func costMetrics(rep *BenchReport, prefix, what string, lib string, round int, f flowResult) {
	rep.metric(prefix+".cpu_client", what+": client CPU per message (publisher + subscriber)", "µs", "lower", asUS1).
		set(lib, round, f.cpuPerMessage(f.ClientCPU))
	rep.metric(prefix+".cpu_broker", what+": broker CPU per message", "µs", "lower", asUS1).
		set(lib, round, f.cpuPerMessage(f.BrokerCPU))
	rep.metric(prefix+".broker_busy", what+": broker busy (% of one core)", "%", "higher", asPct).
		set(lib, round, f.brokerBusy())
	rep.metric(prefix+".broker_wait", what+": broker runnable, waiting for a CPU (% of the run)", "%", "lower", asPct).
		set(lib, round, f.share(f.BrokerWait))
	rep.metric(prefix+".broker_idle", what+": broker idle, waiting for the clients (% of the run)", "%", "lower", asPct).
		set(lib, round, f.brokerIdle())
	if lib == ToolsName {
		return
	}
	rep.metric(prefix+".client_wait", what+": client threads runnable, waiting for a CPU (% of the run, summed)", "%", "lower", asPct).
		set(lib, round, f.share(f.ClientWait))
	rep.metric(prefix+".sys_read", what+": read system calls per message (publisher + subscriber)", "count", "lower", asFloat2).
		set(lib, round, f.perMessage(f.SysRead))
	rep.metric(prefix+".sys_write", what+": write system calls per message (publisher + subscriber)", "count", "lower", asFloat2).
		set(lib, round, f.perMessage(f.SysWrite))
}

func fmtUS1(x float64) string { return fmt.Sprintf("%.1f µs", x) }

func fmtUS3(x float64) string { return fmt.Sprintf("%.3f µs", x) }

func fmtPct(x float64) string { return fmt.Sprintf("%.0f%%", x) }

func fmtInt(x float64) string { return fmt.Sprintf("%.0f", x) }

func fmtSecs(x float64) string { return fmt.Sprintf("%.2f s", x) }
