package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/report"
	"github.com/mqttas/mqttas-go/harness/resubscribe"
	"github.com/mqttas/mqttas-go/harness/rig"
	"github.com/mqttas/mqttas-go/harness/schedule"
	"github.com/mqttas/mqttas-go/harness/timeline"
	"github.com/mqttas/mqttas-go/harness/validate"
)

// Bounds on the phases that are not configurable.
const (
	setupTimeout   = 3 * time.Minute // broker, link, observer, every client connected and subscribed
	connectTimeout = 30 * time.Second
	closeTimeout   = 2 * time.Minute
	resubTimeout   = 10 * time.Second
)

// brokerConfig is added to the harness's mosquitto.conf. Mosquitto 2.0 keeps at most 1000 messages for an
// offline persistent session by default and silently drops the rest; a long outage at a high rate would
// then show up as loss that the broker, not the client, caused. The soak tests the client: no limit.
func brokerConfig() []string { return []string{"max_queued_messages 0"} }

// run is the whole command: parse, plan, soak, report. It returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	start := time.Now()
	cfg, err := parseConfig(args, getenv, stderr, start)
	if errors.Is(err, flag.ErrHelp) {
		return exitPass
	}
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return exitUsage
	}
	con := newConsole(stderr)
	if cfg.recordFrom != "" {
		return recordFrom(cfg, con)
	}
	sched, err := plan(&cfg)
	if err != nil {
		con.Printf("soak: %v", err)
		return exitUsage
	}
	s := &soak{cfg: cfg, sched: sched, con: con, stdout: stdout, mem: newMemPeak(),
		tag: strconv.FormatInt(start.UnixMilli()%(36*36*36*36), 36)}
	return s.run(ctx)
}

// plan loads the trace or draws the random schedule, and fixes the run's duration: everything is
// validated before anything starts.
func plan(cfg *config) (*schedule.Schedule, error) {
	if cfg.trace == "" {
		return schedule.Random(cfg.seed, cfg.duration, schedule.RandomOptions{})
	}
	s, err := schedule.Load(cfg.trace)
	if err != nil {
		return nil, err
	}
	end := s.End()
	switch {
	case !cfg.durationSet:
		cfg.duration = end + cfg.tail
	case cfg.duration < end:
		return nil, fmt.Errorf("duration %v is shorter than trace %s, whose last fault ends at %v", cfg.duration, cfg.trace, end)
	}
	return s, nil
}

// recordFrom converts a timeline (JSON lines, e.g. a previous run's timeline.jsonl) into a trace.
func recordFrom(cfg config, con *console) int {
	f, err := os.Open(cfg.recordFrom)
	if err != nil {
		con.Printf("soak: %v", err)
		return exitUsage
	}
	defer f.Close()
	entries, err := timeline.ReadJSONL(f)
	if err != nil {
		con.Printf("soak: %s: %v", cfg.recordFrom, err)
		return exitUsage
	}
	name := strings.TrimSuffix(filepath.Base(cfg.record), filepath.Ext(cfg.record))
	s, err := schedule.Record(entries, schedule.RecordOptions{Name: name})
	if err != nil {
		con.Printf("soak: %v", err)
		return exitUsage
	}
	if err := schedule.Save(cfg.record, s); err != nil {
		con.Printf("soak: %v", err)
		return exitHarness
	}
	con.Printf("soak: %d outage(s) from %s written to %s", len(s.Faults), cfg.recordFrom, cfg.record)
	return exitPass
}

// soak is one run.
type soak struct {
	cfg    config
	sched  *schedule.Schedule
	con    *console
	stdout io.Writer
	mem    *memPeak
	tag    string // makes topics and client ids unique to the run

	r       *rig.Rig
	clients []*soakClient // through the link
	feeder  *soakClient   // straight to the broker; nil without one
	traffic *rig.Traffic
	player  *schedule.Player
	phase   atomic.Value // string
	recv    atomic.Int64 // deliveries to the clients
}

// soakClient is one client under test and what the run tracks about it.
type soakClient struct {
	s       *soak
	id      string
	clean   bool
	c       clients.Client
	topic   string              // it publishes here
	filters []string            // it subscribes to these
	keep    *resubscribe.Keeper // subscribes again after each session loss
}

