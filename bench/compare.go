package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/crashclient"
	"github.com/mqttas/mqttas-go/harness/clients/procclient"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
	"github.com/mqttas/mqttas-go/harness/rig"
	"github.com/mqttas/mqttas-go/harness/validate"
)

// CompareConfig configures RunCompare. Zero fields take the defaults of DefaultCompareConfig.
type CompareConfig struct {
	Rounds    int      `json:"rounds"`
	Libs      []string `json:"libs"`
	Scenarios []string `json:"scenarios"`
	// Scale multiplies every fault's duration and every wait (1 = the defaults); tests use less.
	Scale    float64  `json:"scale"`
	Settings Settings `json:"-"`
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any) `json:"-"`
}

// DefaultCompareConfig returns what "make compare" runs: every scenario twice for every client.
func DefaultCompareConfig() CompareConfig {
	return CompareConfig{Rounds: 2, Libs: CompareLibs(), Scenarios: ScenarioNames(), Scale: 1, Settings: DefaultSettings()}
}

func (c *CompareConfig) fill() {
	d := DefaultCompareConfig()
	if c.Rounds <= 0 {
		c.Rounds = d.Rounds
	}
	if len(c.Libs) == 0 {
		c.Libs = d.Libs
	}
	if len(c.Scenarios) == 0 {
		c.Scenarios = d.Scenarios
	}
	if c.Scale <= 0 {
		c.Scale = d.Scale
	}
	if c.Settings == (Settings{}) {
		c.Settings = d.Settings
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
}

// Verdict is how one client fared in one scenario, from the ledger (what was published, acknowledged and
// delivered to the independent observer or to the subscriber under test), its connection events and the
// link's packet tap. -1 means "does not apply".
type Verdict struct {
	Scenario string `json:"scenario"`
	Client   string `json:"client"`
	Round    int    `json:"round"`

	QoS           int `json:"qos"`           // of the publications; -1 when there are none
	Attempted     int `json:"attempted"`     // publications attempted
	Acked         int `json:"acked"`         // Publish returned nil
	Failed        int `json:"failed"`        // returned an error that guarantees "not sent"
	Indeterminate int `json:"indeterminate"` // returned another error, or never returned
	Delivered     int `json:"delivered"`     // distinct messages delivered
	// Lost: attempted and never delivered, whatever Publish said (for a subscriber under test: messages
	// the broker accepted for it that it never handed to the application).
	Lost int `json:"lost"`
	// FalseSuccesses: Publish returned nil and the message was never delivered.
	FalseSuccesses int `json:"false_successes"`
	Duplicates     int `json:"duplicates"` // deliveries beyond the first
	Reordered      int `json:"reordered"`
	// ErrorButDelivered: Publish returned an error of the client's own and the message arrived anyway (an
	// application that retries on the error makes a duplicate).
	ErrorButDelivered int `json:"error_but_delivered"`
	// AbandonedDelivered: publications the harness gave up waiting for (Publish had not returned when the
	// scenario ended) that arrived anyway.
	AbandonedDelivered int `json:"abandoned_delivered"`
	// SuccessWithoutPuback: at least this many qos 1 publications returned nil although no PUBACK for them
	// ever reached the client (acknowledged publications minus PUBACKs the link forwarded to the client).
	SuccessWithoutPuback int `json:"success_without_puback"`
	// FalseSuccessesWhileDown: the false successes invoked while the client had reported the connection
	// lost and not yet reported it up again: publications a client accepted knowing it could not send them.
	FalseSuccessesWhileDown int `json:"false_successes_while_down"`
	// SuccessNeverSent: at least this many qos 0 publications returned nil although the link never read
	// them from the client's connection (acknowledged publications minus PUBLISH packets the link read):
	// dropped inside the client, or written into the socket just as the link closed it. The rest of the
	// false successes reached the link and were lost behind it when the connection was cut.
	SuccessNeverSent int `json:"success_never_sent"`
	Outages          int `json:"outages"` // connection losses the client reported during the scenario

	// The per-outage figures, as harness/validate defines them.
	DetectionMS *float64 `json:"detection_ms,omitempty"` // fault → the client reports the connection lost
	ReconnectMS *float64 `json:"reconnect_ms,omitempty"` // heal → the client reports it is connected again
	RecoveryMS  *float64 `json:"recovery_ms,omitempty"`  // heal → the first publication acknowledged after it
	Stalled     bool     `json:"stalled"`                // not back within the scenario's bound
	Notes       []string `json:"notes,omitempty"`
	// Library is the library and version an out-of-process driver reported in its hello ("" for the Go
	// clients, whose versions are the build's: Machine).
	Library string `json:"library,omitempty"`
	// Evidence shows the defects found: the ledger's smallest counter-example of each kind (the first lost,
	// duplicated or unexpected message, with the history around it) and the tap's packets around it.
	Evidence []string `json:"evidence,omitempty"`
	Error    string   `json:"error,omitempty"`
}

func (v *Verdict) note(format string, args ...any) {
	v.Notes = append(v.Notes, fmt.Sprintf(format, args...))
}

func msPtr(d time.Duration) *float64 { x := ms(d); return &x }

// back is how long after the heal the client was back: its recovery time where it published, else its
// reconnect time; nil when it has neither.
func (v Verdict) back() *float64 {
	if v.RecoveryMS != nil {
		return v.RecoveryMS
	}
	return v.ReconnectMS
}

// judgeOutages sets the detection and reconnect times of client id for the fault from start to healed
// (the reconnect of the last outage that began no later than the client's keepalive after the heal),
// counts the outages that began after the fault's start, and returns the client's outages.
func (e *env) judgeOutages(v *Verdict, id string, start, healed time.Time) []validate.Outage {
	j := judge(e.r, id, start, healed, e.s.KeepAlive)
	if j.detected {
		v.DetectionMS = msPtr(j.detection)
	}
	if j.reconnected {
		v.ReconnectMS = msPtr(j.reconnect)
	}
	v.Outages = j.began
	return j.outages
}

// scenario is one fault scenario.
type scenario struct {
	name string
	desc string
	run  func(ctx context.Context, e *env) (Verdict, error)
}

// crashClients are the clients each crash scenario runs for. Every other scenario runs for every client
// but the crash-capable ones, which run only the crash scenarios.
var crashClients = map[string][]string{
	"client-kill":      {crashclient.NameMQTTAS, crashclient.NamePaho},
	"client-power-cut": {crashclient.NameMQTTAS},
}

// runsFor reports whether the scenario runs for lib.
func (sc scenario) runsFor(lib string) bool {
	if cs, ok := crashClients[sc.name]; ok {
		return slices.Contains(cs, lib)
	}
	return !isCrashLib(lib)
}

// env is what a scenario runs with: a fresh rig per scenario and client.
type env struct {
	r     *rig.Rig
	lib   string
	s     Settings
	scale float64
}

// d scales a duration.
func (e *env) d(x time.Duration) time.Duration { return time.Duration(float64(x) * e.scale) }

// ScenarioNames lists the compare scenarios in the order they run.
func ScenarioNames() []string {
	var out []string
	for _, s := range scenarios() {
		out = append(out, s.name)
	}
	return out
}

// scenarios lists the compare scenarios: first one per fault of the registry that has a trial (named by
// the fault, in the registry's order), then the ones that combine faults and workloads of their own.
func scenarios() []scenario {
	var out []scenario
	for _, tr := range faults.Trials() {
		desc := "qos 1 at 100 msg/s, " + tr.What
		if tr.Hold > 0 {
			desc += " (each hold up to 1 s longer, at random)"
		}
		out = append(out, scenario{tr.Fault.Name(), desc, func(ctx context.Context, e *env) (Verdict, error) {
			return e.traffic(ctx, 1, 10*time.Millisecond, e.trial(tr))
		}})
	}
	return append(append(out, []scenario{
		{"drop-pubacks+reset", "qos 1 at 100 msg/s; PUBACKs to the client dropped for 3 s, and the link reset 1 s into it", func(ctx context.Context, e *env) (Verdict, error) {
			return e.traffic(ctx, 1, 10*time.Millisecond, func(ctx context.Context) (time.Time, time.Time, error) {
				drop, err := e.r.Inject(ctx, faults.DropPubacks{})
				if err != nil {
					return time.Time{}, time.Time{}, err
				}
				sleep(ctx, e.d(time.Second))
				reset, err := e.r.Inject(ctx, faults.Reset{})
				if err != nil {
					return time.Time{}, time.Time{}, err
				}
				sleep(ctx, e.d(2*time.Second))
				err = drop.Heal(ctx)
				return reset.Since, time.Now(), err // detection is of the reset; recovery from the PUBACKs' return
			})
		}},
		{"qos0-down", "qos 0 at 200 msg/s; the link refuses connections and closes the open one for 2–3 s", func(ctx context.Context, e *env) (Verdict, error) {
			return e.traffic(ctx, 0, 5*time.Millisecond, e.hold(faults.Down{}, 2*time.Second))
		}},
		{"silent-idle", "an idle client (keepalive only); both directions blackholed for 6–7 s", func(ctx context.Context, e *env) (Verdict, error) { return e.silentIdle(ctx) }},
		{"slow-handler", "a qos 1 subscriber whose handler sleeps 1.5 s per message (less than KeepAlive) gets 6 messages: pings must still flow", func(ctx context.Context, e *env) (Verdict, error) {
			return e.slowHandler(ctx, 6, 1500*time.Millisecond)
		}},
		{"slow-handler-3s", "the same with a handler that sleeps 3 s per message (longer than KeepAlive), 6 messages", func(ctx context.Context, e *env) (Verdict, error) {
			return e.slowHandler(ctx, 6, 3*time.Second)
		}},
		{"backlog", "a persistent (clean session off) qos 1 subscriber is cut off (link down, 3–4 s) while 300 messages are published, then healed", func(ctx context.Context, e *env) (Verdict, error) { return e.backlog(ctx) }},
	}...), crashScenarios()...)
}

// crashScenarios are the client crashes, for the crash-capable clients: what a client reported durable
// before its process was killed, or its power cut, must arrive after its restart (a false success is one
// that did not). The power cut runs only for a client whose driver can take one (paho's file store calls no
// fsync, so the harness cannot tell what a cut would keep of it): see crashClients.
func crashScenarios() []scenario {
	crash := func(f faults.Fault) func(ctx context.Context, e *env) (Verdict, error) {
		tr := faults.Trial{Fault: f, Hold: time.Second, Times: 3, Pause: 2 * time.Second}
		return func(ctx context.Context, e *env) (Verdict, error) {
			return e.traffic(ctx, 1, 10*time.Millisecond, e.trial(tr))
		}
	}
	return []scenario{
		{"client-kill", "qos 1 at 100 msg/s reported durable by a crash-capable client; its process SIGKILLed 3 times, each restarted on its store 1–2 s later, 2 s apart",
			crash(faults.ClientKill{Share: 100})},
		{"client-power-cut", "the same with power cuts: each kill also drops what the client wrote and did not fsync (mqttas-durable only: paho's file store calls no fsync)",
			crash(faults.ClientPowerCut{Share: 100})},
	}
}

// trial plays tr: its fault injected tr.Count() times, each held (see hold) and followed by tr.Pause
// (scaled). It returns when the first injection started and when the last one was healed.
func (e *env) trial(tr faults.Trial) func(context.Context) (time.Time, time.Time, error) {
	return func(ctx context.Context) (start, healed time.Time, err error) {
		for i := range tr.Count() {
			if i > 0 {
				sleep(ctx, e.d(tr.Pause))
			}
			since, h, err := e.hold(tr.Fault, tr.Hold)(ctx)
			if err != nil {
				return start, healed, err
			}
			if i == 0 {
				start = since
			}
			healed = h
		}
		return start, healed, nil
	}
}

// hold injects f, keeps it for d plus up to a second at random (scaled), and heals it; a one-shot fault
// is over once injected. The random part puts the heal at any phase of the clients' retry schedules
// (paho retries exactly every second, so a whole-second outage would line its retry up with the heal).
func (e *env) hold(f faults.Fault, d time.Duration) func(context.Context) (time.Time, time.Time, error) {
	return func(ctx context.Context) (time.Time, time.Time, error) {
		in, err := e.r.Inject(ctx, f)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		if !f.OneShot() {
			sleep(ctx, e.d(d+rand.N(time.Second)))
		}
		err = in.Heal(context.WithoutCancel(ctx))
		return in.Since, time.Now(), err
	}
}

// okLog is a client whose successful publications are counted, with the time of the latest, so a
// scenario can wait for traffic to flow again (the figures come from the ledger, through validate).
type okLog struct {
	clients.Client
	mu   sync.Mutex
	n    int
	last time.Time
}

func (c *okLog) Publish(ctx context.Context, m clients.Message) error {
	err := c.Client.Publish(ctx, m)
	if err == nil {
		now := time.Now()
		c.mu.Lock()
		c.n, c.last = c.n+1, now
		c.mu.Unlock()
	}
	return err
}

// okSince reports whether a publication succeeded at or after t.
func (c *okLog) okSince(t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n > 0 && !c.last.Before(t)
}

func (c *okLog) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// traffic runs one publisher of the client under test through the link while fault runs (it returns when
// the fault started and when it was healed), then judges the delivery to the observer.
func (e *env) traffic(ctx context.Context, qos byte, interval time.Duration,
	fault func(context.Context) (start, healed time.Time, err error)) (Verdict, error) {
	r := e.r
	v := Verdict{QoS: int(qos), SuccessWithoutPuback: -1, SuccessNeverSent: -1}
	if err := r.Observer.Subscribe(ctx, "cmp/#"); err != nil {
		return v, err
	}
	id := "pub-" + e.lib
	c, _, err := newTracked(r, e.lib, e.s.Options(id, false))
	if err != nil {
		return v, err
	}
	if err := c.Connect(ctx); err != nil {
		return v, err
	}
	pub := &okLog{Client: c}
	tr := r.StartTraffic(ctx, rig.Publisher{Client: pub, Name: id, Topic: "cmp/" + id, QoS: qos, Interval: interval})
	// A random phase against both clients' keepalive schedules, so detection times are not an artifact.
	sleep(ctx, e.d(time.Second+rand.N(e.s.KeepAlive+e.s.KeepAlive/4)))
	start, healed, ferr := fault(ctx)
	if ferr != nil {
		tr.Stop(0)
		return v, ferr
	}
	// Wait for the first publication that completes after the heal; then a little more traffic.
	bound := e.d(6 * time.Second)
	deadline := time.Now().Add(bound)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if pub.okSince(healed) {
			break
		}
		sleep(ctx, 10*time.Millisecond)
	}
	if pub.okSince(healed) {
		sleep(ctx, e.d(time.Second))
	}
	tr.Stop(e.d(3 * time.Second))
	if err := r.Observer.Drain(ctx, e.d(time.Second)); err != nil {
		return v, err
	}
	if d, ok := validate.Recovery(healed.Sub(r.Start), validate.Acks(r.Ledger.Events(), id)); ok && d <= bound {
		v.RecoveryMS = msPtr(d)
	} else {
		v.Stalled = true
		v.note("no publication completed within %v of the heal", bound)
	}
	outs := e.judgeOutages(&v, id, start, healed)
	res := r.Ledger.Check()
	v.fromLedger(res, "")
	v.Evidence = e.evidence(res, "")
	for _, l := range res.Lost {
		if validate.DownAt(outs, l.Invoked) {
			v.FalseSuccessesWhileDown++
		}
	}
	if tap := r.Link.Tap(); tap.Overwritten() == 0 {
		if qos == 1 {
			fwd := tap.Count(link.OfType(mqttframe.PUBACK), link.InDir(link.Downstream), link.WithFate(link.Forwarded))
			v.SuccessWithoutPuback = max(pub.count()-fwd, 0)
		} else {
			sent := tap.Count(link.OfType(mqttframe.PUBLISH), link.InDir(link.Upstream))
			v.SuccessNeverSent = max(pub.count()-sent, 0)
		}
	}
	return v, nil
}

