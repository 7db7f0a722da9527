package broker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/internal/mqttwire"
)

// fakeBroker accepts one connection on loopback, checks that it receives
// the probe's CONNECT, and replies with reply (nothing if nil).
func fakeBroker(t *testing.T, reply []byte) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { _ = l.Close(); <-done })
	go func() {
		defer close(done)
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, len(probeConnect))
		if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, probeConnect) {
			t.Errorf("fake broker read % x, %v; want CONNECT % x", got, err, probeConnect)
			return
		}
		if reply == nil {
			_, _ = io.Copy(io.Discard, conn) // hang until the client gives up
			return
		}
		_, _ = conn.Write(reply)
		_, _ = io.Copy(io.Discard, conn)
	}()
	return l.Addr().String()
}

func TestProbeAccepted(t *testing.T) {
	addr := fakeBroker(t, mqttwire.Connack{}.Bytes())
	if err := Probe(t.Context(), addr); err != nil {
		t.Fatalf("Probe = %v, want nil", err)
	}
}

func TestProbeRefusedByBroker(t *testing.T) {
	addr := fakeBroker(t, mqttwire.Connack{Code: 5}.Bytes())
	err := Probe(t.Context(), addr)
	var ce *ConnackError
	if !errors.As(err, &ce) || ce.Code != 5 {
		t.Fatalf("Probe = %v, want *ConnackError with code 5", err)
	}
	if !answers(err) {
		t.Error("a refusing CONNACK must count as an answering broker")
	}
}

func TestProbeNotMQTT(t *testing.T) {
	addr := fakeBroker(t, []byte("HTTP"))
	err := Probe(t.Context(), addr)
	var ce *ConnackError
	if err == nil || errors.As(err, &ce) || answers(err) {
		t.Fatalf("Probe = %v, want a protocol error", err)
	}
}

func TestProbeSilentBrokerHitsDeadline(t *testing.T) {
	addr := fakeBroker(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Probe(ctx, addr)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Probe = %v, want context.DeadlineExceeded", err)
	}
	// Generous upper bound: two noisy cores.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Probe returned after %v, want about 300ms", d)
	}
}

func TestProbeConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	if err := Probe(t.Context(), addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Probe = %v, want ECONNREFUSED", err)
	}
}
