package scenarios

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/ledger/ledgermatch"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
	"github.com/mqttas/mqttas-go/harness/rig"
	"github.com/mqttas/mqttas-go/mqttas"
)

// How long the specs wait for things that normally take well under a second: generous, because the
// machine is shared and slow at times.
const (
	sessionRecovery = 20 * time.Second // reconnection and backlog delivery after a heal
	outageDetection = 10 * time.Second // the client noticing a fault (keepalive 2 s detects in ~2 s)
)

var _ = Describe("a persistent session (KeepSession)", Label("session"), func() {
	// persistentSubscriber connects an mqttas client with KeepSession (and ResumeSession: resume whatever
	// session the broker has) in callback mode, subscribed at qos 1 to topic, its window open in the ledger.
	persistentSubscriber := func(ctx SpecContext, r *rig.Rig, name, topic string) (*mqttas.Client, *deliveryLog) {
		GinkgoHelper()
		cfg := mqttasConfig(r, name)
		cfg.KeepSession, cfg.ResumeSession = true, true
		log := newDeliveryLog(cfg.ClientID, r.Ledger)
		cfg.OnMessage = log.record
		c := connectMqttas(ctx, cfg)
		Expect(c.Subscribe(ctx, topic, 1)).To(Succeed())
		r.Ledger.Subscribe(cfg.ClientID, topic, time.Now())
		return c, log
	}

	It("receives every qos 1 message published while the link was down", Label("down"), func(ctx SpecContext) {
		const topic, n = "sess/down/a", 50
		r := newRig(ctx)
		c, got := persistentSubscriber(ctx, r, "sub", topic)
		c.Up().Clear()

		in, err := r.Inject(ctx, faults.Down{})
		Expect(err).NotTo(HaveOccurred())
		waitEvent(ctx, c.Down(), outageDetection, "the outage")
		publishViaObserver(ctx, r, "obs", topic, 1, n)
		holdFault(ctx, 2*time.Second) // the link stays down a few seconds, the client retrying meanwhile
		Expect(in.Heal(ctx)).To(Succeed())
		healed := time.Now()

		waitEvent(ctx, c.Up(), sessionRecovery, "the reconnection")
		Eventually(ctx, func() int { return got.distinct(topic) }).WithTimeout(sessionRecovery).Should(BeNumerically(">=", n))
		backlogIn := time.Since(healed)

		Expect(got.firsts(topic)).To(Equal(seqRange(1, n)), "every message, in publish order")
		Expect(c.Stats().SessionPresent).To(BeTrue(), "the broker resumed the session")
		res := r.Ledger.Check()
		AddReportEntry("verdict", res.Summary())
		AddReportEntry("figures", fmt.Sprintf("backlog %d delivered %v after the heal (%d duplicates); failed reconnection attempts while down: %d",
			n, backlogIn.Round(time.Millisecond), got.duplicates(topic), c.Stats().FailedAttempts))
		Expect(res).To(ledgermatch.BeValidDelivery())
	}, SpecTimeout(time.Minute))

	It("receives every qos 1 message published while the link was a silent blackhole", Label("blackhole"), func(ctx SpecContext) {
		const topic, early, late = "sess/blackhole/a", 10, 10
		r := newRig(ctx)
		c, got := persistentSubscriber(ctx, r, "sub", topic)
		c.Up().Clear()
		left := brokerLeaveCount(ctx, r.Broker, got.sub)

		in, err := r.Inject(ctx, faults.Blackhole{})
		Expect(err).NotTo(HaveOccurred())
		// Published before anyone notices: the broker sends these into the dead connection.
		publishViaObserver(ctx, r, "obs", topic, 1, early)
		detected := waitEvent(ctx, c.Down(), outageDetection, "keepalive to notice the silence")
		// Published once the broker's keepalive (1.5 × 2 s) dropped the connection too: these are queued.
		waitBrokerSawLeave(ctx, r.Broker, got.sub, left)
		brokerDetected := time.Since(in.Since)
		publishViaObserver(ctx, r, "obs", topic, early+1, early+late)
		Expect(in.Heal(ctx)).To(Succeed())
		healed := time.Now()

		waitEvent(ctx, c.Up(), sessionRecovery, "the reconnection")
		Eventually(ctx, func() int { return got.distinct(topic) }).WithTimeout(sessionRecovery).Should(BeNumerically(">=", early+late))
		backlogIn := time.Since(healed)

		Expect(c.Stats().SessionPresent).To(BeTrue(), "the broker resumed the session")
		res := r.Ledger.Check()
		AddReportEntry("verdict", res.Summary())
		resent := r.Link.Tap().Count(link.OfType(mqttframe.PUBLISH), link.InDir(link.Downstream), link.OnTopic(topic),
			func(p link.Packet) bool { return p.DUP })
		AddReportEntry("figures", fmt.Sprintf("silence detected by the client after %v, by the broker after %v (keepalive 2 s); "+
			"%d messages delivered %v after the heal (%d re-sent by the broker with DUP=1); %d duplicate deliveries",
			detected.Round(time.Millisecond), brokerDetected.Round(time.Millisecond), early+late, backlogIn.Round(time.Millisecond),
			resent, res.DuplicateDeliveries))
		Expect(res).To(ledgermatch.BeValidDelivery())
		Expect(got.firsts(topic)).To(Equal(seqRange(1, early+late)), "every message, in publish order")
	}, SpecTimeout(time.Minute))

	It("receives every qos 1 message queued across a broker restart with persistence, and the session is present", Label("broker-restart"), func(ctx SpecContext) {
		const topic, before, after = "sess/restart/a", 20, 20
		r := newRig(ctx)
		c, got := persistentSubscriber(ctx, r, "sub", topic)
		c.Up().Clear()

		// The client is away (link down) while the broker queues for it, restarts, and queues more.
		cut, err := r.Inject(ctx, faults.Down{})
		Expect(err).NotTo(HaveOccurred())
		waitEvent(ctx, c.Down(), outageDetection, "the outage")
		publishViaObserver(ctx, r, "obs", topic, 1, before)

		restartBegan := time.Now()
		stopped, err := r.Inject(ctx, faults.BrokerRestart{})
		Expect(err).NotTo(HaveOccurred())
		Expect(stopped.Heal(ctx)).To(Succeed())
		restart := time.Since(restartBegan)
		Expect(r.Observer.WaitReady(ctx)).To(Succeed())
		publishViaObserver(ctx, r, "obs", topic, before+1, before+after)

		Expect(cut.Heal(ctx)).To(Succeed())
		healed := time.Now()
		waitEvent(ctx, c.Up(), sessionRecovery, "the reconnection")
		Eventually(ctx, func() int { return got.distinct(topic) }).WithTimeout(sessionRecovery).Should(BeNumerically(">=", before+after))
		backlogIn := time.Since(healed)

		Expect(got.firsts(topic)).To(Equal(seqRange(1, before+after)), "the persisted backlog, then the new one, in order")
		Expect(c.Stats().SessionPresent).To(BeTrue(), "CONNACK session present after the restart is accepted")
		conns := tapConnects(r.Link, got.sub)
		Expect(conns).NotTo(BeEmpty())
		last := conns[len(conns)-1]
		ack, ok := tapConnack(r.Link, last.Conn)
		Expect(ok).To(BeTrue(), "the tap saw the last CONNACK")
		Expect(last.CleanSession).To(BeFalse())
		Expect(ack.SessionPresent).To(BeTrue(), "on the wire too, the restarted broker had the session")
		res := r.Ledger.Check()
		AddReportEntry("verdict", res.Summary())
		AddReportEntry("figures", fmt.Sprintf("broker restart took %v; %d messages (%d persisted across it) delivered %v after the heal (%d duplicates)",
			restart.Round(time.Millisecond), before+after, before, backlogIn.Round(time.Millisecond), got.duplicates(topic)))
		Expect(res).To(ledgermatch.BeValidDelivery())
	}, SpecTimeout(2*time.Minute))
})

