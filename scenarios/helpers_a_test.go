package scenarios

// Helpers of the qos 1, PID renewal and keepalive specs (part A). Names carry their topic so they do not
// collide with the helpers of the other spec files in this package.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
	"github.com/mqttas/mqttas-go/harness/rig"
	"github.com/mqttas/mqttas-go/mqttas"
)

// qos1Step is one step of a fault plan: inject Fault, keep it for Hold (nothing for a one-shot fault),
// heal it, then let traffic flow for Pause before the next step.
type qos1Step struct {
	Fault faults.Fault
	Hold  time.Duration
	Pause time.Duration
}

func (s qos1Step) String() string {
	str := s.Fault.String()
	if !s.Fault.OneShot() {
		str += fmt.Sprintf(" for %v", s.Hold)
	}
	if s.Pause > 0 {
		str += fmt.Sprintf(", then %v of calm", s.Pause)
	}
	return str
}

// runQoS1Plan plays the steps through the rig and returns when the last fault was healed (for a one-shot
// fault: injected).
func runQoS1Plan(ctx context.Context, r *rig.Rig, steps []qos1Step) time.Time {
	GinkgoHelper()
	var healed time.Time
	for i, s := range steps {
		in, err := r.Inject(ctx, s.Fault)
		Expect(err).NotTo(HaveOccurred(), "step %d: %s", i, s)
		Expect(sleepQoS1(ctx, s.Hold)).To(Succeed())
		Expect(in.Heal(ctx)).To(Succeed(), "step %d: %s", i, s)
		healed = time.Now()
		if i < len(steps)-1 {
			Expect(sleepQoS1(ctx, s.Pause)).To(Succeed())
		}
	}
	return healed
}

