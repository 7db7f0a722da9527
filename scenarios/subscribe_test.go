package scenarios

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger/ledgermatch"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
	"github.com/mqttas/mqttas-go/harness/rig"
	"github.com/mqttas/mqttas-go/mqttas"
)

// subscribeBlockedFor is how long a Subscribe or Unsubscribe issued during an outage is shown to wait.
const subscribeBlockedFor = time.Second

var _ = Describe("subscribing across an outage", Label("subscribe"), func() {
	It("completes a Subscribe issued while the link is down once it heals, and the subscription works", Label("down"), func(ctx SpecContext) {
		const topic, n = "sub/late/a", 10
		r := newRig(ctx)
		cfg := mqttasConfig(r, "sub") // a clean session: only a SUBSCRIBE sent on the new connection can count
		got := newDeliveryLog(cfg.ClientID, r.Ledger)
		cfg.OnMessage = got.record
		c := connectMqttas(ctx, cfg)
		c.Up().Clear()

		in, err := r.Inject(ctx, faults.Down{})
		Expect(err).NotTo(HaveOccurred())
		waitEvent(ctx, c.Down(), outageDetection, "the outage")
		done := make(chan error, 1)
		go func() { done <- c.Subscribe(ctx, topic, 1) }()
		Consistently(done).WithTimeout(subscribeBlockedFor).ShouldNot(Receive(), "Subscribe waits for the link")
		Expect(r.Link.Tap().Count(link.OfType(mqttframe.SUBSCRIBE))).To(BeZero(), "nothing sent while down")

		Expect(in.Heal(ctx)).To(Succeed())
		healed := time.Now()
		Eventually(done).WithTimeout(sessionRecovery).Should(Receive(BeNil()), "Subscribe completes after the heal")
		completedIn := time.Since(healed)
		r.Ledger.Subscribe(cfg.ClientID, topic, time.Now())

		subs := r.Link.Tap().Packets(link.OfType(mqttframe.SUBSCRIBE))
		Expect(subs).To(HaveLen(1), "one SUBSCRIBE, sent once")
		Expect(subs[0].Conn).To(BeNumerically(">", 1), "on a connection made after the heal")

		publishViaObserver(ctx, r, "obs", topic, 1, n)
		Eventually(ctx, func() int { return got.distinct(topic) }).WithTimeout(sessionRecovery).Should(BeNumerically(">=", n))
		Expect(got.firsts(topic)).To(Equal(seqRange(1, n)))
		res := r.Ledger.Check()
		AddReportEntry("verdict", res.Summary())
		AddReportEntry("figures", fmt.Sprintf("Subscribe returned %v after the heal (connection %d)", completedIn.Round(time.Millisecond), subs[0].Conn))
		Expect(res).To(ledgermatch.BeValidDelivery())
	}, SpecTimeout(time.Minute))

	It("completes an Unsubscribe issued while the link is down once it heals, and deliveries stop", Label("down"), func(ctx SpecContext) {
		const topic, marker, n = "sub/unsub/a", "sub/unsub/marker", 10
		r := newRig(ctx)
		cfg := mqttasConfig(r, "sub")
		cfg.KeepSession = true // the subscription outlives the outage unless Unsubscribe removes it
		got := newDeliveryLog(cfg.ClientID, r.Ledger)
		cfg.OnMessage = got.record
		c := connectMqttas(ctx, cfg)
		for _, f := range []string{topic, marker} {
			Expect(c.Subscribe(ctx, f, 1)).To(Succeed())
			r.Ledger.Subscribe(cfg.ClientID, f, time.Now())
		}
		publishViaObserver(ctx, r, "obs", topic, 1, 3)
		Eventually(ctx, func() int { return got.distinct(topic) }).WithTimeout(sessionRecovery).Should(Equal(3), "subscribed before the outage")
		c.Up().Clear()

		in, err := r.Inject(ctx, faults.Down{})
		Expect(err).NotTo(HaveOccurred())
		waitEvent(ctx, c.Down(), outageDetection, "the outage")
		done := make(chan error, 1)
		go func() { done <- c.Unsubscribe(ctx, topic) }()
		Consistently(done).WithTimeout(subscribeBlockedFor).ShouldNot(Receive(), "Unsubscribe waits for the link")

		Expect(in.Heal(ctx)).To(Succeed())
		healed := time.Now()
		Eventually(done).WithTimeout(sessionRecovery).Should(Receive(BeNil()), "Unsubscribe completes after the heal")
		completedIn := time.Since(healed)
		r.Ledger.Unsubscribe(cfg.ClientID, topic, time.Now())
		Expect(c.Stats().SessionPresent).To(BeTrue(), "the subscription was still there to remove")
		unsubs := r.Link.Tap().Packets(link.OfType(mqttframe.UNSUBSCRIBE))
		Expect(unsubs).To(HaveLen(1))
		Expect(unsubs[0].Conn).To(BeNumerically(">", 1), "sent on a connection made after the heal")

		// The broker forwards one publisher's messages in order: once the marker arrives, none of these will.
		publishViaObserver(ctx, r, "obs", topic, 4, 3+n)
		publishViaObserver(ctx, r, "obs", marker, 1, 1)
		Eventually(ctx, func() int { return got.distinct(marker) }).WithTimeout(sessionRecovery).Should(Equal(1))
		Expect(got.firsts(topic)).To(Equal(seqRange(1, 3)), "nothing after the Unsubscribe")
		res := r.Ledger.Check()
		AddReportEntry("verdict", res.Summary())
		AddReportEntry("figures", fmt.Sprintf("Unsubscribe returned %v after the heal; %d published afterwards, 0 delivered", completedIn.Round(time.Millisecond), n))
		Expect(res).To(ledgermatch.BeValidDelivery())
	}, SpecTimeout(time.Minute))
})