var _ = Describe("session start-up with KeepSession and no ResumeSession", Label("session"), func() {
	It("discards the old session at start-up only: its queued message is lost, later outages keep the session", Label("clean-init", "down"), func(ctx SpecContext) {
		const oldTopic, newTopic, backlog = "sess/init/old", "sess/init/new", 10
		r := newRig(ctx)

		// Two persistent sessions, a and b, subscribe to oldTopic and leave; a message is queued for both.
		for _, name := range []string{"a", "b"} {
			cfg := mqttasConfig(r, name)
			cfg.KeepSession, cfg.ResumeSession = true, true
			c, err := mqttas.New(cfg)
			Expect(err).NotTo(HaveOccurred())
			Expect(c.Connect(ctx)).To(Succeed())
			Expect(c.Subscribe(ctx, oldTopic, 1)).To(Succeed())
			left := brokerLeaveCount(ctx, r.Broker, cfg.ClientID)
			Expect(c.Disconnect(ctx)).To(Succeed())
			Expect(c.Close()).To(Succeed())
			waitBrokerSawLeave(ctx, r.Broker, cfg.ClientID, left)
		}
		publishViaObserver(ctx, r, "obs", oldTopic, 1, 1)

		// Control: a comes back with ResumeSession and gets the queued message, so it really was queued.
		cfgA := mqttasConfig(r, "a")
		cfgA.KeepSession, cfgA.ResumeSession = true, true
		gotA := newDeliveryLog(cfgA.ClientID, r.Ledger)
		cfgA.OnMessage = gotA.record
		a := connectMqttas(ctx, cfgA)
		Eventually(ctx, func() int { return gotA.distinct(oldTopic) }).WithTimeout(sessionRecovery).Should(Equal(1))
		Expect(a.Stats().SessionPresent).To(BeTrue())

		// b comes back without ResumeSession: the old session, and the message queued in it, are gone.
		startup := r.Link.Tap().Seq()
		cfgB := mqttasConfig(r, "b")
		cfgB.KeepSession = true
		gotB := newDeliveryLog(cfgB.ClientID, r.Ledger)
		cfgB.OnMessage = gotB.record
		b := connectMqttas(ctx, cfgB)
		Expect(b.Stats().SessionPresent).To(BeFalse(), "a fresh session after the start-up dance")
		Expect(b.Subscribe(ctx, newTopic, 1)).To(Succeed())
		r.Ledger.Subscribe(cfgB.ClientID, newTopic, time.Now())
		// A resumed session's queue is delivered before anything newer: once this arrives, the old one never will.
		publishViaObserver(ctx, r, "obs", newTopic, 1, 1)
		Eventually(ctx, func() int { return gotB.distinct(newTopic) }).WithTimeout(sessionRecovery).Should(Equal(1))
		Expect(gotB.distinct(oldTopic)).To(BeZero(), "the message queued for the discarded session is not delivered")

		// After start-up the session persists: b gets everything published during an outage.
		b.Up().Clear()
		in, err := r.Inject(ctx, faults.Down{})
		Expect(err).NotTo(HaveOccurred())
		waitEvent(ctx, b.Down(), outageDetection, "the outage")
		publishViaObserver(ctx, r, "obs", newTopic, 2, backlog+1)
		Expect(in.Heal(ctx)).To(Succeed())
		waitEvent(ctx, b.Up(), sessionRecovery, "the reconnection")
		Eventually(ctx, func() int { return gotB.distinct(newTopic) }).WithTimeout(sessionRecovery).Should(BeNumerically(">=", backlog+1))
		Expect(gotB.firsts(newTopic)).To(Equal(seqRange(1, backlog+1)))
		Expect(b.Stats().SessionPresent).To(BeTrue(), "the session survived the outage")
		Expect(gotB.distinct(oldTopic)).To(BeZero())

		// On the wire: clean=1 (the discarding connection), then clean=0 for start-up and every reconnection.
		var clean []bool
		for _, p := range tapConnects(r.Link, cfgB.ClientID, link.AfterSeq(startup)) {
			clean = append(clean, p.CleanSession)
		}
		Expect(len(clean)).To(BeNumerically(">=", 3))
		Expect(clean[0]).To(BeTrue(), "the first CONNECT discards the old session")
		Expect(clean[1:]).To(HaveEach(BeFalse()), "every later CONNECT keeps the session")

		res := r.Ledger.Check()
		AddReportEntry("verdict", res.Summary())
		AddReportEntry("figures", fmt.Sprintf("b's CONNECT clean flags %v; a (ResumeSession) received the old message, b did not; b's %d-message backlog complete",
			clean, backlog))
		Expect(res).To(ledgermatch.BeValidDelivery())
	}, SpecTimeout(time.Minute))
})

