package pahoclient

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker/brokertest"
	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/clientstest"
)

func TestConformance(t *testing.T) {
	clientstest.Conformance(t, Factory(DefaultConfig()))
}

func TestConformanceOrderedStoreNoOrder(t *testing.T) {
	cfg := DefaultConfig()
	cfg.OrderMatters, cfg.OrderedStore, cfg.ResumeSubs = false, true, true
	clientstest.Conformance(t, Factory(cfg))
}

func TestOptionsRejected(t *testing.T) {
	for _, o := range []clients.Options{
		{},
		{Addr: "127.0.0.1:1", KeepAlive: 1500 * time.Millisecond},
	} {
		if _, err := New(o, DefaultConfig()); !errors.Is(err, clients.ErrInvalidOptions) {
			t.Errorf("New(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
}

func TestPublishBeforeConnectIsNotSent(t *testing.T) {
	c, err := New(clients.Options{Addr: "127.0.0.1:1", ClientID: "never"}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Publish(context.Background(), clients.Message{Topic: "t", Payload: []byte("x"), QoS: 1})
	if !errors.Is(err, clients.ErrNotSent) {
		t.Fatalf("Publish before Connect = %v, want ErrNotSent", err)
	}
}

// TestSessionPresentAndStats checks what the adapter adds to paho: CONNACK's
// session-present flag on every Up, and counters from paho's callbacks.
func TestSessionPresentAndStats(t *testing.T) {
	m := brokertest.Start(t)
	var rec clientstest.Recorder
	c, err := New(clients.Options{Addr: m.Addr, ClientID: "sp", KeepAlive: 5 * time.Second,
		OnMessage: rec.OnMessage, OnEvent: rec.OnEvent}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, "sp/#", 1); err != nil { // makes the session worth keeping
		t.Fatal(err)
	}
	m.Restart()
	clientstest.Eventually(t, 20*time.Second, "reconnect", func() bool { return rec.Count(clients.EventUp) == 2 })
	var sp []bool
	for _, e := range rec.Events() {
		if e.Kind == clients.EventUp {
			sp = append(sp, e.SessionPresent)
		}
	}
	if !slices.Equal(sp, []bool{false, true}) {
		t.Fatalf("session present on each Up = %v, want [false true]", sp)
	}
	st := c.Stats()
	if st[clients.StatConnects] != 2 || st[clients.StatReconnects] != 1 || st[clients.StatOutages] != 1 {
		t.Fatalf("stats = %v", st)
	}
	if _, ok := st[clients.StatRepubs]; ok {
		t.Fatal("paho cannot count its resends; the key must be absent")
	}
}

// TestQoS0DuringReconnectReportsSuccess pins down paho behaviour the adapter
// must pass through unchanged (paho issue #630): a QoS 0 publish while paho
// is reconnecting is dropped, yet its token reports success.
func TestQoS0DuringReconnectReportsSuccess(t *testing.T) {
	m := brokertest.Start(t)
	var rec clientstest.Recorder
	cfg := DefaultConfig()
	c, err := New(clients.Options{Addr: m.Addr, ClientID: "q0", KeepAlive: 5 * time.Second,
		OnMessage: rec.OnMessage, OnEvent: rec.OnEvent}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, "q0/#", 0); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	clientstest.Eventually(t, 10*time.Second, "down", func() bool { return rec.Count(clients.EventDown) == 1 })
	if err := c.Publish(ctx, clients.Message{Topic: "q0/lost", Payload: []byte("lost"), QoS: 0}); err != nil {
		t.Fatalf("paho reports a QoS 0 publish while reconnecting as %v; the adapter must pass on its nil", err)
	}
	m.Start()
	clientstest.Eventually(t, 20*time.Second, "up again", func() bool { return rec.Count(clients.EventUp) == 2 })
	if err := c.Publish(ctx, clients.Message{Topic: "q0/marker", Payload: []byte("marker"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	clientstest.Eventually(t, 10*time.Second, "the marker", func() bool { return len(rec.Deliveries()) > 0 })
	if got := rec.Payloads(); !slices.Equal(got, []string{"marker"}) {
		t.Fatalf("deliveries = %q; the QoS 0 message was expected to be lost", got)
	}
}
