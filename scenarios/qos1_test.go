package scenarios

import (
	"fmt"
	"math"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/mqttasclient"
	"github.com/mqttas/mqttas-go/harness/clients/procclient"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger/ledgermatch"
	"github.com/mqttas/mqttas-go/harness/rig"
)

// The qos 1 workload: four mqttas clients with a publisher each, and one mqttas client shared by eight
// publishers on goroutines of their own, each publisher at one message every qos1Interval. The observer
// (straight to the broker, persistent session) is the subscriber every message must reach.
const (
	qos1Solo     = 4
	qos1Shared   = 8
	qos1Interval = 20 * time.Millisecond
)

// qos1Timeout bounds each delivery spec; they take 4-15 s.
var qos1Timeout = SpecTimeout(2 * time.Minute)

// The fleet's configuration: the options every client gets, and mqttas's reconnection backoff (short, so
// recovery is measured, not backoff; the defaults of rig.Registry).
var (
	qos1Options = clients.Options{KeepAlive: 2 * time.Second, ResponseTimeout: time.Second}
	qos1MQTTAS  = mqttasclient.Config{ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond}
)

// qos1RecoverySlack is what the recovery bound allows beyond the client's own timers: a TCP connect and
// CONNACK through the link, the first publication's PUBACK, and scheduling on a loaded CI machine (a
// Docker broker, -race, several specs at once).
const qos1RecoverySlack = time.Second

// qos1RecoveryBound is how long after the last heal every client must have a publication acknowledged
// again, derived from the clients' configuration as the sum of what can stand between the heal and it:
//   - detection, 5 ping intervals: a fault can leave a connection that looks open (a blackhole, a paused
//     broker) whose death only the keepalive rule finds, after 4 whole ping intervals without a byte,
//     within the 5th; the ping interval is KeepAlive/4 (KeepAlive in whole seconds, as CONNECT carries
//     it), or PingInterval where shorter;
//   - one ResponseTime: a reconnection attempt in flight at the heal may wait that long for its CONNACK
//     before it fails, and a publication whose PUBACK was dropped is re-sent that long after it was sent;
//   - the backoff cap, ReconnectMax: the longest wait before the next attempt (jitter only shortens it);
//   - qos1RecoverySlack.
//
// With the fleet's configuration that is 2.5 s + 1 s + 0.5 s + 1 s = 5 s: the README's "found again
// within a second" is the backoff cap, and the rest is the detection of a fault that hides itself.
func qos1RecoveryBound(o clients.Options, mc mqttasclient.Config) time.Duration {
	keepAlive := time.Duration(math.Ceil(o.KeepAlive.Seconds())) * time.Second
	ping := keepAlive / 4
	if mc.PingInterval > 0 && mc.PingInterval < ping {
		ping = mc.PingInterval
	}
	return 5*ping + o.ResponseTimeout + mc.ReconnectMax + qos1RecoverySlack
}

var _ = Describe("qos 1 delivery", Label("qos1", "client:mqttas"), func() {
	// The plan is a function so that the random mix draws its seed when the spec runs.
	// outage: the fault cuts every client off, so each one must have noticed an outage.
	DescribeTable(fmt.Sprintf("with %d publishers on %d clients, every Publish returns nil and the observer gets every message,",
		qos1Solo+qos1Shared, qos1Solo+1),
		qos1Delivery(qos1Client{name: mqttasclient.Name, factory: mqttasclient.Factory(qos1MQTTAS),
			bound: qos1RecoveryBound(qos1Options, qos1MQTTAS), claims: true}),
		qos1Entries(),
	)
})

// The same table for the clients driven out of process (procclient and the drivers in drivers/), each
// with its library's own resilience settings. What MQTT 3.1.1 promises at qos 1 holds them as it holds
// mqttas: every publication the library confirmed reaches the observer, nothing arrives that was not
// published, the library publishes again after every heal, and declares no outage where the link was only
// slow or fragmented. mqttas's own claims (no Publish error, nothing left without an outcome, recovery
// within its derived bound, and noticing within 2 s a fault that leaves the connection silent, as a 3.5 s
// broker pause does, where a library's own keepalive rule may wait longer) are not asked of them; their
// figures are reported. Label "drivers" keeps them out of the default run (five
// driver processes per spec); a label client:<name> selects one library.
var _ = Describe("qos 1 delivery through a driver", Label("qos1", "drivers"), func() {
	for _, name := range []string{procclient.NamePython, procclient.NameNode, procclient.NameC} {
		Describe(name, Label("client:"+name), func() {
			DescribeTable(fmt.Sprintf("with %d publishers on %d clients, the observer gets every message the library confirmed,",
				qos1Solo+qos1Shared, qos1Solo+1),
				qos1Delivery(qos1Client{name: name, bound: qos1DriverResume}),
				qos1Entries(),
			)
		})
	}
})

// qos1DriverResume bounds how long after the last heal a driver's clients may take to publish again: the
// libraries detect a dead link by their own keepalive rules (up to two KeepAlive intervals) and retry every
// second, so this is far beyond either; a library that does not come back in it has stalled.
const qos1DriverResume = 30 * time.Second

