package mqttasclient

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/clientstest"
)

func TestConformance(t *testing.T) {
	var cfg Config
	cfg.ReconnectMin, cfg.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	clientstest.Conformance(t, Factory(cfg))
}

func TestPublishBeforeConnectIsNotSent(t *testing.T) {
	c, err := New(clients.Options{Addr: "127.0.0.1:1", ClientID: "never"}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Publish(context.Background(), clients.Message{Topic: "t", Payload: []byte("x"), QoS: 1})
	if !errors.Is(err, clients.ErrNotSent) {
		t.Fatalf("Publish before Connect = %v, want ErrNotSent", err)
	}
	err = c.Publish(context.Background(), clients.Message{Topic: "t/#", QoS: 1})
	if !errors.Is(err, clients.ErrNotSent) {
		t.Fatalf("Publish to a wildcard = %v, want ErrNotSent", err)
	}
}

func TestOptionsMapped(t *testing.T) {
	if _, err := New(clients.Options{Addr: "no-port"}, Config{}); !errors.Is(err, clients.ErrInvalidOptions) {
		t.Fatalf("got %v, want ErrInvalidOptions", err)
	}
	c, err := New(clients.Options{Addr: "127.0.0.1:1883", ClientID: "x", KeepAlive: 1500 * time.Millisecond}, Config{})
	if err != nil {
		t.Fatalf("a sub-second keepalive must be rounded up, not refused: %v", err)
	}
	_ = c.Close()
}
