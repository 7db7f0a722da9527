package scenarios

// Publishers: the fleets and loops that publish ledger payloads during a spec.

import (
	"context"
	"strconv"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/rig"
	"github.com/mqttas/mqttas-go/harness/validate"
	"github.com/mqttas/mqttas-go/mqttas"
)

// qos1Fleet is the workload of the qos 1 delivery specs, all through the link: solo clients with one
// publisher each, and one shared client that several publishers use at once, each on its own
// goroutine. Every client has its own Traffic, so each one's progress can be followed.
type qos1Fleet struct {
	r       *rig.Rig
	names   []string
	pubs    [][]string // each client's publishers, by their ledger names
	clients []clients.Client
	traffic []*rig.Traffic
}

// startQoS1Fleet connects the clients (lib, a name in the rig's registry), each with o and its own id, and
// starts publishing at qos 1, every interval per publisher, to topics under "qos1/".
func startQoS1Fleet(ctx context.Context, r *rig.Rig, lib string, o clients.Options, solo, shared int, interval time.Duration) *qos1Fleet {
	GinkgoHelper()
	f := &qos1Fleet{r: r}
	add := func(name string, publishers int) {
		id := clientID(name)
		o := o
		o.ClientID = id
		c, err := r.NewClient(lib, o)
		Expect(err).NotTo(HaveOccurred())
		Expect(c.Connect(ctx)).To(Succeed())
		pubs := make([]rig.Publisher, publishers)
		names := make([]string, publishers)
		for i := range pubs {
			pub := id
			if publishers > 1 {
				pub += "-g" + strconv.Itoa(i)
			}
			pubs[i] = rig.Publisher{Client: c, Name: pub, Topic: "qos1/" + pub, QoS: 1, Interval: interval}
			names[i] = pub
		}
		f.names = append(f.names, id)
		f.pubs = append(f.pubs, names)
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

// waitResumed waits until every client has had a publication acknowledged at or after since and returns
// the slowest client's recovery time (validate.Recovery: since → its first publication acknowledged at or
// after it, read from the ledger).
func (f *qos1Fleet) waitResumed(ctx context.Context, since time.Time, within time.Duration) time.Duration {
	GinkgoHelper()
	healed := since.Sub(f.r.Start)
	var slowest time.Duration
	Eventually(ctx, func(g Gomega) {
		slowest = 0
		for i, pubs := range f.pubs {
			d, ok := validate.Recovery(healed, validate.Acks(f.r.Ledger.Events(), pubs...))
			g.Expect(ok).To(BeTrue(), "%s has not published since the heal", f.names[i])
			slowest = max(slowest, d)
		}
	}).WithTimeout(within).WithPolling(20 * time.Millisecond).Should(Succeed())
	return slowest
}

// publishViaObserver publishes messages from..to (qos 1) on topic through the observer's own connection,
// straight to the broker and never through the link, so a client cut off by a link fault is away while
// they are published. Each attempt and outcome goes into the rig's ledger under publisher.
func publishViaObserver(ctx context.Context, r *rig.Rig, publisher, topic string, from, to uint64) {
	GinkgoHelper()
	for seq := from; seq <= to; seq++ {
		id := ledger.ID{Publisher: publisher, Topic: topic, Seq: seq}
		now := time.Now()
		op := r.Ledger.Invoke(id, now)
		err := r.Observer.Publish(ctx, topic, ledger.Encode(id, now), 1, false)
		r.Ledger.Complete(op, ledger.OutcomeOf(err), time.Now(), err)
		Expect(err).NotTo(HaveOccurred(), "the observer publishes %v", id)
	}
}

// publishPlain publishes messages from..to (qos 1) on topic through an mqttas client, with ledger
// payloads but no ledger (for brokers without a rig).
func publishPlain(ctx context.Context, c *mqttas.Client, publisher, topic string, from, to uint64) {
	GinkgoHelper()
	for seq := from; seq <= to; seq++ {
		id := ledger.ID{Publisher: publisher, Topic: topic, Seq: seq}
		Expect(c.Publish(ctx, topic, ledger.Encode(id, time.Now()), false, 1)).To(Succeed())
	}
}

// secLedgerPublisher publishes qos 1 messages 1, 2, ... on topic through c, every interval, recording
// each attempt and outcome in led, until stop is called.
type secLedgerPublisher struct {
	name   string
	c      *mqttas.Client
	stop   context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	acked  int
	failed []error
}

// startSecPublisher starts a publisher. Publish calls run with ctx (the spec's), so that a stuck one ends
// with the spec; stop only stops issuing new ones.
func startSecPublisher(ctx context.Context, led *ledger.Ledger, c *mqttas.Client, name, topic string, interval time.Duration, max int) *secLedgerPublisher {
	issue, stop := context.WithCancel(ctx)
	p := &secLedgerPublisher{name: name, c: c, stop: stop, done: make(chan struct{})}
	go func() {
		defer GinkgoRecover()
		defer close(p.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for seq := uint64(1); seq <= uint64(max); seq++ {
			id := ledger.ID{Publisher: name, Topic: topic, Seq: seq}
			now := time.Now()
			op := led.Invoke(id, now)
			err := c.Publish(ctx, topic, ledger.Encode(id, now), false, 1)
			led.Complete(op, ledger.OutcomeOf(err), time.Now(), err)
			p.mu.Lock()
			if err != nil {
				p.failed = append(p.failed, err)
			} else {
				p.acked++
			}
			p.mu.Unlock()
			select {
			case <-issue.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// finish stops issuing and waits (bounded) for the publication in flight.
func (p *secLedgerPublisher) finish(within time.Duration) (acked int, failed []error) {
	GinkgoHelper()
	p.stop()
	Eventually(p.done).WithTimeout(within).Should(BeClosed(), "%s: the publication in flight completes", p.name)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked, append([]error(nil), p.failed...)
}

// ackedSoFar is the number of publications acknowledged so far.
func (p *secLedgerPublisher) ackedSoFar() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}
