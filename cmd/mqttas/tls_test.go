package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/mqttas/mqttas-go/harness/broker/brokertest"
	"github.com/mqttas/mqttas-go/internal/testpki"
)

// TLS with --cafile, --cert/--key and --insecure against a mosquitto that requires client certificates.
// The broker's certificate names broker.invalid, not 127.0.0.1: only --insecure accepts that, and only
// from the right CA.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := testpki.NewCA(t, "ca"), testpki.NewCA(t, "other-ca")
	caFile, otherFile := ca.WriteCert(dir, "ca"), other.WriteCert(dir, "other-ca")
	srv := ca.Issue(testpki.Spec{CommonName: "server", Server: true, DNSNames: []string{"broker.invalid"}})
	_, srvKey := srv.WriteFiles(t, dir, "server")
	cliCert, cliKey := ca.Client("client").WriteFiles(t, dir, "client")
	m := brokertest.Start(t, brokertest.Config("persistence false"), brokertest.WithTLS(ca, srv, true))
	port := strconv.Itoa(portOf(t, m.TLSAddr))
	base := []string{"pub", "-h", "127.0.0.1", "-p", port, "-t", "tls/t", "-m", "x", "-q", "1", "--response-time", "2s"}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"chain and client certificate, host name checked", []string{"--cafile", caFile, "--cert", cliCert, "--key", cliKey}, exitConnect, "cannot validate certificate for 127.0.0.1"},
		{"--insecure skips the host name", []string{"--cafile", caFile, "--cert", cliCert, "--key", cliKey, "--insecure"}, exitOK, ""},
		{"--insecure still verifies the chain", []string{"--cafile", otherFile, "--cert", cliCert, "--key", cliKey, "--insecure"}, exitConnect, "unknown authority"},
		{"no client certificate", []string{"--cafile", caFile, "--insecure"}, exitConnect, "the first connection failed"},
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
	if got := addrOf(&options{host: "localhost", cafile: caFile}); got != "localhost:8883" {
		t.Errorf("address with TLS: %q", got)
	}
	if got := addrOf(&options{host: "::1"}); got != "[::1]:1883" {
		t.Errorf("address without TLS: %q", got)
	}
	if _, err := (&options{cafile: srvKey}).tlsConfig(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a key as --cafile: %v", err)
	}
}