func (s *soak) run(ctx context.Context) (code int) {
	cfg := s.cfg
	s.phase.Store("setup")
	occ, _ := s.sched.Occurrences() // validated by plan
	origin := fmt.Sprintf("seed %d (SOAK_SEED=%d repeats it)", cfg.seed, cfg.seed)
	if cfg.trace != "" {
		origin = "trace " + cfg.trace
	}
	s.con.Printf("soak: %d %s clients × %g msg/s (+ feeder %g msg/s) for %v; %d faults from %s; report → %s",
		cfg.clients, cfg.client, cfg.rate, cfg.feedRate, cfg.duration, len(occ), origin, cfg.out)
	for i, o := range occ {
		if i == 12 && !cfg.verbose && len(occ) > 14 {
			s.con.Printf("soak:   … %d more (see %s/schedule.yaml)", len(occ)-i, cfg.out)
			break
		}
		s.con.Printf("soak:   %s", o)
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		s.con.Printf("soak: report directory: %v", err)
		return exitHarness
	}
	if err := schedule.Save(filepath.Join(cfg.out, "schedule.yaml"), s.sched); err != nil {
		s.con.Printf("soak: %v", err)
		return exitHarness
	}

	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(s.con, &slog.HandlerOptions{Level: level}))

	setupCtx, cancelSetup := context.WithTimeout(ctx, setupTimeout)
	defer cancelSetup()
	r, err := rig.New(setupCtx, rig.Options{ObserverID: "soak-" + s.tag + "-observer", Logger: log,
		Broker: broker.Options{Config: brokerConfig()}})
	if err != nil {
		s.con.Printf("soak: harness: starting the broker, link and observer: %v", err)
		return exitHarness
	}
	s.r = r
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if err := r.Close(cctx); err != nil {
			s.con.Printf("soak: harness: cleaning up: %v", err)
			if code == exitPass {
				code = exitHarness
			}
		}
	}()
	defer s.closeKeepers() // they keep the subscriptions until the report is written
	if err := s.setup(setupCtx); err != nil {
		s.con.Printf("soak: harness: %v", err)
		if ctx.Err() != nil {
			return exitInterrupted
		}
		return exitHarness
	}
	cancelSetup()

	o := &outcome{soakStart: time.Now()}
	if err := s.soakPhase(ctx, log, o); err != nil {
		s.con.Printf("soak: %v", err)
		return exitHarness
	}
	s.finishPhase(context.WithoutCancel(ctx), o)
	return s.reportPhase(context.WithoutCancel(ctx), o)
}

// outcome is what the phases after the setup found.
type outcome struct {
	soakStart    time.Time
	interrupted  bool
	harnessErrs  []string
	missing      []string // clients not reconnected after the heal
	drained      bool
	runWall      time.Duration
	healWall     time.Duration // heal, stop the traffic, reconnect
	drainWall    time.Duration
	stopProgress func()
	progressDone chan struct{}
}

// soakPhase publishes from every client and plays the schedule for the duration (or until ctx ends, or
// the schedule fails).
func (s *soak) soakPhase(ctx context.Context, log *slog.Logger, o *outcome) (err error) {
	cfg, r := s.cfg, s.r
	s.phase.Store("run")
	var pubs []rig.Publisher
	for _, c := range s.clients {
		pubs = append(pubs, rig.Publisher{Client: c.c, Name: c.id, Topic: c.topic, QoS: 1, Interval: interval(cfg.rate)})
	}
	if s.feeder != nil {
		pubs = append(pubs, rig.Publisher{Client: s.feeder.c, Name: s.feeder.id, Topic: s.feeder.topic, QoS: 1,
			Interval: interval(cfg.feedRate)})
	}
	if s.player, err = schedule.NewPlayer(s.sched, r.Injector(), log); err != nil {
		return err // validated already
	}
	s.traffic = r.StartTraffic(ctx, pubs...)
	playCtx, stopPlay := context.WithCancel(ctx)
	defer stopPlay()
	played := make(chan error, 1)
	go func() { played <- s.player.Run(playCtx) }()
	o.progressDone = make(chan struct{})
	o.stopProgress = s.startProgress(o.soakStart, o.progressDone)

	timer := time.NewTimer(cfg.duration)
	defer timer.Stop()
	var playErr error
	wait := played // nil once the schedule is over: then soak on until the duration
loop:
	for {
		select {
		case <-timer.C:
			break loop
		case <-ctx.Done():
			o.interrupted = true
			break loop
		case playErr = <-wait:
			wait = nil
			if playErr != nil {
				break loop
			}
		}
	}
	stopPlay()
	if wait != nil {
		playErr = <-played
	}
	if playErr != nil && !errors.Is(playErr, context.Canceled) {
		o.harnessErrs = append(o.harnessErrs, playErr.Error())
	}
	o.runWall = time.Since(o.soakStart)
	return nil
}

