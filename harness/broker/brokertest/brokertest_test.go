package brokertest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/internal/mqttwire"
	"github.com/mqttas/mqttas-go/internal/testpki"
)

// connack sends a CONNECT over c and returns the CONNACK.
func connack(t *testing.T, c net.Conn, id string, clean bool) mqttwire.Connack {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(mqttwire.Connect{ClientID: id, CleanSession: clean, KeepAlive: 30}.Bytes()); err != nil {
		t.Fatal(err)
	}
	p, err := mqttwire.Read(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("reading CONNACK: %v", err)
	}
	ack, err := p.Connack()
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStartRestartAndCleanUp(t *testing.T) {
	var addr string
	t.Run("broker", func(t *testing.T) {
		m := Start(t, Config("max_queued_messages 5"))
		addr = m.Addr
		if m.TLSAddr != "" || m.CA != nil {
			t.Errorf("a plain broker has TLS: %q %v", m.TLSAddr, m.CA)
		}
		if ack := connack(t, dial(t, m.Addr), "bt-1", false); ack.Code != 0 || ack.SessionPresent {
			t.Fatalf("first CONNACK %+v", ack)
		}
		m.Restart()
		if m.Addr != addr || m.Broker.Addr() != addr {
			t.Fatalf("address moved from %s to %s", addr, m.Addr)
		}
		if ack := connack(t, dial(t, m.Addr), "bt-1", false); !ack.SessionPresent {
			t.Fatalf("after Restart the session is gone: %+v", ack)
		}
		m.Stop()
		if _, err := net.DialTimeout("tcp", m.Addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial a stopped broker: %v", err)
		}
		m.Start()
		if ack := connack(t, dial(t, m.Addr), "bt-2", true); ack.Code != 0 {
			t.Fatalf("after Start: %+v", ack)
		}
		// mosquitto writes its log line a moment after the CONNACK.
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(m.Log(), "as bt-2"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the log does not name the client:\n%s", m.Log())
			}
		}
	})
	if _, err := net.DialTimeout("tcp", addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("the broker outlived its test: dial %s: %v", addr, err)
	}
}

func TestConfigLinesApply(t *testing.T) {
	m := Start(t, Config("allow_anonymous false"))
	if ack := connack(t, dial(t, m.Addr), "anon", true); ack.Code != 5 {
		t.Fatalf("anonymous CONNACK %+v, want return code 5 (not authorized)", ack)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var ce *broker.ConnackError
	if err := broker.Probe(ctx, m.Addr); !errors.As(err, &ce) {
		t.Fatalf("Probe: %v, want a refusing CONNACK", err)
	}
}

func TestTLSListenerRequiresAClientCertificate(t *testing.T) {
	m := Start(t, WithTLS(nil, nil, true))
	if m.TLSAddr == "" || m.TLSAddr == m.Addr || m.CA == nil {
		t.Fatalf("Addr %s, TLSAddr %q, CA %v", m.Addr, m.TLSAddr, m.CA)
	}
	if ack := connack(t, dial(t, m.Addr), "plain", true); ack.Code != 0 {
		t.Fatalf("the plain listener: %+v", ack)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cli := m.CA.Client("bt-client")
	d := tls.Dialer{Config: m.ClientTLS(cli.Pair)}
	c, err := d.DialContext(ctx, "tcp", m.TLSAddr)
	if err != nil {
		t.Fatalf("TLS with a client certificate: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if ack := connack(t, c, "tls", true); ack.Code != 0 {
		t.Fatalf("over TLS: %+v", ack)
	}

	// No certificate: the handshake (TLS 1.2) or the first read after it (TLS 1.3) fails.
	d = tls.Dialer{Config: m.ClientTLS()}
	if c, err := d.DialContext(ctx, "tcp", m.TLSAddr); err == nil {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write(mqttwire.Connect{ClientID: "nocert", CleanSession: true}.Bytes())
		if _, err := mqttwire.Read(bufio.NewReader(c)); err == nil {
			t.Fatal("a client without a certificate got an answer over TLS")
		}
	}
	// Plain MQTT to the TLS listener gets no CONNACK.
	pc := dial(t, m.TLSAddr)
	_ = pc.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = pc.Write(mqttwire.Connect{ClientID: "cleartext", CleanSession: true}.Bytes())
	if p, err := mqttwire.Read(bufio.NewReader(pc)); err == nil {
		t.Fatalf("plain MQTT to the TLS listener got %v", p)
	}
}

func TestTLSListenerWithTheCallersCertificate(t *testing.T) {
	first := Start(t, WithTLS(nil, nil, false))
	srv := first.CA.Issue(testpkiServer("localhost"))
	m := Start(t, WithTLS(first.CA, srv, false))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cfg := first.CA.ClientTLS()
	cfg.ServerName = "localhost"
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", m.TLSAddr)
	if err != nil {
		t.Fatalf("TLS without a client certificate where none is required: %v", err)
	}
	defer c.Close()
	if got := c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(srv.Cert.SerialNumber) != 0 {
		t.Fatalf("the listener presents serial %v, want the caller's %v", got, srv.Cert.SerialNumber)
	}
	if ack := connack(t, c, "tls", true); ack.Code != 0 {
		t.Fatalf("over TLS: %+v", ack)
	}
}

func testpkiServer(name string) testpki.Spec {
	return testpki.Spec{CommonName: name, Server: true, DNSNames: []string{name}}
}
