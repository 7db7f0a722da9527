// Package soak is the soak run: N clients publish qos 1 through the faulty link (half of them with
// persistent sessions) and subscribe to a neighbour's topic and to a feeder that is connected straight
// to the broker, while a seeded random fault schedule (or a replayed trace) plays; an independent
// observer subscribes to everything. At the end of the duration the link is healed, every client must
// reconnect, deliveries drain, and the ledger decides. The report (summary.json, history.jsonl.gz,
// index.html, plus the schedule as schedule.yaml and timeline.jsonl) goes to the run's directory.
//
// The ledger judges online as the run goes (ledger.NewStreaming): every line is checked as it is
// recorded and streamed to history.jsonl.gz, and the plot's figures are taken on the way, so the run's
// memory is bounded by what is in flight and by the number of clients and topics, not by the number
// of messages. The history holds the ledger's lines in record order; the timeline is in timeline.jsonl.
//
// Plan draws or loads the schedule, Run runs it and returns a Result, RecordFrom turns a saved timeline
// into a trace and Check re-checks a saved history. cmd/soak is the command line around them.
package soak

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/procclient"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/report"
	"github.com/mqttas/mqttas-go/harness/resubscribe"
	"github.com/mqttas/mqttas-go/harness/rig"
	"github.com/mqttas/mqttas-go/harness/schedule"
	"github.com/mqttas/mqttas-go/harness/timeline"
	"github.com/mqttas/mqttas-go/harness/validate"
)

// Files Run writes besides the report's own (report.SummaryFile, report.HistoryFile, report.IndexFile).
const (
	ScheduleFile = "schedule.yaml"
	TimelineFile = "timeline.jsonl"
)

// Bounds on the phases that are not configurable.
const (
	setupTimeout   = 3 * time.Minute // broker, link, observer, every client connected and subscribed
	connectTimeout = 30 * time.Second
	closeTimeout   = 2 * time.Minute
	// messagesCheck is how often a run with a message bound (Config.Messages) looks at its count: it
	// ends at most this late, a few thousand messages past the bound at the rates a machine sustains.
	messagesCheck = 100 * time.Millisecond
	resubTimeout  = 10 * time.Second
)

// ErrInput is wrapped by the errors of Plan, RecordFrom and Check that come from their input (a trace,
// a timeline or a history that cannot be read or makes no sense), as opposed to a failure of the harness.
var ErrInput = errors.New("soak: bad input")

// Plan loads cfg's trace or draws the random schedule, and fixes the run's duration (see
// Config.Duration): everything is validated before anything starts.
//
// With an external broker (Config.BrokerAddr) the random schedule draws only the faults that act on the
// link, and a trace with a fault on the broker itself is refused: the broker is not the harness's to
// stop, and other shards may share it.
func Plan(cfg *Config) (*schedule.Schedule, error) {
	if cfg.Trace == "" {
		o := schedule.RandomOptions{OptIn: cfg.Crash}
		if cfg.BrokerAddr != "" {
			o.Mix = map[string]faults.Mix{}
			for _, f := range faults.All() {
				if f.Family() != faults.FamilyBroker {
					o.Mix[f.Name()] = f.Mix()
				}
			}
		}
		s, err := schedule.Random(cfg.Seed, cfg.Duration, o)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInput, err)
		}
		return s, nil
	}
	s, err := schedule.Load(cfg.Trace)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	if cfg.BrokerAddr != "" {
		for _, f := range s.Faults {
			if f.Fault.Family() == faults.FamilyBroker {
				return nil, fmt.Errorf("%w: trace %s has a %s fault, which needs the harness's own broker, not the external %s",
					ErrInput, cfg.Trace, f.Fault.Name(), cfg.BrokerAddr)
			}
		}
	}
	end := s.End()
	switch {
	case cfg.Duration == 0:
		cfg.Duration = end + cfg.Tail
	case cfg.Duration < end:
		return nil, fmt.Errorf("%w: duration %v is shorter than trace %s, whose last fault ends at %v", ErrInput,
			cfg.Duration, cfg.Trace, end)
	}
	return s, nil
}

// RecordFrom converts a timeline (JSON lines, e.g. a previous run's timeline.jsonl) into a trace written
// to tracePath, and returns how many outages it holds.
func RecordFrom(timelinePath, tracePath string) (int, error) {
	f, err := os.Open(timelinePath)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInput, err)
	}
	defer f.Close()
	entries, err := timeline.ReadJSONL(f)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", ErrInput, timelinePath, err)
	}
	s, err := schedule.Record(entries, schedule.RecordOptions{Name: traceName(tracePath)})
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInput, err)
	}
	if err := schedule.Save(tracePath, s); err != nil {
		return 0, err
	}
	return len(s.Faults), nil
}