var _ = Describe("resubscribing on reconnection in a clean session", Label("subscribe"), func() {
	const filter = "sub/again/a"

	It("restores deliveries after outages when the OnConnect hook subscribes, running once per connection", Label("reset", "down", "callback"), func(ctx SpecContext) {
		r := newRig(ctx)
		cfg := mqttasConfig(r, "sub")
		got := newDeliveryLog(cfg.ClientID, r.Ledger)
		cfg.OnMessage = got.record
		var runs, ended atomic.Int32
		resubscribed := make(chan struct{}, 8)
		cfg.OnConnect = func(ctx context.Context, c *mqttas.Client) {
			runs.Add(1)
			defer ended.Add(1)
			if err := c.Subscribe(ctx, filter, 1); err != nil {
				return // the connection ended first; the next one runs the hook again
			}
			r.Ledger.Subscribe(cfg.ClientID, filter, time.Now())
			select {
			case resubscribed <- struct{}{}:
			case <-ctx.Done():
			}
			<-ctx.Done() // held until its connection ends
		}
		c := connectMqttas(ctx, cfg)
		seq := deliverAcrossOutages(ctx, r, cfg.ClientID, filter, got, resubscribed, "the hook resubscribed")

		st := c.Stats()
		Expect(st.Outages).To(BeNumerically(">=", 2))
		Expect(runs.Load()).To(BeEquivalentTo(st.Connects), "OnConnect ran exactly once per connection")
		Eventually(func() int32 { return ended.Load() }).Should(BeEquivalentTo(st.Connects-1),
			"each hook's context ended with its connection")
		Expect(r.Link.Tap().Count(link.OfType(mqttframe.SUBSCRIBE))).To(BeEquivalentTo(st.Connects), "one SUBSCRIBE per connection")
		Expect(got.firsts(filter)).To(Equal(seqRange(1, seq)))
		res := r.Ledger.Check()
		AddReportEntry("verdict", res.Summary())
		AddReportEntry("figures", fmt.Sprintf("connections %d, OnConnect runs %d, outages %d", st.Connects, runs.Load(), st.Outages))
		Expect(res).To(ledgermatch.BeValidDelivery())
	}, SpecTimeout(time.Minute))

	It("restores deliveries after outages when the application resubscribes on the Up event", Label("reset", "down", "event"), func(ctx SpecContext) {
		r := newRig(ctx)
		cfg := mqttasConfig(r, "sub")
		cfg.QueueLen = 64
		got := newDeliveryLog(cfg.ClientID, r.Ledger)
		c := connectMqttas(ctx, cfg)

		// The application: one goroutine resubscribes on every Up, one reads the queue.
		appCtx, stopApp := context.WithCancel(ctx)
		var app sync.WaitGroup
		DeferCleanup(func() { stopApp(); app.Wait() })
		var resubscribes atomic.Int32
		resubscribed := make(chan struct{}, 8)
		app.Go(func() {
			for appCtx.Err() == nil {
				if c.Up().Wait(appCtx) != nil {
					return
				}
				c.Up().Clear()
				if err := c.Subscribe(appCtx, filter, 1); err != nil {
					continue
				}
				resubscribes.Add(1)
				r.Ledger.Subscribe(cfg.ClientID, filter, time.Now())
				select {
				case resubscribed <- struct{}{}:
				case <-appCtx.Done():
				}
			}
		})
		app.Go(func() {
			for {
				m, err := c.Queue().Next(appCtx)
				if err != nil {
					return
				}
				got.record(m)
			}
		})
		seq := deliverAcrossOutages(ctx, r, cfg.ClientID, filter, got, resubscribed, "resubscribed on Up")

		st := c.Stats()
		Expect(st.Outages).To(BeNumerically(">=", 2))
		Expect(resubscribes.Load()).To(BeEquivalentTo(st.Connects), "one resubscription per connection")
		Expect(st.Discards).To(BeZero())
		Expect(got.firsts(filter)).To(Equal(seqRange(1, seq)))
		res := r.Ledger.Check()
		AddReportEntry("verdict", res.Summary())
		AddReportEntry("figures", fmt.Sprintf("connections %d, resubscriptions on Up %d, outages %d", st.Connects, resubscribes.Load(), st.Outages))
		Expect(res).To(ledgermatch.BeValidDelivery())
	}, SpecTimeout(time.Minute))
})

