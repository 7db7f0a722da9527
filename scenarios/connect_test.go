package scenarios

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/mqttas"
)

// noRetryWindow is how long a failed first Connect is watched for a reconnection attempt it must not make:
// several times the client's 50–500 ms reconnection delays.
const noRetryWindow = 1500 * time.Millisecond

// failedFirstConnect makes a client with cfg, counting its callbacks, and returns what Connect said. It then
// checks the promise every failure shares: no event fired, nothing counted as a connection, and no
// reconnection started (no further TCP connection through l while noRetryWindow passes).
func failedFirstConnect(ctx context.Context, l *link.Link, cfg mqttas.Config) error {
	GinkgoHelper()
	var cc connectionCounters
	cc.install(&cfg)
	c, err := mqttas.New(cfg)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(c.Close)
	opens := tapOpens(l)

	err = c.Connect(ctx)
	Expect(err).To(HaveOccurred(), "Connect fails")
	Expect(c.IsConnected()).To(BeFalse())
	after := tapOpens(l)
	Expect(after-opens).To(Equal(1), "one TCP connection for the attempt")
	Consistently(func() int { return tapOpens(l) }).WithTimeout(noRetryWindow).WithPolling(50*time.Millisecond).
		Should(Equal(after), "no reconnection attempt follows a failed first Connect")
	Expect(c.Up().IsSet()).To(BeFalse(), "no Up event")
	Expect(c.Down().IsSet()).To(BeFalse(), "no Down event")
	Expect(cc.total()).To(BeZero(), "no OnLinkChange or OnConnect call")
	st := c.Stats()
	Expect(st.Connects+st.Outages+st.FailedAttempts).To(BeZero(), "nothing counted: no connection, outage or retry")
	return err
}

var _ = Describe("a failed first connection", Label("connect"), func() {
	It("returns connection refused when the link refuses, fires nothing, retries nothing, and may be retried", Label("down"), func(ctx SpecContext) {
		r := newRig(ctx)
		down, err := r.Inject(ctx, faults.Down{})
		Expect(err).NotTo(HaveOccurred())
		cfg := mqttasConfig(r, "c")
		var cc connectionCounters
		cc.install(&cfg)
		c, err := mqttas.New(cfg)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(c.Close)

		began := time.Now()
		err = c.Connect(ctx)
		took := time.Since(began)
		Expect(err).To(MatchError(syscall.ECONNREFUSED), "a plain connection refused error")
		Expect(err).NotTo(MatchError(mqttas.ErrTimeout))

		// Healed, the link would accept a reconnection; none comes, nothing fired.
		Expect(down.Heal(ctx)).To(Succeed())
		Consistently(func() int { return tapOpens(r.Link) }).WithTimeout(noRetryWindow).WithPolling(50*time.Millisecond).
			Should(BeZero(), "no reconnection attempt")
		Expect(c.Up().IsSet() || c.Down().IsSet()).To(BeFalse(), "no Up or Down event")
		Expect(cc.total()).To(BeZero(), "no OnLinkChange or OnConnect call")
		st := c.Stats()
		Expect(st.Connects + st.Outages + st.FailedAttempts).To(BeZero())

		// A failed Connect leaves the client usable: Connect again, now that the link is up.
		Expect(c.Connect(ctx)).To(Succeed())
		Expect(c.Stats().Connects).To(BeEquivalentTo(1))
		Eventually(func() int { return cc.total() }).Should(Equal(2), "OnLinkChange(true) and OnConnect, once each")
		AddReportEntry("figures", fmt.Sprintf("refused in %v: %v", took.Round(time.Microsecond), err))
	}, SpecTimeout(time.Minute))

	It("returns a ConnackError with code 5 (not authorised) from a broker that refuses anonymous clients", Label("auth"), func(ctx SpecContext) {
		_, l := startBrokerBehindLink(ctx, broker.Options{Config: []string{"allow_anonymous false"}})
		err := failedFirstConnect(ctx, l, mqttasConfigAt(l.Addr(), "anon"))

		var ce *mqttas.ConnackError
		Expect(errors.As(err, &ce)).To(BeTrue(), "a *mqttas.ConnackError: %v", err)
		Expect(ce.Code).To(BeEquivalentTo(5), "not authorised")
		Expect(err).To(MatchError(mqttas.ErrConnectionRefused))
		AddReportEntry("figures", fmt.Sprintf("anonymous CONNECT: %v", err))
	}, SpecTimeout(time.Minute))

	It("returns a ConnackError for a bad user name or password: mosquitto 2.0 answers 5, never 4", Label("auth"), func(ctx SpecContext) {
		const user, password = "alice", "correct horse"
		_, l := startBrokerBehindLink(ctx, broker.Options{
			Config: []string{"allow_anonymous false", "password_file " + broker.ConfigDirVar + "/passwd"},
			Files:  map[string][]byte{"passwd": []byte(mosquittoPasswordLine(user, password))},
		})
		codes := map[string]byte{}
		for _, tc := range []struct{ name, user, password string }{
			{"wrong password", user, "battery staple"},
			{"unknown user", "mallory", password},
		} {
			cfg := mqttasConfigAt(l.Addr(), "cred")
			cfg.User, cfg.Password = tc.user, tc.password
			err := failedFirstConnect(ctx, l, cfg)
			var ce *mqttas.ConnackError
			Expect(errors.As(err, &ce)).To(BeTrue(), "%s: a *mqttas.ConnackError: %v", tc.name, err)
			Expect(ce.Code).To(BeEquivalentTo(5), "%s: mosquitto 2.0.11 answers not authorised", tc.name)
			Expect(err.Error()).NotTo(ContainSubstring(tc.password), "the password is never in an error")
			codes[tc.name] = ce.Code
		}

		// Contrast: the right credentials connect and publish, so the refusals were about the credentials.
		cfg := mqttasConfigAt(l.Addr(), "cred")
		cfg.User, cfg.Password = user, password
		got := newDeliveryLog(cfg.ClientID, nil)
		cfg.OnMessage = got.record
		c := connectMqttas(ctx, cfg)
		Expect(c.Subscribe(ctx, "auth/a", 1)).To(Succeed())
		publishPlain(ctx, c, "alice", "auth/a", 1, 3)
		Eventually(func() []uint64 { return got.firsts("auth/a") }).WithTimeout(sessionRecovery).Should(Equal(seqRange(1, 3)))
		AddReportEntry("figures", fmt.Sprintf("CONNACK codes from mosquitto 2.0.11: %v; right password connects", codes))
	}, SpecTimeout(time.Minute))
})

