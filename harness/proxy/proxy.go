// Package proxy is the standalone fault proxy for real devices: the harness's link (an embedded
// Toxiproxy with the MQTT tap) listening for a device, in front of a broker (an external one, or the
// harness's own Mosquitto), with faults from a trace, a seeded random schedule, or live through
// Toxiproxy's own HTTP API (link.Link.API). It gives a verdict without touching the device: the tap's
// records go to a wire log (JSON lines), an observer subscribed straight to the broker reads the
// sequence numbers the device puts in its payloads, and at the end the report (harness/report) is
// written as the soak's is.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/observer"
	"github.com/mqttas/mqttas-go/harness/report"
	"github.com/mqttas/mqttas-go/harness/schedule"
	"github.com/mqttas/mqttas-go/harness/timeline"
	"github.com/mqttas/mqttas-go/harness/validate"
)

// Errors of Run, for errors.Is: each names the input at fault.
var (
	// ErrListen: the device's or the API's address cannot be listened on (in use, not local, ...).
	ErrListen = errors.New("proxy: cannot listen")
	// ErrBroker: the broker cannot be reached or started.
	ErrBroker = errors.New("proxy: no broker")
	// ErrConfig: a setting makes no sense.
	ErrConfig = errors.New("proxy: bad configuration")
)

// Files Run writes in Config.Out besides the report's own.
const (
	WireFile     = "wire.jsonl"
	TimelineFile = "timeline.jsonl"
)

// DefaultPattern finds the sequence number in a payload: the first run of digits.
const DefaultPattern = `(\d+)`

// Config is one proxy run's settings.
type Config struct {
	// Listen is where devices connect; it must be a loopback address unless Public is set.
	Listen string
	// Public allows Listen and API on an address other than loopback (a device on the LAN).
	Public bool
	// API is the address of Toxiproxy's HTTP API; "" serves none.
	API string
	// Broker is an external broker's host:port; "" starts the harness's Mosquitto (container or process).
	Broker string
	// Schedule is played from the start (a trace or a random draw), Repeat times in all (0: once); nil:
	// faults only through the API, until ctx ends.
	Schedule *schedule.Schedule
	Repeat   int
	// Tail is how long the proxy keeps serving after the schedule's end, for the device to recover.
	Tail time.Duration
	// Out is the report directory.
	Out string
	// Pattern finds the sequence number in a payload: its first group (or the whole match) is the number.
	Pattern *regexp.Regexp
	// Filter is what the observer subscribes to; "" is "#".
	Filter string
	// OnProgress receives a snapshot every ProgressEvery (default 1 s), and a last one at the end.
	OnProgress    func(Progress)
	ProgressEvery time.Duration
	// OnReady, if set, is called once the proxy serves, with the addresses it serves on.
	OnReady func(Addrs)
	Logger  *slog.Logger
}

// Addrs are where a running proxy serves.
type Addrs struct {
	Listen, API, Broker string
}

// Progress is a snapshot of a run.
type Progress struct {
	Elapsed     time.Duration
	Connections int // TCP connections through the proxy so far
	Packets     int // control packets recorded
	Received    int // deliveries to the observer
	Lost        int // sequence numbers missing so far
	Active      []string
	Final       bool
}

