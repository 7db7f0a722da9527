package testpki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// handshake runs one TLS handshake over loopback TCP and returns the
// client's and the server's errors.
func handshake(t *testing.T, client, server *tls.Config) (cerr, serr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		s := tls.Server(c, server)
		err = s.HandshakeContext(ctx)
		if err == nil {
			// TLS 1.3 checks the client certificate after the client's handshake returns.
			_, err = s.Read(make([]byte, 1))
		}
		done <- err
	}()
	var d tls.Dialer
	d.Config = client
	c, cerr := d.DialContext(ctx, "tcp", ln.Addr().String())
	if cerr == nil {
		_, cerr = c.Write([]byte{1})
		c.Close()
	}
	return cerr, <-done
}

func TestServerCertificateVerifiesAgainstItsCAOnly(t *testing.T) {
	ca, other := NewCA(t, "test CA"), NewCA(t, "unrelated CA")
	srv := ca.Server()
	server := &tls.Config{Certificates: []tls.Certificate{srv.Pair}}

	for _, name := range []string{"127.0.0.1", "localhost"} {
		cfg := ca.ClientTLS()
		cfg.ServerName = name
		if cerr, serr := handshake(t, cfg, server); cerr != nil || serr != nil {
			t.Errorf("%s: client %v, server %v", name, cerr, serr)
		}
	}
	cfg := other.ClientTLS()
	cfg.ServerName = "127.0.0.1"
	cerr, _ := handshake(t, cfg, server)
	var unknown x509.UnknownAuthorityError
	if !errors.As(cerr, &unknown) {
		t.Errorf("an unrelated CA: %v, want x509.UnknownAuthorityError", cerr)
	}
	if other.Cert.Subject.CommonName != "unrelated CA" || !other.Cert.IsCA {
		t.Errorf("CA certificate: %v, IsCA %v", other.Cert.Subject, other.Cert.IsCA)
	}
}

func TestClientCertificateIsCheckedByTheServer(t *testing.T) {
	ca := NewCA(t, "test CA")
	server := &tls.Config{Certificates: []tls.Certificate{ca.Server().Pair},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool}
	cli := ca.Client("a client")
	cfg := ca.ClientTLS(cli.Pair)
	cfg.ServerName = "127.0.0.1"
	if cerr, serr := handshake(t, cfg, server); cerr != nil || serr != nil {
		t.Fatalf("with a client certificate: client %v, server %v", cerr, serr)
	}
	if got := cli.Cert.ExtKeyUsage; len(got) != 1 || got[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("client certificate usage %v", got)
	}
	cfg = ca.ClientTLS()
	cfg.ServerName = "127.0.0.1"
	if _, serr := handshake(t, cfg, server); serr == nil {
		t.Fatal("the server accepted a client without a certificate")
	}
}

func TestIssueHonoursTheValidityWindow(t *testing.T) {
	ca := NewCA(t, "test CA")
	now := time.Now()
	expired := ca.Issue(Spec{CommonName: "127.0.0.1", Server: true, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	if !expired.Cert.NotAfter.Before(now) {
		t.Fatalf("NotAfter %v is not in the past", expired.Cert.NotAfter)
	}
	_, err := expired.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool})
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Fatalf("verify an expired certificate: %v", err)
	}
	if _, err := expired.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool, CurrentTime: now.Add(-36 * time.Hour)}); err != nil {
		t.Fatalf("verify within its window: %v", err)
	}
}

func TestWrittenFilesLoad(t *testing.T) {
	dir := t.TempDir()
	ca := NewCA(t, "test CA")
	caFile := ca.WriteCert(dir, "ca")
	certFile, keyFile := ca.Issue(Spec{CommonName: "broker", Server: true, DNSNames: []string{"broker.invalid"}}).
		WriteFiles(t, dir, "server")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "broker.invalid" || len(leaf.IPAddresses) != 0 {
		t.Errorf("names %v %v, want only broker.invalid", leaf.DNSNames, leaf.IPAddresses)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("the CA file holds no PEM certificate")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "broker.invalid"}); err != nil {
		t.Fatal(err)
	}
}

func TestSerialsDiffer(t *testing.T) {
	ca := NewCA(t, "test CA")
	a, b := ca.Client("a"), ca.Client("b")
	if a.Cert.SerialNumber.Cmp(b.Cert.SerialNumber) == 0 || a.Cert.SerialNumber.Cmp(ca.Cert.SerialNumber) == 0 {
		t.Fatalf("serials %v %v %v", ca.Cert.SerialNumber, a.Cert.SerialNumber, b.Cert.SerialNumber)
	}
}
