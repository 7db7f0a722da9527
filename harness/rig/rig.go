// Package rig assembles the harness for one run: a broker, a faulty link in front of it, an independent
// observer, a delivery ledger and a timeline, and the clients under test. Scenarios, soak runs and the
// client comparison all start from a Rig, the way etcd's robustness tests compose traffic, failpoints and
// validation.
package rig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/crashclient"
	"github.com/mqttas/mqttas-go/harness/clients/mqttasclient"
	"github.com/mqttas/mqttas-go/harness/clients/pahoclient"
	"github.com/mqttas/mqttas-go/harness/clients/procclient"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/observer"
	"github.com/mqttas/mqttas-go/harness/schedule"
	"github.com/mqttas/mqttas-go/harness/timeline"
)

// Options configure a Rig.
type Options struct {
	Broker broker.Options
	// Clients maps client names to factories; nil means Registry(): mqttas, paho and the drivers with their defaults.
	Clients clients.Registry
	// ObserverID is the observer's client id (a persistent session); "" means "observer".
	ObserverID string
	Logger     *slog.Logger
	// NewLedger, if set, makes the rig's ledger for its start (e.g. a streaming one, ledger.NewStreaming);
	// nil means ledger.New(start), which keeps the whole history.
	NewLedger func(start time.Time) *ledger.Ledger
}

// Registry returns the standard client registry: "mqttas" and "paho" with short reconnection delays, so
// recovery is measured, not backoff, and the out-of-process drivers "python" (paho-mqtt), "node" (MQTT.js)
// and "c" (libmosquitto) of the repository above the working directory, each with its library's settings
// as its users would choose them (see drivers/), and the crash-capable clients "mqttas-durable" and
// "paho-durable" (drivers/durable, built by `make durable-driver`), which the client faults can kill.
func Registry() clients.Registry {
	mc := mqttasclient.Config{ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond}
	reg := procclient.DefaultRegistry()
	maps.Copy(reg, crashclient.DefaultRegistry())
	reg[mqttasclient.Name] = mqttasclient.Factory(mc)
	reg[pahoclient.Name] = pahoclient.Factory(pahoclient.DefaultConfig())
	return reg
}

// Rig is one run's harness. Its fields are ready to use after New.
type Rig struct {
	Broker   broker.Broker
	Link     *link.Link
	Observer *observer.Observer
	Ledger   *ledger.Ledger
	Timeline *timeline.Timeline
	Start    time.Time

	reg clients.Registry
	log *slog.Logger

	mu      sync.Mutex
	clients []clients.Client
	crashed []clients.Crasher // killed by a client fault, to restart when it heals
	next    int               // the crash-capable client the next client fault kills first
}

// New starts the broker, the link in front of it and the observer.
func New(ctx context.Context, o Options) (_ *Rig, err error) {
	start := time.Now()
	r := &Rig{Start: start, Timeline: timeline.New(start), reg: o.Clients, log: o.Logger}
	if o.NewLedger != nil {
		r.Ledger = o.NewLedger(start)
	} else {
		r.Ledger = ledger.New(start)
	}
	if r.reg == nil {
		r.reg = Registry()
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			_ = r.Close(context.WithoutCancel(ctx))
		}
	}()
	bo := o.Broker
	if bo.Logger == nil {
		bo.Logger = r.log
	}
	if r.Broker, err = broker.New(ctx, bo); err != nil {
		return nil, err
	}
	if r.Link, err = link.New(ctx, r.Broker.Addr(), link.WithLogger(r.log)); err != nil {
		return nil, err
	}
	id := o.ObserverID
	if id == "" {
		id = "observer"
	}
	r.Observer, err = observer.Start(ctx, observer.Config{Addr: r.Broker.Addr(), ClientID: id, Ledger: r.Ledger,
		Logger: r.log, OnEvent: r.recorder("observer")})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Target is what faults act on.
func (r *Rig) Target() faults.Target {
	return faults.Target{Link: r.Link, Broker: r.Broker, Clients: crashTarget{r}}
}

