package rig

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/ledger/ledgermatch"
	"github.com/mqttas/mqttas-go/harness/timeline"
	"github.com/onsi/gomega"
)

func TestMain(m *testing.M) {
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	os.Exit(m.Run())
}

// A whole run through the rig: a client publishes qos 1 through the link while it is reset twice; the
// observer receives every acknowledged message, and the timeline holds the two faults.
func TestRigDeliversThroughResets(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Log(r.Dump(context.Background()))
		}
		if err := r.Close(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	if err := r.Observer.Subscribe(ctx, "rig/#"); err != nil {
		t.Fatal(err)
	}
	// The caller's hooks fire after the rig recorded the event or delivery.
	var ups, msgs atomic.Int64
	c, err := r.NewClient("mqttas", clients.Options{ClientID: "rig-pub", KeepAlive: 2 * time.Second,
		ResponseTimeout: 500 * time.Millisecond,
		OnEvent: func(e clients.Event) {
			if e.Kind == clients.EventUp {
				ups.Add(1)
			}
		},
		OnMessage: func(clients.Delivery) { msgs.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Subscribe(ctx, c, "rig-pub", "rig/a", 1); err != nil {
		t.Fatal(err)
	}
	tr := r.StartTraffic(ctx, Publisher{Client: c, Name: "rig-pub", Topic: "rig/a", QoS: 1, Interval: 5 * time.Millisecond})
	// Each reset hits a connection that carried traffic: wait until 20 more publications were acknowledged.
	acked := func(n int64) {
		g.Eventually(tr.Acked).WithTimeout(20*time.Second).WithPolling(10*time.Millisecond).
			Should(gomega.BeNumerically(">=", n), "publications acknowledged")
	}
	for i := range 2 {
		acked(int64(20 * (i + 1)))
		if _, err := r.Inject(ctx, faults.Reset{}); err != nil {
			t.Fatal(err)
		}
	}
	acked(60)
	tr.Stop(10 * time.Second)
	if err := r.Observer.Drain(ctx, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	res := r.Ledger.Check()
	g.Expect(res).To(ledgermatch.BeValidDelivery())
	g.Expect(tr.Acked()).To(gomega.BeNumerically(">=", 60))
	g.Expect(r.Timeline.Faults()).To(gomega.HaveLen(2))
	g.Expect(c.Stats()[clients.StatReconnects]).To(gomega.BeNumerically(">=", 1))
	// Both the rig's records and the caller's hooks saw the events and the deliveries.
	timelineUps := 0
	for _, e := range r.Timeline.Entries() {
		if e.Source == "rig-pub" && e.Kind == timeline.Up {
			timelineUps++
		}
	}
	ledgerDeliveries := 0
	for e := range r.Ledger.Events() {
		if e.Kind == ledger.KindDeliver && e.Subscriber == "rig-pub" {
			ledgerDeliveries++
		}
	}
	g.Expect(ups.Load()).To(gomega.BeNumerically(">=", 2), "the caller's OnEvent saw the reconnections")
	g.Expect(int64(timelineUps)).To(gomega.Equal(ups.Load()), "the timeline holds every up the caller saw")
	g.Expect(msgs.Load()).To(gomega.BeNumerically(">", 0), "the caller's OnMessage got deliveries")
	g.Expect(int64(ledgerDeliveries)).To(gomega.Equal(msgs.Load()), "the ledger holds every delivery the caller got")
}

// A rig that cannot start returns the error and closes what it had started, rather than panicking on the
// half-built rig: a broker backend that does not exist, and an external broker nobody listens at (the
// broker and link are up before the observer fails to connect).
func TestNewFailsCleanly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := New(ctx, Options{Broker: broker.Options{Backend: "nonsense"}}); !errors.Is(err, broker.ErrUnknownBackend) {
		t.Fatalf("unknown backend: err = %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	if r, err := New(ctx, Options{Broker: broker.Options{Backend: broker.KindExternal, Addr: addr}}); err == nil {
		r.Close(ctx)
		t.Fatal("a rig on a broker nobody listens at started")
	}
}
