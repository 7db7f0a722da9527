package scenarios

// Helpers for the session, subscribe and connect specs. Names are specific on purpose: other files of this
// package have their own helpers.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
	"github.com/mqttas/mqttas-go/harness/rig"
	"github.com/mqttas/mqttas-go/mqttas"
)

// deliveryLog is what one mqttas subscriber received, in arrival order: each message's topic and the
// sequence number its ledger payload names. With a ledger it also records every delivery there, under the
// subscriber's name, so the rig's checker judges it like any other subscriber.
type deliveryLog struct {
	sub    string
	ledger *ledger.Ledger // nil: not recorded in a ledger

	mu  sync.Mutex
	got []deliveredSeq
}

type deliveredSeq struct {
	topic string
	seq   uint64
}

func newDeliveryLog(sub string, l *ledger.Ledger) *deliveryLog {
	return &deliveryLog{sub: sub, ledger: l}
}

// record is an OnMessage callback, or what an event-mode reader calls for each message it takes.
func (d *deliveryLog) record(m mqttas.Message) {
	if d.ledger != nil {
		d.ledger.Deliver(ledger.Delivery{Subscriber: d.sub, Topic: m.Topic, Payload: m.Payload, QoS: m.QoS,
			Retain: m.Retain, At: time.Now()})
	}
	seq := uint64(0) // a foreign payload: the ledger reports it as unexpected
	if id, _, err := ledger.Decode(m.Payload); err == nil {
		seq = id.Seq
	}
	d.mu.Lock()
	d.got = append(d.got, deliveredSeq{topic: m.Topic, seq: seq})
	d.mu.Unlock()
}

// all lists the sequence numbers received on topic, in arrival order, duplicates included.
func (d *deliveryLog) all(topic string) []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []uint64
	for _, g := range d.got {
		if g.topic == topic {
			out = append(out, g.seq)
		}
	}
	return out
}

// firsts lists the first deliveries on topic in arrival order: a qos 1 redelivery (allowed, counted by
// duplicates) is left out, so specs assert what arrived and in which order, not how often.
func (d *deliveryLog) firsts(topic string) []uint64 {
	var out []uint64
	for _, s := range d.all(topic) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// distinct is how many different messages arrived on topic.
func (d *deliveryLog) distinct(topic string) int { return len(d.firsts(topic)) }

// duplicates is how many deliveries on topic repeated an earlier one.
func (d *deliveryLog) duplicates(topic string) int { return len(d.all(topic)) - d.distinct(topic) }

// has reports whether message seq on topic arrived.
func (d *deliveryLog) has(topic string, seq uint64) bool {
	return slices.Contains(d.all(topic), seq)
}

// seqRange returns from, from+1, ..., to.
func seqRange(from, to uint64) []uint64 {
	out := make([]uint64, 0, to-from+1)
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
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

// waitEvent waits (bounded by within) for an mqttas Up or Down event and clears it, so the next wait needs
// a new occurrence. It returns how long it waited.
func waitEvent(ctx context.Context, e *mqttas.Event, within time.Duration, what string) time.Duration {
	GinkgoHelper()
	began := time.Now()
	wctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	Expect(e.Wait(wctx)).To(Succeed(), "waiting for %s", what)
	e.Clear()
	return time.Since(began)
}

// holdFault lets a fault last d (or until ctx ends).
func holdFault(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// brokerLeaveCount counts the broker log lines saying client id left: a closed socket, a DISCONNECT or a
// keepalive timeout (mosquitto 2.0's connection_messages).
func brokerLeaveCount(ctx context.Context, b broker.Broker, id string) int {
	GinkgoHelper()
	logs, err := b.Logs(ctx)
	Expect(err).NotTo(HaveOccurred())
	n := 0
	for line := range strings.Lines(logs) {
		if strings.Contains(line, "Client "+id+" closed its connection") ||
			strings.Contains(line, "Client "+id+" disconnected") ||
			strings.Contains(line, "Client "+id+" has exceeded timeout") {
			n++
		}
	}
	return n
}

// waitBrokerSawLeave waits until the broker has logged more than before departures of client id: from then
// on it queues the client's messages instead of sending them, which is what a queue-limit test needs.
func waitBrokerSawLeave(ctx context.Context, b broker.Broker, id string, before int) {
	GinkgoHelper()
	Eventually(ctx, func() int { return brokerLeaveCount(ctx, b, id) }).WithTimeout(10*time.Second).
		WithPolling(50*time.Millisecond).Should(BeNumerically(">", before), "the broker notices %s left", id)
}

// tapConnects returns the CONNECT packets of client id seen on the link (and matching filters), oldest first.
func tapConnects(l *link.Link, id string, filters ...link.Filter) []link.Packet {
	var out []link.Packet
	filters = append(filters, link.OfType(mqttframe.CONNECT), link.InDir(link.Upstream))
	for _, p := range l.Tap().Packets(filters...) {
		if p.ClientID == id {
			out = append(out, p)
		}
	}
	return out
}

// tapConnack returns the CONNACK answering connection conn, if the tap saw one.
func tapConnack(l *link.Link, conn int) (link.Packet, bool) {
	ps := l.Tap().Packets(link.OfType(mqttframe.CONNACK), link.OnConn(conn))
	if len(ps) == 0 {
		return link.Packet{}, false
	}
	return ps[0], true
}

// tapOpens counts the TCP connections opened through the link.
func tapOpens(l *link.Link) int { return l.Tap().Count(link.IsEvent(link.EventOpen)) }

// startBrokerBehindLink starts a broker with o (on the suite's image) and a link in front of it, without
// the rig's anonymous, plain-text observer: for brokers such a client cannot use (authentication, TLS).
// Both are closed after the spec; a failure attaches the broker log and the tap.
func startBrokerBehindLink(ctx context.Context, o broker.Options) (broker.Broker, *link.Link) {
	GinkgoHelper()
	if o.Image == "" {
		o.Image = brokerImage
	}
	b, err := broker.New(ctx, o)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) { Expect(b.Close(ctx)).To(Succeed()) }, NodeTimeout(time.Minute))
	l, err := link.New(ctx, b.Addr())
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(l.Close)
	DeferOnFailure(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		logs, _ := b.Logs(ctx)
		AddReportEntry("broker log and tap", logs+"\n== tap\n"+l.Tap().String(), ReportEntryVisibilityFailureOrVerbose)
	})
	return b, l
}