var _ = Describe("a clean session (the default)", Label("session"), func() {
	It("loses the messages published while it was away, and its subscriptions, as documented", Label("down"), func(ctx SpecContext) {
		const topic, before, away = "sess/clean/a", 5, 20
		r := newRig(ctx)
		cfg := mqttasConfig(r, "sub") // a clean session, the default
		got := newDeliveryLog(cfg.ClientID, r.Ledger)
		cfg.OnMessage = got.record
		c := connectMqttas(ctx, cfg)
		Expect(c.Subscribe(ctx, topic, 1)).To(Succeed())
		r.Ledger.Subscribe(cfg.ClientID, topic, time.Now())
		publishViaObserver(ctx, r, "obs", topic, 1, before)
		Eventually(ctx, func() int { return got.distinct(topic) }).WithTimeout(sessionRecovery).Should(Equal(before))

		// From the outage on, the broker owes this client nothing: a clean session ends with its connection.
		c.Up().Clear()
		r.Ledger.Unsubscribe(cfg.ClientID, topic, time.Now())
		in, err := r.Inject(ctx, faults.Down{})
		Expect(err).NotTo(HaveOccurred())
		waitEvent(ctx, c.Down(), outageDetection, "the outage")
		publishViaObserver(ctx, r, "obs", topic, before+1, before+away)
		Expect(in.Heal(ctx)).To(Succeed())
		waitEvent(ctx, c.Up(), sessionRecovery, "the reconnection")
		Expect(c.Stats().SessionPresent).To(BeFalse())

		// Reconnected but not resubscribed: the broker forgot the subscription too.
		forgotten := uint64(before + away + 1)
		publishViaObserver(ctx, r, "obs", topic, forgotten, forgotten)
		Expect(c.Subscribe(ctx, topic, 1)).To(Succeed())
		r.Ledger.Subscribe(cfg.ClientID, topic, time.Now())
		publishViaObserver(ctx, r, "obs", topic, forgotten+1, forgotten+5)
		// The broker forwards in publish order, so once the last one arrives nothing older is still coming.
		Eventually(ctx, func() bool { return got.has(topic, forgotten+5) }).WithTimeout(sessionRecovery).Should(BeTrue())

		Expect(got.firsts(topic)).To(Equal(append(seqRange(1, before), seqRange(forgotten+1, forgotten+5)...)),
			"nothing published while away (%d..%d) nor before resubscribing (%d)", before+1, before+away, forgotten)
		res := r.Ledger.Check()
		AddReportEntry("verdict", res.Summary())
		AddReportEntry("figures", fmt.Sprintf("%d published while away, 0 delivered; 1 published before resubscribing, 0 delivered", away))
		Expect(res).To(ledgermatch.BeValidDelivery())
	}, SpecTimeout(time.Minute))
})

