package mqttas

// OnMessage and the silence rule: a slow handler must not make a live broker look silent, and a hung one
// must not hide a silent broker (see session.ping for the rule and its bound).

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// handlerProbe is an OnMessage that records its calls, fails on overlapping ones, sleeps per message
// and hangs on the topic "hang" until released.
type handlerProbe struct {
	per     time.Duration
	entered chan Message
	release chan struct{}
	once    sync.Once
	running atomic.Int32
	overlap atomic.Bool
}

func newHandlerProbe(per time.Duration) *handlerProbe {
	return &handlerProbe{per: per, entered: make(chan Message, 64), release: make(chan struct{})}
}

func (h *handlerProbe) OnMessage(m Message) {
	if h.running.Add(1) > 1 {
		h.overlap.Store(true)
	}
	defer h.running.Add(-1)
	h.entered <- m
	if m.Topic == "hang" {
		<-h.release
		return
	}
	time.Sleep(h.per)
}

// free releases a hung handler; register it with t.Cleanup after the client is made, so it runs before
// the client's Close (which waits for the reader).
func (h *handlerProbe) free() { h.once.Do(func() { close(h.release) }) }

func (h *handlerProbe) wait(t *testing.T, topic string, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-h.entered:
			if m.Topic == topic {
				return time.Now()
			}
		case <-deadline:
			t.Fatalf("OnMessage not called for %q within %v", topic, timeout)
		}
	}
}

// A handler that hangs while the broker goes silent: the outage is declared by the silence rule, counted
// from the broker's last byte as when the reader reads (4 whole intervals, within the 5th). The next
// connection's reader waits for the hung handler instead of calling OnMessage beside it, and that wait
// causes no further outage (the broker's PINGRESPs reach the socket).
func TestPort_HungHandlerDoesNotHideSilentBroker(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	pi := 200 * time.Millisecond
	cfg.PingInterval = pi
	h := newHandlerProbe(0)
	cfg.OnMessage = h.OnMessage
	c := fbConnect(t, cfg)
	t.Cleanup(h.free)
	if c.sess.queue == nil {
		t.Fatal("a plain TCP connection on Linux must expose its socket queue")
	}
	conn := b.Conn(1)
	conn.Silence()
	if err := conn.Send(fbPublish("hang", []byte("x"), 1, false, false, 7)); err != nil {
		t.Fatal(err)
	}
	last := time.Now()
	h.wait(t, "hang", 2*time.Second)
	down := fbWaitEvent(t, c.Down(), 10*pi, "Down while the handler hangs")
	// The ping that sees the last byte arrive is at most one interval after it; timers under -race on a
	// loaded machine fire up to ~150 ms late.
	fbWithin(t, "broker's last byte to outage, handler hung", down.Sub(last), 4*pi, 5*pi+150*time.Millisecond)
	if err := c.LastError(); !errors.Is(err, ErrTimeout) {
		t.Errorf("LastError = %v, want ErrTimeout", err)
	}

	fbEventually(t, 2*time.Second, "reconnected", func() bool { return c.Stats().Reconnects == 1 })
	if err := b.Last().Send(fbPublish("after", []byte("y"), 1, false, false, 8)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-h.entered:
		t.Fatalf("OnMessage(%q) called while the previous call still hangs", m.Topic)
	case <-time.After(6 * pi): // longer than 4 intervals: the waiting reader must not cause an outage either
	}
	h.free()
	h.wait(t, "after", 2*time.Second)
	b.MustWait(t, 0, 2*time.Second, "PUBACK of the message after the outage", fbType(typePuback), fbID(8))
	if h.overlap.Load() {
		t.Error("OnMessage calls overlapped")
	}
	if n := c.Stats().Outages; n != 1 {
		t.Errorf("%d outages, want 1 (the silent broker)", n)
	}
}