// deliverAcrossOutages is what both resubscription specs check once the application has subscribed (a
// value on resubscribed): five deliveries on the first connection, then, after a reset and after the link
// was down, the application's resubscription (how it happened: how) and five more deliveries. It returns
// the last sequence number published.
func deliverAcrossOutages(ctx context.Context, r *rig.Rig, clientID, filter string, got *deliveryLog,
	resubscribed <-chan struct{}, how string) uint64 {
	GinkgoHelper()
	Eventually(resubscribed).WithTimeout(sessionRecovery).Should(Receive())
	seq := uint64(0)
	deliverSome := func(what string) {
		GinkgoHelper()
		publishViaObserver(ctx, r, "obs", filter, seq+1, seq+5)
		seq += 5
		Eventually(ctx, func() bool { return got.has(filter, seq) }).WithTimeout(sessionRecovery).Should(BeTrue(), what)
	}
	deliverSome("deliveries on the first connection")
	for i, f := range []faults.Fault{faults.Reset{}, faults.Down{}} {
		// The broker forgets a clean session's subscriptions with its connection.
		r.Ledger.Unsubscribe(clientID, filter, time.Now())
		Expect(r.During(ctx, f, 500*time.Millisecond)).To(Succeed())
		Eventually(resubscribed).WithTimeout(sessionRecovery).Should(Receive(), "%s after outage %d", how, i+1)
		deliverSome(fmt.Sprintf("deliveries after outage %d (%s)", i+1, f.Name()))
	}
	return seq
}
