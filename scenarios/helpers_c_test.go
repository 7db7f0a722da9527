package scenarios

// Helpers for the security and load specs. Names start with sec or load: other files of this package have
// their own helpers.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/mqttas"
)

// secPKI is a certificate authority made at test time that issues server and client certificates. Unlike
// helpers_b's tlsFixture it keeps the CA key, so a spec can issue client certificates and certificates with
// any validity window.
type secPKI struct {
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	caPEM []byte
	pool  *x509.CertPool
}

// secIssued is one certificate with its key, in PEM and ready for crypto/tls.
type secIssued struct {
	cert            *x509.Certificate
	certPEM, keyPEM []byte
	pair            tls.Certificate
}

func newSecPKI() *secPKI {
	GinkgoHelper()
	k := secKey()
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: secSerial(), Subject: pkix.Name{CommonName: "mqttas security test CA"},
		NotBefore: now.Add(-72 * time.Hour), NotAfter: now.Add(72 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	Expect(err).NotTo(HaveOccurred())
	ca, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	p := &secPKI{ca: ca, caKey: k, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	return p
}

func secKey() *ecdsa.PrivateKey {
	GinkgoHelper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	return k
}

func secSerial() *big.Int {
	GinkgoHelper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	Expect(err).NotTo(HaveOccurred())
	return n
}

// issue signs a certificate valid from notBefore to notAfter: a server certificate for 127.0.0.1 and
// localhost, or a client certificate named cn.
func (p *secPKI) issue(cn string, server bool, notBefore, notAfter time.Time) secIssued {
	GinkgoHelper()
	k := secKey()
	tmpl := &x509.Certificate{SerialNumber: secSerial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.caKey)
	Expect(err).NotTo(HaveOccurred())
	cert, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalPKCS8PrivateKey(k)
	Expect(err).NotTo(HaveOccurred())
	out := secIssued{cert: cert, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}
	out.pair, err = tls.X509KeyPair(out.certPEM, out.keyPEM)
	Expect(err).NotTo(HaveOccurred())
	return out
}

// server issues a server certificate valid from an hour ago for a day.
func (p *secPKI) server() secIssued {
	GinkgoHelper()
	now := time.Now()
	return p.issue("127.0.0.1", true, now.Add(-time.Hour), now.Add(24*time.Hour))
}

// brokerOptions makes mosquitto's one listener TLS-only with srv, trusting the PKI's CA for client
// certificates; extra lines follow (e.g. require_certificate true). probe is the readiness probe's TLS
// configuration (nil: trust the CA, no client certificate).
func (p *secPKI) brokerOptions(srv secIssued, probe *tls.Config, extra ...string) broker.Options {
	if probe == nil {
		probe = p.clientTLS()
	}
	if probe.ServerName == "" {
		probe = probe.Clone()
		probe.ServerName = "127.0.0.1" // the probe dials an address, not a name mqttas would default from
	}
	return broker.Options{
		Config: append([]string{
			"cafile " + broker.ConfigDirVar + "/ca.crt",
			"certfile " + broker.ConfigDirVar + "/server.crt",
			"keyfile " + broker.ConfigDirVar + "/server.key",
		}, extra...),
		Files:    map[string][]byte{"ca.crt": p.caPEM, "server.crt": srv.certPEM, "server.key": srv.keyPEM},
		ProbeTLS: probe,
	}
}

// clientTLS is a client configuration that trusts the PKI's CA, presenting certs; ServerName is left empty so
// mqttas's default (Config.Server) applies.
func (p *secPKI) clientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.pool, Certificates: certs, MinVersion: tls.VersionTLS12}
}

// secPasswordFile makes a mosquitto password_file with the real mosquitto_passwd, in a directory removed
// after the spec.
func secPasswordFile(user, password string) []byte {
	GinkgoHelper()
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		bin = "/usr/bin/mosquitto_passwd"
	}
	_, err = os.Stat(bin)
	Expect(err).NotTo(HaveOccurred(), "mosquitto_passwd is needed (Debian package mosquitto; make test installs it)")
	path := filepath.Join(GinkgoT().TempDir(), "passwd")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-b", "-c", path, user, password).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "mosquitto_passwd: %s", out)
	b, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	Expect(string(b)).To(HavePrefix(user+":$"), "a hashed entry for %s", user)
	return b
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

