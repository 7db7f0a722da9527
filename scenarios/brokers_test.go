package scenarios

// Brokers the specs start outside a rig, and what a spec reads from a broker's log or configuration.

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/mqttas"
)

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
	return mqttas.Config{Server: host, Port: p, ClientID: clientID(name), KeepAlive: 2 * time.Second,
		ResponseTime: time.Second, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond}
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

// secPort is the port of a host:port address.
func secPort(addr string) int {
	GinkgoHelper()
	_, port, err := net.SplitHostPort(addr)
	Expect(err).NotTo(HaveOccurred())
	p, err := strconv.Atoi(port)
	Expect(err).NotTo(HaveOccurred())
	return p
}