var _ = Describe("TLS", Label("connect", "tls"), func() {
	It("fails the first Connect with a certificate verification error when the client trusts another CA", func(ctx SpecContext) {
		f := newTLSFixture()
		_, l := startBrokerBehindLink(ctx, f.brokerOptions())
		cfg := mqttasConfigAt(l.Addr(), "tls")
		cfg.TLS = &tls.Config{RootCAs: f.other, MinVersion: tls.VersionTLS12}
		err := failedFirstConnect(ctx, l, cfg)

		var cve *tls.CertificateVerificationError
		Expect(errors.As(err, &cve)).To(BeTrue(), "a *tls.CertificateVerificationError: %v", err)
		var uae x509.UnknownAuthorityError
		Expect(errors.As(err, &uae)).To(BeTrue(), "signed by an unknown authority: %v", err)
		Expect(err).NotTo(MatchError(mqttas.ErrTimeout))
		AddReportEntry("figures", fmt.Sprintf("wrong CA: %v", err))
	}, SpecTimeout(time.Minute))

	It("connects with the right CA and delivers through the link, across a reset", Label("reset"), func(ctx SpecContext) {
		f := newTLSFixture()
		_, l := startBrokerBehindLink(ctx, f.brokerOptions())
		cfg := mqttasConfigAt(l.Addr(), "tls")
		cfg.TLS = &tls.Config{RootCAs: f.trusted, MinVersion: tls.VersionTLS12} // ServerName defaults to 127.0.0.1
		got := newDeliveryLog(cfg.ClientID, nil)
		cfg.OnMessage = got.record
		c := connectMqttas(ctx, cfg)
		Expect(c.Subscribe(ctx, "tls/a", 1)).To(Succeed())
		publishPlain(ctx, c, "tls", "tls/a", 1, 5)
		Eventually(func() int { return got.distinct("tls/a") }).WithTimeout(sessionRecovery).Should(Equal(5))

		// The link's tap cannot read TLS: it sees bytes that are not MQTT, proof that nothing went in clear.
		Expect(l.Tap().Count(link.IsEvent(link.EventUnframed))).To(BeNumerically(">", 0))

		c.Up().Clear()
		Expect(l.Reset(ctx)).To(Succeed())
		reconnect := waitEvent(ctx, c.Up(), sessionRecovery, "a TLS reconnection")
		Expect(c.Subscribe(ctx, "tls/a", 1)).To(Succeed()) // a clean session: subscribe again
		publishPlain(ctx, c, "tls", "tls/a", 6, 10)
		Eventually(func() []uint64 { return got.firsts("tls/a") }).WithTimeout(sessionRecovery).Should(Equal(seqRange(1, 10)))
		Expect(c.Stats().Reconnects).To(BeEquivalentTo(1))
		AddReportEntry("figures", fmt.Sprintf("TLS reconnection %v after the reset", reconnect.Round(time.Millisecond)))
	}, SpecTimeout(time.Minute))
})
