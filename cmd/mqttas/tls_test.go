package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// certAuthority is a test CA that signs leaf certificates into PEM files.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
}

var serial int64

func newCA(t *testing.T, dir, name string) *certAuthority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(dir, name+".pem")
	writePEM(t, file, "CERTIFICATE", der)
	return &certAuthority{cert: cert, key: key, file: file}
}

// leaf writes a certificate for dnsName (server) or a client certificate, and its key; it returns the files.
func (ca *certAuthority) leaf(t *testing.T, dir, name, dnsName string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	if dnsName != "" {
		tmpl.DNSNames = []string{dnsName}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TLS with --cafile, --cert/--key and --insecure against a mosquitto that requires client certificates.
// The broker's certificate names broker.invalid, not 127.0.0.1: only --insecure accepts that, and only
// from the right CA.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "ca")
	other := newCA(t, dir, "other-ca")
	srvCert, srvKey := ca.leaf(t, dir, "server", "broker.invalid", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.leaf(t, dir, "client", "", x509.ExtKeyUsageClientAuth)
	port := strconv.Itoa(startMosquitto(t, fmt.Sprintf("allow_anonymous true\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n",
		ca.file, srvCert, srvKey)))
	base := []string{"pub", "-h", "127.0.0.1", "-p", port, "-t", "tls/t", "-m", "x", "-q", "1", "--response-time", "2s"}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"chain and client certificate, host name checked", []string{"--cafile", ca.file, "--cert", cliCert, "--key", cliKey}, exitConnect, "cannot validate certificate for 127.0.0.1"},
		{"--insecure skips the host name", []string{"--cafile", ca.file, "--cert", cliCert, "--key", cliKey, "--insecure"}, exitOK, ""},
		{"--insecure still verifies the chain", []string{"--cafile", other.file, "--cert", cliCert, "--key", cliKey, "--insecure"}, exitConnect, "unknown authority"},
		{"no client certificate", []string{"--cafile", ca.file, "--insecure"}, exitConnect, "the first connection failed"},
		{"plain TCP to a TLS listener", nil, exitConnect, "the first connection failed"},
	}
	for _, tc := range cases {
		code, _, errs := runCLI(t, context.Background(), append(base, tc.args...)...)
		t.Logf("%s: %d %q", tc.name, code, errs)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%s: exit %d (want %d), stderr %q (want %q)", tc.name, code, tc.code, errs, tc.want)
		}
	}

	// The TLS configuration itself: -p defaults to 8883 with TLS, a file without PEM is refused.
	if got := addrOf(&options{host: "localhost", cafile: ca.file}); got != "localhost:8883" {
		t.Errorf("address with TLS: %q", got)
	}
	if got := addrOf(&options{host: "::1"}); got != "[::1]:1883" {
		t.Errorf("address without TLS: %q", got)
	}
	if _, err := (&options{cafile: srvKey}).tlsConfig(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a key as --cafile: %v", err)
	}
}
