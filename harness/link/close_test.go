package link_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
	"github.com/mqttas/mqttas-go/internal/mqttwire"
)

// waitGoroutines waits until at most n goroutines run, and dumps them if
// that does not happen within a few seconds.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want <= %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Not parallel: it counts the process's goroutines.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	echo := echoServer(t)
	up := newUpstream(t)
	base := runtime.NumGoroutine()

	// A busy link, closed while its clients are still connected and faults,
	// a pending delayed packet and held latency data are in place.
	l, err := link.New(ctxT(t), echo)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	c1 := dial(t, l.Addr())
	roundTrip(t, c1, "warm")
	if err := l.Latency(ctx, time.Hour, 0, link.Downstream); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Write([]byte("held by latency")); err != nil {
		t.Fatal(err)
	}
	c2 := dial(t, l.Addr())
	if err := l.Blackhole(ctx, link.Upstream); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Write([]byte("into the void")); err != nil {
		t.Fatal(err)
	}
	if err := l.SlowClose(ctx, time.Hour, link.Downstream); err != nil {
		t.Fatal(err)
	}
	if err := l.Bandwidth(ctx, 1, link.Downstream); err != nil {
		t.Fatal(err)
	}
	if err := l.DropPackets(link.Downstream, mqttframe.PUBACK, -1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %v", took)
	}
	c1.Close()
	c2.Close()
	waitGoroutines(t, base)

	// A link holding a delayed packet, then reset, taken down, and closed
	// while down.
	l, err = link.New(ctxT(t), up.addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DelayPackets(link.Downstream, mqttframe.CONNACK, time.Hour); err != nil {
		t.Fatal(err)
	}
	c3 := dial(t, l.Addr())
	s3 := up.accept(t)
	c3.Write(mqttwire.Connect{ClientID: "leak", CleanSession: true}.Bytes())
	s3.Write(mqttwire.Connack{}.Bytes())
	if _, err := l.Tap().WaitFor(ctxT(t), link.OfType(mqttframe.CONNACK)); err != nil {
		t.Fatal(err)
	}
	if err := l.Reset(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	c4 := dial(t, l.Addr())
	up.accept(t)
	if err := l.Silent(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := l.Down(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c3.Close()
	c4.Close()
	waitGoroutines(t, base)
}
