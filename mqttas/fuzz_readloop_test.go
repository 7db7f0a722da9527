package mqttas

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzReadLoop plays a broker that accepts the connection and then sends arbitrary bytes. Whatever it
// sends, the client must not panic, must stay within MaxPacketSize, must answer or drop the connection, and
// must shut down cleanly on Close.
func FuzzReadLoop(f *testing.F) {
	for _, seed := range [][]byte{
		{0x30, 5, 0, 1, 'a', 'h', 'i'},             // qos 0 PUBLISH
		{0x32, 6, 0, 1, 'a', 0, 7, 'x'},            // qos 1 PUBLISH: PUBACK expected
		{0x34, 6, 0, 1, 'a', 0, 7, 'x'},            // qos 2 PUBLISH: protocol error
		{0x40, 2, 0, 9},                            // PUBACK for an unknown id
		{0x90, 3, 0, 9, 0x80},                      // SUBACK for an unknown id
		{0x20, 2, 0, 0},                            // a second CONNACK
		{0xd0, 0, 0xd0, 0},                         // PINGRESPs
		{0x30, 0xff, 0xff, 0xff, 0x7f},             // 268 MB announced
		{0x30, 0x80, 0x80, 0x80, 0x80, 0x01},       // 5-byte length
		{0xf0, 0},                                  // reserved type
		{0x32, 0x0a, 0, 3, 'a', '/', 'b', 0, 1, 1}, // truncated then EOF
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var dials atomic.Int32
		served := make(chan struct{})
		cfg := Config{}
		cfg.Server = "fuzz.invalid"
		// Generous: it also bounds the CONNECT/CONNACK handshake, which must not fail on a loaded machine
		// (fuzz workers fill every core). Each input still ends as soon as the broker has written it.
		cfg.ResponseTime = 2 * time.Second
		cfg.MaxPacketSize = 1024
		cfg.ReconnectMin, cfg.ReconnectMax = time.Millisecond, time.Millisecond
		cfg.OnMessage = func(m Message) {
			if len(m.Payload) > cfg.MaxPacketSize {
				t.Errorf("delivered a %d-byte payload over MaxPacketSize", len(m.Payload))
			}
		}
		cfg.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			if dials.Add(1) > 1 {
				return nil, errors.New("fuzz broker accepts one connection")
			}
			client, broker := net.Pipe()
			go func() {
				defer close(served)
				defer broker.Close()
				hdr := make([]byte, 2)
				if _, err := io.ReadFull(broker, hdr); err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, broker, int64(hdr[1])); err != nil {
					return
				}
				if _, err := broker.Write([]byte{0x20, 2, 0, 0}); err != nil {
					return
				}
				go func() { _, _ = io.Copy(io.Discard, broker) }() // drain PUBACKs and pings
				_, _ = broker.Write(data)
			}()
			return client, nil
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Connect(ctx); err != nil {
			t.Fatalf("connect: %v", err)
		}
		select {
		case <-served:
		case <-ctx.Done():
			// The client stopped reading (e.g. it closed the connection on a protocol error): fine.
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