// fromLedger fills the delivery counts. With sub set, only that subscriber's losses and duplicates count
// (the subscriber is the client under test) and false successes do not apply.
func (v *Verdict) fromLedger(res ledger.Result, sub string) {
	v.Attempted, v.Acked, v.Failed, v.Indeterminate, v.Delivered = res.Attempted, res.Acknowledged, res.Failed, res.Indeterminate, res.Delivered
	for _, x := range res.Recovered {
		if abandoned(x.Err) || x.Outcome == ledger.Pending {
			v.AbandonedDelivered++
		} else {
			v.ErrorButDelivered++
		}
	}
	if sub == "" {
		v.Lost = res.Attempted - res.Delivered
		v.FalseSuccesses = len(res.Lost)
		v.Duplicates = res.DuplicateDeliveries
		v.Reordered = len(res.Reordered)
		return
	}
	v.FalseSuccesses = -1
	for _, l := range res.Lost {
		if l.Subscriber == sub {
			v.Lost++
		}
	}
	for _, d := range res.Duplicated {
		if d.Subscriber == sub {
			v.Duplicates += d.Count - 1
		}
	}
	for _, x := range res.Reordered {
		if x.Subscriber == sub {
			v.Reordered++
		}
	}
	if n := len(res.Lost) - v.Lost; n > 0 {
		v.note("the observer missed %d acknowledged messages", n)
	}
}