var _ = Describe("the event queue", Label("session", "queue"), func() {
	It("holds exactly QueueLen messages, drops the oldest beyond it and counts every discard", Label("down"), func(ctx SpecContext) {
		const topic, queueLen, extra = "sess/queue/a", 8, 5
		r := newRig(ctx)
		cfg := mqttasConfig(r, "sub")
		cfg.KeepSession = true
		cfg.QueueLen = queueLen
		c := connectMqttas(ctx, cfg)
		Expect(c.Subscribe(ctx, topic, 1)).To(Succeed())
		r.Ledger.Subscribe(cfg.ClientID, topic, time.Now())

		// A backlog of QueueLen+extra arrives in one burst after an outage; the application reads nothing.
		c.Up().Clear()
		in, err := r.Inject(ctx, faults.Down{})
		Expect(err).NotTo(HaveOccurred())
		waitEvent(ctx, c.Down(), outageDetection, "the outage")
		publishViaObserver(ctx, r, "obs", topic, 1, queueLen+extra)
		Expect(in.Heal(ctx)).To(Succeed())
		waitEvent(ctx, c.Up(), sessionRecovery, "the reconnection")
		// Every message received has been queued (Received counts a PUBLISH just before queueing it).
		queued := func() uint64 { return c.Queue().Discards() + uint64(c.Queue().Len()) }
		Eventually(ctx, queued).WithTimeout(sessionRecovery).Should(BeNumerically(">=", queueLen+extra))

		st := c.Stats()
		Expect(st.Discards).To(Equal(st.Received-queueLen), "every message beyond QueueLen displaced one, counted")
		Expect(st.Received).To(Equal(uint64(queueLen+extra)), "each message received once (one clean outage: no redelivery)")
		Expect(st.Discards).To(Equal(uint64(extra)), "so exactly the overflow is discarded")
		Expect(c.Queue().Discards()).To(Equal(st.Discards))
		Expect(c.Queue().Len()).To(Equal(queueLen), "the queue holds exactly QueueLen")

		got := newDeliveryLog(cfg.ClientID, r.Ledger)
		for m, ok := c.Queue().TryNext(); ok; m, ok = c.Queue().TryNext() {
			got.record(m)
		}
		Expect(got.all(topic)).To(Equal(seqRange(extra+1, queueLen+extra)), "the newest QueueLen kept, in order")

		res := r.Ledger.Check()
		Expect(res.Lost).To(HaveLen(extra), "before accounting, the ledger sees the discards as lost")
		r.Ledger.ExpectDrops(cfg.ClientID, int(st.Discards))
		res = r.Ledger.Check()
		AddReportEntry("verdict", res.Summary())
		AddReportEntry("figures", fmt.Sprintf("QueueLen %d, burst %d: discards %d, kept %v", queueLen, queueLen+extra, st.Discards, got.all(topic)))
		Expect(res).To(ledgermatch.BeValidDelivery())
		Expect(res.Dropped).To(HaveKeyWithValue(cfg.ClientID, extra))
	}, SpecTimeout(time.Minute))
})

