package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"

	"github.com/mqttas/mqttas-go/harness/broker/brokertest"
	"github.com/mqttas/mqttas-go/harness/proxy"
	"github.com/mqttas/mqttas-go/internal/mqttwire"
)

// startBroker runs a Mosquitto process for the test and returns its address.
func startBroker(t *testing.T) string { return brokertest.Start(t).Addr }

// running is a proxy.Run in a goroutine.
type running struct {
	addrs  proxy.Addrs
	cancel context.CancelFunc
	done   chan struct{}
	res    *proxy.Result
	err    error
	out    string
}

// start runs the proxy until stop; it fails the test if the proxy does not serve within a bound.
func start(t *testing.T, cfg proxy.Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{}), out: cfg.Out}
	ready := make(chan proxy.Addrs, 1)
	cfg.OnReady = func(a proxy.Addrs) { ready <- a }
	go func() {
		defer close(r.done)
		r.res, r.err = proxy.Run(ctx, cfg)
	}()
	t.Cleanup(func() { r.stop(t) })
	select {
	case r.addrs = <-ready:
	case <-r.done:
		t.Fatalf("proxy ended before serving: %v", r.err)
	case <-time.After(time.Minute):
		t.Fatal("proxy not serving within a minute")
	}
	return r
}

// stop ends the run (as SIGINT does) and waits for its report, within a bound.
func (r *running) stop(t *testing.T) (*proxy.Result, error) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(time.Minute):
		t.Fatal("proxy did not end within a minute of being stopped")
	}
	return r.res, r.err
}

func config(t *testing.T, brokerAddr string) proxy.Config {
	return proxy.Config{Listen: "127.0.0.1:0", API: "127.0.0.1:0", Broker: brokerAddr, Out: t.TempDir(),
		ProgressEvery: 100 * time.Millisecond}
}

// mqttConn is a raw MQTT connection for driving the proxy packet by packet.
type mqttConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialMQTT(t *testing.T, addr, id string) *mqttConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	m := &mqttConn{t: t, c: c, r: bufio.NewReader(c)}
	m.write(mqttwire.Connect{ClientID: id, CleanSession: true, KeepAlive: 30}.Bytes())
	p, err := m.read(5 * time.Second)
	if err != nil || p.Type != mqttwire.CONNACK {
		t.Fatalf("CONNACK: %v %v", p, err)
	}
	return m
}

func (m *mqttConn) write(b []byte) {
	m.t.Helper()
	_ = m.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := m.c.Write(b); err != nil {
		m.t.Fatal(err)
	}
}

func (m *mqttConn) read(within time.Duration) (mqttwire.Packet, error) {
	_ = m.c.SetReadDeadline(time.Now().Add(within))
	return mqttwire.Read(m.r)
}

func (m *mqttConn) publish(topic string, id uint16, payload string) {
	m.t.Helper()
	m.write(mqttwire.Publish{Topic: topic, QoS: 1, ID: id, Payload: []byte(payload)}.Packet().Bytes())
}

// TestProxyToxiproxyClientDropsPubacks drives an MQTT toxic through the HTTP API with Toxiproxy's own Go
// client and sees it on the wire: while mqtt_drop PUBACK downstream stands, a qos 1 PUBLISH gets no
// PUBACK (the wire log marks it dropped); once the toxic is removed the next one is acknowledged.
func TestProxyToxiproxyClientDropsPubacks(t *testing.T) {
	run := start(t, config(t, startBroker(t)))
	cl := toxiclient.NewClient("http://" + run.addrs.API)
	proxies, err := cl.Proxies()
	if err != nil {
		t.Fatal(err)
	}
	p, ok := proxies["mqtt"]
	if !ok || p.Listen != run.addrs.Listen || !p.Enabled {
		t.Fatalf("proxies = %+v, want mqtt listening on %s, enabled", proxies, run.addrs.Listen)
	}
	if _, err := p.AddToxic("lose-acks", "mqtt_drop", "downstream", 1, toxiclient.Attributes{"packet_type": "PUBACK"}); err != nil {
		t.Fatal(err)
	}
	toxics, err := p.Toxics()
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, x := range toxics {
		names = append(names, x.Name+"/"+x.Type)
	}
	if !strings.Contains(strings.Join(names, " "), "lose-acks/mqtt_drop") {
		t.Fatalf("toxics = %v, want lose-acks/mqtt_drop", names)
	}

	dev := dialMQTT(t, run.addrs.Listen, "dev-api")
	dev.publish("dev/api", 1, "n=1")
	if pk, err := dev.read(700 * time.Millisecond); err == nil {
		t.Fatalf("got %v while PUBACKs are dropped", pk)
	}
	if err := p.RemoveToxic("lose-acks"); err != nil {
		t.Fatal(err)
	}
	dev.publish("dev/api", 2, "n=2")
	pk, err := dev.read(5 * time.Second)
	if err != nil || pk.Type != mqttwire.PUBACK || pk.ID() != 2 {
		t.Fatalf("after removing the toxic: %v %v, want PUBACK id 2", pk, err)
	}

	// Disabling through the client refuses connections, enabling accepts them again.
	if err := p.Disable(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", run.addrs.Listen, time.Second); err == nil {
		c.Close()
		t.Fatal("connected to a disabled proxy")
	}
	if err := p.Enable(); err != nil {
		t.Fatal(err)
	}
	dialMQTT(t, run.addrs.Listen, "dev-api-2")

	res, err := run.stop(t)
	if err != nil {
		t.Fatal(err)
	}
	wire := readWire(t, run)
	var dropped, acked int
	for _, w := range wire {
		if w.Type == "PUBACK" && w.Client == "dev-api" {
			switch {
			case w.Fate == "dropped" && w.ID != nil && *w.ID == 1:
				dropped++
			case w.Fate == "" && w.ID != nil && *w.ID == 2:
				acked++
			}
		}
	}
	if dropped != 1 || acked != 1 {
		t.Fatalf("wire log: %d dropped PUBACK id 1, %d forwarded PUBACK id 2; want 1 and 1", dropped, acked)
	}
	// The report shows the API's faults as windows: the drop and the disabled proxy.
	var got []string
	for _, f := range res.Summary.Faults {
		got = append(got, f.Name)
	}
	if strings.Join(got, ",") != "mqtt_drop,down" {
		t.Fatalf("report's faults = %v, want mqtt_drop then down", got)
	}
}

func readWire(t *testing.T, run *running) []proxy.WireRecord {
	t.Helper()
	f, err := os.Open(filepath.Join(run.out, proxy.WireFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []proxy.WireRecord
	dec := json.NewDecoder(f)
	for {
		var w proxy.WireRecord
		if err := dec.Decode(&w); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("wire log: %v", err)
		}
		out = append(out, w)
	}
}