// mqttasConfigAt is mqttasConfig for a client aimed at addr (host:port) rather than a rig's link.
func mqttasConfigAt(addr, name string) mqttas.Config {
	GinkgoHelper()
	host, port, err := net.SplitHostPort(addr)
	Expect(err).NotTo(HaveOccurred())
	p, err := strconv.Atoi(port)
	Expect(err).NotTo(HaveOccurred())
	cfg := mqttas.DefaultConfig()
	cfg.Server, cfg.Port, cfg.ClientID = host, p, clientID(name)
	cfg.KeepAlive = 2 * time.Second
	cfg.ResponseTime = time.Second
	cfg.ReconnectMin, cfg.ReconnectMax = 50*time.Millisecond, 500*time.Millisecond
	return cfg
}

// connectionCounters count what a client signalled through its callbacks, to show that nothing fired.
type connectionCounters struct {
	mu         sync.Mutex
	linkUps    int
	linkDowns  int
	onConnects int
}

// install sets cfg's OnLinkChange and OnConnect to count calls.
func (cc *connectionCounters) install(cfg *mqttas.Config) {
	cfg.OnLinkChange = func(up bool) {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if up {
			cc.linkUps++
		} else {
			cc.linkDowns++
		}
	}
	cfg.OnConnect = func(context.Context, *mqttas.Client) {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		cc.onConnects++
	}
}

// total is the number of callbacks that ran.
func (cc *connectionCounters) total() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.linkUps + cc.linkDowns + cc.onConnects
}

// mosquittoPasswordLine is a password_file line in mosquitto 2.0's own format ($7$: PBKDF2-SHA512, 101
// iterations, 12-byte salt, as mosquitto_passwd writes it), so the test needs no mosquitto_passwd binary.
func mosquittoPasswordLine(user, password string) string {
	GinkgoHelper()
	salt := make([]byte, 12)
	_, err := rand.Read(salt)
	Expect(err).NotTo(HaveOccurred())
	key, err := pbkdf2.Key(sha512.New, password, salt, 101, sha512.Size)
	Expect(err).NotTo(HaveOccurred())
	b64 := base64.StdEncoding.EncodeToString
	return user + ":$7$101$" + b64(salt) + "$" + b64(key) + "\n"
}

// tlsFixture is a certificate authority, a server certificate it signed for 127.0.0.1, and an unrelated
// second authority, all made at test time.
type tlsFixture struct {
	caPEM, serverCertPEM, serverKeyPEM []byte
	trusted, other                     *x509.CertPool // the server's CA; an unrelated CA
}

func newTLSFixture() tlsFixture {
	GinkgoHelper()
	now := time.Now()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		Expect(err).NotTo(HaveOccurred())
		return k
	}
	serial := func() *big.Int {
		n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
		Expect(err).NotTo(HaveOccurred())
		return n
	}
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		Expect(err).NotTo(HaveOccurred())
		cert, err := x509.ParseCertificate(der)
		Expect(err).NotTo(HaveOccurred())
		return cert, k, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	ca, caKey, caPEM := newCA("mqttas test CA")
	other, _, _ := newCA("mqttas unrelated CA")

	sk := newKey()
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &sk.PublicKey, caKey)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalPKCS8PrivateKey(sk)
	Expect(err).NotTo(HaveOccurred())

	f := tlsFixture{caPEM: caPEM, trusted: x509.NewCertPool(), other: x509.NewCertPool(),
		serverCertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		serverKeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}
	f.trusted.AddCert(ca)
	f.other.AddCert(other)
	return f
}

// brokerOptions serves MQTT over TLS only, with the fixture's server certificate, on the broker's one
// listener; the readiness probe trusts the right CA.
func (f tlsFixture) brokerOptions() broker.Options {
	return broker.Options{
		Config: []string{
			"cafile " + broker.ConfigDirVar + "/ca.crt",
			"certfile " + broker.ConfigDirVar + "/server.crt",
			"keyfile " + broker.ConfigDirVar + "/server.key",
		},
		Files:    map[string][]byte{"ca.crt": f.caPEM, "server.crt": f.serverCertPEM, "server.key": f.serverKeyPEM},
		ProbeTLS: &tls.Config{RootCAs: f.trusted, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
	}
}