var _ = Describe("the broker's queue limit", Label("session", "queue-limit"), func() {
	It("keeps the oldest max_queued_messages for an offline session, and the checker accounts for the rest", Label("down"), func(ctx SpecContext) {
		const topic, limit, extra = "sess/limit/a", 10, 6
		r := newRig(ctx, func(o *rig.Options) {
			o.Broker.Config = append(o.Broker.Config, fmt.Sprintf("max_queued_messages %d", limit))
		})
		cfg := mqttasConfig(r, "sub")
		cfg.KeepSession, cfg.ResumeSession = true, true
		got := newDeliveryLog(cfg.ClientID, r.Ledger)
		cfg.OnMessage = got.record
		c := connectMqttas(ctx, cfg)
		Expect(c.Subscribe(ctx, topic, 1)).To(Succeed())
		r.Ledger.Subscribe(cfg.ClientID, topic, time.Now())

		// Offline for the broker, not just for the client: otherwise its in-flight window would take 20 more.
		c.Up().Clear()
		left := brokerLeaveCount(ctx, r.Broker, cfg.ClientID)
		in, err := r.Inject(ctx, faults.Down{})
		Expect(err).NotTo(HaveOccurred())
		waitEvent(ctx, c.Down(), outageDetection, "the outage")
		waitBrokerSawLeave(ctx, r.Broker, cfg.ClientID, left)
		publishViaObserver(ctx, r, "obs", topic, 1, limit+extra)
		Expect(in.Heal(ctx)).To(Succeed())
		waitEvent(ctx, c.Up(), sessionRecovery, "the reconnection")

		// A marker published after the reconnection arrives after whatever the broker had kept.
		marker := uint64(limit + extra + 1)
		publishViaObserver(ctx, r, "obs", topic, marker, marker)
		Eventually(ctx, func() bool { return got.has(topic, marker) }).WithTimeout(sessionRecovery).Should(BeTrue())
		Expect(got.firsts(topic)).To(Equal(append(seqRange(1, limit), marker)), "exactly the oldest %d kept", limit)
		Expect(c.Stats().SessionPresent).To(BeTrue())

		res := r.Ledger.Check()
		Expect(res.Lost).To(HaveLen(extra), "unaccounted, the broker's drops look like loss")
		drops := ledger.QueueLimits{MaxQueued: limit}.OfflineDrops(limit + extra)
		Expect(drops).To(Equal(extra))
		r.Ledger.ExpectDrops(cfg.ClientID, drops)
		res = r.Ledger.Check()
		AddReportEntry("verdict", res.Summary())
		AddReportEntry("figures", fmt.Sprintf("max_queued_messages %d, %d published while offline: %d delivered, %d dropped by the broker",
			limit, limit+extra, limit, res.Dropped[cfg.ClientID]))
		Expect(res).To(ledgermatch.BeValidDelivery())
		Expect(res.Dropped).To(HaveKeyWithValue(cfg.ClientID, extra))
	}, SpecTimeout(time.Minute))
})