// finishPhase heals everything, stops the traffic, waits for every client to be back and drains. Each
// step is bounded.
func (s *soak) finishPhase(ctx context.Context, o *outcome) {
	cfg, r := s.cfg, s.r
	s.phase.Store("heal")
	healStart := time.Now()
	healCtx, cancelHeal := context.WithTimeout(ctx, cfg.healTimeout)
	if err := r.Heal(healCtx); err != nil {
		o.harnessErrs = append(o.harnessErrs, "healing the link: "+err.Error())
	}
	if err := r.Broker.Start(healCtx); err != nil {
		o.harnessErrs = append(o.harnessErrs, "starting the broker again: "+err.Error())
	}
	cancelHeal()
	s.phase.Store("stop")
	s.traffic.Stop(cfg.stopGrace)
	s.phase.Store("reconnect")
	o.missing = s.waitReconnected(ctx, cfg.healTimeout)
	o.healWall = time.Since(healStart)
	s.phase.Store("drain")
	drainStart := time.Now()
	o.drained = s.drain(ctx)
	o.drainWall = time.Since(drainStart)
	o.stopProgress()
	<-o.progressDone
}

// reportPhase decides, writes the report (and the recorded trace) and tells; it returns the exit code.
func (s *soak) reportPhase(ctx context.Context, o *outcome) int {
	cfg, r := s.cfg, s.r
	s.phase.Store("report")
	res := r.Ledger.Check()
	run := s.reportRun(ctx, o.soakStart, &res)
	rss, heap := s.mem.peaks()
	for k, v := range map[string]any{
		"peak_rss_bytes": rss, "peak_heap_bytes": heap, "wall_run": o.runWall.Round(time.Millisecond).String(),
		"wall_heal_reconnect": o.healWall.Round(time.Millisecond).String(), "wall_drain": o.drainWall.Round(time.Millisecond).String(),
		"drained": o.drained, "not_reconnected": o.missing, "harness_errors": o.harnessErrs,
		"interrupted": o.interrupted, "faults_injected": s.player.Injected(),
	} {
		run.Config[k] = v
	}
	summary, werr := report.Write(cfg.out, run)
	if werr != nil {
		o.harnessErrs = append(o.harnessErrs, "writing the report: "+werr.Error())
	}
	if err := writeTimeline(filepath.Join(cfg.out, "timeline.jsonl"), r.Timeline); err != nil {
		o.harnessErrs = append(o.harnessErrs, err.Error())
	}
	if cfg.record != "" {
		if err := s.record(o.soakStart); err != nil {
			o.harnessErrs = append(o.harnessErrs, err.Error())
		}
	}

	s.con.Printf("soak: %s  published %d  acknowledged %d  delivered %d  lost %d  unexpected %d  duplicates %d (%d deliveries)  reordered %d  indeterminate %d",
		verdictWord(res, o), res.Attempted, res.Acknowledged, res.Delivered, len(res.Lost),
		len(res.Unexpected), len(res.Duplicated), res.DuplicateDeliveries, len(res.Reordered), res.Indeterminate)
	s.con.Printf("soak: latency %v; ack latency %v; wall %v (run %v, heal+reconnect %v, drain %v); peak RSS %.1f MiB, peak heap %.1f MiB",
		res.Latency, res.AckLatency, time.Since(o.soakStart).Round(time.Millisecond), o.runWall.Round(time.Millisecond),
		o.healWall.Round(time.Millisecond), o.drainWall.Round(time.Millisecond), float64(rss)/(1<<20), float64(heap)/(1<<20))
	for i, l := range res.Lost {
		if i == 5 {
			s.con.Printf("soak:   … %d more lost (see %s)", len(res.Lost)-i, report.IndexFile)
			break
		}
		s.con.Printf("soak: LOST %s\n%s", l, strings.Join(res.Context(l.ID, 2), "\n"))
	}
	for i, u := range res.Unexpected {
		if i == 5 {
			s.con.Printf("soak:   … %d more unexpected (see %s)", len(res.Unexpected)-i, report.IndexFile)
			break
		}
		s.con.Printf("soak: UNEXPECTED %s", u)
	}
	if len(o.missing) > 0 {
		s.con.Printf("soak: FAIL: not reconnected within %v after the heal: %s", cfg.healTimeout, strings.Join(o.missing, ", "))
	}
	if !o.drained {
		s.con.Printf("soak: warning: deliveries still arriving after the drain timeout %v", cfg.drainMax)
	}
	for _, e := range o.harnessErrs {
		s.con.Printf("soak: harness error: %s", e)
	}
	if werr == nil && summary.Valid != (res.Valid() && res.Acknowledged > 0) {
		s.con.Printf("soak: warning: the report's verdict (%s) differs from the ledger's (valid=%t)", summary.Verdict, res.Valid())
	}
	s.con.Printf("soak: report %s", filepath.Join(cfg.out, report.IndexFile))
	fmt.Fprintln(s.stdout, filepath.Join(cfg.out, report.SummaryFile))
	return exitCode(res, o)
}

