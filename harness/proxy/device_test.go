package proxy_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/proxy"
	"github.com/mqttas/mqttas-go/harness/report"
	"github.com/mqttas/mqttas-go/harness/schedule"
	"github.com/mqttas/mqttas-go/mqttas"
)

// deviceEnv makes the test binary a stand-in device: "addr topic count interval". It publishes
// "seq=1" … "seq=count" at qos 1 with the mqttas client (as mqtt_as does on an ESP32: each publication
// waits for its PUBACK, through any outage) and prints "sent <count>" when the last one is acknowledged.
const deviceEnv = "MQTTAS_PROXY_TEST_DEVICE"

func TestMain(m *testing.M) {
	if spec := os.Getenv(deviceEnv); spec != "" {
		os.Exit(device(spec))
	}
	os.Exit(m.Run())
}

func device(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 4 {
		fmt.Fprintln(os.Stderr, "device: bad spec", spec)
		return 2
	}
	host, port, _ := net.SplitHostPort(f[0])
	p, _ := strconv.Atoi(port)
	n, _ := strconv.Atoi(f[2])
	every, _ := time.ParseDuration(f[3])
	c, err := mqttas.New(mqttas.Config{Server: host, Port: p, ClientID: "esp32-standin", KeepAlive: 2 * time.Second,
		ResponseTime: time.Second, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 300 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, "device:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "device: connect:", err)
		return 2
	}
	for i := 1; i <= n; i++ {
		if err := c.Publish(ctx, f[1], []byte(fmt.Sprintf("{\"seq\": %d, \"t\": 21.5}", i)), false, 1); err != nil {
			fmt.Fprintln(os.Stderr, "device: publish:", err)
			return 3
		}
		time.Sleep(every)
	}
	_ = c.Disconnect(ctx)
	_ = c.Close()
	fmt.Printf("sent %d\n", n)
	return 0
}

// runDevice starts the stand-in device against addr and returns a wait for its output.
func runDevice(t *testing.T, addr, topic string, n int, every time.Duration) func() string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %v", deviceEnv, addr, topic, n, every))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	waited := false
	wait := func() string {
		if !waited {
			waited = true
			err := cmd.Wait()
			cancel()
			if err != nil {
				t.Fatalf("device: %v\n%s", err, errb.String())
			}
		}
		return out.String()
	}
	t.Cleanup(func() {
		if !waited {
			cancel()
			_ = cmd.Wait()
		}
	})
	return wait
}

// TestProxyShippedTraceVerdict replays traces/flapping-link.yaml (resets, then the link down twice)
// against a stand-in device publishing 150 numbered qos 1 messages through the proxy, and checks the
// verdict and the per-topic counts against what the device sent: every number received, none lost,
// outages seen on the wire with their detection and reconnect times.
func TestProxyShippedTraceVerdict(t *testing.T) {
	s, err := schedule.Load("../../traces/flapping-link.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(t, startBroker(t))
	cfg.Schedule, cfg.Tail = s, time.Minute
	cfg.Pattern = nil // the default: the first number in the payload
	var progress []proxy.Progress
	cfg.OnProgress = func(p proxy.Progress) { progress = append(progress, p) }
	run := start(t, cfg)
	const sent = 150
	wait := runDevice(t, run.addrs.Listen, "sensors/esp32/temp", sent, 70*time.Millisecond)
	if out := wait(); strings.TrimSpace(out) != fmt.Sprintf("sent %d", sent) {
		t.Fatalf("device said %q", out)
	}
	res, err := run.stop(t)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("harness errors: %v", res.Errors)
	}
	if len(res.Topics) != 1 {
		t.Fatalf("topics = %+v, want sensors/esp32/temp alone", res.Topics)
	}
	tf := res.Topics[0]
	if tf.Topic != "sensors/esp32/temp" || tf.First != 1 || tf.Last != sent || tf.Received != sent || tf.Lost != 0 {
		t.Fatalf("topic figures %+v: want #1–#%d, all %d received, none lost", tf, sent, sent)
	}
	if tf.Deliveries != tf.Received+tf.Duplicates {
		t.Fatalf("topic figures %+v: deliveries ≠ received + duplicates", tf)
	}
	if tf.WirePublishes < sent {
		t.Fatalf("wire saw %d first publishes, the device made %d", tf.WirePublishes, sent)
	}
	sum := res.Summary
	if sum.Verdict != "PASS" || sum.Lost != 0 || sum.Delivered != sent || sum.Acknowledged != sent {
		t.Fatalf("summary: verdict %s, lost %d, delivered %d, acknowledged %d; want PASS, 0, %d, %d",
			sum.Verdict, sum.Lost, sum.Delivered, sum.Acknowledged, sent, sent)
	}
	// flapping-link: 4 resets and 2 downs, each cuts the device's connection.
	if len(sum.Clients) == 0 || sum.Clients[0].Name != "esp32-standin" {
		t.Fatalf("clients = %+v, want the device first", sum.Clients)
	}
	dev := sum.Clients[0]
	if dev.Outages < 6 || dev.Detection.N != 6 || dev.Reconnect.N != 6 {
		t.Fatalf("device: %d outages, %d detections, %d reconnects; want ≥ 6, one detection and one reconnect per fault (4 resets, 2 downs)",
			dev.Outages, dev.Detection.N, dev.Reconnect.N)
	}
	if len(sum.Schedule) != 6 || len(sum.Faults) != 6 {
		t.Fatalf("schedule %d, faults %d: want the trace's 6", len(sum.Schedule), len(sum.Faults))
	}
	for _, f := range []string{report.IndexFile, report.SummaryFile, report.HistoryFile, proxy.WireFile, proxy.TimelineFile} {
		if st, err := os.Stat(run.out + "/" + f); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if len(progress) < 2 || !progress[len(progress)-1].Final || progress[len(progress)-1].Received < sent {
		t.Fatalf("progress: %d snapshots, last %+v", len(progress), progress[len(progress)-1])
	}
}
