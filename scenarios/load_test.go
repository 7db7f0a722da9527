package scenarios

// Load: N mqttas clients on one broker through the faulty link, each publishing on its own topic
// and subscribed to its neighbour's, all at qos 1 with persistent sessions, through several resets of
// every connection at once. Afterwards every client is closed and the process must be back where it
// started: no goroutine and no file descriptor left.
//
// The default size (label load) fits CI; the full size (label load-full, excluded from make test) is a
// separate spec without the load label, so --label-filter=load runs only the small one.

import (
	"context"
	"fmt"
	"runtime"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/mqttasclient"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger/ledgermatch"
	"github.com/mqttas/mqttas-go/harness/rig"
	"github.com/mqttas/mqttas-go/mqttas"
)

const (
	loadDefaultClients = 100
	loadFullClients    = 1000
	loadResets         = 3
	loadResetEvery     = 3 * time.Second
	loadRatePerSecond  = 500 // publications per second across all clients
	loadConnectWidth   = 32  // clients connecting at once
)

// loadFigures is what a load run reports.
type loadFigures struct {
	Clients          int    `json:"clients"`
	IntervalPerCli   string `json:"publish_interval_per_client"`
	Resets           int    `json:"resets"`
	Published        int64  `json:"published"`
	Acked            int64  `json:"acked"`
	Failed           int64  `json:"failed"`
	Lost             int    `json:"lost"`
	Unexpected       int    `json:"unexpected"`
	Duplicates       int    `json:"duplicate_deliveries"`
	Outages          int64  `json:"outages"`
	Reconnects       int64  `json:"reconnects"`
	ConnectFailures  int64  `json:"connect_failures"`
	GoroutinesBefore int    `json:"goroutines_before"`
	GoroutinesPeak   int    `json:"goroutines_with_clients"`
	GoroutinesAfter  int    `json:"goroutines_after"`
	FDsBefore        int    `json:"fds_before"`
	FDsPeak          int    `json:"fds_with_clients"`
	FDsAfter         int    `json:"fds_after"`
	BytesPerClient   int64  `json:"mem_per_client_direct_bytes"`
	BytesPerLinked   int64  `json:"mem_per_client_via_link_bytes"`
	NoFile           string `json:"nofile"`
	DeliveryP99      string `json:"delivery_p99"`
	DeliveryMax      string `json:"delivery_max"`
	Took             string `json:"took"`
}

var _ = Describe("load", Label("load"), func() {
	It(fmt.Sprintf("%d clients publish and subscribe at qos 1 through %d resets: nothing lost, no goroutine or fd leak",
		loadDefaultClients, loadResets), func(ctx SpecContext) {
		runLoad(ctx, loadDefaultClients)
	}, SpecTimeout(3*time.Minute))
})

var _ = Describe("load at full size", Label("load-full"), func() {
	It(fmt.Sprintf("%d clients publish and subscribe at qos 1 through %d resets: nothing lost, no goroutine or fd leak",
		loadFullClients, loadResets), func(ctx SpecContext) {
		runLoad(ctx, loadFullClients)
	}, SpecTimeout(15*time.Minute))
})