// exitCode: harness errors first (the verdict cannot be trusted), then an interruption, then the verdict:
// anything lost or unexpected, a client that did not come back, or nothing acknowledged (nothing proven)
// fails.
func exitCode(res ledger.Result, o *outcome) int {
	switch {
	case len(o.harnessErrs) > 0:
		return exitHarness
	case o.interrupted:
		return exitInterrupted
	case !res.Valid() || len(o.missing) > 0 || res.Acknowledged == 0:
		return exitFail
	}
	return exitPass
}

func writeTimeline(path string, tl *timeline.Timeline) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := errors.Join(tl.WriteJSONL(f), f.Close()); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func verdictWord(res ledger.Result, o *outcome) string {
	switch {
	case len(o.harnessErrs) > 0:
		return "HARNESS ERROR"
	case !res.Valid() || len(o.missing) > 0:
		return "FAIL"
	case res.Acknowledged == 0:
		return "UNKNOWN (nothing acknowledged)"
	case o.interrupted:
		return "INTERRUPTED (valid so far)"
	}
	return "PASS"
}

func interval(rate float64) time.Duration {
	return max(time.Duration(float64(time.Second)/rate), time.Millisecond)
}

// setup creates, connects and subscribes every client, within setupCtx.
//
// Only persistent sessions open windows in the ledger: the broker keeps their messages through every
// outage, so each one must arrive. A clean session loses what is published while it is away, and with
// every client behind the same link a publisher's re-send may land in any later session of the
// subscriber, so no window could be exact; their deliveries are still recorded (duplicates, unexpected,
// latency), and the observer and the persistent half check the rest.
func (s *soak) setup(setupCtx context.Context) error {
	cfg, r := s.cfg, s.r
	base := "soak/" + s.tag + "/"
	if err := r.Observer.Subscribe(setupCtx, base+"#"); err != nil {
		return fmt.Errorf("observer: %w", err)
	}
	width := len(strconv.Itoa(cfg.clients - 1))
	for i := range cfg.clients {
		name := fmt.Sprintf("c%0*d", width, i)
		s.clients = append(s.clients, &soakClient{s: s, id: "soak-" + s.tag + "-" + name, clean: i%2 == 1,
			topic: base + name})
	}
	feedTopic := base + "feed"
	for i, c := range s.clients {
		c.filters = []string{s.clients[(i+1)%len(s.clients)].topic}
		if cfg.feedRate > 0 {
			c.filters = append(c.filters, feedTopic)
		}
	}
	if cfg.feedRate > 0 {
		s.feeder = &soakClient{s: s, id: "soak-" + s.tag + "-feed", topic: feedTopic}
	}
	all := s.clients
	if s.feeder != nil {
		all = append(all[:len(all):len(all)], s.feeder)
	}
	for _, c := range all {
		if err := c.keeper(); err != nil {
			return err
		}
		o := clients.Options{ClientID: c.id, CleanSession: c.clean, KeepAlive: cfg.keepAlive,
			ResponseTimeout: cfg.response, ConnectTimeout: 10 * time.Second, OnEvent: c.onEvent, OnMessage: c.onMessage}
		if c == s.feeder {
			o.Addr = r.Broker.Addr() // not through the link: it keeps publishing while the others are cut off
		}
		cl, err := r.NewClient(cfg.client, o)
		if err != nil {
			return fmt.Errorf("client %s: %w", c.id, err)
		}
		c.c = cl
		cctx, cancel := context.WithTimeout(setupCtx, connectTimeout)
		err = cl.Connect(cctx)
		cancel()
		if err != nil {
			return fmt.Errorf("client %s: first connection: %w", c.id, err)
		}
		for _, f := range c.filters {
			if err := c.keep.Subscribe(setupCtx, f); err != nil {
				return fmt.Errorf("client %s: subscribing to %s: %w", c.id, f, err)
			}
		}
	}
	return r.Observer.WaitReady(setupCtx)
}

