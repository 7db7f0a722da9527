package scenarios

// TLS and authentication against the real broker. Certificates are made at test time; password
// files are made with mosquitto_passwd. connect_test.go covers a TLS server signed by an unknown CA,
// anonymous clients and a wrong password on the first Connect (CONNACK 5); these specs cover the rest:
// TLS under faults, client certificates, an expired server certificate, and credentials revoked while the
// client is connected.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/ledger/ledgermatch"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
	"github.com/mqttas/mqttas-go/mqttas"
)

var _ = Describe("security", Label("security"), func() {
	It("carries qos 1 over TLS through link resets and a blackhole with nothing lost", Label("tls", "reset", "blackhole"), func(ctx SpecContext) {
		f := newTLSFixture() // a CA and its server certificate
		b, l := startBrokerBehindLink(ctx, f.brokerOptions())
		led := ledger.New(time.Now())
		tlsCfg := &tls.Config{RootCAs: f.trusted, MinVersion: tls.VersionTLS12}

		// Two persistent subscribers: one straight to the broker, one through the faulty link.
		subs := map[string]string{"direct": b.Addr(), "via-link": l.Addr()}
		for name, addr := range subs {
			cfg := mqttasConfigAt(addr, "sub-"+name)
			cfg.TLS = tlsCfg
			cfg.KeepSession = true
			cfg.OnMessage = secLedgerSink(led, name)
			c := connectMqttas(ctx, cfg)
			Expect(c.Subscribe(ctx, "sec/tls/#", 1)).To(Succeed())
			led.Subscribe(name, "sec/tls/#", time.Now())
		}

		const publishers = 3
		var pubs []*secLedgerPublisher
		var clients []*mqttas.Client
		for i := range publishers {
			cfg := mqttasConfigAt(l.Addr(), fmt.Sprintf("pub%d", i))
			cfg.TLS = tlsCfg
			c := connectMqttas(ctx, cfg)
			clients = append(clients, c)
			pubs = append(pubs, startSecPublisher(ctx, led, c, cfg.ClientID, fmt.Sprintf("sec/tls/%d", i), 20*time.Millisecond, 5000))
		}
		Eventually(func() int { return pubs[0].ackedSoFar() }).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 10))

		// Faults: two resets, a blackhole longer than the 2 s keepalive rule, a last reset.
		for range 2 {
			Expect(l.Reset(ctx)).To(Succeed())
			holdFault(ctx, 1500*time.Millisecond)
		}
		Expect(l.Silent(ctx)).To(Succeed())
		holdFault(ctx, 3*time.Second)
		Expect(l.Heal(ctx)).To(Succeed())
		holdFault(ctx, 1500*time.Millisecond)
		Expect(l.Reset(ctx)).To(Succeed())
		holdFault(ctx, 1500*time.Millisecond)

		var acked int
		for _, p := range pubs {
			n, failed := p.finish(30 * time.Second)
			Expect(failed).To(BeEmpty(), "%s: every qos 1 Publish returns nil", p.name)
			acked += n
		}
		Eventually(func() []ledger.Lost { return led.Check().Lost }).WithTimeout(20*time.Second).WithPolling(200*time.Millisecond).
			Should(BeEmpty(), "every acknowledged message reaches both subscribers")
		res := led.Check()
		Expect(res).To(ledgermatch.HaveNoLostMessages())
		Expect(res).To(ledgermatch.HaveNoUnexpectedMessages())
		Expect(res.Indeterminate).To(BeZero())
		var outages, reconnects uint64
		for _, c := range clients {
			st := c.Stats()
			Expect(st.Outages).To(BeNumerically(">=", 3), "each publisher lost its link to every fault")
			outages += st.Outages
			reconnects += st.Reconnects
		}
		// Nothing crossed the link as readable MQTT: the tap takes a TLS record's first byte for a malformed
		// CONNECT, then gives up on the connection.
		Expect(l.Tap().Packets(link.IsEvent(link.EventPacket), func(p link.Packet) bool { return !p.Malformed })).
			To(BeEmpty(), "no well-formed MQTT packet in clear on the link")
		Expect(l.Tap().Count(link.IsEvent(link.EventUnframed))).To(BeNumerically(">", 0))

		AddReportEntry("figures", fmt.Sprintf("TLS: %d publishers, %d acknowledged, lost %d, unexpected %d, duplicate deliveries %d, "+
			"outages %d, reconnections %d, delivery latency p50 %v max %v", publishers, acked, len(res.Lost), len(res.Unexpected),
			res.DuplicateDeliveries, outages, reconnects, res.Latency.P50.Round(time.Millisecond), res.Latency.Max.Round(time.Millisecond)))
	}, SpecTimeout(2*time.Minute))

	It("with require_certificate: a client without a certificate is rejected at the TLS layer, one with a certificate connects", Label("tls", "auth"), func(ctx SpecContext) {
		pki := newSecPKI()
		client := pki.issue("mqttas-test-client", false, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
		_, l := startBrokerBehindLink(ctx, pki.brokerOptions(pki.Server(), pki.ClientTLS(client.Pair), "require_certificate true"))

		// No certificate: the handshake (TLS 1.2) or the first read after it (TLS 1.3) meets the server's alert.
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			cfg := mqttasConfigAt(l.Addr(), "nocert")
			cfg.TLS = pki.ClientTLS()
			cfg.TLS.MinVersion, cfg.TLS.MaxVersion = version, version
			err := failedFirstConnect(ctx, l, cfg)
			var ce *mqttas.ConnackError
			Expect(errors.As(err, &ce)).To(BeFalse(), "refused by TLS, not by a CONNACK: %v", err)
			Expect(err).NotTo(MatchError(mqttas.ErrTimeout), "refused at once, not timed out")
			var oe *net.OpError
			Expect(errors.As(err, &oe) && oe.Op == "remote error").To(BeTrue(), "a TLS alert from the broker: %v", err)
			Expect(err.Error()).To(ContainSubstring("tls:"))
			AddReportEntry("figures", fmt.Sprintf("%s, no client certificate: %v", tls.VersionName(version), err))
		}
		Expect(l.Tap().Count(link.OfType(mqttframe.CONNACK))).To(BeZero(), "no CONNACK ever crossed in clear")

		// A certificate the broker's CA signed: connected, and a qos 1 round trip works.
		cfg := mqttasConfigAt(l.Addr(), "withcert")
		cfg.TLS = pki.ClientTLS(client.Pair)
		got := &secReceived{}
		cfg.OnMessage = got.record
		c := connectMqttas(ctx, cfg)
		Expect(c.Subscribe(ctx, "sec/cert", 1)).To(Succeed())
		for _, m := range []string{"one", "two", "three"} {
			Expect(c.Publish(ctx, "sec/cert", []byte(m), false, 1)).To(Succeed())
		}
		Eventually(func() []string { return got.payloads("sec/cert") }).WithTimeout(10 * time.Second).
			Should(Equal([]string{"one", "two", "three"}))
	}, SpecTimeout(2*time.Minute))

	It("fails the first Connect to a broker with an expired certificate with an x509 expiry error", Label("tls"), func(ctx SpecContext) {
		pki := newSecPKI()
		now := time.Now()
		expired := pki.issue("127.0.0.1", true, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
		// The readiness probe checks the chain as of a time the certificate was valid.
		probe := pki.ClientTLS()
		probe.ServerName = "127.0.0.1"
		probe.Time = func() time.Time { return expired.Cert.NotAfter.Add(-time.Hour) }
		_, l := startBrokerBehindLink(ctx, pki.brokerOptions(expired, probe))

		cfg := mqttasConfigAt(l.Addr(), "expired")
		cfg.TLS = pki.ClientTLS()
		err := failedFirstConnect(ctx, l, cfg)
		var cie x509.CertificateInvalidError
		Expect(errors.As(err, &cie)).To(BeTrue(), "an x509.CertificateInvalidError: %v", err)
		Expect(cie.Reason).To(Equal(x509.Expired), "the reason is expiry: %v", err)
		var cve *tls.CertificateVerificationError
		Expect(errors.As(err, &cve)).To(BeTrue())
		Expect(err).NotTo(MatchError(mqttas.ErrTimeout))

		// Contrast: the same broker, checked as of a time the certificate was valid, is fine; expiry was the
		// only fault.
		cfg = mqttasConfigAt(l.Addr(), "expired-contrast")
		cfg.TLS = probe.Clone()
		cfg.TLS.ServerName = ""
		c := connectMqttas(ctx, cfg)
		Expect(c.Publish(ctx, "sec/expired", []byte("x"), false, 1)).To(Succeed())
		AddReportEntry("figures", fmt.Sprintf("expired server certificate: %v", err))
	}, SpecTimeout(2*time.Minute))

	It("keeps retrying with backoff, not in a storm, when its credentials are revoked while it is connected", Label("auth"), func(ctx SpecContext) {
		const user = "alice"
		authConfig := []string{"allow_anonymous false", "password_file " + broker.ConfigDirVar + "/passwd"}
		old := secPasswordFile(user, "old secret")
		changed := secPasswordFile(user, "new secret")
		a, l := startBrokerBehindLink(ctx, broker.Options{Config: authConfig, Files: map[string][]byte{"passwd": old}})

		cfg := mqttasConfigAt(l.Addr(), "revoked")
		cfg.User, cfg.Password = user, "old secret"
		cfg.ReconnectMin, cfg.ReconnectMax = 100*time.Millisecond, 2*time.Second
		cfg.KeepSession = true // the subscription survives the broker restarts
		dials := &secDialLog{}
		cfg.Dial = dials.dial
		got := &secReceived{}
		cfg.OnMessage = got.record
		c := connectMqttas(ctx, cfg)
		Expect(c.Subscribe(ctx, "sec/auth", 1)).To(Succeed())
		Expect(c.Publish(ctx, "sec/auth", []byte("before"), false, 1)).To(Succeed())
		Eventually(func() []string { return got.payloads("sec/auth") }).WithTimeout(10*time.Second).
			Should(Equal([]string{"before"}), "accepted: a round trip works")

		// The password file changes and the broker restarts with it: the same address, a new password file.
		c.Down().Clear()
		stopped := time.Now()
		Expect(a.Stop(ctx)).To(Succeed())
		waitEvent(ctx, c.Down(), 5*time.Second, "the outage")
		bo := broker.Options{Image: brokerImage, Port: secPort(a.Addr()), Config: authConfig,
			Files: map[string][]byte{"passwd": changed}}
		revoked, err := broker.New(ctx, bo)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { Expect(revoked.Close(ctx)).To(Succeed()) }, NodeTimeout(time.Minute))

		// A publication made while refused must complete once the credentials are good again.
		pending := make(chan error, 1)
		go func() { pending <- c.Publish(ctx, "sec/auth", []byte("while refused"), false, 1) }()

		// Count the attempts in a window that opens with the first one, the immediate retry after the outage;
		// watch on until the restarted broker has refused the client twice.
		const window = 5 * time.Second
		Eventually(func() int { return len(dials.between(stopped, time.Now())) }).WithTimeout(5 * time.Second).Should(BeNumerically(">=", 1))
		first := dials.between(stopped, time.Now())[0]
		holdFault(ctx, time.Until(first.Add(window)))
		refused := func() []link.Packet {
			return l.Tap().Packets(link.OfType(mqttframe.CONNACK), func(p link.Packet) bool { return p.Time.After(stopped) })
		}
		Eventually(func() int { return len(refused()) }).WithTimeout(10*time.Second).
			Should(BeNumerically(">=", 2), "the restarted broker refuses the client")
		end := time.Now()
		attempts := dials.between(first, first.Add(window))
		all := dials.between(first, end)
		bound, boundAll := secMaxAttempts(cfg, window), secMaxAttempts(cfg, end.Sub(first))
		Expect(len(attempts)).To(BeNumerically(">=", 4), "it keeps trying")
		Expect(len(attempts)).To(BeNumerically("<=", bound), "backoff bounds the attempts in %v to %d", window, bound)
		Expect(len(all)).To(BeNumerically("<=", boundAll), "and in the %v watched to %d", end.Sub(first).Round(time.Millisecond), boundAll)
		refusals := refused()
		for _, p := range refusals {
			Expect(p.Code).To(BeEquivalentTo(5), "mosquitto 2.0.11 refuses a bad password with 5 (not authorised), not 4")
		}
		var gaps []time.Duration
		for i := 1; i < len(all); i++ {
			gaps = append(gaps, all[i].Sub(all[i-1]))
		}
		Expect(gaps[len(gaps)-1]).To(BeNumerically(">=", cfg.ReconnectMax/2-50*time.Millisecond), "the delay reached its cap")
		Expect(c.IsConnected()).To(BeFalse())
		Expect(pending).NotTo(Receive(), "the publication waits while the client is refused")

		// A new client with the revoked password is refused on its first Connect with the same code.
		fresh := mqttasConfigAt(l.Addr(), "revoked-fresh")
		fresh.User, fresh.Password = user, "old secret"
		other, err := mqttas.New(fresh)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(other.Close)
		err = other.Connect(ctx)
		var ce *mqttas.ConnackError
		Expect(errors.As(err, &ce)).To(BeTrue(), "a *mqttas.ConnackError: %v", err)
		Expect(ce.Code).To(BeEquivalentTo(5))
		Expect(err.Error()).NotTo(ContainSubstring("old secret"))

		// The old password file again: the client gets back in on its own and the publication completes.
		Expect(revoked.Stop(ctx)).To(Succeed())
		Expect(a.Start(ctx)).To(Succeed())
		Eventually(pending).WithTimeout(15*time.Second).Should(Receive(BeNil()), "the publication made while refused completes")
		Eventually(func() []string { return got.payloads("sec/auth") }).WithTimeout(10 * time.Second).
			Should(ContainElement("while refused"))
		st := c.Stats()
		AddReportEntry("figures", fmt.Sprintf("credentials revoked: %d connection attempts in the first %v (bound %d), %d in %v (bound %d), "+
			"backoff %v–%v, CONNACK codes %s, gaps %v; FailedAttempts %d after recovery", len(attempts), window, bound,
			len(all), end.Sub(first).Round(time.Millisecond), boundAll, cfg.ReconnectMin, cfg.ReconnectMax,
			secCodes(refusals), secRound(gaps), st.FailedAttempts))
	}, SpecTimeout(2*time.Minute))
})

// secCodes lists the CONNACK return codes of tap records.
func secCodes(ps []link.Packet) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, p.Code)
	}
	return b.String()
}