func traceName(path string) string {
	return strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
}

// Result is what a run found. A Result with HarnessErrors cannot be trusted.
type Result struct {
	Ledger      ledger.Result
	Summary     *report.Summary // as written; nil if the report could not be written
	Interrupted bool            // ctx ended before the duration
	// ReachedMessages: the run ended at Config.Messages published, before its duration.
	ReachedMessages bool
	HarnessErrors   []string // a fault that would not inject or heal, a client that failed (see Run), the report, ...
	NotReconnected  []string // clients not back within HealTimeout after the heal
	Drained         bool     // deliveries stopped within DrainTimeout
	Recorded        int      // outages written to Config.Record
	// CloseErr is the failure to clean up (clients, observer, link, broker) after the report was written.
	CloseErr error

	Wall      time.Duration // from the soak's start (after the setup) to the verdict
	RunWall   time.Duration
	HealWall  time.Duration // heal, stop the traffic, reconnect
	DrainWall time.Duration
	PeakRSS   uint64 // bytes; 0 where /proc is missing
	PeakHeap  uint64
}

// Failed reports whether the run proves a failure or nothing: something lost or unexpected, a client
// that did not come back, or nothing acknowledged.
func (r *Result) Failed() bool {
	return !r.Ledger.Valid() || len(r.NotReconnected) > 0 || r.Ledger.Acknowledged == 0
}

// Verdict is the run's verdict in a word or a few: HARNESS ERROR, FAIL, UNKNOWN (nothing acknowledged),
// INTERRUPTED (valid so far) or PASS.
func (r *Result) Verdict() string {
	switch {
	case len(r.HarnessErrors) > 0:
		return "HARNESS ERROR"
	case !r.Ledger.Valid() || len(r.NotReconnected) > 0:
		return "FAIL"
	case r.Ledger.Acknowledged == 0:
		return "UNKNOWN (nothing acknowledged)"
	case r.Interrupted:
		return "INTERRUPTED (valid so far)"
	}
	return "PASS"
}

// Run runs the soak planned for cfg (see Plan) and writes its report to cfg.Out. The error is for a run
// that could not start or play at all (the report directory, the broker, a client's first connection);
// everything found after the start is in the Result, whose report is written even when ctx ends early.
// A client that fails itself (clients.ErrClientFailed: a driver that died, stopped answering or broke
// its protocol) ends the run early with its failure among the HarnessErrors: the run could judge it no
// further.
func Run(ctx context.Context, cfg Config, sched *schedule.Schedule) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Duration == 0 {
		return nil, errors.New("soak: no duration: Plan fixes it")
	}
	s := &run{cfg: cfg, sched: sched, log: cfg.Logger, mem: newMemPeak(), clock: readClock(), failed: make(chan struct{})}
	s.idPrefix, s.topicBase = names(cfg, time.Now())
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.phase.Store("setup")
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("report directory: %w", err)
	}
	if err := schedule.Save(filepath.Join(cfg.Out, ScheduleFile), sched); err != nil {
		return nil, err
	}
	setupCtx, cancelSetup := context.WithTimeout(ctx, setupTimeout)
	defer cancelSetup()
	bo := broker.Options{Config: brokerConfig()}
	if cfg.BrokerAddr != "" {
		bo = broker.Options{Backend: broker.KindExternal, Addr: cfg.BrokerAddr}
	}
	hist, err := newHistoryFile(cfg)
	if err != nil {
		return nil, err
	}
	s.hist = hist
	defer hist.close() // after a failed setup; the report phase closes it first otherwise
	r, err := rig.New(setupCtx, rig.Options{ObserverID: s.idPrefix + "observer", Logger: s.log, Clients: cfg.Registry,
		Broker: bo, NewLedger: hist.ledger})
	if err != nil {
		_ = hist.close()
		return nil, fmt.Errorf("harness: starting the broker, link and observer: %w", err)
	}
	s.r = r
	res := &Result{}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if err := s.unreported(r.Close(cctx)); err != nil {
			res.CloseErr = fmt.Errorf("harness: cleaning up: %w", err)
		}
	}()
	defer s.closeKeepers() // they keep the subscriptions until the report is written
	if err := s.setup(setupCtx); err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	cancelSetup()

	s.start = time.Now()
	if err := s.soakPhase(ctx, res); err != nil {
		return nil, err
	}
	s.finishPhase(context.WithoutCancel(ctx), res)
	s.reportPhase(context.WithoutCancel(ctx), res)
	return res, nil
}

