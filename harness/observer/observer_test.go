package observer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker/brokertest"
	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/clientstest"
	"github.com/mqttas/mqttas-go/harness/clients/pahoclient"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/ledger/ledgermatch"
	"github.com/onsi/gomega"
)

const (
	wait  = 20 * time.Second // bound for recoveries; generous on a noisy machine
	quiet = 300 * time.Millisecond
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// publisher is a paho client that records its attempts in the ledger.
type publisher struct {
	c    clients.Client
	l    *ledger.Ledger
	name string
	rec  clientstest.Recorder
}

func newPublisher(t *testing.T, addr string, l *ledger.Ledger) *publisher {
	p := &publisher{l: l, name: "pub"}
	c, err := pahoclient.New(clients.Options{Addr: addr, ClientID: "pub", CleanSession: true,
		KeepAlive: 5 * time.Second, OnEvent: p.rec.OnEvent}, pahoclient.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Connect(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	p.c = c
	return p
}

func (p *publisher) publish(t *testing.T, topic string, seqs ...uint64) {
	t.Helper()
	for _, seq := range seqs {
		id := ledger.ID{Publisher: p.name, Topic: topic, Seq: seq}
		now := time.Now()
		op := p.l.Invoke(id, now)
		err := p.c.Publish(testCtx(t), clients.Message{Topic: topic, Payload: ledger.Encode(id, now), QoS: 1})
		p.l.Complete(op, ledger.OutcomeOf(err, clients.ErrNotSent), time.Now(), err)
		if err != nil {
			t.Fatalf("publish %v: %v", id, err)
		}
	}
}

func seqs(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s < to; s++ {
		out = append(out, s)
	}
	return out
}

func start(t *testing.T, cfg Config) *Observer {
	t.Helper()
	o, err := Start(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close() })
	return o
}

// TestSurvivesBrokerRestart: with a persistent broker the session survives,
// and deliveries before and after the restart are all recorded.
func TestSurvivesBrokerRestart(t *testing.T) {
	g := gomega.NewWithT(t)
	m := brokertest.Start(t)
	l := ledger.New(time.Now())
	var events clientstest.Recorder
	o := start(t, Config{Addr: m.Addr, Ledger: l, OnEvent: events.OnEvent})
	ctx := testCtx(t)
	if err := o.Subscribe(ctx, "obs/#"); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, m.Addr, l)
	p.publish(t, "obs/a", seqs(0, 10)...)

	m.Restart()
	clientstest.Eventually(t, wait, "the observer back up", func() bool { return events.Count(clients.EventUp) == 2 })
	clientstest.Eventually(t, wait, "the publisher back up", func() bool { return p.rec.Count(clients.EventUp) == 2 })
	if err := o.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	p.publish(t, "obs/a", seqs(10, 20)...)
	// The observer publishes too, through its own connection.
	id := ledger.ID{Publisher: "observer", Topic: "obs/self", Seq: 0}
	op := l.Invoke(id, time.Now())
	err := o.Publish(ctx, id.Topic, ledger.Encode(id, time.Now()), 1, false)
	l.Complete(op, ledger.OutcomeOf(err, clients.ErrNotSent), time.Now(), err)
	if err != nil {
		t.Fatal(err)
	}

	if err := o.Drain(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	g.Expect(l).To(ledgermatch.BeValidDelivery())
	res := l.Check()
	if res.Delivered != 21 || o.Delivered() < 21 {
		t.Fatalf("delivered %d (observer counted %d), want 21: %s", res.Delivered, o.Delivered(), res.Summary())
	}
	if sp := sessionPresent(&events); !slices.Equal(sp, []bool{false, true}) {
		t.Fatalf("session present on each up = %v; the persistent broker should keep it", sp)
	}
}

func sessionPresent(r *clientstest.Recorder) []bool {
	var sp []bool
	for _, e := range r.Events() {
		if e.Kind == clients.EventUp {
			sp = append(sp, e.SessionPresent)
		}
	}
	return sp
}

// TestResubscribesWhenBrokerForgets: without broker persistence the session
// is gone after a restart; the observer subscribes again and the ledger does
// not expect what was published while nobody was subscribed.
func TestResubscribesWhenBrokerForgets(t *testing.T) {
	g := gomega.NewWithT(t)
	m := brokertest.Start(t, brokertest.Config("persistence false"))
	l := ledger.New(time.Now())
	var events clientstest.Recorder
	o := start(t, Config{Addr: m.Addr, Ledger: l, ClientID: "forgetful", OnEvent: events.OnEvent})
	ctx := testCtx(t)
	if err := o.Subscribe(ctx, "forget/#"); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, m.Addr, l)
	p.publish(t, "forget/a", 0, 1)
	if err := o.Drain(ctx, quiet); err != nil {
		t.Fatal(err)
	}

	m.Stop()
	clientstest.Eventually(t, wait, "the observer down", func() bool { return events.Count(clients.EventDown) == 1 })
	m.Start()
	clientstest.Eventually(t, wait, "the publisher back up", func() bool { return p.rec.Count(clients.EventUp) == 2 })
	if err := o.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if sp := sessionPresent(&events); !slices.Equal(sp, []bool{false, false}) {
		t.Fatalf("session present on each up = %v; this broker should forget", sp)
	}
	p.publish(t, "forget/a", 2, 3, 4)
	if err := o.Drain(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	g.Expect(l).To(ledgermatch.BeValidDelivery())
	if res := l.Check(); res.Delivered != 5 {
		t.Fatalf("delivered %d, want 5: %s", res.Delivered, res.Summary())
	}
}

// TestOfflineBacklogMatchesMosquitto checks ledger.QueueLimits against the
// real broker: an offline persistent session keeps the oldest
// max_queued_messages and drops the rest.
func TestOfflineBacklogMatchesMosquitto(t *testing.T) {
	const limit, published = 3, 10
	m := brokertest.Start(t, brokertest.Config(fmt.Sprintf("max_queued_messages %d", limit)))
	l := ledger.New(time.Now())
	ctx := testCtx(t)
	first := start(t, Config{Addr: m.Addr, Ledger: l, ClientID: "backlog"})
	if err := first.Subscribe(ctx, "backlog/#"); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	newPublisher(t, m.Addr, l).publish(t, "backlog/a", seqs(0, published)...)

	// The same client id resumes the session and receives the backlog.
	second := start(t, Config{Addr: m.Addr, Ledger: l, ClientID: "backlog"})
	if err := second.Drain(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	res := l.Check()
	var lost []uint64
	for _, x := range res.Lost {
		lost = append(lost, x.ID.Seq)
	}
	if res.Delivered != limit || !slices.Equal(lost, seqs(limit, published)) {
		t.Fatalf("delivered %d, lost %v; want the oldest %d kept: %s", res.Delivered, lost, limit, res.Summary())
	}
	l.ExpectDrops("backlog", ledger.QueueLimits{MaxQueued: limit}.OfflineDrops(published))
	res = l.Check()
	if !res.Valid() || res.Dropped["backlog"] != published-limit {
		t.Fatalf("with the expected drops: %s", res.Summary())
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(context.Background(), Config{Addr: "127.0.0.1:1"}); !errors.Is(err, clients.ErrInvalidOptions) {
		t.Fatalf("Start without a ledger = %v", err)
	}
	// Nothing listens on a freshly closed port.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := runtime.NumGoroutine()
	if _, err := Start(ctx, Config{Addr: closedPort(t), Ledger: ledger.New(time.Now())}); err == nil {
		t.Fatal("Start against a closed port succeeded")
	}
	clientstest.WaitGoroutines(t, before, 5*time.Second)
}

func TestCloseReleasesEverything(t *testing.T) {
	m := brokertest.Start(t)
	before := runtime.NumGoroutine()
	o, err := Start(testCtx(t), Config{Addr: m.Addr, Ledger: ledger.New(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Subscribe(testCtx(t), "x/#"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Subscribe(testCtx(t), "y"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close = %v", err)
	}
	if err := o.Publish(testCtx(t), "y", nil, 0, false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close = %v", err)
	}
	clientstest.WaitGoroutines(t, before, 5*time.Second)
}

// closedPort returns an address nothing listens on (a port just released).
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
