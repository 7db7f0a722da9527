// Package clientstest is the conformance suite every clients.Client adapter
// should pass, against a throwaway mosquitto from brokertest.
package clientstest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/broker/brokertest"
	"github.com/mqttas/mqttas-go/harness/clients"
)

// Bounds for the conformance checks; generous for a noisy 2-core machine.
const (
	opTimeout        = 10 * time.Second // one client call
	reconnectTimeout = 20 * time.Second // a client's own recovery after a broker restart
	quietPeriod      = 300 * time.Millisecond
)

// Conformance checks the clients.Client contract against private mosquitto
// brokers: delivery, retain, will on Close but not on Disconnect, persistent
// sessions, recovery after a broker restart, context handling, and that Close
// releases every goroutine. Every adapter should pass it. Subtests run one at
// a time (the goroutine check counts goroutines).
func Conformance(t *testing.T, newClient clients.Factory) {
	t.Run("PublishSubscribe", func(t *testing.T) { testPublishSubscribe(t, newClient) })
	t.Run("Retain", func(t *testing.T) { testRetain(t, newClient) })
	t.Run("Unsubscribe", func(t *testing.T) { testUnsubscribe(t, newClient) })
	t.Run("WillOnCloseNotOnDisconnect", func(t *testing.T) { testWill(t, newClient) })
	t.Run("PersistentSession", func(t *testing.T) { testPersistentSession(t, newClient) })
	t.Run("ReconnectAfterBrokerRestart", func(t *testing.T) { testBrokerRestart(t, newClient) })
	t.Run("Contexts", func(t *testing.T) { testContexts(t, newClient) })
	t.Run("CloseReleasesGoroutines", func(t *testing.T) { testGoroutines(t, newClient) })
}

// Recorder collects a client's deliveries and events; plug its methods into
// clients.Options.
type Recorder struct {
	mu         sync.Mutex
	deliveries []clients.Delivery
	events     []clients.Event
}

// OnMessage records a delivery.
func (r *Recorder) OnMessage(d clients.Delivery) {
	d.Payload = slices.Clone(d.Payload)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries = append(r.deliveries, d)
}

// OnEvent records an event.
func (r *Recorder) OnEvent(e clients.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Deliveries returns a copy of the deliveries so far.
func (r *Recorder) Deliveries() []clients.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deliveries)
}

// Events returns a copy of the events so far.
func (r *Recorder) Events() []clients.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Payloads returns the delivered payloads as strings, in arrival order.
func (r *Recorder) Payloads() []string {
	var out []string
	for _, d := range r.Deliveries() {
		out = append(out, string(d.Payload))
	}
	return out
}

