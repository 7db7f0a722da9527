package bench

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker/brokertest"
	"github.com/mqttas/mqttas-go/internal/mqttwire"
)

// The raw floor's connection speaks enough MQTT for its measurement: every qos 1 message is acknowledged,
// and arrives once, at a subscriber on the same broker.
// Both floors: the one-goroutine one and the one with a reader goroutine.
func TestRawFloorDeliversEveryMessage(t *testing.T) {
	m := brokertest.Start(t, brokertest.Config("persistence false"))
	for _, reader := range []bool{false, true} {
		t.Run(map[bool]string{false: "one goroutine", true: "reader goroutine"}[reader], func(t *testing.T) {
			testRawFloor(t, m.Addr, reader)
		})
	}
}

func testRawFloor(t *testing.T, addr string, reader bool) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const n = 50
	f, err := runRawQoS1Seq(ctx, addr, n, 300, "rawtest", 0, reader)
	if err != nil {
		t.Fatal(err)
	}
	if f.Sent != n || f.Received != n || f.Duplicates != 0 || f.Foreign != 0 || f.Lost() != 0 {
		t.Fatalf("sent %d, received %d, duplicates %d, foreign %d, lost %d; want %d each once",
			f.Sent, f.Received, f.Duplicates, f.Foreign, f.Lost(), n)
	}
	if len(f.Latencies) != n {
		t.Fatalf("%d latencies, want %d", len(f.Latencies), n)
	}
	for i, l := range f.Latencies {
		if l <= 0 {
			t.Fatalf("latency %d is %v", i, l)
		}
	}
}

// A broker that refuses the connection fails rawDial with its return code.
func TestRawDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		p, err := mqttwire.Read(bufio.NewReader(c))
		if err == nil {
			if _, err = p.Connect(); err == nil {
				_, err = c.Write(mqttwire.Connack{Code: 5}.Bytes())
			}
		}
		served <- err
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, err := rawDial(ctx, ln.Addr().String(), "refused")
	if err == nil {
		r.c.Close()
		t.Fatal("a refused raw connection succeeded")
	}
	if !strings.Contains(err.Error(), "return code 5") {
		t.Errorf("rawDial: %v, want the return code", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("fake broker: %v", err)
	}
}