// secLedgerSink records an mqttas client's deliveries in led under subscriber.
func secLedgerSink(led *ledger.Ledger, subscriber string) func(mqttas.Message) {
	return func(m mqttas.Message) {
		led.Deliver(ledger.Delivery{Subscriber: subscriber, Topic: m.Topic, Payload: m.Payload, QoS: m.QoS,
			Retain: m.Retain, At: time.Now()})
	}
}

// secMaxAttempts is the most connection attempts the client's backoff allows within window after an
// outage: the first at once, then after waits of at least half of ReconnectMin·2^(k−1), capped at ReconnectMax.
func secMaxAttempts(cfg mqttas.Config, window time.Duration) int {
	n, elapsed, delay := 1, time.Duration(0), cfg.ReconnectMin
	for {
		elapsed += delay / 2
		if elapsed > window {
			return n
		}
		n++
		delay = min(2*delay, cfg.ReconnectMax)
	}
}

// secPort is the port of a host:port address.
func secPort(addr string) int {
	GinkgoHelper()
	_, port, err := net.SplitHostPort(addr)
	Expect(err).NotTo(HaveOccurred())
	p, err := strconv.Atoi(port)
	Expect(err).NotTo(HaveOccurred())
	return p
}

// secReceived collects the payloads an mqttas client received, per topic, in arrival order.
type secReceived struct {
	mu  sync.Mutex
	got map[string][]string
}

func (r *secReceived) record(m mqttas.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string][]string{}
	}
	r.got[m.Topic] = append(r.got[m.Topic], string(m.Payload))
}

func (r *secReceived) payloads(topic string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got[topic]...)
}

// secRound renders durations rounded to milliseconds.
func secRound(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// secDialLog is an mqttas Config.Dial that records when each connection attempt began.
type secDialLog struct {
	mu sync.Mutex
	at []time.Time
}

func (d *secDialLog) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.at = append(d.at, time.Now())
	d.mu.Unlock()
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

// between returns the attempts that began in [from, to], oldest first.
func (d *secDialLog) between(from, to time.Time) []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []time.Time
	for _, t := range d.at {
		if !t.Before(from) && !t.After(to) {
			out = append(out, t)
		}
	}
	return out
}

// loadRaiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and fails unless that allows need open
// files. The Go runtime already raises its own soft limit at start-up, but restores the old one in child
// processes (the process backend's mosquitto); a syscall.Setrlimit call makes children inherit the raised
// limit. It returns the limits before and after, for the report.
func loadRaiseNoFile(need uint64) string {
	GinkgoHelper()
	var lim syscall.Rlimit
	Expect(syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)).To(Succeed())
	before := lim
	Expect(lim.Max).To(BeNumerically(">=", need), "the hard open-file limit (ulimit -Hn) must allow %d", need)
	lim.Cur = lim.Max
	Expect(syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)).To(Succeed())
	return fmt.Sprintf("soft %d → %d (hard %d, need %d)", before.Cur, lim.Cur, lim.Max, need)
}

// loadFDs counts this process's open file descriptors.
func loadFDs() int {
	GinkgoHelper()
	ents, err := os.ReadDir("/proc/self/fd")
	Expect(err).NotTo(HaveOccurred())
	return len(ents)
}

// loadMemInUse is the heap and stack memory in use after a collection.
func loadMemInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// loadEach runs f(i) for i in [0, n) on at most width goroutines at once and returns the errors, joined.
func loadEach(n, width int, f func(i int) error) error {
	sem := make(chan struct{}, width)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = f(i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// loadSettle waits (bounded) until count() is at most want and returns the last count.
func loadSettle(count func() int, want int, within time.Duration) int {
	deadline := time.Now().Add(within)
	n := count()
	for n > want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n = count()
	}
	return n
}