// keeper starts c's resubscribe.Keeper: it subscribes again after each session loss, as mqtt_as's
// connect_coro does, and notes each attempt on the timeline.
func (c *soakClient) keeper() error {
	r := c.s.r
	cfg := resubscribe.Config{Name: c.id, Timeout: resubTimeout,
		Subscribe: func(ctx context.Context, f string) error { return c.c.Subscribe(ctx, f, 1) },
		Notify: func(at time.Time, err error) {
			switch {
			case err != nil:
				r.Timeline.Record(at, c.id, timeline.Note, "resubscribe failed: "+err.Error())
			case !c.clean:
				r.Timeline.Record(at, c.id, timeline.Note, "session lost by the broker: subscribed again")
			}
		}}
	if !c.clean {
		cfg.Ledger = r.Ledger
	}
	k, err := resubscribe.New(cfg)
	c.keep = k
	return err
}

func (c *soakClient) onMessage(clients.Delivery) { c.s.recv.Add(1) } // the rig records it in the ledger

// onEvent hands the event to the keeper (the rig records it on the timeline).
func (c *soakClient) onEvent(e clients.Event) { c.keep.OnEvent(e) }

func (s *soak) closeKeepers() {
	for _, c := range s.all() {
		if c.keep != nil {
			c.keep.Close()
		}
	}
}

func (c *soakClient) ready() bool { return c.keep.Ready() && c.c.IsConnected() }

// waitReconnected waits up to limit for every client to be connected (and subscribed again if it lost
// its session), and returns those that are not.
func (s *soak) waitReconnected(ctx context.Context, limit time.Duration) []string {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var missing []string
		for _, c := range s.all() {
			if !c.ready() {
				missing = append(missing, c.id)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return missing
		case <-tick.C:
		}
	}
}

// drain waits until nothing new was recorded for cfg.drainQuiet, at most cfg.drainMax, and reports
// whether it got there.
func (s *soak) drain(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.drainMax)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last, since := s.r.Ledger.Len(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		if n := s.r.Ledger.Len(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= s.cfg.drainQuiet && s.r.Observer.Ready() {
			return true
		}
	}
}

func (s *soak) all() []*soakClient {
	if s.feeder == nil {
		return s.clients
	}
	return append(s.clients[:len(s.clients):len(s.clients)], s.feeder)
}

// startProgress shows the live progress line until the returned stop is called; done closes after the
// last line.
func (s *soak) startProgress(start time.Time, done chan<- struct{}) (stop func()) {
	every := s.cfg.progress
	if s.con.tty {
		every = time.Second
	}
	quit := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		sample := time.NewTicker(250 * time.Millisecond)
		defer sample.Stop()
		p := &progress{s: s, start: start, every: every}
		for {
			select {
			case <-quit:
				s.con.Progress(p.line())
				s.con.Done()
				return
			case <-sample.C:
				s.mem.sample()
			case <-tick.C:
				s.con.Progress(p.line())
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit) }) }
}

// progress renders the live line. Delivered and pending come from a ledger check: pending is what is
// acknowledged but not yet delivered to every subscriber that must have it (loss is only decided after
// the drain). A check reads the whole history, so it runs at most every 20 times its own duration.
type progress struct {
	s         *soak
	start     time.Time
	every     time.Duration
	lastCheck time.Time
	checkCost time.Duration
	delivered int
	pending   int
}