// run is one soak run.
type run struct {
	cfg   Config
	sched *schedule.Schedule
	log   *slog.Logger
	mem   *memPeak
	// idPrefix ("soak-<tag>-", "soak-<run id>-s<shard>-") starts every client id and topicBase
	// ("soak/<tag>/", "soak/<run id>/s<shard>/") every topic: unique to the run and its shard.
	idPrefix, topicBase string
	clock               clockInfo
	hist                *historyFile
	start               time.Time

	r       *rig.Rig
	clients []*client // through the link
	feeder  *client   // straight to the broker; nil without one
	traffic *rig.Traffic
	player  *schedule.Player
	phase   atomic.Value // string
	recv    atomic.Int64 // deliveries to the clients

	stopProgress func() // stops the progress goroutine after its last snapshot

	// Clients that failed themselves (clients.ErrClientFailed): the run ends early, and nobody waits
	// for them to reconnect.
	failMu   sync.Mutex
	failures map[string]string // client id → its failure
	failed   chan struct{}     // closed at the first failure
}

// client is one client under test and what the run tracks about it.
type client struct {
	s       *run
	id      string
	clean   bool
	c       clients.Client
	topic   string              // it publishes here
	filters []string            // it subscribes to these
	keep    *resubscribe.Keeper // subscribes again after each session loss
}

// soakPhase publishes from every client and plays the schedule for the duration (or until ctx ends, or
// the schedule fails).
func (s *run) soakPhase(ctx context.Context, res *Result) (err error) {
	cfg, r := s.cfg, s.r
	s.phase.Store("run")
	var pubs []rig.Publisher
	for _, c := range s.clients {
		pubs = append(pubs, rig.Publisher{Client: c.c, Name: c.id, Topic: c.topic, QoS: 1, Interval: interval(cfg.Rate)})
	}
	if s.feeder != nil {
		pubs = append(pubs, rig.Publisher{Client: s.feeder.c, Name: s.feeder.id, Topic: s.feeder.topic, QoS: 1,
			Interval: interval(cfg.FeedRate)})
	}
	if s.player, err = schedule.NewPlayer(s.sched, r.Injector(), s.log); err != nil {
		return err // validated already
	}
	s.traffic = r.StartTraffic(ctx, pubs...)
	playCtx, stopPlay := context.WithCancel(ctx)
	defer stopPlay()
	played := make(chan error, 1)
	go func() { played <- s.player.Run(playCtx) }()
	s.startProgress()

	timer := time.NewTimer(cfg.Duration)
	defer timer.Stop()
	var enough <-chan time.Time // ticks while a message bound is to be checked
	if cfg.Messages > 0 {
		t := time.NewTicker(messagesCheck)
		defer t.Stop()
		enough = t.C
	}
	var playErr error
	wait := played // nil once the schedule is over: then soak on until the duration
loop:
	for {
		select {
		case <-timer.C:
			break loop
		case <-enough:
			if s.traffic.Published() >= cfg.Messages {
				res.ReachedMessages = true
				break loop
			}
		case <-ctx.Done():
			res.Interrupted = true
			break loop
		case playErr = <-wait:
			wait = nil
			if playErr != nil {
				break loop
			}
		case <-s.failed:
			break loop // a client that cannot go on: the rest of the run would judge nothing
		}
	}
	stopPlay()
	if wait != nil {
		playErr = <-played
	}
	if playErr != nil && !errors.Is(playErr, context.Canceled) {
		res.HarnessErrors = append(res.HarnessErrors, playErr.Error())
	}
	res.RunWall = time.Since(s.start)
	return nil
}

