package scenarios

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger/ledgermatch"
	"github.com/mqttas/mqttas-go/harness/rig"
)

var _ = Describe("qos 1 delivery through a reset link", Label("qos1", "reset"), func() {
	It("loses nothing and every Publish returns nil", func(ctx SpecContext) {
		r := newRig(ctx)
		Expect(r.Observer.Subscribe(ctx, "smoke/#")).To(Succeed())
		c, err := r.NewClient("mqttas", clients.Options{ClientID: clientID("pub"), KeepAlive: 2 * time.Second,
			ResponseTimeout: time.Second})
		Expect(err).NotTo(HaveOccurred())
		Expect(c.Connect(ctx)).To(Succeed())

		tr := r.StartTraffic(ctx, rig.Publisher{Client: c, Name: "pub", Topic: "smoke/a", QoS: 1, Interval: 5 * time.Millisecond})
		for range 3 {
			time.Sleep(200 * time.Millisecond)
			_, err := r.Inject(ctx, faults.Reset())
			Expect(err).NotTo(HaveOccurred())
		}
		tr.Stop(20 * time.Second)
		Expect(r.Observer.Drain(ctx, 300*time.Millisecond)).To(Succeed())

		res := r.Ledger.Check()
		AddReportEntry("verdict", res.Summary())
		Expect(tr.Failed()).To(BeZero(), "every Publish returns nil")
		Expect(res).To(ledgermatch.HaveNoLostMessages())
		Expect(res).To(ledgermatch.BeValidDelivery())
	}, SpecTimeout(time.Minute))
})
