package scenarios

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger/ledgermatch"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
	"github.com/mqttas/mqttas-go/harness/rig"
)

// pidResponseTime is the ResponseTime of the PID renewal specs: the DUP re-send period.
const pidResponseTime = time.Second

// pidGapSlack bounds how far a re-send may come from ResponseTime on the wire. The client's timer starts
// when the PUBLISH is queued for writing, so the gap between two PUBLISH on the wire is ResponseTime plus
// the difference of two write delays plus timer lateness: early by at most a write delay, late by
// scheduling on a loaded machine.
const (
	pidGapEarly = 150 * time.Millisecond
	pidGapLate  = 600 * time.Millisecond
)

var _ = Describe("PID renewal on the wire", Label("pid-renewal"), func() {
	It("re-sends an unacknowledged PUBLISH MaxRepubs times with DUP and the same id, then reconnects and "+
		"sends it again with a new id and DUP=0, and the Publish completes once PUBACKs flow", Label("drop-pubacks"),
		func(ctx SpecContext) {
			const topic = "pid/renewal"
			const maxRepubs = 4 // the rig's mqttas keeps mqttas's default (Config.MaxRepubs 0 means 4)
			r := newRig(ctx)
			Expect(r.Observer.Subscribe(ctx, topic)).To(Succeed())
			id := clientID("pub")
			c, err := r.NewClient("mqttas", clients.Options{ClientID: id, KeepAlive: 2 * time.Second,
				ResponseTimeout: pidResponseTime})
			Expect(err).NotTo(HaveOccurred())
			Expect(c.Connect(ctx)).To(Succeed())
			tap := r.Link.Tap()

			drop, err := r.Inject(ctx, faults.DropPubacks{})
			Expect(err).NotTo(HaveOccurred())
			tr := r.StartTraffic(ctx, rig.Publisher{Client: c, Name: id, Topic: topic, QoS: 1, Count: 1})
			DeferCleanup(tr.Stop, time.Duration(0))

			first := tapWaitWithin(ctx, tap, 5*time.Second, link.InDir(link.Upstream), link.OfType(mqttframe.PUBLISH),
				link.OnTopic(topic))
			// The renewal is the same message on a later connection.
			within := time.Duration(maxRepubs+1)*pidResponseTime + 5*time.Second
			renewed := tapWaitWithin(ctx, tap, within, link.InDir(link.Upstream), link.OfType(mqttframe.PUBLISH),
				link.OnTopic(topic), func(p link.Packet) bool { return p.Conn != first.Conn })
			Expect(tr.Acked()).To(BeZero(), "no PUBACK reached the client: the Publish still waits")

			Expect(drop.Heal(ctx)).To(Succeed())
			healed := time.Now()
			Eventually(ctx, tr.Acked).WithTimeout(2*pidResponseTime+3*time.Second).Should(Equal(int64(1)),
				"the Publish completes once PUBACKs flow again")
			completed := time.Since(healed)
			tr.Stop(time.Second)
			Expect(tr.Failed()).To(BeZero(), "the Publish returned nil")

			By("on the first connection: the PUBLISH, then MaxRepubs DUP re-sends with the same id, ResponseTime apart")
			onFirst := tap.Packets(link.InDir(link.Upstream), link.OfType(mqttframe.PUBLISH), link.OnTopic(topic),
				link.OnConn(first.Conn))
			Expect(onFirst).To(HaveLen(1+maxRepubs), "the PUBLISH and %d re-sends:\n%s", maxRepubs, tap)
			Expect(onFirst[0].DUP).To(BeFalse())
			for _, p := range onFirst[1:] {
				Expect(p.DUP).To(BeTrue(), "re-send %v", p)
				Expect(p.ID).To(Equal(first.ID), "re-send %v keeps the packet id", p)
			}
			gaps := tapGaps(onFirst)
			for _, g := range gaps {
				Expect(g).To(BeNumerically(">=", pidResponseTime-pidGapEarly), "re-sends %s", roundAll(gaps))
				Expect(g).To(BeNumerically("<=", pidResponseTime+pidGapLate), "re-sends %s", roundAll(gaps))
			}
			Expect(tap.Count(link.InDir(link.Downstream), link.OfType(mqttframe.PUBACK), link.OnConn(first.Conn),
				link.WithFate(link.Dropped))).To(Equal(1+maxRepubs), "every PUBACK on the first connection was dropped")

			By("the link is declared dead ResponseTime after the last re-send: the client closes the connection")
			eof := tap.Packets(link.IsEvent(link.EventEOF), link.InDir(link.Upstream), link.OnConn(first.Conn))
			Expect(eof).NotTo(BeEmpty(), "the client closed the first connection")
			lastDup := onFirst[len(onFirst)-1]
			dead := eof[0].Time.Sub(lastDup.Time)
			Expect(dead).To(BeNumerically(">=", pidResponseTime-pidGapEarly))
			Expect(dead).To(BeNumerically("<=", pidResponseTime+pidGapLate))
			opened := tap.Packets(link.IsEvent(link.EventOpen), link.OnConn(renewed.Conn))
			Expect(opened).To(HaveLen(1))
			Expect(opened[0].Time).To(BeTemporally(">=", lastDup.Time.Add(pidResponseTime-pidGapEarly)),
				"the new connection comes once the link was declared dead")

			By("on the new connection: the same message with a new packet id and DUP=0")
			Expect(renewed.DUP).To(BeFalse())
			Expect(renewed.ID).NotTo(Equal(first.ID))
			Expect(renewed.PayloadSize).To(Equal(first.PayloadSize))
			Expect(renewed.QoS).To(Equal(byte(1)))
			Expect(tap.Count(link.InDir(link.Downstream), link.OfType(mqttframe.PUBACK), link.OnConn(renewed.Conn),
				link.WithID(renewed.ID), link.WithFate(link.Forwarded))).To(BeNumerically(">=", 1),
				"after the heal a PUBACK for the new id reached the client")

			By("the observer has the message; every copy it got is that one message")
			Expect(r.Observer.Drain(ctx, 300*time.Millisecond)).To(Succeed())
			res := r.Ledger.Check()
			Expect(res).To(ledgermatch.BeValidDelivery())
			Expect(res.Delivered).To(Equal(1))
			st := c.Stats()
			Expect(st[clients.StatRepubs]).To(BeNumerically(">=", maxRepubs))
			Expect(st["renewals"]).To(BeNumerically(">=", 1))
			Expect(st[clients.StatOutages]).To(BeNumerically(">=", 1))

			AddReportEntry("figures", map[string]any{
				"max_repubs":            maxRepubs,
				"response_time":         pidResponseTime.String(),
				"first_id":              first.ID,
				"renewed_id":            renewed.ID,
				"resend_gaps":           roundAll(gaps),
				"dead_after_last_dup":   dead.Round(time.Millisecond).String(),
				"renewal_after_dead":    renewed.Time.Sub(eof[0].Time).Round(time.Millisecond).String(),
				"renewal_after_first":   renewed.Time.Sub(first.Time).Round(time.Millisecond).String(),
				"completed_after_heal":  completed.Round(time.Millisecond).String(),
				"observer_deliveries":   res.Deliveries,
				"duplicate_deliveries":  res.DuplicateDeliveries,
				"client_repubs":         st[clients.StatRepubs],
				"client_renewals":       st["renewals"],
				"client_outages":        st[clients.StatOutages],
				"publishes_on_the_wire": len(tapPublishes(tap, topic)),
			})
		}, SpecTimeout(time.Minute))

	It("completes a publication on a late PUBACK and ignores the second PUBACK for the same id, keeping the link",
		Label("delay-pubacks"), func(ctx SpecContext) {
			const topic = "pid/late"
			// Longer than ResponseTime and shorter than two of them: the DUP re-send goes out, the first PUBACK
			// then completes the publication before a second re-send would.
			const delay = 1500 * time.Millisecond
			r := newRig(ctx)
			Expect(r.Observer.Subscribe(ctx, topic)).To(Succeed())
			id := clientID("pub")
			// KeepAlive 4 s: the silence rule (4 s) stays clear of the 1.5 s holds that delayed PUBACKs put on
			// everything behind them.
			c, err := r.NewClient("mqttas", clients.Options{ClientID: id, KeepAlive: 4 * time.Second,
				ResponseTimeout: pidResponseTime})
			Expect(err).NotTo(HaveOccurred())
			Expect(c.Connect(ctx)).To(Succeed())
			tap := r.Link.Tap()

			Expect(r.Link.DelayPackets(link.Downstream, mqttframe.PUBACK, delay)).To(Succeed())
			fault := r.Timeline.BeginFault(time.Now(), "link", "delay-pubacks", map[string]any{"delay": delay.String()})
			DeferCleanup(func() {
				r.Link.StopDelaying()
				_ = r.Timeline.EndFault(time.Now(), fault, "")
			})
			start := time.Now()
			Expect(r.Publish(ctx, rig.Publisher{Client: c, Name: id, Topic: topic, QoS: 1, Count: 1})).To(Succeed(),
				"the Publish returned nil")
			took := time.Since(start)
			Expect(took).To(BeNumerically(">=", delay), "it completed on the delayed PUBACK")

			ackFilters := []link.Filter{link.InDir(link.Downstream), link.OfType(mqttframe.PUBACK), link.WithFate(link.Delayed)}
			Eventually(ctx, func() int { return tap.Count(ackFilters...) }).WithTimeout(3*time.Second).Should(Equal(2),
				"the broker acknowledged the PUBLISH and its DUP re-send")
			acks := tap.Packets(ackFilters...)
			released := acks[1].Time.Add(acks[1].Delay)
			Eventually(ctx, func() int64 { return c.Stats()["stray_acks"] }).
				WithTimeout(time.Until(released)+2*time.Second).Should(Equal(int64(1)), "the second PUBACK was a stray")
			opens := func() int { return tap.Count(link.IsEvent(link.EventOpen)) }
			Consistently(ctx, func(g Gomega) {
				g.Expect(opens()).To(Equal(1), "no new connection")
				g.Expect(c.Stats()[clients.StatOutages]).To(BeZero(), "no outage")
				g.Expect(c.IsConnected()).To(BeTrue())
			}).WithTimeout(1500 * time.Millisecond).WithPolling(50 * time.Millisecond).Should(Succeed())

			pubs := tapPublishes(tap, topic)
			Expect(pubs).To(HaveLen(2), "the PUBLISH and one DUP re-send:\n%s", tap)
			Expect(pubs[0].DUP).To(BeFalse())
			Expect(pubs[1].DUP).To(BeTrue())
			Expect(pubs[1].ID).To(Equal(pubs[0].ID))
			Expect(acks[0].ID).To(Equal(pubs[0].ID))
			Expect(acks[1].ID).To(Equal(pubs[0].ID))
			gap := pubs[1].Time.Sub(pubs[0].Time)
			Expect(gap).To(BeNumerically(">=", pidResponseTime-pidGapEarly))
			Expect(gap).To(BeNumerically("<=", pidResponseTime+pidGapLate))

			Expect(r.Observer.Drain(ctx, 300*time.Millisecond)).To(Succeed())
			res := r.Ledger.Check()
			Expect(res).To(ledgermatch.BeValidDelivery())
			Expect(res.Delivered).To(Equal(1))
			st := c.Stats()
			AddReportEntry("figures", map[string]any{
				"puback_delay":         delay.String(),
				"publish_took":         took.Round(time.Millisecond).String(),
				"dup_resend_after":     gap.Round(time.Millisecond).String(),
				"stray_acks":           st["stray_acks"],
				"outages":              st[clients.StatOutages],
				"connections":          opens(),
				"observer_deliveries":  res.Deliveries,
				"duplicate_deliveries": res.DuplicateDeliveries,
			})
		}, SpecTimeout(time.Minute))
})
