package scenarios

// Certificates made at test time for the TLS specs, from the repository's one test PKI.

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/internal/testpki"
)

// tlsFixture is a certificate authority, a server certificate it signed for 127.0.0.1, and an unrelated
// second authority, all made at test time.
type tlsFixture struct {
	ca             *testpki.CA
	server         *testpki.Cert
	trusted, other *x509.CertPool // the server's CA; an unrelated CA
}

func newTLSFixture() tlsFixture {
	GinkgoHelper()
	ca := testpki.NewCA(GinkgoT(), "mqttas test CA")
	other := testpki.NewCA(GinkgoT(), "mqttas unrelated CA")
	return tlsFixture{ca: ca, server: ca.Server(), trusted: ca.Pool, other: other.Pool}
}

// brokerOptions serves MQTT over TLS only, with the fixture's server certificate, on the broker's one
// listener; the readiness probe trusts the right CA.
func (f tlsFixture) brokerOptions() broker.Options {
	return tlsBrokerOptions(f.ca, f.server, &tls.Config{RootCAs: f.trusted, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
}

// secPKI is a certificate authority made at test time that issues server and client certificates. Unlike
// tlsFixture a spec can issue client certificates and certificates with any validity window.
type secPKI struct{ *testpki.CA }

func newSecPKI() secPKI {
	GinkgoHelper()
	return secPKI{testpki.NewCA(GinkgoT(), "mqttas security test CA")}
}

// issue signs a certificate valid from notBefore to notAfter: a server certificate for 127.0.0.1 and
// localhost, or a client certificate named cn.
func (p secPKI) issue(cn string, server bool, notBefore, notAfter time.Time) *testpki.Cert {
	GinkgoHelper()
	s := testpki.Spec{CommonName: cn, Server: server, NotBefore: notBefore, NotAfter: notAfter}
	if server {
		s.IPs, s.DNSNames = []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}
	}
	return p.Issue(s)
}

// brokerOptions makes mosquitto's one listener TLS-only with srv, trusting the PKI's CA for client
// certificates; extra lines follow (e.g. require_certificate true). probe is the readiness probe's TLS
// configuration (nil: trust the CA, no client certificate).
func (p secPKI) brokerOptions(srv *testpki.Cert, probe *tls.Config, extra ...string) broker.Options {
	if probe == nil {
		probe = p.ClientTLS()
	}
	if probe.ServerName == "" {
		probe = probe.Clone()
		probe.ServerName = "127.0.0.1" // the probe dials an address, not a name mqttas would default from
	}
	return tlsBrokerOptions(p.CA, srv, probe, extra...)
}

// tlsBrokerOptions puts ca, srv and its key next to mosquitto.conf and makes the one listener TLS-only with
// them; extra lines follow. probe is the readiness probe's TLS configuration.
func tlsBrokerOptions(ca *testpki.CA, srv *testpki.Cert, probe *tls.Config, extra ...string) broker.Options {
	return broker.Options{
		Config: append([]string{
			"cafile " + broker.ConfigDirVar + "/ca.crt",
			"certfile " + broker.ConfigDirVar + "/server.crt",
			"keyfile " + broker.ConfigDirVar + "/server.key",
		}, extra...),
		Files:    map[string][]byte{"ca.crt": ca.CertPEM, "server.crt": srv.CertPEM, "server.key": srv.KeyPEM},
		ProbeTLS: probe,
	}
}