// sleepQoS1 waits for d or until ctx ends.
func sleepQoS1(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// qos1MixFaults are the faults the random mix draws from, as a trace file names them, with the parameters
// each draw may take.
var qos1MixFaults = []struct {
	name   string
	params func(*rand.Rand) map[string]string
}{
	{"latency", func(rnd *rand.Rand) map[string]string {
		return map[string]string{"latency": strconv.Itoa(50+rnd.IntN(200)) + "ms", "jitter": strconv.Itoa(rnd.IntN(50)) + "ms"}
	}},
	{"reset", nil},
	{"blackhole", nil},
	{"down", nil},
	{"slicer", func(rnd *rand.Rand) map[string]string {
		return map[string]string{"average": strconv.Itoa(4 + rnd.IntN(12)), "variation": "3", "delay": "100us"}
	}},
	{"bandwidth", func(rnd *rand.Rand) map[string]string {
		return map[string]string{"rate": strconv.Itoa(4 + rnd.IntN(28))}
	}},
	{"broker-restart", nil},
	{"broker-pause", nil},
}

// seededQoS1Mix draws n steps from qos1MixFaults with a generator seeded by seed: the same seed gives the
// same plan, built through faults.Parse exactly as a replayed trace would be.
func seededQoS1Mix(seed uint64, n int) []qos1Step {
	GinkgoHelper()
	rnd := rand.New(rand.NewPCG(seed, 0x71a5))
	steps := make([]qos1Step, 0, n)
	for range n {
		pick := qos1MixFaults[rnd.IntN(len(qos1MixFaults))]
		var params map[string]string
		if pick.params != nil {
			params = pick.params(rnd)
		}
		f, err := faults.Parse(pick.name, params)
		Expect(err).NotTo(HaveOccurred())
		s := qos1Step{Fault: f, Pause: time.Duration(300+rnd.IntN(700)) * time.Millisecond}
		if !f.OneShot() {
			s.Hold = time.Duration(500+rnd.IntN(2500)) * time.Millisecond
		}
		steps = append(steps, s)
	}
	steps[len(steps)-1].Pause = 0 // the plan ends at the last heal
	return steps
}

// qos1Fleet is the workload of the qos 1 delivery specs, all through the link: solo mqttas clients with
// one publisher each, and one shared mqttas client that several publishers use at once, each on its own
// goroutine. Every client has its own Traffic, so each one's progress can be followed.
type qos1Fleet struct {
	names   []string
	clients []clients.Client
	traffic []*rig.Traffic
}

// startQoS1Fleet connects the clients and starts publishing at qos 1, every interval per publisher, to
// topics under "qos1/".
func startQoS1Fleet(ctx context.Context, r *rig.Rig, solo, shared int, interval time.Duration) *qos1Fleet {
	GinkgoHelper()
	f := &qos1Fleet{}
	add := func(name string, publishers int) {
		id := clientID(name)
		c, err := r.NewClient("mqttas", clients.Options{ClientID: id, KeepAlive: 2 * time.Second,
			ResponseTimeout: time.Second})
		Expect(err).NotTo(HaveOccurred())
		Expect(c.Connect(ctx)).To(Succeed())
		pubs := make([]rig.Publisher, publishers)
		for i := range pubs {
			pub := id
			if publishers > 1 {
				pub += "-g" + strconv.Itoa(i)
			}
			pubs[i] = rig.Publisher{Client: c, Name: pub, Topic: "qos1/" + pub, QoS: 1, Interval: interval}
		}
		f.names = append(f.names, id)
		f.clients = append(f.clients, c)
		f.traffic = append(f.traffic, r.StartTraffic(ctx, pubs...))
	}
	for i := range solo {
		add("solo"+strconv.Itoa(i), 1)
	}
	if shared > 0 {
		add("shared", shared)
	}
	return f
}

// stop stops every publisher, waiting up to grace for publications in flight.
func (f *qos1Fleet) stop(grace time.Duration) {
	for _, t := range f.traffic {
		t.Stop(grace)
	}
}

func (f *qos1Fleet) acked() []int64 {
	n := make([]int64, len(f.traffic))
	for i, t := range f.traffic {
		n[i] = t.Acked()
	}
	return n
}

func (f *qos1Fleet) totals() (published, acked, failed int64) {
	for _, t := range f.traffic {
		published += t.Published()
		acked += t.Acked()
		failed += t.Failed()
	}
	return published, acked, failed
}

// stat sums a client counter over the fleet.
func (f *qos1Fleet) stat(key string) int64 {
	var n int64
	for _, c := range f.clients {
		n += c.Stats()[key]
	}
	return n
}

// waitResumed waits until every client has had more publications acknowledged than base (the counts at
// heal time) and returns how long after since that took for the slowest one.
func (f *qos1Fleet) waitResumed(ctx context.Context, base []int64, since time.Time, within time.Duration) time.Duration {
	GinkgoHelper()
	resumed := make([]time.Duration, len(base))
	Eventually(ctx, func(g Gomega) {
		for i, t := range f.traffic {
			if resumed[i] == 0 && t.Acked() > base[i] {
				resumed[i] = time.Since(since)
			}
			g.Expect(resumed[i]).NotTo(BeZero(), "%s has not published since the heal", f.names[i])
		}
	}).WithTimeout(within).WithPolling(10 * time.Millisecond).Should(Succeed())
	var slowest time.Duration
	for _, d := range resumed {
		slowest = max(slowest, d)
	}
	return slowest
}

// qos1Figures are the figures a qos 1 delivery spec attaches to its report.
type qos1Figures struct {
	Plan          []string `json:"plan"`
	Seed          uint64   `json:"seed,omitempty"`
	Published     int64    `json:"published"`
	Acked         int64    `json:"acked"`
	Failed        int64    `json:"failed"`
	Lost          int      `json:"lost"`
	Unexpected    int      `json:"unexpected"`
	Duplicates    int      `json:"duplicate_deliveries"`
	Reordered     int      `json:"reordered"`
	Outages       int64    `json:"outages"`
	Reconnects    int64    `json:"reconnects"`
	Repubs        int64    `json:"dup_resends"`
	Renewals      int64    `json:"pid_renewals"`
	Recovery      string   `json:"recovery_after_heal"` // heal → every client published again
	DeliveryP50   string   `json:"delivery_p50"`
	DeliveryP99   string   `json:"delivery_p99"`
	DeliveryMax   string   `json:"delivery_max"`
	AckLatencyMax string   `json:"ack_latency_max"`
}

// tapPublishes returns the PUBLISH packets the client sent on topic, oldest first.
func tapPublishes(tap *link.Tap, topic string) []link.Packet {
	return tap.Packets(link.InDir(link.Upstream), link.OfType(mqttframe.PUBLISH), link.OnTopic(topic))
}

// tapGaps returns the time between consecutive packets.
func tapGaps(ps []link.Packet) []time.Duration {
	var gaps []time.Duration
	for i := 1; i < len(ps); i++ {
		gaps = append(gaps, ps[i].Time.Sub(ps[i-1].Time))
	}
	return gaps
}

// roundAll renders durations to the millisecond, for reports.
func roundAll(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(parts, " ")
}

// willArrivals returns when the observer received messages on topic. A will is no publication of the
// ledger's, so the ledger files it under unexpected deliveries; its time is an offset from the rig's start.
func willArrivals(r *rig.Rig, topic string) []time.Time {
	var at []time.Time
	res := r.Ledger.Check()
	for _, u := range res.Unexpected {
		if u.Topic == topic {
			at = append(at, r.Start.Add(u.At))
		}
	}
	return at
}

// waitEventAt waits up to within for ev to be set and returns when Wait returned.
func waitEventAt(ctx context.Context, ev *mqttas.Event, within time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	if err := ev.Wait(ctx); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

// tapWaitWithin waits up to within for the first tap record matching filters.
func tapWaitWithin(ctx context.Context, tap *link.Tap, within time.Duration, filters ...link.Filter) link.Packet {
	GinkgoHelper()
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	p, err := tap.WaitFor(ctx, filters...)
	Expect(err).NotTo(HaveOccurred(), "tap:\n%s", tap)
	return p
}

// lastTapBefore returns the latest tap record matching filters recorded at or before t; the zero Packet
// (Seq 0) when there is none.
func lastTapBefore(tap *link.Tap, t time.Time, filters ...link.Filter) link.Packet {
	ps := tap.Packets(append(filters, func(p link.Packet) bool { return !p.Time.After(t) })...)
	if len(ps) == 0 {
		return link.Packet{}
	}
	return ps[len(ps)-1]
}