// A handler much slower than 4 ping intervals, at a broker that answers every ping: no outage, also when
// the messages arrive in one write, so that the reader goes from handler to handler without reading the
// socket in between.
func TestPort_SlowHandlerNoFalseOutage(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	pi := 100 * time.Millisecond
	cfg.PingInterval = pi
	h := newHandlerProbe(6 * pi)
	cfg.OnMessage = h.OnMessage
	c := fbConnect(t, cfg)
	var burst []byte
	for i := range 3 {
		burst = append(burst, fbPublish("slow", []byte{byte(i)}, 1, false, false, uint16(i+1))...)
	}
	if err := b.Conn(1).Send(burst); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		h.wait(t, "slow", 2*time.Second)
	}
	b.MustWait(t, 0, 2*time.Second, "the last PUBACK", fbType(typePuback), fbID(3))
	time.Sleep(2 * pi) // the pings after the last handler returned
	if n, d := c.Stats().Outages, c.Down().IsSet(); n != 0 || d {
		t.Errorf("%d outages (Down %t) while only the handler was slow (%v per message, pings every %v)", n, d, h.per, pi)
	}
	if n := b.Conns(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	if pings := len(b.Filter(fbType(typePingreq), fbOnConn(1))); pings < 12 {
		t.Errorf("%d PINGREQs during 18 intervals of handlers, want at least 12: the writer must ping meanwhile", pings)
	}
}

// Where the client cannot see the socket's queue (here a Config.Dial connection that is not a TCP
// connection), OnMessage's run counts as traffic from its start: handlers shorter than 4 intervals, one
// after another, cause no outage; a hung one at a silent broker is an outage within 5 intervals of its
// start.
func TestPort_HandlerCountsAsTrafficWithoutSocketView(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	pi := 100 * time.Millisecond
	cfg.PingInterval = pi
	d := &fbDialer{target: b.Addr()}
	cfg.Dial = d.Dial
	h := newHandlerProbe(3 * pi)
	cfg.OnMessage = h.OnMessage
	c := fbConnect(t, cfg)
	t.Cleanup(h.free)
	if c.sess.queue != nil {
		t.Fatal("a wrapped connection must not expose a socket queue")
	}
	var burst bytes.Buffer
	for i := range 3 {
		burst.Write(fbPublish("slow", []byte{byte(i)}, 0, false, false, 0))
	}
	if err := b.Conn(1).Send(burst.Bytes()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		h.wait(t, "slow", 2*time.Second)
	}
	time.Sleep(h.per + 2*pi)
	if n := c.Stats().Outages; n != 0 {
		t.Fatalf("%d outages with handlers of %v (3 intervals) one after another", n, h.per)
	}

	conn := b.Conn(1)
	conn.Silence()
	if err := conn.Send(fbPublish("hang", nil, 0, false, false, 0)); err != nil {
		t.Fatal(err)
	}
	start := h.wait(t, "hang", 2*time.Second)
	down := fbWaitEvent(t, c.Down(), 10*pi, "Down while the handler hangs")
	fbWithin(t, "hung handler's start to outage", down.Sub(start), 4*pi-10*time.Millisecond, 5*pi+150*time.Millisecond)
}

// queueSocket finds the kernel socket under a TCP connection and under TLS on one, not under a wrapper
// that hides it; socketQueued counts the bytes that arrived unread.
func TestQueueSocketCountsWaitingBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	rc := queueSocket(client)
	if rc == nil {
		t.Fatal("no socket queue under a TCP connection")
	}
	if queueSocket(tls.Client(client, &tls.Config{InsecureSkipVerify: true})) == nil {
		t.Error("no socket queue under TLS on a TCP connection")
	}
	if queueSocket(&faultConn{Conn: client}) != nil {
		t.Error("a socket queue under a wrapper that does not expose its connection")
	}
	if n, ok := socketQueued(rc); !ok || n != 0 {
		t.Errorf("before any bytes: %d waiting (%t), want 0", n, ok)
	}
	if _, err := server.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	fbEventually(t, 2*time.Second, "100 bytes waiting", func() bool { n, _ := socketQueued(rc); return n == 100 })
	buf := make([]byte, 40)
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatal(err)
	}
	if n, _ := socketQueued(rc); n != 60 {
		t.Errorf("after reading 40 of 100: %d waiting, want 60", n)
	}
}