func runLoad(ctx context.Context, n int) {
	began := time.Now()
	fig := loadFigures{Clients: n, Resets: loadResets}
	// Each client holds one socket, the link two per connection; mosquitto (process backend) one per client.
	fig.NoFile = loadRaiseNoFile(uint64(4*n + 1024))

	// Spread a fleet's reconnections.
	mc := mqttasclient.Config{ReconnectMin: 100 * time.Millisecond, ReconnectMax: 2 * time.Second}
	r := newRig(ctx, func(o *rig.Options) {
		o.Clients = clients.Registry{mqttasclient.Name: mqttasclient.Factory(mc)}
		o.Broker.NoPersistence = true // no broker restart here; spare the disk
	})
	fig.GoroutinesBefore, fig.FDsBefore = runtime.NumGoroutine(), loadFDs()
	mem0 := loadMemInUse()

	// Memory of the client alone: n clients straight to the broker, connected and idle.
	direct := make([]*mqttas.Client, n)
	DeferCleanup(func() { // a failed spec must not leave them running; Close is idempotent
		for _, c := range direct {
			if c != nil {
				_ = c.Close()
			}
		}
	})
	Expect(loadEach(n, loadConnectWidth, func(i int) error {
		cfg := mqttasConfigAt(r.Broker.Addr(), fmt.Sprintf("mem%04d", i))
		cfg.KeepAlive, cfg.ResponseTime = 10*time.Second, 5*time.Second
		c, err := mqttas.New(cfg)
		if err != nil {
			return err
		}
		direct[i] = c
		return c.Connect(ctx)
	})).To(Succeed())
	holdFault(ctx, time.Second)
	fig.BytesPerClient = (loadMemInUse() - mem0) / int64(n)
	for _, c := range direct {
		Expect(c.Close()).To(Succeed())
	}
	Expect(loadSettle(runtime.NumGoroutine, fig.GoroutinesBefore, 20*time.Second)).To(BeNumerically("<=", fig.GoroutinesBefore),
		"goroutines after closing the direct clients")
	Expect(loadSettle(loadFDs, fig.FDsBefore, 20*time.Second)).To(BeNumerically("<=", fig.FDsBefore),
		"file descriptors after closing the direct clients")

	// The workload: through the link, persistent sessions, client i publishes on load/i and is subscribed
	// to load/i+1, so every message has exactly one subscriber that must get it.
	mem0 = loadMemInUse()
	cs := make([]clients.Client, n)
	ids := make([]string, n)
	Expect(loadEach(n, loadConnectWidth, func(i int) error {
		ids[i] = clientID(fmt.Sprintf("load%04d", i))
		c, err := r.NewClient(mqttasclient.Name, clients.Options{ClientID: ids[i], CleanSession: false,
			KeepAlive: 10 * time.Second, ResponseTimeout: 5 * time.Second})
		if err != nil {
			return err
		}
		cs[i] = c
		if err := c.Connect(ctx); err != nil {
			return err
		}
		return r.Subscribe(ctx, c, ids[i], fmt.Sprintf("load/%d", (i+1)%n), 1)
	})).To(Succeed())
	holdFault(ctx, time.Second)
	fig.BytesPerLinked = (loadMemInUse() - mem0) / int64(n)
	fig.FDsPeak = loadFDs()

	interval := time.Duration(n) * time.Second / loadRatePerSecond
	fig.IntervalPerCli = interval.String()
	pubs := make([]rig.Publisher, n)
	for i, c := range cs {
		pubs[i] = rig.Publisher{Client: c, Name: ids[i], Topic: fmt.Sprintf("load/%d", i), QoS: 1, Interval: interval}
	}
	traffic := r.StartTraffic(ctx, pubs...)
	DeferCleanup(traffic.Stop, time.Duration(0))
	holdFault(ctx, 2*time.Second)
	fig.GoroutinesPeak = runtime.NumGoroutine()
	for range loadResets {
		_, err := r.Inject(ctx, faults.Reset{})
		Expect(err).NotTo(HaveOccurred())
		holdFault(ctx, loadResetEvery)
	}
	Eventually(func() int {
		down := 0
		for _, c := range cs {
			if !c.IsConnected() {
				down++
			}
		}
		return down
	}).WithTimeout(2*time.Minute).WithPolling(200*time.Millisecond).Should(BeZero(), "every client reconnects")
	holdFault(ctx, 2*time.Second)
	traffic.Stop(time.Minute)
	fig.Published, fig.Acked, fig.Failed = traffic.Published(), traffic.Acked(), traffic.Failed()

	Eventually(func() int { return len(r.Ledger.Check().Lost) }).WithTimeout(time.Minute).WithPolling(500*time.Millisecond).
		Should(BeZero(), "every acknowledged message reaches its subscriber")
	res := r.Ledger.Check()
	fig.Lost, fig.Unexpected, fig.Duplicates = len(res.Lost), len(res.Unexpected), res.DuplicateDeliveries
	fig.DeliveryP99, fig.DeliveryMax = res.Latency.P99.Round(time.Millisecond).String(), res.Latency.Max.Round(time.Millisecond).String()
	untouched := 0 // clients that never lost a connection or never came back
	for _, c := range cs {
		st := c.Stats()
		fig.Outages += st[clients.StatOutages]
		fig.Reconnects += st[clients.StatReconnects]
		fig.ConnectFailures += st[clients.StatConnectFailures]
		if st[clients.StatOutages] < 1 || st[clients.StatReconnects] < 1 {
			untouched++
		}
	}

	for _, c := range cs {
		Expect(c.Close()).To(Succeed())
	}
	fig.GoroutinesAfter = loadSettle(runtime.NumGoroutine, fig.GoroutinesBefore, 30*time.Second)
	fig.FDsAfter = loadSettle(loadFDs, fig.FDsBefore, 30*time.Second)
	fig.Took = time.Since(began).Round(time.Millisecond).String()
	AddReportEntry("load figures", fig)
	AddReportEntry("verdict", res.Summary())

	Expect(fig.Failed).To(BeZero(), "every qos 1 Publish returns nil")
	Expect(res).To(ledgermatch.HaveNoLostMessages())
	Expect(res).To(ledgermatch.HaveNoUnexpectedMessages())
	Expect(res.Indeterminate).To(BeZero())
	Expect(fig.Acked).To(BeNumerically(">=", int64(n)*3), "the workload really ran")
	// A client still reconnecting when the next reset comes loses that attempt instead (connect_failures),
	// or nothing while it waits out its backoff: so each client is only known to have been hit at least once.
	Expect(untouched).To(BeZero(), "every client lost its connection to the resets and reconnected")
	Expect(fig.GoroutinesAfter).To(BeNumerically("<=", fig.GoroutinesBefore), "no goroutine leak")
	Expect(fig.FDsAfter).To(BeNumerically("<=", fig.FDsBefore), "no file-descriptor leak")
}
