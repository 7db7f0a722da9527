package link_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/internal/mqttwire"
)

// opTimeout bounds every link operation in tests.
const opTimeout = 10 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

func newLink(t *testing.T, upstream string, opts ...link.Option) *link.Link {
	t.Helper()
	l, err := link.New(ctxT(t), upstream, opts...)
	if err != nil {
		t.Fatalf("link.New: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("link.Close: %v", err)
		}
		if t.Failed() {
			t.Logf("active faults: %v\n%s", l.Active(), l.Tap())
		}
	})
	return l
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// upstream is a fake broker: the test holds the accepted connections.
type upstream struct {
	ln    net.Listener
	conns chan net.Conn
	wg    sync.WaitGroup
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{ln: ln, conns: make(chan net.Conn, 16)}
	u.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case u.conns <- c:
			default:
				c.Close()
			}
		}
	})
	t.Cleanup(func() {
		ln.Close()
		u.wg.Wait()
		close(u.conns)
		for c := range u.conns {
			c.Close()
		}
	})
	return u
}

func (u *upstream) addr() string { return u.ln.Addr().String() }

func (u *upstream) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-u.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("upstream: no connection arrived")
		return nil
	}
}

// echoServer echoes every connection until it closes.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Go(func() {
				io.Copy(c, c)
				c.Close()
				mu.Lock()
				delete(open, c)
				mu.Unlock()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// roundTrip writes msg and reads it back, returning the elapsed time.
func roundTrip(t *testing.T, c net.Conn, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo = %q, want %q", buf, msg)
	}
	return time.Since(start)
}

// fastestRoundTrip is the quickest of three round trips: a check that a
// delay is gone must survive a scheduling stall on a busy machine.
func fastestRoundTrip(t *testing.T, c net.Conn, msg string) time.Duration {
	t.Helper()
	best := roundTrip(t, c, msg)
	for range 2 {
		best = min(best, roundTrip(t, c, msg))
	}
	return best
}

// expectSilence asserts that nothing, not even EOF, arrives on c for d.
func expectSilence(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("expected silence for %v, got %d bytes %q, err %v", d, n, buf[:n], err)
	}
}

// expectClosed asserts that c reaches EOF or a reset within d, after
// discarding any data still in flight.
func expectClosed(t *testing.T, c net.Conn, d time.Duration) error {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	_, err := io.Copy(io.Discard, c)
	if err == nil {
		return io.EOF
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after %v", d)
	}
	return err
}

// --- MQTT 3.1.1 on the wire (the test kit's codec), for driving mosquitto with exact bytes ---

// mqttClient is a raw MQTT client: it writes given bytes and reads packets.
type mqttClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func newMQTTClient(t *testing.T, addr string) *mqttClient {
	c := dial(t, addr)
	return &mqttClient{t: t, c: c, r: bufio.NewReader(c)}
}

func (m *mqttClient) send(b ...[]byte) {
	m.t.Helper()
	m.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := m.c.Write(bytes.Join(b, nil)); err != nil {
		m.t.Fatalf("mqtt write: %v", err)
	}
}

// read returns the next packet, or an error (a timeout if none within d).
func (m *mqttClient) read(d time.Duration) (mqttwire.Packet, error) {
	m.c.SetReadDeadline(time.Now().Add(d))
	defer m.c.SetReadDeadline(time.Time{})
	return mqttwire.Read(m.r)
}

// expect reads the next packet and checks its type.
func (m *mqttClient) expect(t mqttwire.Type) mqttwire.Packet {
	m.t.Helper()
	p, err := m.read(5 * time.Second)
	if err != nil {
		m.t.Fatalf("waiting for %v: %v", t, err)
	}
	if p.Type != t {
		m.t.Fatalf("got %v (% x), want %v", p.Type, p.Body, t)
	}
	return p
}

func (m *mqttClient) connect(clientID string, clean bool) mqttwire.Packet {
	m.t.Helper()
	m.send(mqttwire.Connect{ClientID: clientID, CleanSession: clean, KeepAlive: 30}.Bytes())
	p := m.expect(mqttwire.CONNACK)
	ack, err := p.Connack()
	if err != nil || ack.Code != 0 {
		m.t.Fatalf("CONNACK %+v, %v", ack, err)
	}
	return p
}