// finishPhase heals everything, stops the traffic, waits for every client to be back and drains. Each
// step is bounded.
func (s *run) finishPhase(ctx context.Context, res *Result) {
	cfg, r := s.cfg, s.r
	s.phase.Store("heal")
	healStart := time.Now()
	healCtx, cancelHeal := context.WithTimeout(ctx, cfg.HealTimeout)
	if err := r.Heal(healCtx); err != nil {
		res.HarnessErrors = append(res.HarnessErrors, "healing the link: "+err.Error())
	}
	if r.Broker.Kind() != broker.KindExternal {
		if err := r.Broker.Start(healCtx); err != nil {
			res.HarnessErrors = append(res.HarnessErrors, "starting the broker again: "+err.Error())
		}
	}
	cancelHeal()
	s.phase.Store("stop")
	s.traffic.Stop(cfg.StopGrace)
	s.phase.Store("reconnect")
	res.NotReconnected = s.waitReconnected(ctx, cfg.HealTimeout)
	res.HealWall = time.Since(healStart)
	s.phase.Store("drain")
	drainStart := time.Now()
	res.Drained = s.drain(ctx)
	res.DrainWall = time.Since(drainStart)
	s.stopProgress()
}

// reportPhase decides and writes the report (and the recorded trace).
func (s *run) reportPhase(ctx context.Context, res *Result) {
	cfg, r := s.cfg, s.r
	s.phase.Store("report")
	res.HarnessErrors = append(res.HarnessErrors, s.clientFailures()...)
	res.Ledger = r.Ledger.Check()
	if err := errors.Join(r.Ledger.Finish(), s.hist.close()); err != nil {
		res.HarnessErrors = append(res.HarnessErrors, "writing the history: "+err.Error())
	}
	run := s.reportRun(ctx, &res.Ledger)
	res.PeakRSS, res.PeakHeap = s.mem.peaks()
	for k, v := range map[string]any{
		"peak_rss_bytes": res.PeakRSS, "peak_heap_bytes": res.PeakHeap, "wall_run": res.RunWall.Round(time.Millisecond).String(),
		"wall_heal_reconnect": res.HealWall.Round(time.Millisecond).String(), "wall_drain": res.DrainWall.Round(time.Millisecond).String(),
		"drained": res.Drained, "not_reconnected": res.NotReconnected, "harness_errors": res.HarnessErrors,
		"interrupted": res.Interrupted, "faults_injected": s.player.Injected(),
		"messages_bound": cfg.Messages, "reached_messages": res.ReachedMessages,
	} {
		run.Config[k] = v
	}
	summary, werr := report.Write(cfg.Out, run)
	if werr != nil {
		res.HarnessErrors = append(res.HarnessErrors, "writing the report: "+werr.Error())
	} else {
		res.Summary = &summary
	}
	if err := r.Timeline.WriteFile(filepath.Join(cfg.Out, TimelineFile)); err != nil {
		res.HarnessErrors = append(res.HarnessErrors, err.Error())
	}
	if cfg.Record != "" {
		n, err := s.record()
		if err != nil {
			res.HarnessErrors = append(res.HarnessErrors, err.Error())
		}
		res.Recorded = n
	}
	res.Wall = time.Since(s.start)
}