// silentIdle measures keepalive detection of a silent link with no traffic, and recovery after the heal.
func (e *env) silentIdle(ctx context.Context) (Verdict, error) {
	r := e.r
	v := Verdict{QoS: -1, FalseSuccesses: -1, SuccessWithoutPuback: -1, SuccessNeverSent: -1}
	id := "idle-" + e.lib
	c, events, err := newTracked(r, e.lib, e.s.Options(id, false))
	if err != nil {
		return v, err
	}
	if err := c.Connect(ctx); err != nil {
		return v, err
	}
	sleep(ctx, time.Second+rand.N(e.s.KeepAlive+e.s.KeepAlive/4)) // a random keepalive phase
	start, healed, err := e.hold(faults.Blackhole{}, 6*time.Second)(ctx)
	if err != nil {
		return v, err
	}
	wctx, cancel := context.WithTimeout(ctx, e.d(6*time.Second))
	defer cancel()
	_, werr := events.wait(wctx, clients.EventUp, healed)
	e.judgeOutages(&v, id, start, healed)
	if v.DetectionMS == nil {
		v.note("the silent link was never detected")
	}
	if werr != nil || v.ReconnectMS == nil {
		v.Stalled, v.ReconnectMS = true, nil
		v.note("not reconnected within %v of the heal", e.d(6*time.Second))
	}
	return v, nil
}

