package scenarios

import (
	"context"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/rig"
	"github.com/mqttas/mqttas-go/mqttas"
)

func TestScenarios(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "mqttas scenarios")
}

// brokerImage is resolved once, on process 1, so parallel processes do not each build the image.
var brokerImage string

var _ = SynchronizedBeforeSuite(func(ctx SpecContext) []byte {
	// Ryuk cannot be pulled here; the harness removes what it starts.
	Expect(os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")).To(Succeed())
	backend := os.Getenv(broker.EnvBackend)
	if backend != "" && backend != broker.KindContainer {
		return nil
	}
	img, err := broker.ResolveImage(ctx, broker.Options{})
	if backend == broker.KindContainer {
		Expect(err).NotTo(HaveOccurred(), "MQTTAS_BROKER=container but no broker image")
	}
	if err != nil {
		GinkgoWriter.Printf("no broker image (%v): the process backend will serve\n", err)
		return nil
	}
	return []byte(img)
}, func(ctx SpecContext, img []byte) {
	Expect(os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")).To(Succeed())
	brokerImage = string(img)
}, NodeTimeout(5*time.Minute))

// newRig starts a broker, the faulty link, the observer, ledger and timeline for one spec, and tears them
// down after it. On failure it attaches the rig's dump (verdict, timeline, tap, broker log) to the report.
func newRig(ctx context.Context, configure ...func(*rig.Options)) *rig.Rig {
	GinkgoHelper()
	o := rig.Options{Broker: broker.Options{Image: brokerImage}}
	for _, f := range configure {
		f(&o)
	}
	o.ObserverID = clientID("observer")
	r, err := rig.New(ctx, o)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		Expect(r.Close(ctx)).To(Succeed())
	}, NodeTimeout(time.Minute))
	DeferOnFailure(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		AddReportEntry("rig dump", r.Dump(ctx), ReportEntryVisibilityFailureOrVerbose)
	})
	return r
}

// clientID makes a client id unique to this spec and process, so persistent sessions never leak between
// specs that share a broker image.
func clientID(name string) string {
	return name + "-p" + strconv.Itoa(GinkgoParallelProcess()) + "-" + strconv.Itoa(int(CurrentSpecReport().LeafNodeLocation.LineNumber))
}

// mqttasConfig is an mqttas config aimed at the rig's link with timings short enough for specs:
// KeepAlive 2 s gives 0.5 s pings and a 2 s silence rule.
func mqttasConfig(r *rig.Rig, name string) mqttas.Config {
	GinkgoHelper()
	host, port, err := net.SplitHostPort(r.Link.Addr())
	Expect(err).NotTo(HaveOccurred())
	p, err := strconv.Atoi(port)
	Expect(err).NotTo(HaveOccurred())
	return mqttas.Config{Server: host, Port: p, ClientID: clientID(name), KeepAlive: 2 * time.Second,
		ResponseTime: time.Second, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond}
}

// connectMqttas makes and connects an mqttas client; it is closed after the spec.
func connectMqttas(ctx context.Context, cfg mqttas.Config) *mqttas.Client {
	GinkgoHelper()
	c, err := mqttas.New(cfg)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(c.Close)
	Expect(c.Connect(ctx)).To(Succeed())
	return c
}