// Result is what a run found.
type Result struct {
	Summary     report.Summary
	Topics      []TopicFigures
	Interrupted bool // ctx ended before the schedule did
	Errors      []string
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) check() error {
	var errs []error
	for _, a := range []struct{ what, addr string }{{"listen", c.Listen}, {"api", c.API}} {
		if a.addr == "" && a.what == "api" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s address %q: %v", a.what, a.addr, err))
		} else if !c.Public && !loopback(a.addr) {
			errs = append(errs, fmt.Errorf("%s address %q is not loopback: allow it explicitly (Public, --public)", a.what, a.addr))
		}
	}
	if c.Broker != "" {
		if _, _, err := net.SplitHostPort(c.Broker); err != nil {
			errs = append(errs, fmt.Errorf("broker address %q: %v", c.Broker, err))
		}
	}
	if c.Repeat < 0 || c.Tail < 0 || c.ProgressEvery < 0 {
		errs = append(errs, fmt.Errorf("repeat %d, tail %v, progress %v: must not be negative", c.Repeat, c.Tail, c.ProgressEvery))
	}
	if c.Out == "" {
		errs = append(errs, errors.New("no report directory"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// run is one proxy run.
type run struct {
	cfg   Config
	log   *slog.Logger
	start time.Time
	tl    *timeline.Timeline
	led   *ledger.Ledger
	seqs  *sequences
	wire  *wireLog

	b   broker.Broker
	l   *link.Link
	obs *observer.Observer

	apiSrv *http.Server

	mu        sync.Mutex
	apiFaults map[string]int // toxic name → timeline fault
}

// Run serves until the schedule (if any) has played Repeat times and Tail has passed, or ctx ends
// (SIGINT); then it writes the report to cfg.Out and returns what it found. Its error is for a run
// that could not start: ErrConfig, ErrListen, ErrBroker.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Filter == "" {
		cfg.Filter = "#"
	}
	if cfg.Pattern == nil {
		cfg.Pattern = regexp.MustCompile(DefaultPattern)
	}
	if cfg.ProgressEvery == 0 {
		cfg.ProgressEvery = time.Second
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, log: cfg.Logger, start: time.Now(), apiFaults: map[string]int{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.tl, r.led = timeline.New(r.start), ledger.New(r.start)
	r.seqs = newSequences(cfg.Pattern, r.led, observerName)
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("%w: report directory: %w", ErrConfig, err)
	}
	defer r.close()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	res := &Result{}
	r.serve(ctx, res)
	r.finish(res)
	return res, nil
}

const (
	observerName  = "observer"
	setupTimeout  = 2 * time.Minute
	brokerTimeout = 10 * time.Second
	drainQuiet    = 500 * time.Millisecond
	drainTimeout  = 5 * time.Second
)

func (r *run) setup(ctx context.Context) error {
	cfg := r.cfg
	// Listen first: a port in use is the commonest mistake, and costs no broker start.
	lc := net.ListenConfig{}
	probe, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return listenErr("device", cfg.Listen, err)
	}
	_ = probe.Close()
	var apiLn net.Listener
	if cfg.API != "" {
		if apiLn, err = lc.Listen(ctx, "tcp", cfg.API); err != nil {
			return listenErr("API", cfg.API, err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	bo := broker.Options{Logger: r.log, Config: []string{"max_queued_messages 0"}}
	if cfg.Broker != "" {
		bo.Backend, bo.Addr, bo.StartTimeout = broker.KindExternal, cfg.Broker, brokerTimeout
	}
	if r.b, err = broker.New(sctx, bo); err != nil {
		closeQuietly(apiLn)
		return fmt.Errorf("%w: %w", ErrBroker, err)
	}
	if r.l, err = link.New(sctx, r.b.Addr(), link.WithListenAddr(cfg.Listen), link.WithLogger(r.log)); err != nil {
		closeQuietly(apiLn)
		return listenErr("device", cfg.Listen, err)
	}
	r.obs, err = observer.Start(sctx, observer.Config{Addr: r.b.Addr(), ClientID: fmt.Sprintf("mqttas-proxy-observer-%d", os.Getpid()),
		Name: observerName, Ledger: r.led, Logger: r.log, OnMessage: r.seqs.deliver,
		OnEvent: func(e clients.Event) { r.tl.Record(e.At, observerName, timeline.Kind(e.Kind), e.Detail()) }})
	if err == nil {
		err = r.obs.Subscribe(sctx, cfg.Filter)
	}
	if err != nil {
		closeQuietly(apiLn)
		return fmt.Errorf("%w: observer at %s: %w", ErrBroker, r.b.Addr(), err)
	}
	wf, err := os.Create(filepath.Join(cfg.Out, WireFile))
	if err != nil {
		closeQuietly(apiLn)
		return fmt.Errorf("%w: wire log: %w", ErrConfig, err)
	}
	r.wire = newWireLog(wf, r.l.Tap(), r.tl, r.start)
	addrs := Addrs{Listen: r.l.Addr(), Broker: r.b.Addr()}
	if apiLn != nil {
		addrs.API = apiLn.Addr().String()
		srv := &http.Server{Handler: r.l.API(r.apiChange), ReadHeaderTimeout: 10 * time.Second}
		r.apiSrv = srv
		go func() { _ = srv.Serve(apiLn) }()
	}
	r.log.Info("proxy serving", "listen", addrs.Listen, "api", addrs.API, "broker", addrs.Broker)
	if cfg.OnReady != nil {
		cfg.OnReady(addrs)
	}
	return nil
}

func closeQuietly(l net.Listener) {
	if l != nil {
		_ = l.Close()
	}
}

func listenErr(what, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w: %s address %s is in use (another proxy or broker?): %w", ErrListen, what, addr, err)
	}
	return fmt.Errorf("%w: %s address %s: %w", ErrListen, what, addr, err)
}

// apiChange records a change made through the API on the timeline, as a fault window.
func (r *run) apiChange(c link.APIChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.Added {
		params := map[string]any{"stream": c.Stream}
		for k, v := range c.Attributes {
			params[k] = v
		}
		r.apiFaults[c.Name] = r.tl.BeginFault(c.At, "api", c.Type, params)
		return
	}
	if id, ok := r.apiFaults[c.Name]; ok {
		_ = r.tl.EndFault(c.At, id, "")
		delete(r.apiFaults, c.Name)
	}
}

// serve plays the schedule and keeps the progress and the wire log going until the end.
func (r *run) serve(ctx context.Context, res *Result) {
	cfg := r.cfg
	played := make(chan error, 1)
	playCtx, stopPlay := context.WithCancel(ctx)
	defer stopPlay()
	if cfg.Schedule != nil {
		go func() { played <- r.play(playCtx) }()
	}
	tick := time.NewTicker(min(cfg.ProgressEvery, 200*time.Millisecond))
	defer tick.Stop()
	lastProgress := time.Now()
	var tail <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			res.Interrupted = cfg.Schedule != nil && tail == nil
			stopPlay()
			if cfg.Schedule != nil && tail == nil {
				if err := <-played; err != nil && !errors.Is(err, context.Canceled) {
					res.Errors = append(res.Errors, err.Error())
				}
			}
			return
		case err := <-played:
			if err != nil {
				res.Errors = append(res.Errors, err.Error())
			}
			t := time.NewTimer(cfg.Tail)
			defer t.Stop()
			tail = t.C
		case <-tail:
			return
		case <-tick.C:
			r.wire.poll()
			if cfg.OnProgress != nil && time.Since(lastProgress) >= cfg.ProgressEvery {
				lastProgress = time.Now()
				cfg.OnProgress(r.progress(false))
			}
		}
	}
}

func (r *run) progress(final bool) Progress {
	p := Progress{Elapsed: time.Since(r.start), Final: final, Received: r.seqs.received(), Lost: r.seqs.missing()}
	p.Connections, p.Packets = r.wire.counts()
	for _, e := range r.l.Active() {
		p.Active = append(p.Active, e.String())
	}
	return p
}

// play plays the schedule Repeat times, each play starting when the previous one ended.
func (r *run) play(ctx context.Context) error {
	for i := range max(r.cfg.Repeat, 1) {
		p, err := schedule.NewPlayer(r.cfg.Schedule, injector{r}, r.log)
		if err != nil {
			return err
		}
		r.log.Info("schedule", "name", r.cfg.Schedule.Name, "play", i+1)
		if err := p.Run(ctx); err != nil {
			return err
		}
	}
	return nil
}

// injector plays faults on the link and the broker, each a window on the timeline.
type injector struct{ r *run }

type injected struct {
	r  *run
	f  faults.Fault
	id int
}

func (i injector) target() faults.Target { return faults.Target{Link: i.r.l, Broker: i.r.b} }

func (i injector) Inject(ctx context.Context, f faults.Fault) (schedule.Healer, error) {
	params := map[string]any{}
	for k, v := range faults.Params(f) {
		params[k] = v
	}
	id := i.r.tl.BeginFault(time.Now(), "link", f.Name(), params)
	if err := f.Inject(ctx, i.target()); err != nil {
		_ = i.r.tl.EndFault(time.Now(), id, "inject failed: "+err.Error())
		return nil, fmt.Errorf("inject %s: %w", f, err)
	}
	in := &injected{r: i.r, f: f, id: id}
	if f.OneShot() {
		_ = i.r.tl.EndFault(time.Now(), id, "")
	}
	return in, nil
}

func (in *injected) Heal(ctx context.Context) error {
	err := in.f.Heal(ctx, injector{in.r}.target())
	detail := ""
	if err != nil {
		detail = "heal failed: " + err.Error()
	}
	_ = in.r.tl.EndFault(time.Now(), in.id, detail)
	return err
}

// finish writes the wire log's tail, the timeline and the report.
func (r *run) finish(res *Result) {
	cfg := r.cfg
	// What the broker still has on its way to the observer arrives first.
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	_ = r.obs.Drain(dctx, drainQuiet)
	cancel()
	r.wire.poll()
	r.seqs.close()
	if cfg.OnProgress != nil {
		cfg.OnProgress(r.progress(true))
	}
	lres := r.led.Check()
	entries := r.tl.Entries()
	windows := timeline.Faults(entries)
	run := report.Run{Name: filepath.Base(cfg.Out), Started: r.start, Duration: time.Since(r.start),
		Client: "device", Ledger: r.led, Timeline: r.tl, Result: &lres,
		Config: map[string]any{"listen": r.l.Addr(), "broker": r.b.Addr(), "broker_backend": r.b.Kind(),
			"pattern": cfg.Pattern.String(), "filter": cfg.Filter, "repeat": max(cfg.Repeat, 1),
			"wire_log": WireFile, "tail": cfg.Tail.String()},
		Versions: map[string]string{"toxiproxy": "v2.12.0 (embedded)"}}
	if cfg.Schedule != nil {
		run.Config["schedule"] = cfg.Schedule.Name
		occ, _ := cfg.Schedule.Occurrences()
		for _, o := range occ {
			run.Schedule = append(run.Schedule, report.ScheduledFault{At: o.At, Fault: o.Fault.Name(),
				Params: faults.Params(o.Fault), Duration: o.Duration})
		}
	}
	for _, dev := range r.wire.devices() {
		fig := validate.Measure(entries, windows, dev, 30*time.Second)
		run.Clients = append(run.Clients, report.ClientSummary{Name: dev, Outages: fig.Outages,
			Detection: fig.Detection, Reconnect: fig.Reconnect})
	}
	res.Topics = r.seqs.figures(r.wire.topicCounts())
	run.Config["topics"] = res.Topics
	sum, err := report.Write(cfg.Out, run)
	res.Summary = sum
	if err != nil {
		res.Errors = append(res.Errors, "writing the report: "+err.Error())
	}
	if err := r.tl.WriteFile(filepath.Join(cfg.Out, TimelineFile)); err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	if err := r.wire.close(); err != nil {
		res.Errors = append(res.Errors, "wire log: "+err.Error())
	}
}

// close stops everything Run started, each step bounded.
func (r *run) close() {
	if r.apiSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = r.apiSrv.Shutdown(ctx)
		cancel()
	}
	if r.obs != nil {
		_ = r.obs.Close()
	}
	if r.l != nil {
		_ = r.l.Close()
	}
	if r.wire != nil {
		_ = r.wire.close()
	}
	if r.b != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_ = r.b.Close(ctx)
		cancel()
	}
}
