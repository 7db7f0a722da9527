package scenarios

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
	"github.com/mqttas/mqttas-go/mqttas"
)

const (
	// kaKeepAlive gives a 1 s ping interval: coarse enough that "4 whole intervals, not 3.9, within a
	// fifth" is measurable on a loaded machine.
	kaKeepAlive = 4 * time.Second
	kaPing      = kaKeepAlive / 4
	// kaDetectSlack is what scheduling may add beyond the fifth interval: the ping ticker firing late and
	// the Down event reaching the waiting goroutine. The outage is due 4.5 intervals after the last byte
	// (see below), so a correct client has 0.8 s of margin, and a rule of 5 whole intervals (due at 5.5) fails.
	kaDetectSlack = 300 * time.Millisecond
	// kaWillSlack bounds the broker's lateness beyond 1.5 × keepalive. Mosquitto 2.0.11 keeps last_msg_in
	// in whole seconds and expires a client once now − last_msg_in > 1.5 × keepalive in whole seconds (up
	// to 2 s late), and the keepalive check it builds scans the clients only every 5 s (up to 5 s more):
	// up to 1.5 × keepalive + 6 s after the last packet, plus the observer's delivery. Measured: +3.9 s.
	kaWillSlack = 7 * time.Second
)

var _ = Describe("keepalive-driven outage detection", Label("keepalive"), func() {
	It("declares a silent broker dead after 4 whole ping intervals without a received byte, not before and "+
		"within one more; the broker publishes its will after 1.5 × keepalive; after the heal it reconnects",
		Label("blackhole", "will"), func(ctx SpecContext) {
			r := newRig(ctx)
			cfg := mqttasConfig(r, "ka")
			cfg.KeepAlive = kaKeepAlive
			willTopic := "ka/will/" + cfg.ClientID
			cfg.Will = &mqttas.Message{Topic: willTopic, Payload: []byte("gone silent"), QoS: 1}
			Expect(r.Observer.Subscribe(ctx, willTopic)).To(Succeed())
			c := connectMqttas(ctx, cfg)
			tap := r.Link.Tap()

			// The last byte the client receives is a message poked half a ping interval after a PINGRESP; the
			// blackhole goes in at once, half an interval before the next PINGRESP could be in flight. The
			// client pings at 1, 2, 3, ... intervals from the PINGRESP: 3.5 intervals of silence at the fourth
			// ping do not count, 4.5 at the fifth do. So the outage is due 4.5 intervals after the poke.
			poke := "ka/poke/" + cfg.ClientID
			Expect(c.Subscribe(ctx, poke, 0)).To(Succeed())
			var poked link.Packet
			for attempt := 0; ; attempt++ {
				pingresp := tapWaitWithin(ctx, tap, 3*kaPing, link.AfterSeq(tap.Seq()), link.InDir(link.Downstream),
					link.OfType(mqttframe.PINGRESP))
				Expect(sleepQoS1(ctx, time.Until(pingresp.Time.Add(kaPing/2)))).To(Succeed())
				Expect(r.Observer.Publish(ctx, poke, []byte("poke"), 0, false)).To(Succeed())
				poked = tapWaitWithin(ctx, tap, time.Second, link.AfterSeq(pingresp.Seq), link.InDir(link.Downstream),
					link.OfType(mqttframe.PUBLISH), link.OnTopic(poke))
				// On a stalled machine the poke may come too close to the next ping: try the next interval.
				if poked.Time.Sub(pingresp.Time) < kaPing*3/4 || attempt == 2 {
					break
				}
			}
			hole, err := r.Inject(ctx, faults.Blackhole{})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(hole.Heal)
			injected := time.Now()
			lastRx := lastTapBefore(tap, injected, link.InDir(link.Downstream), link.IsEvent(link.EventPacket))
			lastTx := lastTapBefore(tap, injected, link.InDir(link.Upstream), link.IsEvent(link.EventPacket))
			Expect(lastRx.Seq).To(Equal(poked.Seq), "the poke is the last packet the client received:\n%s", tap)
			Expect(c.Down().IsSet()).To(BeFalse())

			By("the client declares the outage after 4 whole ping intervals of silence, within one more")
			downAt, err := waitEventAt(ctx, c.Down(), 5*kaPing+5*time.Second)
			Expect(err).NotTo(HaveOccurred(), "Down never fired")
			detect := downAt.Sub(lastRx.Time)
			Expect(detect).To(BeNumerically(">=", 4*kaPing), "not before 4 whole intervals")
			Expect(detect).To(BeNumerically("<=", 5*kaPing+kaDetectSlack), "within one more interval")
			// The client closes its silent connection.
			closed := tapWaitWithin(ctx, tap, time.Second, link.IsEvent(link.EventEOF), link.InDir(link.Upstream),
				link.OnConn(lastRx.Conn))
			c.Up().Clear() // the reconnection attempts go into the blackhole too: Up cannot be set meanwhile

			By("the broker publishes the will after 1.5 × keepalive without a packet from the client")
			var wills []time.Time
			Eventually(ctx, func() []time.Time {
				wills = willArrivals(r, willTopic)
				return wills
			}).WithTimeout(kaKeepAlive*3/2 + kaWillSlack + 2*time.Second).WithPolling(20 * time.Millisecond).
				ShouldNot(BeEmpty())
			willAfterTx := wills[0].Sub(lastTx.Time)
			willAfterHole := wills[0].Sub(hole.Since)
			Expect(willAfterTx).To(BeNumerically(">", kaKeepAlive*3/2), "not before 1.5 × keepalive")
			Expect(willAfterHole).To(BeNumerically("<=", kaKeepAlive*3/2+kaWillSlack))

			By("after the heal the client reconnects and fires Up")
			Expect(hole.Heal(ctx)).To(Succeed())
			healed := time.Now()
			upAt, err := waitEventAt(ctx, c.Up(), 10*time.Second)
			Expect(err).NotTo(HaveOccurred(), "Up never fired after the heal")
			Expect(c.IsConnected()).To(BeTrue())
			st := c.Stats()
			Expect(st.Outages).To(Equal(uint64(1)))
			Expect(st.Reconnects).To(Equal(uint64(1)))
			Expect(willArrivals(r, willTopic)).To(HaveLen(1), "one will, for the one silent connection")

			AddReportEntry("figures", map[string]any{
				"ping_interval":             kaPing.String(),
				"detected_after_last_rx":    detect.Round(time.Millisecond).String(),
				"detected_in_intervals":     float64(detect) / float64(kaPing),
				"socket_closed_after_rx":    closed.Time.Sub(lastRx.Time).Round(time.Millisecond).String(),
				"will_after_last_tx":        willAfterTx.Round(time.Millisecond).String(),
				"will_after_blackhole":      willAfterHole.Round(time.Millisecond).String(),
				"up_after_heal":             upAt.Sub(healed).Round(time.Millisecond).String(),
				"failed_reconnect_attempts": st.FailedAttempts,
			})
		}, SpecTimeout(time.Minute))

	It("publishes no will after a deliberate Disconnect, and fires no Down", Label("disconnect", "will"), func(ctx SpecContext) {
		r := newRig(ctx)
		// A control first: a client that vanishes without DISCONNECT (Close) gets its will published, so
		// the observer would see one.
		ctl := mqttasConfig(r, "ka-close")
		ctlWill := "ka/will/" + ctl.ClientID
		ctl.Will = &mqttas.Message{Topic: ctlWill, Payload: []byte("closed"), QoS: 1}
		cfg := mqttasConfig(r, "ka-disc")
		will := "ka/will/" + cfg.ClientID
		cfg.Will = &mqttas.Message{Topic: will, Payload: []byte("disconnected"), QoS: 1}
		Expect(r.Observer.Subscribe(ctx, "ka/will/#")).To(Succeed())

		cc := connectMqttas(ctx, ctl)
		Expect(cc.Close()).To(Succeed())
		closed := time.Now()
		var ctlWills []time.Time
		Eventually(ctx, func() []time.Time {
			ctlWills = willArrivals(r, ctlWill)
			return ctlWills
		}).WithTimeout(5*time.Second).ShouldNot(BeEmpty(), "control: Close publishes the will")

		c := connectMqttas(ctx, cfg)
		seq := r.Link.Tap().Seq()
		Expect(c.Disconnect(ctx)).To(Succeed())
		disconnected := time.Now()
		tapWaitWithin(ctx, r.Link.Tap(), time.Second, link.AfterSeq(seq), link.InDir(link.Upstream),
			link.OfType(mqttframe.DISCONNECT))
		Consistently(ctx, func(g Gomega) {
			g.Expect(willArrivals(r, will)).To(BeEmpty(), "no will after Disconnect")
			g.Expect(c.Down().IsSet()).To(BeFalse(), "no Down after Disconnect")
		}).WithTimeout(2500 * time.Millisecond).WithPolling(50 * time.Millisecond).Should(Succeed())
		Expect(c.IsConnected()).To(BeFalse())
		AddReportEntry("figures", map[string]any{
			"control_will_after_close": ctlWills[0].Sub(closed).Round(time.Millisecond).String(),
			"quiet_after_disconnect":   time.Since(disconnected).Round(time.Millisecond).String(),
		})
	}, SpecTimeout(time.Minute))
})