// qos1Client is the client a qos 1 delivery table drives.
type qos1Client struct {
	name    string
	factory clients.Factory // nil: the rig's standard registry's
	// bound: every client must publish again within it after the last heal.
	bound time.Duration
	// claims: mqttas's own claims hold too (every Publish returns nil, every publication has an outcome,
	// recovery within a bound derived from its configuration).
	claims bool
}

// qos1Delivery is the qos 1 delivery table's body for one client.
func qos1Delivery(cl qos1Client) func(ctx SpecContext, plan func() ([]qos1Step, uint64), outage, noOutage bool) {
	return func(ctx SpecContext, plan func() ([]qos1Step, uint64), outage, noOutage bool) {
		steps, seed := plan()
		r := newRig(ctx, func(o *rig.Options) {
			if cl.factory != nil {
				o.Clients = clients.Registry{cl.name: cl.factory}
			}
		})
		bound := cl.bound
		Expect(r.Observer.Subscribe(ctx, "qos1/#")).To(Succeed())
		fleet := startQoS1Fleet(ctx, r, cl.name, qos1Options, qos1Solo, qos1Shared, qos1Interval)
		DeferCleanup(fleet.stop, time.Duration(0))

		// Warm up: every client publishes before the first fault.
		fleet.waitResumed(ctx, time.Now(), 10*time.Second)
		Expect(sleepQoS1(ctx, 500*time.Millisecond)).To(Succeed())

		healed := runQoS1Plan(ctx, r, steps)
		// Waits past the bound, so that a slow recovery is measured and reported, then judged below.
		wait := 4 * bound
		if !cl.claims {
			wait = bound
		}
		recovery := fleet.waitResumed(ctx, healed, wait)
		// A little more traffic on the healed link, then stop, letting publications in flight finish.
		Expect(sleepQoS1(ctx, time.Second)).To(Succeed())
		fleet.stop(20 * time.Second)
		Expect(r.Observer.Drain(ctx, 500*time.Millisecond)).To(Succeed())

		res := r.Ledger.Check()
		published, acked, failed := fleet.totals()
		fig := qos1Figures{Client: cl.name, Seed: seed, Published: published, Acked: acked, Failed: failed,
			Lost: len(res.Lost), Unexpected: len(res.Unexpected), Duplicates: res.DuplicateDeliveries,
			Reordered: len(res.Reordered), Outages: fleet.stat(clients.StatOutages),
			Reconnects: fleet.stat(clients.StatReconnects), Repubs: fleet.stat(clients.StatRepubs),
			Renewals: fleet.stat("renewals"), Recovery: recovery.Round(time.Millisecond).String(),
			RecoveryBound: bound.String(),
			DeliveryP50:   res.Latency.P50.Round(time.Microsecond).String(),
			DeliveryP99:   res.Latency.P99.Round(time.Microsecond).String(),
			DeliveryMax:   res.Latency.Max.Round(time.Millisecond).String(),
			AckLatencyMax: res.AckLatency.Max.Round(time.Millisecond).String()}
		for _, s := range steps {
			fig.Plan = append(fig.Plan, s.String())
		}
		AddReportEntry("figures", fig)
		AddReportEntry("verdict", res.Summary())

		if cl.claims {
			Expect(failed).To(BeZero(), "every Publish returns nil")
		}
		Expect(res).To(ledgermatch.HaveNoLostMessages())
		Expect(res).To(ledgermatch.HaveNoUnexpectedMessages())
		if cl.claims {
			Expect(res.Indeterminate).To(BeZero(), "no publication was left without an outcome")
		}
		Expect(acked).To(BeNumerically(">=", int64(len(fleet.traffic))*20), "the workload really ran")
		if cl.claims {
			Expect(recovery).To(BeNumerically("<=", bound),
				"every client publishes again within the bound derived from its configuration")
		}
		if noOutage {
			for i, c := range fleet.clients {
				Expect(c.Stats()[clients.StatOutages]).To(BeZero(),
					"%s declared no outage: the link was slow or fragmented, never dead", fleet.names[i])
			}
		}
		if outage && cl.claims {
			for i, c := range fleet.clients {
				Expect(c.Stats()[clients.StatOutages]).To(BeNumerically(">=", 1),
					"%s noticed the outage", fleet.names[i])
			}
		}
	}
}

// qos1Entries are the table's entries: one per fault of the registry that has a trial, then a seeded
// random mix of those faults.
func qos1Entries() []TableEntry {
	var out []TableEntry
	for _, tr := range faults.Trials() {
		out = append(out, Entry(tr.What, Label(tr.Fault.Name()), qos1Timeout, qos1Plan(trialSteps(tr)...), tr.Outage, tr.NoOutage))
	}
	return append(out, Entry("through a seeded random mix of these faults", Label("mix"), qos1Timeout,
		func() ([]qos1Step, uint64) {
			seed := uint64(GinkgoRandomSeed())
			return seededQoS1Mix(seed, 4), seed
		}, false, false))
}

// qos1Plan is a fixed plan, with no seed.
func qos1Plan(steps ...qos1Step) func() ([]qos1Step, uint64) {
	return func() ([]qos1Step, uint64) { return steps, 0 }
}
