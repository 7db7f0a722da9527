package crashclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker/brokertest"
	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/clientstest"
	"github.com/mqttas/mqttas-go/harness/clients/mqttasclient"
	"github.com/mqttas/mqttas-go/harness/clients/procclient"
)

// driverBin is drivers/durable built once for the package's tests.
var driverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "durable-driver-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	driverBin = filepath.Join(dir, "driver")
	out, err := exec.Command("go", "build", "-o", driverBin, "github.com/mqttas/mqttas-go/drivers/durable").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building drivers/durable: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func config(library string) Config {
	return Config{Driver: procclient.Config{Name: "durable-" + library, Command: []string{driverBin, "-library", library}}}
}

func TestConformance(t *testing.T) {
	clientstest.Conformance(t, Factory(config("mqttas")))
}

// collector is a persistent subscriber that keeps every payload it got.
type collector struct {
	mu  sync.Mutex
	got map[string]int
}

func (c *collector) onMessage(d clients.Delivery) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got[string(d.Payload)]++
}

func (c *collector) has(p string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[p] > 0
}

// crashRun publishes n messages from a crash-capable client, crashing it (as crash says) and restarting it
// every few publications, and returns the payloads the client reported durable, those refused as not sent,
// and the subscriber.
func crashRun(t *testing.T, cfg Config, n int, crash func(i int) (bool, bool)) (durable, notSent []string, sub *collector, c *Client) {
	t.Helper()
	m := brokertest.Start(t)
	sub = &collector{got: map[string]int{}}
	s, err := mqttasclient.New(clients.Options{Addr: m.Addr, ClientID: "crash-sub", OnMessage: sub.onMessage}, mqttasclient.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Subscribe(ctx, "crash/#", 1); err != nil {
		t.Fatal(err)
	}
	cl, err := New(clients.Options{Addr: m.Addr, ClientID: "crash-pub", KeepAlive: 5 * time.Second}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	if err := cl.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		p := fmt.Sprintf("m%04d", i)
		wg.Go(func() {
			err := cl.Publish(ctx, clients.Message{Topic: "crash/t", Payload: []byte(p), QoS: 1})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				durable = append(durable, p)
			case errors.Is(err, clients.ErrNotSent):
				notSent = append(notSent, p)
			}
		})
		if doCrash, powerCut := crash(i); doCrash {
			if err := cl.Crash(powerCut); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond) // publications meanwhile are refused
			if err := cl.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			if i%3 == 0 { // else publications go on while it boots, and are refused
				clientstest.Eventually(t, 20*time.Second, "connected after the restart", cl.IsConnected)
			}
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	return durable, notSent, sub, cl
}

// What the driver reported durable arrives, across SIGKILLs and power cuts at any moment of the traffic:
// the restarted driver sends it from its store.
func TestDurableAcrossCrashes(t *testing.T) {
	durable, notSent, sub, cl := crashRun(t, config("mqttas"), 400, func(i int) (bool, bool) {
		return i%40 == 39, i%80 == 79
	})
	// Publications while the driver boots are refused, and boots are slow on a loaded machine (155 of 400 were
	// durable at a load of 16 on 2 CPUs): a quarter is enough for every crash interval to carry some.
	if len(durable) < 100 {
		t.Fatalf("only %d of 400 publications durable", len(durable))
	}
	clientstest.Eventually(t, time.Minute, "every durable publication delivered", func() bool {
		for _, p := range durable {
			if !sub.has(p) {
				return false
			}
		}
		return true
	})
	clientstest.Eventually(t, time.Minute, "the last restart connected", cl.IsConnected)
	if h := cl.Hello(); h.Library != "mqttas" || h.Protocol != 2 || !h.Has(procclient.CapPowerCut) {
		t.Fatalf("hello %+v", h)
	}
	// Each driver run connects once, but one killed before its CONNACK (crashRun waits for the connection only
	// after every third restart) never does: 1 + those waited for ≤ connects ≤ 11.
	waited := int64(0)
	for i := range 400 {
		if i%40 == 39 && i%3 == 0 {
			waited++
		}
	}
	st := cl.Stats()
	if st["crashes"] != 10 || st["power_cuts"] != 5 || st[clients.StatDurable] != int64(len(durable)) ||
		st[clients.StatConnects] < 1+waited || st[clients.StatConnects] > 11 {
		t.Fatalf("stats %v (durable %d, not sent %d)", st, len(durable), len(notSent))
	}
	t.Logf("%d durable, %d not sent, all %d delivered", len(durable), len(notSent), len(durable))
}

// paho's driver restarts on its store after a kill, and refuses a power cut: its FileStore never fsyncs.
func TestPahoKillAndNoPowerCut(t *testing.T) {
	durable, _, sub, cl := crashRun(t, config("paho"), 60, func(i int) (bool, bool) { return i%20 == 19, false })
	clientstest.Eventually(t, time.Minute, "the last restart connected", cl.IsConnected)
	if len(durable) == 0 || cl.Stats()["crashes"] != 3 {
		t.Fatalf("%d durable, stats %v", len(durable), cl.Stats())
	}
	clientstest.Eventually(t, time.Minute, "traffic after the restarts", func() bool { return sub.has(durable[len(durable)-1]) })
	if err := cl.Crash(true); !errors.Is(err, ErrNoPowerCut) {
		t.Fatalf("power cut of paho: %v", err)
	}
	if err := cl.Restart(t.Context()); !errors.Is(err, ErrNotCrashed) {
		t.Fatalf("restart of a running client: %v", err)
	}
}

// A restart while the broker is unreachable keeps trying, as a booting device does, and connects once the
// broker is back; a crash in the middle of the boot stops it, and the next restart does the rollback the
// power cut before it left to do.
func TestRestartWhileBrokerDown(t *testing.T) {
	m := brokertest.Start(t)
	var mu sync.Mutex
	failed := 0
	cl, err := New(clients.Options{Addr: m.Addr, ClientID: "boot", OnEvent: func(e clients.Event) {
		if e.Kind == clients.EventConnectFailed {
			mu.Lock()
			failed++
			mu.Unlock()
		}
	}}, config("mqttas"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	if err := cl.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := cl.Publish(t.Context(), clients.Message{Topic: "boot/t", Payload: []byte("before"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := cl.Crash(true); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	if err := cl.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	clientstest.Eventually(t, 20*time.Second, "failed attempts", func() bool { mu.Lock(); defer mu.Unlock(); return failed >= 2 })
	if cl.IsConnected() {
		t.Fatal("connected with the broker down")
	}
	if err := cl.Publish(t.Context(), clients.Message{Topic: "boot/t", QoS: 1}); !errors.Is(err, clients.ErrNotSent) {
		t.Fatalf("publish while booting: %v", err)
	}
	if err := cl.Crash(false); err != nil { // in the middle of the boot
		t.Fatal(err)
	}
	if cl.Stats()["crashes"] != 2 || cl.after != "power-cut" {
		t.Fatalf("stats %v, after %q", cl.Stats(), cl.after)
	}
	if err := cl.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	m.Start()
	clientstest.Eventually(t, 30*time.Second, "connected after the broker came back", cl.IsConnected)
}