// names returns the run's client id prefix and topic base: "soak-<tag>-" and "soak/<tag>/", the tag
// being the run id or, without one, drawn from now; a shard adds "s<shard>".
func names(cfg Config, now time.Time) (idPrefix, topicBase string) {
	tag := cfg.RunID
	if tag == "" {
		tag = strconv.FormatInt(now.UnixMilli()%(36*36*36*36), 36)
	}
	idPrefix, topicBase = "soak-"+tag+"-", "soak/"+tag+"/"
	if cfg.Shards > 0 {
		sh := "s" + strconv.Itoa(cfg.Shard)
		idPrefix, topicBase = idPrefix+sh+"-", topicBase+sh+"/"
	}
	return idPrefix, topicBase
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
func (s *run) setup(setupCtx context.Context) error {
	cfg, r := s.cfg, s.r
	base := s.topicBase
	if err := r.Observer.Subscribe(setupCtx, base+"#"); err != nil {
		return fmt.Errorf("observer: %w", err)
	}
	width := len(strconv.Itoa(cfg.Clients - 1))
	for i := range cfg.Clients {
		name := fmt.Sprintf("c%0*d", width, i)
		s.clients = append(s.clients, &client{s: s, id: s.idPrefix + name, clean: i%2 == 1,
			topic: base + name})
	}
	feedTopic := base + "feed"
	for i, c := range s.clients {
		c.filters = []string{s.clients[(i+1)%len(s.clients)].topic}
		if cfg.FeedRate > 0 {
			c.filters = append(c.filters, feedTopic)
		}
	}
	if cfg.FeedRate > 0 {
		s.feeder = &client{s: s, id: s.idPrefix + "feed", topic: feedTopic}
	}
	for _, c := range s.all() {
		if err := c.keeper(); err != nil {
			return err
		}
		o := clients.Options{ClientID: c.id, CleanSession: c.clean, KeepAlive: cfg.KeepAlive,
			ResponseTimeout: cfg.ResponseTimeout, ConnectTimeout: 10 * time.Second, OnEvent: c.onEvent, OnMessage: c.onMessage}
		if c == s.feeder {
			o.Addr = r.Broker.Addr() // not through the link: it keeps publishing while the others are cut off
		}
		cl, err := r.NewClient(cfg.Client, o)
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
func (c *client) keeper() error {
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

func (c *client) onMessage(clients.Delivery) { c.s.recv.Add(1) } // the rig records it in the ledger

// onEvent hands the event to the keeper (the rig records it on the timeline).
// onEvent passes e on to c's keeper, and notes a failure of the client itself.
func (c *client) onEvent(e clients.Event) {
	c.keep.OnEvent(e)
	if e.Kind == clients.EventDown && errors.Is(e.Err, clients.ErrClientFailed) {
		c.s.clientFailed(c.id, e.Err)
	}
}

// clientFailed records the failure of client id (the first one it reported) and ends the run.
func (s *run) clientFailed(id string, err error) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if _, ok := s.failures[id]; ok {
		return
	}
	if s.failures == nil {
		s.failures = map[string]string{}
		close(s.failed)
	}
	s.failures[id] = err.Error()
	s.log.Error("client failed", "client", id, "err", err)
}

func (s *run) hasFailed(id string) bool {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	_, ok := s.failures[id]
	return ok
}

// clientFailures lists the clients' own failures, by client id.
func (s *run) clientFailures() []string {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	var out []string
	for _, id := range slices.Sorted(maps.Keys(s.failures)) {
		out = append(out, fmt.Sprintf("client %s failed: %s", id, s.failures[id]))
	}
	return out
}

// unreported drops from the clean-up's errors (a join) the clients' failures the run reported already:
// a failed client's Close returns its failure again.
func (s *run) unreported(err error) error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if err == nil || len(s.failures) == 0 {
		return err
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var rest []error
	for _, e := range errs {
		if !errors.Is(e, clients.ErrClientFailed) || !slices.Contains(slices.Collect(maps.Values(s.failures)), e.Error()) {
			rest = append(rest, e)
		}
	}
	return errors.Join(rest...)
}

func (s *run) closeKeepers() {
	for _, c := range s.all() {
		if c.keep != nil {
			c.keep.Close()
		}
	}
}

func (c *client) ready() bool { return c.keep.Ready() && c.c.IsConnected() }

// waitReconnected waits up to limit for every client to be connected (and subscribed again if it lost
// its session), and returns those that are not.
func (s *run) waitReconnected(ctx context.Context, limit time.Duration) []string {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var missing []string
		for _, c := range s.all() {
			if !c.ready() && !s.hasFailed(c.id) {
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

// drain waits until nothing new was recorded for DrainQuiet, at most DrainTimeout, and reports whether it
// got there.
func (s *run) drain(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DrainTimeout)
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
		} else if time.Since(since) >= s.cfg.DrainQuiet && s.r.Observer.Ready() {
			return true
		}
	}
}

// driverLibrary is the library and version an out-of-process client's driver named in its hello ("" for
// a Go client, whose version is the build's).
func (s *run) driverLibrary() (library, version string) {
	for _, c := range s.all() {
		if d, ok := c.c.(interface{ Hello() procclient.Hello }); ok {
			if h := d.Hello(); h.Library != "" {
				return h.Library, h.Version
			}
		}
	}
	return "", ""
}

func (s *run) all() []*client {
	if s.feeder == nil {
		return s.clients
	}
	return append(s.clients[:len(s.clients):len(s.clients)], s.feeder)
}

// reportRun assembles what report.Write needs.
func (s *run) reportRun(ctx context.Context, res *ledger.Result) report.Run {
	r := s.r
	logs, _ := r.Broker.Logs(ctx)
	run := report.Run{
		Name: filepath.Base(s.cfg.Out), Started: r.Start, Duration: s.cfg.Duration, Seed: s.cfg.Seed,
		Client: s.cfg.Client, Config: s.cfg.Settings(), Versions: versions(ctx, r.Broker.Kind(), logs),
		Timeline: r.Timeline, Result: res, PlainHistory: s.cfg.PlainHistory,
		Streamed: &report.Streamed{File: s.hist.name, Series: s.hist.series},
	}
	if lib, version := s.driverLibrary(); lib != "" {
		run.Versions[lib] = version
	}
	run.Config["schedule"] = s.sched.Name
	run.Config["soak_offset"] = s.start.Sub(r.Start).Round(time.Millisecond).String()
	run.Config["run_id"] = strings.TrimSuffix(strings.TrimPrefix(s.idPrefix, "soak-"), "-")
	run.Config["clock"] = s.clock.settings(r.Start)
	if s.cfg.Shards > 0 {
		run.Config["shard"] = fmt.Sprintf("%d/%d", s.cfg.Shard, s.cfg.Shards)
		run.Config["run_id"] = s.cfg.RunID
	}
	if s.cfg.BrokerAddr != "" {
		run.Config["broker_addr"] = s.cfg.BrokerAddr
	}
	if s.cfg.Trace == "" {
		run.Config["seed_replay"] = fmt.Sprintf("SOAK_SEED=%d SOAK_DURATION=%v", s.cfg.Seed, s.cfg.Duration)
		if len(s.cfg.Crash) > 0 {
			run.Config["seed_replay"] = fmt.Sprintf("%v SOAK_CRASH=%s", run.Config["seed_replay"], strings.Join(s.cfg.Crash, ","))
		}
	}
	// The schedule as it was meant, shifted to the rig's clock (the player started after the setup).
	offset := s.start.Sub(r.Start)
	for _, o := range s.player.Occurrences() {
		run.Schedule = append(run.Schedule, report.ScheduledFault{At: offset + o.At, Fault: o.Fault.Name(),
			Params: faults.Params(o.Fault), Duration: o.Duration})
	}
	entries := r.Timeline.Entries()
	windows := timeline.Faults(entries)
	slack := 2*s.cfg.KeepAlive + 5*time.Second
	for _, c := range s.all() {
		fig := validate.Measure(entries, windows, c.id, slack)
		run.Clients = append(run.Clients, report.ClientSummary{Name: c.id, Clean: c.clean, Stats: c.c.Stats(),
			Outages: fig.Outages, Detection: fig.Detection, Reconnect: fig.Reconnect})
	}
	return run
}

// record writes the outages the clients saw as a trace and returns how many. Times count from the soak's
// start (after the setup), as a replay's player does.
func (s *run) record() (int, error) {
	var ids []string
	for _, c := range s.clients {
		ids = append(ids, c.id)
	}
	offset := s.start.Sub(s.r.Start)
	var entries []timeline.Entry
	for _, e := range s.r.Timeline.Entries() {
		if e.At >= offset {
			e.At -= offset
			entries = append(entries, e)
		}
	}
	rec, err := schedule.Record(entries, schedule.RecordOptions{Name: traceName(s.cfg.Record), Sources: ids,
		Description: fmt.Sprintf("Recorded by soak from the outages of %d %s clients under %s.", len(ids), s.cfg.Client, s.sched.Name)})
	if err != nil {
		return 0, fmt.Errorf("recording the outages: %w", err)
	}
	if err := schedule.Save(s.cfg.Record, rec); err != nil {
		return 0, fmt.Errorf("recording the outages: %w", err)
	}
	return len(rec.Faults), nil
}

// CheckOnline checks a saved history as Check does, but line by line with ledger.ReadOnline, in
// memory bounded by what was in flight rather than by the length of the run. Its latency quantiles
// are within ledger.SketchAccuracy of Check's; the rest of the verdict is Check's.
func CheckOnline(path string) (*ledger.Online, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	defer f.Close()
	o, err := ledger.ReadOnline(f, 0)
	if err != nil {
		if errors.Is(err, ledger.ErrHistory) {
			err = fmt.Errorf("%w: %s: %w", ErrInput, path, err)
		}
		return nil, err
	}
	return o, nil
}

// Check reads a saved history (a report's history.jsonl.gz or history.jsonl, or any the ledger wrote,
// compressed or not) and checks it again:
// it gives the verdict of the run that wrote it.
func Check(path string) (ledger.Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return ledger.Result{}, fmt.Errorf("%w: %w", ErrInput, err)
	}
	defer f.Close()
	res, err := ledger.CheckJSONL(f)
	if err != nil {
		if errors.Is(err, ledger.ErrHistory) {
			err = fmt.Errorf("%w: %s: %w", ErrInput, path, err)
		}
		return ledger.Result{}, err
	}
	return res, nil
}
