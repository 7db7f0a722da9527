// Package testpki is the one test PKI of the repository: certificate
// authorities made at test time that issue server and client certificates,
// as PEM, as tls.Certificate and as files, for brokers with TLS listeners and
// the clients that dial them.
package testpki

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
	"os"
	"path/filepath"
	"time"
)

// TB is what the PKI needs of a test: testing.TB has it, and so has
// ginkgo's GinkgoT().
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// CA is a certificate authority. It is valid from three days ago until three
// days from now, so that it can sign leaves for any window a test needs
// around the present.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	// Pool trusts this CA and nothing else.
	Pool *x509.CertPool

	t   TB
	key *ecdsa.PrivateKey
}

// Cert is one issued certificate with its key.
type Cert struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte // PKCS #8
	Pair    tls.Certificate
}

// Spec describes a leaf certificate.
type Spec struct {
	CommonName string
	// Server makes a server certificate (ExtKeyUsageServerAuth); otherwise a
	// client certificate (ExtKeyUsageClientAuth).
	Server   bool
	DNSNames []string
	IPs      []net.IP
	// NotBefore and NotAfter bound the validity; zero: an hour ago and a day
	// from now.
	NotBefore, NotAfter time.Time
}

// NewCA makes a self-signed CA named name. Failures fail the test.
func NewCA(t TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-72 * time.Hour), NotAfter: now.Add(72 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testpki: CA %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testpki: CA %s: %v", name, err)
	}
	ca := &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), Pool: x509.NewCertPool(), t: t, key: key}
	ca.Pool.AddCert(cert)
	return ca
}

// Issue signs a certificate for s.
func (ca *CA) Issue(s Spec) *Cert {
	ca.t.Helper()
	key := newKey(ca.t)
	now := time.Now()
	if s.NotBefore.IsZero() {
		s.NotBefore = now.Add(-time.Hour)
	}
	if s.NotAfter.IsZero() {
		s.NotAfter = now.Add(24 * time.Hour)
	}
	usage := x509.ExtKeyUsageClientAuth
	if s.Server {
		usage = x509.ExtKeyUsageServerAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(ca.t), Subject: pkix.Name{CommonName: s.CommonName},
		NotBefore: s.NotBefore, NotAfter: s.NotAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: s.DNSNames, IPAddresses: s.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatalf("testpki: issue %s: %v", s.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		ca.t.Fatalf("testpki: issue %s: %v", s.CommonName, err)
	}
	c := &Cert{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", keyDER)}
	if c.Cert, err = x509.ParseCertificate(der); err != nil {
		ca.t.Fatalf("testpki: issue %s: %v", s.CommonName, err)
	}
	if c.Pair, err = tls.X509KeyPair(c.CertPEM, c.KeyPEM); err != nil {
		ca.t.Fatalf("testpki: issue %s: %v", s.CommonName, err)
	}
	return c
}

// Server issues a server certificate for 127.0.0.1 and localhost with the
// default validity.
func (ca *CA) Server() *Cert {
	ca.t.Helper()
	return ca.Issue(Spec{CommonName: "127.0.0.1", Server: true,
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}})
}

// Client issues a client certificate named cn with the default validity.
func (ca *CA) Client(cn string) *Cert {
	ca.t.Helper()
	return ca.Issue(Spec{CommonName: cn})
}

// ClientTLS is a client configuration (TLS 1.2 or later) that trusts only this
// CA and presents certs. ServerName is left empty, so the dialer's default
// applies.
func (ca *CA) ClientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: ca.Pool, Certificates: certs, MinVersion: tls.VersionTLS12}
}

// WriteCert writes the CA certificate to dir/name.pem and returns the path.
func (ca *CA) WriteCert(dir, name string) string {
	ca.t.Helper()
	file := filepath.Join(dir, name+".pem")
	writeFile(ca.t, file, ca.CertPEM)
	return file
}

// WriteFiles writes the certificate to dir/name.pem and its key to
// dir/name.key and returns the paths.
func (c *Cert) WriteFiles(t TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	writeFile(t, certFile, c.CertPEM)
	writeFile(t, keyFile, c.KeyPEM)
	return certFile, keyFile
}

func writeFile(t TB, file string, data []byte) {
	t.Helper()
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatalf("testpki: %v", err)
	}
}

func newKey(t TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testpki: key: %v", err)
	}
	return k
}

// serial is random, so that certificates from different CAs and runs never
// share one.
func serial(t TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("testpki: serial: %v", err)
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