// ErrNoCrasher is returned by a client fault in a run none of whose clients can crash.
var ErrNoCrasher = errors.New("rig: no client of this run can crash (run a crash-capable client: " +
	crashclient.NameMQTTAS + " or " + crashclient.NamePaho + ")")

// crashTarget is what the client faults act on: the rig's crash-capable clients.
type crashTarget struct{ r *Rig }

// Crash kills share percent of the crash-capable clients (at least one), taking them in turn from where
// the last crash stopped, so every client is killed in a long run; all at once, as one power cut would.
func (t crashTarget) Crash(_ context.Context, share int, powerCut bool) error {
	r := t.r
	r.mu.Lock()
	var all []clients.Crasher
	for _, c := range r.clients {
		if cr, ok := c.(clients.Crasher); ok {
			all = append(all, cr)
		}
	}
	if len(all) == 0 {
		r.mu.Unlock()
		return ErrNoCrasher
	}
	n := max((len(all)*share+99)/100, 1)
	var pick []clients.Crasher
	for i := range n {
		pick = append(pick, all[(r.next+i)%len(all)])
	}
	r.next = (r.next + n) % len(all)
	r.crashed = append(r.crashed, pick...)
	r.mu.Unlock()
	errs := make([]error, len(pick))
	var wg sync.WaitGroup
	for i, c := range pick {
		wg.Go(func() { errs[i] = c.Crash(powerCut) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Restart starts every crashed client again, all at once; each connects on its own.
func (t crashTarget) Restart(ctx context.Context) error {
	r := t.r
	r.mu.Lock()
	pick := r.crashed
	r.crashed = nil
	r.mu.Unlock()
	errs := make([]error, len(pick))
	var wg sync.WaitGroup
	for i, c := range pick {
		wg.Go(func() { errs[i] = c.Restart(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *Rig) recorder(source string) func(clients.Event) {
	return func(e clients.Event) { r.Timeline.Record(e.At, source, timeline.Kind(e.Kind), e.Detail()) }
}

// NewClient makes (but does not connect) a client by registry name. Addr defaults to the link's, so the
// client sees the faults. The rig records what the client reports and then calls the caller's hooks, if
// any: each event goes to the timeline under the client id, then to o.OnEvent; each delivery to the ledger
// with the client id as subscriber, then to o.OnMessage. The rig closes the client on Close.
func (r *Rig) NewClient(name string, o clients.Options) (clients.Client, error) {
	if o.Addr == "" {
		o.Addr = r.Link.Addr()
	}
	if o.ClientID == "" {
		return nil, fmt.Errorf("%w: rig clients need a ClientID (it names them in the ledger)", clients.ErrInvalidOptions)
	}
	record, onEvent := r.recorder(o.ClientID), o.OnEvent
	o.OnEvent = func(e clients.Event) {
		record(e)
		if onEvent != nil {
			onEvent(e)
		}
	}
	sub, onMessage := o.ClientID, o.OnMessage
	o.OnMessage = func(d clients.Delivery) {
		r.Ledger.Deliver(ledger.Delivery{Subscriber: sub, Topic: d.Topic, Payload: d.Payload, QoS: d.QoS,
			Dup: d.Dup, Retain: d.Retain, At: d.At})
		if onMessage != nil {
			onMessage(d)
		}
	}
	if o.Logger == nil {
		o.Logger = r.log
	}
	c, err := r.reg.New(name, o)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.clients = append(r.clients, c)
	r.mu.Unlock()
	return c, nil
}

// Subscribe subscribes c and opens its window in the ledger once the broker acknowledged.
func (r *Rig) Subscribe(ctx context.Context, c clients.Client, subscriber, filter string, qos byte) error {
	if err := c.Subscribe(ctx, filter, qos); err != nil {
		return err
	}
	r.Ledger.Subscribe(subscriber, filter, time.Now())
	return nil
}

// Injected is a fault in force.
type Injected struct {
	r     *Rig
	f     faults.Fault
	id    int
	once  sync.Once
	err   error
	Since time.Time
}

// Inject validates f, starts it and records it on the timeline. Heal the returned fault (one-shot faults
// end at once).
func (r *Rig) Inject(ctx context.Context, f faults.Fault) (*Injected, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("inject %s: %w", f, err)
	}
	now := time.Now()
	var params map[string]any
	for k, v := range faults.Params(f) {
		if params == nil {
			params = map[string]any{}
		}
		params[k] = v
	}
	id := r.Timeline.BeginFault(now, "link", f.Name(), params)
	if err := f.Inject(ctx, r.Target()); err != nil {
		_ = r.Timeline.EndFault(time.Now(), id, "inject failed: "+err.Error())
		return nil, fmt.Errorf("inject %s: %w", f, err)
	}
	in := &Injected{r: r, f: f, id: id, Since: now}
	if f.OneShot() {
		in.once.Do(func() { _ = r.Timeline.EndFault(time.Now(), id, "") })
	}
	return in, nil
}

// Heal ends the fault (once) and records it.
func (in *Injected) Heal(ctx context.Context) error {
	in.once.Do(func() {
		detail := ""
		if err := in.f.Heal(ctx, in.r.Target()); err != nil {
			in.err = fmt.Errorf("heal %s: %w", in.f, err)
			detail = "heal failed: " + err.Error()
		}
		_ = in.r.Timeline.EndFault(time.Now(), in.id, detail)
	})
	return in.err
}

// Injector returns r as a schedule.Injector, so a schedule.Player plays its faults through r's timeline.
func (r *Rig) Injector() schedule.Injector { return injector{r} }

type injector struct{ r *Rig }

func (i injector) Inject(ctx context.Context, f faults.Fault) (schedule.Healer, error) {
	in, err := i.r.Inject(ctx, f)
	if err != nil {
		return nil, err
	}
	return in, nil
}

// During injects f, waits d (or until ctx ends), and heals it.
func (r *Rig) During(ctx context.Context, f faults.Fault, d time.Duration) error {
	in, err := r.Inject(ctx, f)
	if err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return in.Heal(context.WithoutCancel(ctx))
}

// Heal ends every link fault (latency, blackholes, down, packet drops) at once.
func (r *Rig) Heal(ctx context.Context) error {
	r.Link.StopDropping()
	r.Link.StopDelaying()
	return r.Link.Heal(ctx)
}

// Dump renders what a failed run needs: the timeline, the link's active faults and tap, the ledger's
// verdict and the broker's log tail.
func (r *Rig) Dump(ctx context.Context) string {
	var b strings.Builder
	res := r.Ledger.Check()
	fmt.Fprintf(&b, "== verdict\n%s\n", res.Summary())
	fmt.Fprintf(&b, "== timeline\n%s\n", r.Timeline.String())
	fmt.Fprintf(&b, "== active on the link: %v\n", r.Link.Active())
	fmt.Fprintf(&b, "== tap (last packets)\n%s\n", tail(r.Link.Tap().String(), 60))
	if logs, err := r.Broker.Logs(ctx); err == nil {
		fmt.Fprintf(&b, "== broker log (%s)\n%s\n", r.Broker.Kind(), tail(logs, 40))
	}
	return b.String()
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = append([]string{fmt.Sprintf("... %d lines before", len(parts)-lines)}, parts[len(parts)-lines:]...)
	}
	return strings.Join(parts, "\n")
}

// Close closes every client, the observer, the link and the broker, and reports every failure.
func (r *Rig) Close(ctx context.Context) error {
	var errs []error
	r.mu.Lock()
	cs := r.clients
	r.clients = nil
	r.mu.Unlock()
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	if r.Observer != nil {
		errs = append(errs, r.Observer.Close())
	}
	if r.Link != nil {
		errs = append(errs, r.Link.Close())
	}
	if r.Broker != nil {
		errs = append(errs, r.Broker.Close(ctx))
	}
	return errors.Join(errs...)
}
