package scenarios

// Certificates made at test time for the TLS specs.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/broker"
)

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

// secPKI is a certificate authority made at test time that issues server and client certificates. Unlike
// tlsFixture it keeps the CA key, so a spec can issue client certificates and certificates with
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
