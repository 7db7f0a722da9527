package scenarios

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger/ledgermatch"
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

var _ = Describe("qos 1 delivery", Label("qos1"), func() {
	// The plan is a function so that the random mix draws its seed when the spec runs.
	// outage: the fault cuts every client off, so each one must have noticed an outage.
	DescribeTable(fmt.Sprintf("with %d publishers on %d clients, every Publish returns nil and the observer gets every message,",
		qos1Solo+qos1Shared, qos1Solo+1),
		func(ctx SpecContext, plan func() ([]qos1Step, uint64), outage bool) {
			steps, seed := plan()
			r := newRig(ctx)
			Expect(r.Observer.Subscribe(ctx, "qos1/#")).To(Succeed())
			fleet := startQoS1Fleet(ctx, r, qos1Solo, qos1Shared, qos1Interval)
			DeferCleanup(fleet.stop, time.Duration(0))

			// Warm up: every client publishes before the first fault.
			fleet.waitResumed(ctx, time.Now(), 10*time.Second)
			Expect(sleepQoS1(ctx, 500*time.Millisecond)).To(Succeed())

			healed := runQoS1Plan(ctx, r, steps)
			recovery := fleet.waitResumed(ctx, healed, 20*time.Second)
			// A little more traffic on the healed link, then stop, letting publications in flight finish.
			Expect(sleepQoS1(ctx, time.Second)).To(Succeed())
			fleet.stop(20 * time.Second)
			Expect(r.Observer.Drain(ctx, 500*time.Millisecond)).To(Succeed())

			res := r.Ledger.Check()
			published, acked, failed := fleet.totals()
			fig := qos1Figures{Seed: seed, Published: published, Acked: acked, Failed: failed,
				Lost: len(res.Lost), Unexpected: len(res.Unexpected), Duplicates: res.DuplicateDeliveries,
				Reordered: len(res.Reordered), Outages: fleet.stat(clients.StatOutages),
				Reconnects: fleet.stat(clients.StatReconnects), Repubs: fleet.stat(clients.StatRepubs),
				Renewals: fleet.stat("renewals"), Recovery: recovery.Round(time.Millisecond).String(),
				DeliveryP50:   res.Latency.P50.Round(time.Microsecond).String(),
				DeliveryP99:   res.Latency.P99.Round(time.Microsecond).String(),
				DeliveryMax:   res.Latency.Max.Round(time.Millisecond).String(),
				AckLatencyMax: res.AckLatency.Max.Round(time.Millisecond).String()}
			for _, s := range steps {
				fig.Plan = append(fig.Plan, s.String())
			}
			AddReportEntry("figures", fig)
			AddReportEntry("verdict", res.Summary())

			Expect(failed).To(BeZero(), "every Publish returns nil")
			Expect(res).To(ledgermatch.HaveNoLostMessages())
			Expect(res).To(ledgermatch.HaveNoUnexpectedMessages())
			Expect(res.Indeterminate).To(BeZero(), "no publication was left without an outcome")
			Expect(acked).To(BeNumerically(">=", int64(len(fleet.traffic))*20), "the workload really ran")
			if outage {
				for i, c := range fleet.clients {
					Expect(c.Stats()[clients.StatOutages]).To(BeNumerically(">=", 1),
						"%s noticed the outage", fleet.names[i])
				}
			}
		},

		qos1Entries(),
	)
})

// qos1Entries are the table's entries: one per fault of the registry that has a trial, then a seeded
// random mix of those faults.
func qos1Entries() []TableEntry {
	var out []TableEntry
	for _, tr := range faults.Trials() {
		out = append(out, Entry(tr.What, Label(tr.Fault.Name()), qos1Timeout, qos1Plan(trialSteps(tr)...), tr.Outage))
	}
	return append(out, Entry("through a seeded random mix of these faults", Label("mix"), qos1Timeout,
		func() ([]qos1Step, uint64) {
			seed := uint64(GinkgoRandomSeed())
			return seededQoS1Mix(seed, 4), seed
		}, false))
}

// qos1Plan is a fixed plan, with no seed.
func qos1Plan(steps ...qos1Step) func() ([]qos1Step, uint64) {
	return func() ([]qos1Step, uint64) { return steps, 0 }
}
