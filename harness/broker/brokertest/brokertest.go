// Package brokertest is the one way a test starts a mosquitto of its own: a
// testing.TB helper over the harness's process backend, with an optional TLS
// listener made from the test PKI, closed (process killed, files removed)
// when the test ends, its log printed if the test failed.
package brokertest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/internal/testpki"
)

// Bounds for one lifecycle call; generous because the machine is noisy.
const (
	opTimeout   = 30 * time.Second
	stopTimeout = 5 * time.Second
	startTries  = 3
)

// Mosquitto is a mosquitto process private to one test. Its sessions persist
// across Stop, Start and Restart unless persistence is turned off.
type Mosquitto struct {
	// Addr is the plain listener's 127.0.0.1:port. It stays the same across
	// restarts, and so does TLSAddr.
	Addr string
	// TLSAddr is the TLS listener's 127.0.0.1:port; empty without WithTLS.
	TLSAddr string
	// CA signed the TLS listener's certificate; nil without WithTLS.
	CA *testpki.CA
	// Broker is the running broker, for what the methods below do not cover
	// (Pause, Logs with a context, …).
	Broker broker.Broker

	t testing.TB
}

// Option configures Start.
type Option func(*options)

type options struct {
	config  []string
	tls     bool
	ca      *testpki.CA
	server  *testpki.Cert
	require bool
}

// Config appends lines to mosquitto.conf, after the harness's defaults, e.g.
// "max_queued_messages 3", "persistence false" or "allow_anonymous false".
// Lines apply to the plain listener where they are per listener.
func Config(lines ...string) Option {
	return func(o *options) { o.config = append(o.config, lines...) }
}

// WithTLS adds a TLS listener at TLSAddr with server's certificate, signed by
// ca, which it also trusts for client certificates. A nil ca is a new one; a
// nil server is ca.Server() (for 127.0.0.1 and localhost). requireCert makes
// the listener refuse clients without a certificate from ca.
func WithTLS(ca *testpki.CA, server *testpki.Cert, requireCert bool) Option {
	return func(o *options) { o.tls, o.ca, o.server, o.require = true, ca, server, requireCert }
}

// Start starts mosquitto on free 127.0.0.1 ports and returns once it answers
// MQTT. It closes the broker when the test ends. Failures fail the test.
func Start(t testing.TB, opts ...Option) *Mosquitto {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	m := &Mosquitto{t: t}
	bo := broker.Options{Backend: broker.KindProcess, Config: o.config, StopTimeout: stopTimeout}
	if o.tls {
		if o.ca == nil {
			o.ca = testpki.NewCA(t, "brokertest CA")
		}
		if o.server == nil {
			o.server = o.ca.Server()
		}
		m.CA = o.ca
		bo.Files = map[string][]byte{
			"brokertest-ca.crt": o.ca.CertPEM, "brokertest-server.crt": o.server.CertPEM, "brokertest-server.key": o.server.KeyPEM,
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var err error
	// The TLS port can be taken between picking it and mosquitto binding it
	// (the backend retries its own port itself).
	for range startTries {
		bo.Config = o.config
		if o.tls {
			var port int
			if port, err = broker.FreePort(); err != nil {
				t.Fatalf("brokertest: %v", err)
			}
			m.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			bo.Config = append(append([]string(nil), o.config...), tlsListener(port, o.require)...)
		}
		if m.Broker, err = broker.New(ctx, bo); err == nil || !strings.Contains(err.Error(), "Address already in use") {
			break
		}
	}
	if err != nil {
		t.Fatalf("brokertest: mosquitto did not start: %v", err)
	}
	m.Addr = m.Broker.Addr()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if t.Failed() {
			logs, _ := m.Broker.Logs(ctx)
			t.Logf("mosquitto log (%s):\n%s", m.Addr, logs)
		}
		if err := m.Broker.Close(ctx); err != nil {
			t.Errorf("brokertest: close: %v", err)
		}
	})
	return m
}

// tlsListener is the configuration of a second listener, on port, serving
// MQTT over TLS with the files Start puts next to mosquitto.conf.
func tlsListener(port int, requireCert bool) []string {
	return []string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"cafile " + broker.ConfigDirVar + "/brokertest-ca.crt",
		"certfile " + broker.ConfigDirVar + "/brokertest-server.crt",
		"keyfile " + broker.ConfigDirVar + "/brokertest-server.key",
		"require_certificate " + strconv.FormatBool(requireCert),
	}
}

// ClientTLS is a client configuration for the TLS listener: it trusts CA,
// checks the name 127.0.0.1 and presents certs.
func (m *Mosquitto) ClientTLS(certs ...tls.Certificate) *tls.Config {
	m.t.Helper()
	if m.CA == nil {
		m.t.Fatal("brokertest: ClientTLS of a broker started without WithTLS")
	}
	c := m.CA.ClientTLS(certs...)
	c.ServerName = "127.0.0.1"
	return c
}

// Stop stops the broker with SIGTERM (it saves its database) and waits for it
// to exit. Stopping a stopped broker is a no-op.
func (m *Mosquitto) Stop() { m.t.Helper(); m.do("stop", m.Broker.Stop) }

// Kill stops the broker with SIGKILL: nothing since the last autosave (every
// second) is saved.
func (m *Mosquitto) Kill() { m.t.Helper(); m.do("kill", m.Broker.Kill) }

// Start starts a stopped broker again on the same addresses.
func (m *Mosquitto) Start() { m.t.Helper(); m.do("start", m.Broker.Start) }

// Restart stops and starts the broker.
func (m *Mosquitto) Restart() { m.t.Helper(); m.do("restart", m.Broker.Restart) }

// Log returns what the broker has logged so far.
func (m *Mosquitto) Log() string {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	logs, err := m.Broker.Logs(ctx)
	if err != nil {
		m.t.Fatalf("brokertest: logs: %v", err)
	}
	return logs
}

func (m *Mosquitto) do(name string, op func(context.Context) error) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := op(ctx); err != nil {
		m.t.Fatalf("brokertest: %s: %v", name, err)
	}
}