// line: elapsed/total, published, acknowledged, delivered (distinct, to the observer or a checked
// subscriber), pending, deliveries to the clients, the faults in force and the clients connected.
func (p *progress) line() string {
	s := p.s
	if time.Since(p.lastCheck) >= max(p.every, 20*p.checkCost) {
		t := time.Now()
		res := s.r.Ledger.Check()
		p.lastCheck, p.checkCost = time.Now(), time.Since(t)
		p.delivered, p.pending = res.Delivered, len(res.Lost)
	}
	el := min(time.Since(p.start).Round(time.Second), s.cfg.duration)
	var fault []string
	for _, o := range s.player.Active() {
		fault = append(fault, o.Fault.Name())
	}
	if len(fault) == 0 {
		fault = []string{"none"}
	}
	up := 0
	for _, c := range s.clients {
		if c.c.IsConnected() {
			up++
		}
	}
	phase, _ := s.phase.Load().(string)
	return fmt.Sprintf("soak %-9s %v/%v  published %d  acked %d  delivered %d  pending %d  received %d  fault %s (%d/%d injected)  up %d/%d",
		phase, el, s.cfg.duration, s.traffic.Published(), s.traffic.Acked(), p.delivered, p.pending, s.recv.Load(),
		strings.Join(fault, "+"), s.player.Injected(), len(s.player.Occurrences()), up, len(s.clients))
}

// reportRun assembles what report.Write needs.
func (s *soak) reportRun(ctx context.Context, soakStart time.Time, res *ledger.Result) report.Run {
	r := s.r
	logs, _ := r.Broker.Logs(ctx)
	run := report.Run{
		Name: filepath.Base(s.cfg.out), Started: r.Start, Duration: s.cfg.duration, Seed: s.cfg.seed,
		Client: s.cfg.client, Config: s.cfg.settings(), Versions: versions(ctx, r.Broker.Kind(), logs),
		Ledger: r.Ledger, Timeline: r.Timeline, Result: res,
	}
	run.Config["schedule"] = s.sched.Name
	run.Config["soak_offset"] = soakStart.Sub(r.Start).Round(time.Millisecond).String()
	if s.cfg.trace == "" {
		run.Config["seed_replay"] = fmt.Sprintf("SOAK_SEED=%d SOAK_DURATION=%v", s.cfg.seed, s.cfg.duration)
	}
	// The schedule as it was meant, shifted to the rig's clock (the player started after the setup).
	offset := soakStart.Sub(r.Start)
	for _, o := range s.player.Occurrences() {
		run.Schedule = append(run.Schedule, report.ScheduledFault{At: offset + o.At, Fault: o.Fault.Name(),
			Params: faults.Params(o.Fault), Duration: o.Duration})
	}
	entries := r.Timeline.Entries()
	windows := timeline.Faults(entries)
	slack := 2*s.cfg.keepAlive + 5*time.Second
	for _, c := range s.all() {
		fig := validate.Measure(entries, windows, c.id, slack)
		run.Clients = append(run.Clients, report.ClientSummary{Name: c.id, Clean: c.clean, Stats: c.c.Stats(),
			Outages: fig.Outages, Detection: fig.Detection, Reconnect: fig.Reconnect})
	}
	return run
}

// record writes the outages the clients saw as a trace. Times count from the soak's start (after the
// setup), as a replay's player does.
func (s *soak) record(soakStart time.Time) error {
	var ids []string
	for _, c := range s.clients {
		ids = append(ids, c.id)
	}
	offset := soakStart.Sub(s.r.Start)
	var entries []timeline.Entry
	for _, e := range s.r.Timeline.Entries() {
		if e.At >= offset {
			e.At -= offset
			entries = append(entries, e)
		}
	}
	name := strings.TrimSuffix(filepath.Base(s.cfg.record), filepath.Ext(s.cfg.record))
	rec, err := schedule.Record(entries, schedule.RecordOptions{Name: name, Sources: ids,
		Description: fmt.Sprintf("Recorded by soak from the outages of %d %s clients under %s.", len(ids), s.cfg.client, s.sched.Name)})
	if err != nil {
		return fmt.Errorf("recording the outages: %w", err)
	}
	if err := schedule.Save(s.cfg.record, rec); err != nil {
		return fmt.Errorf("recording the outages: %w", err)
	}
	s.con.Printf("soak: %d outage(s) recorded to %s", len(rec.Faults), s.cfg.record)
	return nil
}