// subscriberUnderTest connects a qos 1 persistent subscriber of the client under test through the link,
// delivering to handle, and a publisher of the same library straight to the broker.
func (e *env) subscriberUnderTest(ctx context.Context, topic string, handle func(clients.Delivery)) (sub, pub clients.Client, events *eventLog, err error) {
	r := e.r
	if err := r.Observer.Subscribe(ctx, "cmp/#"); err != nil {
		return nil, nil, nil, err
	}
	o := e.s.Options("sub-"+e.lib, false)
	o.OnMessage = handle
	sub, events, err = newTracked(r, e.lib, o)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := sub.Connect(ctx); err != nil {
		return nil, nil, nil, err
	}
	if err := r.Subscribe(ctx, sub, "sub-"+e.lib, topic, 1); err != nil {
		return nil, nil, nil, err
	}
	po := e.s.Options("pub-"+e.lib, true)
	po.Addr = r.Broker.Addr() // not through the link: the subscriber is under test
	if pub, err = r.NewClient(e.lib, po); err != nil {
		return nil, nil, nil, err
	}
	if err := pub.Connect(ctx); err != nil {
		return nil, nil, nil, err
	}
	return sub, pub, events, nil
}

// distinct counts the distinct ledger messages a subscriber handed over, and when the last new one came.
type distinct struct {
	mu   sync.Mutex
	seen map[uint64]bool
	last time.Time
}

