package rig

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger/ledgermatch"
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
	c, err := r.NewClient("mqttas", clients.Options{ClientID: "rig-pub", KeepAlive: 2 * time.Second,
		ResponseTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
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
}