// Count returns how many events of kind were recorded.
func (r *Recorder) Count(kind clients.EventKind) int {
	n := 0
	for _, e := range r.Events() {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// Eventually polls cond every 10 ms until it holds or timeout passes, then
// fails the test with what.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func opCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

// start makes and connects a client; Close runs at cleanup.
func start(t testing.TB, newClient clients.Factory, o clients.Options) clients.Client {
	t.Helper()
	c, err := newClient(o)
	if err != nil {
		t.Fatalf("new client %s: %v", o.ClientID, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Connect(opCtx(t)); err != nil {
		t.Fatalf("connect %s: %v", o.ClientID, err)
	}
	return c
}

func options(m *brokertest.Mosquitto, id string, clean bool, rec *Recorder) clients.Options {
	o := clients.Options{Addr: m.Addr, ClientID: id, CleanSession: clean, KeepAlive: 5 * time.Second, ConnectTimeout: 2 * time.Second}
	if rec != nil {
		o.OnMessage, o.OnEvent = rec.OnMessage, rec.OnEvent
	}
	return o
}

func testPublishSubscribe(t *testing.T, newClient clients.Factory) {
	m := brokertest.Start(t)
	var rec Recorder
	before := time.Now()
	c := start(t, newClient, options(m, "conf-ps", true, &rec))
	if !c.IsConnected() {
		t.Fatal("IsConnected false after Connect")
	}
	// Clients may report Up from another goroutine, a little after Connect.
	Eventually(t, opTimeout, "an up event", func() bool { return rec.Count(clients.EventUp) == 1 })
	ctx := opCtx(t)
	if err := c.Subscribe(ctx, "conf/ps/#", 1); err != nil {
		t.Fatal(err)
	}
	want := []string{"m0", "m1", "m2"}
	for _, p := range want {
		if err := c.Publish(ctx, clients.Message{Topic: "conf/ps/a", Payload: []byte(p), QoS: 1}); err != nil {
			t.Fatalf("publish %s: %v", p, err)
		}
	}
	if err := c.Publish(ctx, clients.Message{Topic: "conf/ps/b", Payload: []byte("q0"), QoS: 0}); err != nil {
		t.Fatalf("publish qos0: %v", err)
	}
	Eventually(t, opTimeout, "4 deliveries", func() bool { return len(rec.Deliveries()) == 4 })
	got := rec.Deliveries()
	slices.SortFunc(got, func(a, b clients.Delivery) int { return strings.Compare(string(a.Payload), string(b.Payload)) })
	for i, d := range got[:3] {
		if string(d.Payload) != want[i] || d.Topic != "conf/ps/a" || d.QoS != 1 || d.Retain || d.At.Before(before) {
			t.Fatalf("delivery %d = %+v, want %s on conf/ps/a at QoS 1", i, d, want[i])
		}
	}
	if d := got[3]; string(d.Payload) != "q0" || d.QoS != 0 {
		t.Fatalf("qos0 delivery = %+v", d)
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if c.IsConnected() {
		t.Fatal("IsConnected after Disconnect")
	}
	err := c.Publish(ctx, clients.Message{Topic: "conf/ps/a", Payload: []byte("late"), QoS: 1})
	if !errors.Is(err, clients.ErrNotSent) {
		t.Fatalf("Publish after Disconnect = %v, want ErrNotSent", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close after Disconnect: %v", err)
	}
}

func testRetain(t *testing.T, newClient clients.Factory) {
	m := brokertest.Start(t)
	pub := start(t, newClient, options(m, "conf-retain-pub", true, nil))
	ctx := opCtx(t)
	if err := pub.Publish(ctx, clients.Message{Topic: "conf/retain", Payload: []byte("kept"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	var rec Recorder
	sub := start(t, newClient, options(m, "conf-retain-sub", true, &rec))
	if err := sub.Subscribe(ctx, "conf/retain", 1); err != nil {
		t.Fatal(err)
	}
	Eventually(t, opTimeout, "the retained message", func() bool { return len(rec.Deliveries()) == 1 })
	if d := rec.Deliveries()[0]; string(d.Payload) != "kept" || !d.Retain {
		t.Fatalf("retained delivery = %+v, want kept with Retain", d)
	}
}

func testUnsubscribe(t *testing.T, newClient clients.Factory) {
	m := brokertest.Start(t)
	var rec Recorder
	c := start(t, newClient, options(m, "conf-unsub", true, &rec))
	ctx := opCtx(t)
	for _, f := range []string{"conf/gone", "conf/marker"} {
		if err := c.Subscribe(ctx, f, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Unsubscribe(ctx, "conf/gone"); err != nil {
		t.Fatal(err)
	}
	// The broker forwards one publisher's messages in order, so once the
	// marker arrives the unsubscribed message would have arrived first.
	for _, msg := range []clients.Message{{Topic: "conf/gone", Payload: []byte("gone"), QoS: 1}, {Topic: "conf/marker", Payload: []byte("marker"), QoS: 1}} {
		if err := c.Publish(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	Eventually(t, opTimeout, "the marker", func() bool { return len(rec.Deliveries()) > 0 })
	if got := rec.Payloads(); !slices.Equal(got, []string{"marker"}) {
		t.Fatalf("deliveries after Unsubscribe = %q", got)
	}
}

func testWill(t *testing.T, newClient clients.Factory) {
	m := brokertest.Start(t)
	var rec Recorder
	watcher := start(t, newClient, options(m, "conf-will-watch", true, &rec))
	ctx := opCtx(t)
	if err := watcher.Subscribe(ctx, "conf/will/#", 1); err != nil {
		t.Fatal(err)
	}
	withWill := func(id string) clients.Options {
		o := options(m, id, true, nil)
		o.Will = &clients.Message{Topic: "conf/will/" + id, Payload: []byte("died " + id), QoS: 1}
		return o
	}

	graceful := start(t, newClient, withWill("graceful"))
	if err := graceful.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	// Give the broker time to act on the DISCONNECT, then order a marker
	// behind any will it might (wrongly) publish.
	time.Sleep(quietPeriod)
	if err := watcher.Publish(ctx, clients.Message{Topic: "conf/will/marker", Payload: []byte("marker"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	Eventually(t, opTimeout, "the marker", func() bool { return len(rec.Deliveries()) > 0 })
	if got := rec.Payloads(); !slices.Equal(got, []string{"marker"}) {
		t.Fatalf("after Disconnect the watcher got %q; a graceful disconnect must not publish the will", got)
	}

	abrupt := start(t, newClient, withWill("abrupt"))
	if err := abrupt.Close(); err != nil {
		t.Fatal(err)
	}
	Eventually(t, opTimeout, "the will after Close", func() bool { return len(rec.Deliveries()) == 2 })
	if got := rec.Payloads(); got[1] != "died abrupt" {
		t.Fatalf("after Close the watcher got %q, want the will", got)
	}
}

func testPersistentSession(t *testing.T, newClient clients.Factory) {
	m := brokertest.Start(t)
	ctx := opCtx(t)
	first := start(t, newClient, options(m, "conf-persist", true, nil)) // clean: no stale session
	if err := first.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	sub := start(t, newClient, options(m, "conf-persist", false, nil))
	if err := sub.Subscribe(ctx, "conf/persist", 1); err != nil {
		t.Fatal(err)
	}
	if err := sub.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	pub := start(t, newClient, options(m, "conf-persist-pub", true, nil))
	want := []string{"b0", "b1", "b2"}
	for _, p := range want {
		if err := pub.Publish(ctx, clients.Message{Topic: "conf/persist", Payload: []byte(p), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// A new client with the same id resumes the session: the backlog arrives
	// without subscribing again.
	var rec Recorder
	start(t, newClient, options(m, "conf-persist", false, &rec))
	Eventually(t, opTimeout, "the backlog", func() bool { return len(rec.Deliveries()) == len(want) })
	// Order is the ledger's business: some client settings give it up.
	if got := rec.Payloads(); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Fatalf("backlog = %q, want %q", got, want)
	}
}

func testBrokerRestart(t *testing.T, newClient clients.Factory) {
	m := brokertest.Start(t)
	var rec Recorder
	c := start(t, newClient, options(m, "conf-restart", false, &rec))
	ctx := opCtx(t)
	if err := c.Subscribe(ctx, "conf/restart", 1); err != nil {
		t.Fatal(err)
	}
	m.Restart()
	Eventually(t, reconnectTimeout, "down and up again", func() bool {
		return rec.Count(clients.EventDown) >= 1 && rec.Count(clients.EventUp) >= 2
	})
	kinds := []clients.EventKind{}
	for _, e := range rec.Events() {
		if e.Kind == clients.EventUp || e.Kind == clients.EventDown {
			kinds = append(kinds, e.Kind)
		}
	}
	if !slices.Equal(kinds[:3], []clients.EventKind{clients.EventUp, clients.EventDown, clients.EventUp}) {
		t.Fatalf("events = %v, want up, down, up", kinds)
	}
	// The persisted session kept the subscription. paho can report a qos 1 publication right after a
	// reconnect as acknowledged when it never reached the broker (the compare's "false success"); the
	// point here is the subscription, so a publication that is never delivered is tried again, at most
	// three times.
	for try := 1; ; try++ {
		if err := c.Publish(ctx, clients.Message{Topic: "conf/restart", Payload: []byte("after"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(opTimeout / 3)
		for len(rec.Deliveries()) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if len(rec.Deliveries()) > 0 {
			break
		}
		if try == 3 {
			t.Fatalf("no delivery after the restart: three acknowledged publications to the persisted subscription were lost")
		}
		t.Logf("publication %d after the restart acknowledged but not delivered within %v; publishing again", try, opTimeout/3)
	}
}

func testContexts(t *testing.T, newClient clients.Factory) {
	m := brokertest.Start(t)
	c := start(t, newClient, options(m, "conf-ctx", true, nil))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.Publish(cancelled, clients.Message{Topic: "conf/ctx", Payload: []byte("x"), QoS: 1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled context = %v, want context.Canceled", err)
	}

	// A dead address: Connect must fail, within its context.
	dead, err := broker.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	o := options(m, "conf-ctx-dead", true, nil)
	o.Addr = fmt.Sprintf("127.0.0.1:%d", dead)
	d, err := newClient(o)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel2 := context.WithTimeout(context.Background(), opTimeout)
	defer cancel2()
	began := time.Now()
	if err := d.Connect(ctx); err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	if took := time.Since(began); took > opTimeout+time.Second {
		t.Fatalf("Connect ignored its context: %v", took)
	}
}

func testGoroutines(t *testing.T, newClient clients.Factory) {
	m := brokertest.Start(t)
	base := runtime.NumGoroutine()
	var rec Recorder
	c, err := newClient(options(m, "conf-leak", false, &rec))
	if err != nil {
		t.Fatal(err)
	}
	ctx := opCtx(t)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, "conf/leak", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, clients.Message{Topic: "conf/leak", Payload: []byte("x"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	m.Restart() // exercise the reconnect path too
	Eventually(t, reconnectTimeout, "reconnect", func() bool { return rec.Count(clients.EventUp) >= 2 })
	began := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > opTimeout {
		t.Fatalf("Close took %v", took)
	}
	WaitGoroutines(t, base, 5*time.Second)
}

// WaitGoroutines waits until no more than base goroutines run, and otherwise
// fails the test with a dump of the goroutines that remain.
func WaitGoroutines(t testing.TB, base int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines still running after %v, want at most %d:\n%s", runtime.NumGoroutine(), timeout, base, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
