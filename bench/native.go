package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttas/mqttas-go/harness/clients/crashclient"
	"github.com/mqttas/mqttas-go/harness/clients/procclient"
	"github.com/mqttas/mqttas-go/mqttas"
)

// The client libraries compared.
const (
	MQTTAS = "mqttas"
	Paho   = "paho"
)

// Libs returns the libraries the bench measures, mqttas first.
func Libs() []string { return []string{MQTTAS, Paho} }

// CompareLibs returns the clients the compare can run: the two Go clients, the out-of-process drivers
// (Python paho-mqtt, MQTT.js, libmosquitto), then the crash-capable clients (mqttas and paho with their
// stores on disk, in a child process), which run the crash scenarios only.
func CompareLibs() []string {
	return []string{MQTTAS, Paho, procclient.NamePython, procclient.NameNode, procclient.NameC,
		crashclient.NameMQTTAS, crashclient.NamePaho}
}

// isCrashLib reports whether lib is a crash-capable client.
func isCrashLib(lib string) bool { return lib == crashclient.NameMQTTAS || lib == crashclient.NamePaho }

// ordered returns the libraries in the order round r runs them: mqttas first in even rounds, paho first in
// odd ones, so neither always runs on a machine the other just warmed up (or loaded).
func ordered(libs []string, r int) []string {
	out := make([]string, len(libs))
	for i := range libs {
		if r%2 == 0 {
			out[i] = libs[i]
		} else {
			out[i] = libs[len(libs)-1-i]
		}
	}
	return out
}

// native is a connected client driven through its own API, the way an application uses it: the
// throughput, latency, memory and allocation measurements must not measure an adapter.
type native interface {
	subscribe(ctx context.Context, filter string, qos byte) error
	// publish0 hands a qos 0 message to the client; it does not wait for it to be written.
	publish0(ctx context.Context, topic string, payload []byte) error
	// publish1 publishes at qos 1 and waits for the acknowledgement.
	publish1(ctx context.Context, topic string, payload []byte) error
	// window publishes n messages at qos 1 with up to w unacknowledged at any time, each client in its
	// idiomatic way: mqttas with w goroutines each publishing in turn, paho with w outstanding tokens.
	window(ctx context.Context, topic string, n, w int, payload func(i int) []byte) error
	close()
}

type nativeOptions struct {
	addr      string
	id        string
	keepAlive time.Duration // 0: 30 s
	onMessage func(payload []byte)
}

func dialNative(ctx context.Context, lib string, o nativeOptions) (native, error) {
	if o.keepAlive == 0 {
		o.keepAlive = 30 * time.Second
	}
	switch lib {
	case MQTTAS:
		return dialMQTTAS(ctx, o)
	case Paho:
		return dialPaho(ctx, o)
	}
	return nil, fmt.Errorf("bench: unknown client library %q", lib)
}

type mqttasNative struct{ c *mqttas.Client }

func mqttasConfig(o nativeOptions) (mqttas.Config, error) {
	host, ps, err := net.SplitHostPort(o.addr)
	if err != nil {
		return mqttas.Config{}, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return mqttas.Config{}, err
	}
	cfg := mqttas.Config{Server: host, Port: port, ClientID: o.id, KeepAlive: o.keepAlive} // a clean session
	if h := o.onMessage; h != nil {
		cfg.OnMessage = func(m mqttas.Message) { h(m.Payload) }
	}
	return cfg, nil
}

func dialMQTTAS(ctx context.Context, o nativeOptions) (*mqttasNative, error) {
	cfg, err := mqttasConfig(o)
	if err != nil {
		return nil, err
	}
	c, err := mqttas.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.ConnectQuick(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("mqttas connect %s: %w", o.addr, err)
	}
	return &mqttasNative{c: c}, nil
}

func (m *mqttasNative) subscribe(ctx context.Context, filter string, qos byte) error {
	return m.c.Subscribe(ctx, filter, qos)
}

func (m *mqttasNative) publish0(ctx context.Context, topic string, payload []byte) error {
	return m.c.Publish(ctx, topic, payload, false, 0)
}

func (m *mqttasNative) publish1(ctx context.Context, topic string, payload []byte) error {
	return m.c.Publish(ctx, topic, payload, false, 1)
}

func (m *mqttasNative) window(ctx context.Context, topic string, n, w int, payload func(int) []byte) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range w {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := m.c.Publish(ctx, topic, payload(i), false, 1); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

func (m *mqttasNative) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = m.c.Disconnect(ctx)
	_ = m.c.Close()
}

type pahoNative struct{ c paho.Client }

func pahoOptions(o nativeOptions) *paho.ClientOptions {
	po := paho.NewClientOptions().
		AddBroker("tcp://" + o.addr).
		SetClientID(o.id).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetKeepAlive(o.keepAlive)
	if h := o.onMessage; h != nil {
		po.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { h(m.Payload()) })
	}
	return po
}

func dialPaho(ctx context.Context, o nativeOptions) (*pahoNative, error) {
	c := paho.NewClient(pahoOptions(o))
	if err := waitToken(ctx, c.Connect()); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("paho connect %s: %w", o.addr, err)
	}
	return &pahoNative{c: c}, nil
}

// waitToken waits for a paho token or ctx.
func waitToken(ctx context.Context, t paho.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pahoNative) subscribe(ctx context.Context, filter string, qos byte) error {
	return waitToken(ctx, p.c.Subscribe(filter, qos, nil))
}

func (p *pahoNative) publish0(ctx context.Context, topic string, payload []byte) error {
	t := p.c.Publish(topic, 0, false, payload)
	// A qos 0 token is done once paho has written the message (or failed); only check an early failure.
	select {
	case <-t.Done():
		return t.Error()
	default:
		return ctx.Err()
	}
}

func (p *pahoNative) publish1(ctx context.Context, topic string, payload []byte) error {
	return waitToken(ctx, p.c.Publish(topic, 1, false, payload))
}

func (p *pahoNative) window(ctx context.Context, topic string, n, w int, payload func(int) []byte) error {
	ring := make([]paho.Token, w)
	for i := range n {
		if t := ring[i%w]; t != nil {
			if err := waitToken(ctx, t); err != nil {
				return err
			}
		}
		ring[i%w] = p.c.Publish(topic, 1, false, payload(i))
	}
	for _, t := range ring {
		if t != nil {
			if err := waitToken(ctx, t); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *pahoNative) close() { p.c.Disconnect(250) }

// errTimeout marks a measurement that did not finish in time.
var errTimeout = errors.New("bench: measurement timed out")