func (d *distinct) add(p []byte) {
	id, _, err := ledger.Decode(p)
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.seen[id.Seq] {
		d.seen[id.Seq] = true
		d.last = time.Now()
	}
}

func (d *distinct) count() (int, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen), d.last
}

// waitCount waits until d holds n messages or ctx ends.
func (d *distinct) waitCount(ctx context.Context, n int) bool {
	for {
		if got, _ := d.count(); got >= n {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// slowHandler: the subscriber's handler takes 1.5 s per message, far longer than the keepalive interval.
// A client whose keepalive depends on the handler returning declares a false outage.
func (e *env) slowHandler(ctx context.Context, n int, per time.Duration) (Verdict, error) {
	r := e.r
	v := Verdict{QoS: 1, SuccessWithoutPuback: -1, SuccessNeverSent: -1}
	per = e.d(per)
	got := &distinct{seen: map[uint64]bool{}}
	subID := "sub-" + e.lib
	handle := func(d clients.Delivery) { // after the rig recorded the delivery in the ledger
		time.Sleep(per)
		got.add(d.Payload)
	}
	_, pub, _, err := e.subscriberUnderTest(ctx, "cmp/slow", handle)
	if err != nil {
		return v, err
	}
	start := time.Now()
	if err := r.Publish(ctx, rig.Publisher{Client: pub, Name: "pub-" + e.lib, Topic: "cmp/slow", QoS: 1, Count: n}); err != nil {
		return v, err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Duration(n)*per+e.d(10*time.Second))
	defer cancel()
	if !got.waitCount(wctx, n) {
		v.Stalled = true
		c, _ := got.count()
		v.note("only %d of %d messages handled within %v", c, n, time.Duration(n)*per+e.d(10*time.Second))
	} else {
		_, last := got.count()
		v.note("%d messages handled in %v (%v each)", n, last.Sub(start).Round(10*time.Millisecond), per)
	}
	sleep(ctx, e.d(500*time.Millisecond))
	if err := r.Observer.Drain(ctx, e.d(time.Second)); err != nil {
		return v, err
	}
	now := time.Now()
	e.judgeOutages(&v, subID, start, now)
	if v.Outages > 0 {
		v.note("FALSE OUTAGE: the client reported the connection lost %d time(s) while only its handler was slow", v.Outages)
	}
	res := r.Ledger.Check()
	v.fromLedger(res, subID)
	v.Evidence = e.evidence(res, subID)
	return v, nil
}

// backlog: a persistent subscriber is cut off while messages are published; after the heal it must get
// every one of them (the broker queued them in its session).
func (e *env) backlog(ctx context.Context) (Verdict, error) {
	r := e.r
	v := Verdict{QoS: 1, SuccessWithoutPuback: -1, SuccessNeverSent: -1}
	const n = 300
	got := &distinct{seen: map[uint64]bool{}}
	subID := "sub-" + e.lib
	handle := func(d clients.Delivery) { got.add(d.Payload) } // after the rig recorded it in the ledger
	_, pub, events, err := e.subscriberUnderTest(ctx, "cmp/backlog", handle)
	if err != nil {
		return v, err
	}
	in, err := r.Inject(ctx, faults.Down{})
	if err != nil {
		return v, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _ = events.wait(wctx, clients.EventDown, in.Since) // the cut-off, before the backlog is published
	if err := r.Publish(ctx, rig.Publisher{Client: pub, Name: "pub-" + e.lib, Topic: "cmp/backlog", QoS: 1, Count: n}); err != nil {
		return v, err
	}
	sleep(ctx, time.Until(in.Since.Add(e.d(3*time.Second+rand.N(time.Second)))))
	if err := in.Heal(ctx); err != nil {
		return v, err
	}
	healed := time.Now()
	dctx, cancel2 := context.WithTimeout(ctx, e.d(15*time.Second))
	defer cancel2()
	if !got.waitCount(dctx, n) {
		v.Stalled = true
		c, _ := got.count()
		v.note("only %d of the %d backlog messages arrived within %v of the heal", c, n, e.d(15*time.Second))
	} else {
		_, last := got.count()
		v.note("backlog of %d drained %v after the heal", n, last.Sub(healed).Round(time.Millisecond))
	}
	if err := r.Observer.Drain(ctx, e.d(time.Second)); err != nil {
		return v, err
	}
	e.judgeOutages(&v, subID, in.Since, healed)
	res := r.Ledger.Check()
	v.fromLedger(res, subID)
	v.Evidence = e.evidence(res, subID)
	return v, nil
}

// CompareReport is what RunCompare found.
type CompareReport struct {
	Machine Machine `json:"machine"`
	// Command is the command line that produced the report (set by its caller).
	Command   string         `json:"command"`
	Config    CompareConfig  `json:"config"`
	Settings  string         `json:"settings"`
	Scenarios []ScenarioInfo `json:"scenarios"`
	Verdicts  []Verdict      `json:"verdicts"`
	Gaps      []GapCheck     `json:"gaps"`
	Goals     []Goal         `json:"goals"`
	Errors    []string       `json:"errors,omitempty"`
	Duration  time.Duration  `json:"duration_ns"`
}

// ScenarioInfo describes a scenario in the report.
type ScenarioInfo struct {
	Name string `json:"name"`
	Desc string `json:"description"`
}

// RunCompare runs every scenario for every client, each on a fresh rig (broker, link, observer, ledger).
func RunCompare(ctx context.Context, cfg CompareConfig) (*CompareReport, error) {
	cfg.fill()
	if err := checkNames("client", cfg.Libs, CompareLibs()); err != nil {
		return nil, err
	}
	began := time.Now()
	rep := &CompareReport{Config: cfg, Settings: cfg.Settings.String(), Machine: CollectMachine(ctx, "")}
	all := scenarios()
	for _, name := range cfg.Scenarios {
		i := slices.IndexFunc(all, func(s scenario) bool { return s.name == name })
		if i < 0 {
			return nil, fmt.Errorf("bench: unknown scenario %q (known: %v)", name, ScenarioNames())
		}
		rep.Scenarios = append(rep.Scenarios, ScenarioInfo{all[i].name, all[i].desc})
	}
	for round := range cfg.Rounds {
		load := LoadAvg()
		rep.Machine.LoadRounds = append(rep.Machine.LoadRounds, load)
		cfg.Log("compare round %d/%d, load %s", round+1, cfg.Rounds, load)
		for si, info := range rep.Scenarios {
			sc := all[slices.IndexFunc(all, func(s scenario) bool { return s.name == info.Name })]
			for _, lib := range ordered(cfg.Libs, round+si) {
				if !sc.runsFor(lib) {
					continue
				}
				v := runScenario(ctx, cfg, sc, lib)
				v.Round = round + 1
				if v.Error != "" {
					rep.Errors = append(rep.Errors, fmt.Sprintf("%s %s round %d: %s", sc.name, lib, round+1, v.Error))
				}
				cfg.Log("  %-18s %-7s %s", sc.name, lib, v.summary())
				rep.Verdicts = append(rep.Verdicts, v)
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	rep.Machine.LoadEnd = LoadAvg()
	rep.Gaps = gapChecks(rep.Verdicts)
	rep.Goals = compareGoals(rep.Verdicts, cfg.Settings)
	rep.Duration = time.Since(began)
	return rep, nil
}

func runScenario(ctx context.Context, cfg CompareConfig, sc scenario, lib string) Verdict {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	v := Verdict{Scenario: sc.name, Client: lib}
	opts := cfg.Settings.RigOptions()
	var hellos helloRecorder
	opts.Clients = hellos.wrap(opts.Clients)
	r, err := rig.New(ctx, opts)
	if err != nil {
		v.Error = "rig: " + err.Error()
		return v
	}
	closed := false
	defer func() {
		if !closed {
			_ = r.Close(context.WithoutCancel(ctx))
		}
	}()
	e := &env{r: r, lib: lib, s: cfg.Settings, scale: cfg.Scale}
	got, err := sc.run(ctx, e)
	got.Scenario, got.Client, got.Library = sc.name, lib, hellos.library()
	if err != nil {
		got.Error = err.Error()
	}
	// A client that failed itself (a driver that died, stopped answering or broke the protocol) says so
	// at Close at the latest: the run's counts are then no verdict on the library, and the run is an error.
	closed = true
	if cerr := r.Close(context.WithoutCancel(ctx)); errors.Is(cerr, clients.ErrClientFailed) {
		got.Error = strings.TrimPrefix(got.Error+"; ", "; ") + clientFailure(cerr)
	}
	return got
}

// clientFailure renders a client's own failure for the report on one line: a driver's error without
// its stderr, then the last line of that stderr.
func clientFailure(err error) string {
	var de *procclient.DriverError
	if !errors.As(err, &de) {
		return "the client failed: " + strings.ReplaceAll(err.Error(), "\n", " | ")
	}
	short := *de
	short.Stderr = ""
	msg := "the client failed: " + strings.TrimSuffix(short.Error(), " (stderr empty)")
	if lines := strings.Split(strings.TrimSpace(de.Stderr), "\n"); lines[len(lines)-1] != "" {
		msg += "; its stderr ends: " + lines[len(lines)-1]
	}
	return msg
}

// helloRecorder keeps the clients a registry made, to ask the out-of-process ones what their driver said
// about itself.
type helloRecorder struct {
	mu   sync.Mutex
	made []clients.Client
}

func (h *helloRecorder) wrap(reg clients.Registry) clients.Registry {
	out := clients.Registry{}
	for name, f := range reg {
		out[name] = func(o clients.Options) (clients.Client, error) {
			c, err := f(o)
			if err == nil {
				h.mu.Lock()
				h.made = append(h.made, c)
				h.mu.Unlock()
			}
			return c, err
		}
	}
	return out
}

// library is "library version" from the first driver hello, "" when no driver answered one.
func (h *helloRecorder) library() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.made {
		if p, ok := c.(interface{ Hello() procclient.Hello }); ok {
			if hello := p.Hello(); hello.Library != "" {
				return hello.Library + " " + hello.Version
			}
		}
	}
	return ""
}

func (v Verdict) summary() string {
	s := fmt.Sprintf("attempted %d acked %d delivered %d lost %d false-success %d dup %d outages %d",
		v.Attempted, v.Acked, v.Delivered, v.Lost, v.FalseSuccesses, v.Duplicates, v.Outages)
	if v.DetectionMS != nil {
		s += fmt.Sprintf(" detection %s", fmtMS(*v.DetectionMS))
	}
	if v.ReconnectMS != nil {
		s += fmt.Sprintf(" reconnect %s", fmtMS(*v.ReconnectMS))
	}
	if v.RecoveryMS != nil {
		s += fmt.Sprintf(" recovery %s", fmtMS(*v.RecoveryMS))
	}
	if v.SuccessWithoutPuback > 0 {
		s += fmt.Sprintf(" success-without-PUBACK ≥%d", v.SuccessWithoutPuback)
	}
	if v.SuccessNeverSent > 0 {
		s += fmt.Sprintf(" success-never-reached-link ≥%d", v.SuccessNeverSent)
	}
	if v.Stalled {
		s += " STALLED"
	}
	if v.Error != "" {
		s += " ERROR " + v.Error
	}
	return s
}
