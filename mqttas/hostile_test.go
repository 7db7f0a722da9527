package mqttas

// Hostile brokers. Each episode plays a broker that breaks the protocol or the transport in one
// way while a qos 1 publisher runs through it, and checks the same promises every time:
//
//   - a clear error, or a protocol error that is logged and counted in Stats().ProtocolErrors;
//   - where the input leaves the connection unusable: Down, then a reconnection; otherwise no outage;
//   - no panic, and a heap that stays bounded;
//   - no qos 1 publication lost: every Publish returns nil, and the broker received each payload on a
//     connection where it then sent the PUBACK for it.
//
// Inputs already covered one-for-one elsewhere are not tested again on their own. Where an episode reuses
// such an input, it adds only the publisher, the at-least-once check and the memory bound, and its
// "covered" field names the test that checks the rest:
//
//   - remaining length over 4 bytes, reserved types 0 and 15, CONNECT from the broker, a bad PUBACK, qos 3,
//     8 KiB over a 1 KiB MaxPacketSize, a garbage CONNACK on the first connect and once on a reconnection:
//     TestPort_MalformedBrokerPackets;
//   - CONNACK with a bad type, length, flags or return code on the first connect: TestClaim10_BadConnackFailsFirstConnect;
//   - a second CONNACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT: TestDefect_UnexpectedPacketTypeResetsLink;
//   - stray PUBACK, SUBACK, UNSUBACK: TestClaim18_StrayAcksIgnoredNoReconnect (and TestDefect_LatePubackIgnored);
//   - SUBACK 0x80: TestDefect_SubackRefusalReturnsError;
//   - an incoming qos 2 PUBLISH: TestDefect_IncomingQoS2IsProtocolError;
//   - a mid-packet stall, a stalled write: TestClaim36_StallOverResponseTimeIsOutage;
//   - a broker that closes every reconnection at once (backoff): TestDefect_ReconnectBackoff;
//   - arbitrary bytes after CONNACK (no panic, MaxPacketSize): FuzzReadLoop.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	hostilePubEvery = 10 * time.Millisecond // pause between the publisher's publications
	hostilePubMax   = 3000                  // bound on the publications of one episode
	hostilePubWait  = 30 * time.Second      // bound on one Publish, far beyond any episode
	hostileHeapMax  = 16 << 20              // live heap growth allowed over an episode
)

// hostilePublisher publishes qos 1 messages with distinct payloads, one at a time, until stopped.
type hostilePublisher struct {
	c       *Client
	ctx     context.Context // cancelled only to abandon a stuck test
	abandon context.CancelFunc
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	mu      sync.Mutex
	acked   []string // payloads whose Publish returned nil
	errs    []error
	changed chan struct{}
}

func startHostilePublisher(t *testing.T, c *Client) *hostilePublisher {
	t.Helper()
	p := &hostilePublisher{c: c, stop: make(chan struct{}), done: make(chan struct{}), changed: make(chan struct{})}
	p.ctx, p.abandon = context.WithCancel(context.Background())
	go p.run()
	t.Cleanup(func() { p.abandon(); p.halt() }) // runs before the client's Close: Fatal leaves nothing behind
	return p
}

func (p *hostilePublisher) run() {
	defer close(p.done)
	tick := time.NewTicker(hostilePubEvery)
	defer tick.Stop()
	for i := range hostilePubMax {
		payload := fmt.Sprintf("hostile-%04d", i)
		ctx, cancel := context.WithTimeout(p.ctx, hostilePubWait)
		err := p.c.Publish(ctx, "hostile/pub", []byte(payload), false, 1)
		cancel()
		p.mu.Lock()
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("Publish(%s): %w", payload, err))
		} else {
			p.acked = append(p.acked, payload)
		}
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
	}
}

func (p *hostilePublisher) halt() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}

// acks is how many publications completed so far.
func (p *hostilePublisher) acks() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// waitAcks waits until n publications have completed.
func (p *hostilePublisher) waitAcks(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		got, ch, errs := len(p.acked), p.changed, len(p.errs)
		p.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-p.done:
			t.Fatalf("the publisher stopped after %d acknowledged publications (%d errors), want %d", got, errs, n)
		case <-deadline.C:
			t.Fatalf("%d publications acknowledged within %v, want %d", got, timeout, n)
		}
	}
}

// finish stops the publisher, letting the publication in flight complete, and returns what it did.
func (p *hostilePublisher) finish(t *testing.T) (acked []string, errs []error) {
	t.Helper()
	p.once.Do(func() { close(p.stop) })
	select {
	case <-p.done:
	case <-time.After(hostilePubWait + 5*time.Second):
		t.Fatal("the publication in flight did not complete")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.acked...), append([]error(nil), p.errs...)
}

// hostileCheckDelivered fails unless every acknowledged payload reached the broker on a connection where
// the broker then wrote the PUBACK for that PUBLISH's packet id. The broker records a write once it has
// returned, which can be after the client read it, so the check waits (bounded) for the records.
func hostileCheckDelivered(t *testing.T, b *fakeBroker, acked []string) {
	t.Helper()
	var missing []string
	check := func() bool {
		missing = hostileUnproven(b, acked)
		return len(missing) == 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if b.WaitCond(ctx, check) != nil {
		t.Errorf("%d of %d acknowledged publications never reached the broker on a connection that acked them: %v",
			len(missing), len(acked), missing[:min(len(missing), 10)])
	}
}

// hostileUnproven lists the payloads of acked that the broker's records do not show received and acked.
func hostileUnproven(b *fakeBroker, acked []string) []string {
	type key struct {
		conn int
		id   uint16
	}
	pubacks := map[key][]time.Time{}
	for _, s := range b.Sent() {
		if len(s.Bytes) == 4 && s.Bytes[0] == typePuback<<4 && s.Bytes[1] == 2 {
			k := key{s.Conn, binary.BigEndian.Uint16(s.Bytes[2:])}
			pubacks[k] = append(pubacks[k], s.At)
		}
	}
	proven := map[string]bool{}
	for _, p := range b.Filter(fbType(typePublish), func(p fbPacket) bool { return p.QoS == 1 }) {
		for _, at := range pubacks[key{p.Conn, p.ID}] {
			if !at.Before(p.At) {
				proven[string(p.Payload)] = true
			}
		}
	}
	var missing []string
	for _, a := range acked {
		if !proven[a] {
			missing = append(missing, a)
		}
	}
	return missing
}

// hostileHeap is the live heap after a collection.
func hostileHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// hostileTotalAlloc is the number of bytes allocated since the process started.
func hostileTotalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// hostileWrite writes chunks to the client on conn, gap apart, as one uninterrupted stream: the broker's
// own answers (PUBACK, PINGRESP) wait until it is done. end, if not nil, then runs with the writes still
// held (to close the connection mid-packet). It returns the first write error, e.g. once the client hung up.
func hostileWrite(conn *fbConn, gap time.Duration, end func(*net.TCPConn), chunks ...[]byte) error {
	conn.wmu.Lock()
	defer conn.wmu.Unlock()
	for i, ch := range chunks {
		if i > 0 && gap > 0 {
			t := time.NewTimer(gap)
			select {
			case <-t.C:
			case <-conn.ended:
				t.Stop()
				return net.ErrClosed
			case <-conn.b.done:
				t.Stop()
				return net.ErrClosed
			}
		}
		_ = conn.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.conn.Write(ch); err != nil {
			return err
		}
	}
	if end != nil {
		end(conn.conn.(*net.TCPConn))
	}
	return nil
}

// hostileBytewise splits b into one-byte chunks.
func hostileBytewise(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

// hostileFIN closes the connection with a FIN; hostileRST with an RST (SO_LINGER 0).
func hostileFIN(tc *net.TCPConn) { _ = tc.CloseWrite(); _ = tc.Close() }
func hostileRST(tc *net.TCPConn) { _ = tc.SetLinger(0); _ = tc.Close() }

// hostileHoldUntil is an end for hostileWrite that keeps the broker's other writes back until ev is set
// (at most 5 s).
func hostileHoldUntil(ev *Event) func(*net.TCPConn) {
	return func(*net.TCPConn) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ev.Wait(ctx)
	}
}

// hostileEnv is one episode's world.
type hostileEnv struct {
	b    *fakeBroker
	c    *Client
	d    *fbDialer
	cfg  Config
	logs *fbLogBuffer
	wg   sync.WaitGroup // goroutines an act started; waited for before the checks
}

// hostileCase is one episode.
type hostileCase struct {
	name    string
	covered string // the test that covers this input one-for-one, when there is one
	cfg     func(*Config)
	// act plays the hostile broker on connection 1, with the client connected and the publisher running.
	act func(t *testing.T, e *hostileEnv)
	// after checks what is particular to the episode, once the publisher has stopped.
	after func(t *testing.T, e *hostileEnv)
	reset bool   // the connection must be lost and made again
	proto uint64 // protocol errors the episode must count
	stray uint64 // at least this many stray acknowledgements
	log   string // the debug log must say this
}

func runHostile(t *testing.T, hc hostileCase) {
	b := fbNew(t)
	e := &hostileEnv{b: b, d: &fbDialer{target: b.Addr()}, logs: &fbLogBuffer{}}
	e.cfg = fbConfig(b)
	e.cfg.Logger = fbDebugLogger(e.logs)
	e.cfg.Dial = e.d.Dial
	if hc.cfg != nil {
		hc.cfg(&e.cfg)
	}
	e.c = fbConnect(t, e.cfg)
	e.c.Up().Clear()
	heap0 := hostileHeap()

	pub := startHostilePublisher(t, e.c)
	pub.waitAcks(t, 5, 5*time.Second)
	hc.act(t, e)
	if hc.reset {
		fbWaitEvent(t, e.c.Down(), 10*time.Second, "Down")
		fbWaitEvent(t, e.c.Up(), 10*time.Second, "Up after the reconnection")
	} else {
		time.Sleep(2 * e.cfg.ResponseTime) // room for an outage that must not come
	}
	pub.waitAcks(t, pub.acks()+5, 10*time.Second) // publications flow again after the episode
	acked, errs := pub.finish(t)
	e.wg.Wait()
	for _, err := range errs {
		t.Errorf("a qos 1 Publish failed: %v", err)
	}
	hostileCheckDelivered(t, b, acked)
	b.AssertWellFormed(t)

	st := e.c.Stats()
	if hc.reset {
		if st.Outages < 1 || st.Reconnects < 1 || b.Conns() < 2 {
			t.Errorf("outages %d, reconnections %d, broker connections %d; want the link reset and made again",
				st.Outages, st.Reconnects, b.Conns())
		}
	} else if st.Outages != 0 || b.Conns() != 1 || e.c.Down().IsSet() {
		t.Errorf("outages %d, broker connections %d, Down %t; want no outage", st.Outages, b.Conns(), e.c.Down().IsSet())
	}
	if st.ProtocolErrors != hc.proto {
		t.Errorf("ProtocolErrors = %d, want %d", st.ProtocolErrors, hc.proto)
	}
	if st.StrayAcks < hc.stray {
		t.Errorf("StrayAcks = %d, want at least %d", st.StrayAcks, hc.stray)
	}
	logs := e.logs.String()
	if hc.proto > 0 && !strings.Contains(logs, "protocol error") {
		t.Errorf("the protocol error was not logged:\n%s", logs)
	}
	if hc.log != "" && !strings.Contains(logs, hc.log) {
		t.Errorf("the log does not say %q:\n%s", hc.log, logs)
	}
	if hc.after != nil {
		hc.after(t, e)
	}
	if grown := int64(hostileHeap()) - int64(heap0); grown > hostileHeapMax {
		t.Errorf("the live heap grew by %d bytes over the episode, want at most %d", grown, hostileHeapMax)
	}
	t.Logf("%d publications acknowledged, %d broker connections, stats %+v", len(acked), b.Conns(), st)
}

// hostileSend is an act that writes bs to the client in one write on connection 1.
func hostileSend(bs ...[]byte) func(*testing.T, *hostileEnv) {
	return func(t *testing.T, e *hostileEnv) {
		if err := e.b.Conn(1).Send(bytes.Join(bs, nil)); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
}

func TestHostile_BrokerEpisodes(t *testing.T) {
	slowPublish := []byte{0x30, 3, 0, 1, 's'} // qos 0 PUBLISH "s", empty payload: 5 bytes
	for _, hc := range []hostileCase{
		// Framing: the stream cannot be trusted after these.
		{name: "remaining length over 4 bytes", covered: "TestPort_MalformedBrokerPackets",
			act: hostileSend([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}), reset: true, proto: 1},
		{name: "reserved type 0", covered: "TestPort_MalformedBrokerPackets",
			act: hostileSend([]byte{0x00, 0x00}), reset: true, proto: 1},
		{name: "reserved type 15", covered: "TestPort_MalformedBrokerPackets",
			act: hostileSend([]byte{0xf0, 0x00}), reset: true, proto: 1},
		{name: "SUBSCRIBE from the broker",
			act: hostileSend([]byte{0x82, 6, 0, 1, 0, 1, 'a', 0}), reset: true, proto: 1, log: "protocol error in SUBSCRIBE"},
		{name: "UNSUBSCRIBE from the broker",
			act: hostileSend([]byte{0xa2, 5, 0, 1, 0, 1, 'a'}), reset: true, proto: 1, log: "protocol error in UNSUBSCRIBE"},
		{name: "PINGREQ from the broker",
			act: hostileSend([]byte{0xc0, 0}), reset: true, proto: 1, log: "protocol error in PINGREQ"},
		{name: "second CONNACK", covered: "TestDefect_UnexpectedPacketTypeResetsLink",
			act: hostileSend([]byte{0x20, 2, 0, 0}), reset: true, proto: 1},
		{name: "PINGRESP with a body",
			act: hostileSend([]byte{0xd0, 1, 0}), reset: true, proto: 1, log: "protocol error in PINGRESP"},
		{name: "qos 1 PUBLISH with packet id 0",
			act: hostileSend([]byte{0x32, 5, 0, 1, 'a', 0, 0}), reset: true, proto: 1, log: "packet identifier 0"},
		{name: "SUBACK with return code 3",
			act: hostileSend(fbSuback(7, 3)), reset: true, proto: 1, log: "return code 0x3"},
		{name: "incoming qos 2 PUBLISH", covered: "TestDefect_IncomingQoS2IsProtocolError",
			act: hostileSend(fbPublish("q2", []byte("x"), 2, false, false, 9)), reset: true, proto: 1},

		// Transport: the broker goes away in the middle of a packet.
		{name: "truncated after the first byte, then FIN",
			act:   func(t *testing.T, e *hostileEnv) { _ = hostileWrite(e.b.Conn(1), 0, hostileFIN, []byte{0x30}) },
			reset: true, log: "broker closed the connection mid-packet"},
		{name: "truncated in the remaining length, then FIN",
			act:   func(t *testing.T, e *hostileEnv) { _ = hostileWrite(e.b.Conn(1), 0, hostileFIN, []byte{0x30, 0x80}) },
			reset: true, log: "broker closed the connection mid-packet"},
		{name: "truncated in the body, then FIN",
			act: func(t *testing.T, e *hostileEnv) {
				_ = hostileWrite(e.b.Conn(1), 0, hostileFIN, fbPublish("t", []byte("0123456789"), 1, false, false, 5)[:8])
			},
			reset: true, log: "broker closed the connection mid-packet"},
		{name: "RST in the middle of a packet",
			act: func(t *testing.T, e *hostileEnv) {
				_ = hostileWrite(e.b.Conn(1), 0, hostileRST, fbPublish("t", []byte("0123456789"), 1, false, false, 5)[:8])
			},
			reset: true, log: "connection reset by peer"},

		// A broker that trickles one byte per second. ResponseTime bounds the silence inside a packet, not
		// the packet's total time: a gap over it is an outage, a gap under it is not, however long the packet.
		{name: "trickle 1 byte/s with ResponseTime 700ms: outage", covered: "TestClaim36_StallOverResponseTimeIsOutage (gap only)",
			cfg: func(c *Config) { c.ResponseTime = 700 * time.Millisecond },
			act: func(t *testing.T, e *hostileEnv) {
				start := time.Now()
				e.wg.Go(func() { _ = hostileWrite(e.b.Conn(1), time.Second, nil, hostileBytewise(slowPublish)...) })
				down := fbWaitEvent(t, e.c.Down(), 5*time.Second, "Down")
				fbWithin(t, "first trickled byte to outage", down.Sub(start), e.cfg.ResponseTime*9/10, time.Second+e.cfg.ResponseTime)
			},
			after: func(t *testing.T, e *hostileEnv) {
				if n := e.c.Stats().Received; n != 0 {
					t.Errorf("Received = %d: the stalled packet was delivered", n)
				}
			},
			reset: true, log: "packet stalled mid-way"},
		{name: "trickle 1 byte/s with ResponseTime 1.4s: delivered, no outage",
			cfg: func(c *Config) { c.ResponseTime = 1400 * time.Millisecond },
			act: func(t *testing.T, e *hostileEnv) {
				start := time.Now()
				if err := hostileWrite(e.b.Conn(1), time.Second, nil, hostileBytewise(slowPublish)...); err != nil {
					t.Fatalf("trickle: %v", err)
				}
				fbEventually(t, 2*time.Second, "the trickled PUBLISH delivered", func() bool { return e.c.Stats().Received == 1 })
				if took := time.Since(start); took < 2*e.cfg.ResponseTime {
					t.Errorf("the trickled packet took %v, want over twice ResponseTime", took)
				}
			}},

		// Acknowledgements that match nothing, or refuse: the link stays up.
		{name: "stray PUBACK, SUBACK and UNSUBACK", covered: "TestClaim18_StrayAcksIgnoredNoReconnect",
			act:   hostileSend(fbAck(typePuback, 60001), fbSuback(60002, 1), fbSuback(60003, 0x80), fbAck(typeUnsuback, 60004)),
			stray: 4},
		{name: "SUBACK 0x80", covered: "TestDefect_SubackRefusalReturnsError",
			act: func(t *testing.T, e *hostileEnv) {
				e.b.SetSubackCode(0x80)
				if err := e.c.Subscribe(fbCtx(t, 5*time.Second), "hostile/refused", 1); !errors.Is(err, ErrSubscriptionRefused) {
					t.Errorf("Subscribe = %v, want ErrSubscriptionRefused", err)
				}
			}},
		{name: "SUBACK with two return codes for one filter",
			act: func(t *testing.T, e *hostileEnv) {
				e.b.SetHook(func(c *fbConn, p fbPacket) bool {
					if p.Type != typeSubscribe {
						return false
					}
					_ = c.Send(fbSuback(p.ID, 1, 1))
					return true
				})
				err := e.c.Subscribe(fbCtx(t, 5*time.Second), "hostile/two", 1)
				var pe *ProtocolError
				if !errors.Is(err, ErrProtocol) || !errors.As(err, &pe) {
					t.Errorf("Subscribe = %v, want a *ProtocolError", err)
				}
			},
			proto: 1, log: "protocol error in SUBACK"},

		// Reconnections that meet a hostile broker.
		{name: "garbage CONNACKs on reconnection: retried with backoff", covered: "TestPort_MalformedBrokerPackets (once)",
			cfg: func(c *Config) { c.ReconnectMin, c.ReconnectMax = 40*time.Millisecond, time.Second },
			act: func(t *testing.T, e *hostileEnv) {
				garbage := [][]byte{
					{0x40, 2, 0, 1}, // a PUBACK
					[]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"), // not an MQTT server at all
					{0x20, 0x80, 0x80, 0x80, 0x80, 0x01},                            // 5-byte remaining length
					{0x20, 2, 0x02, 0},                                              // reserved acknowledge flag
				}
				e.b.SetConnackFunc(func(conn int, _ fbPacket) []byte {
					if k := conn - 2; k >= 0 && k < len(garbage) {
						return garbage[k]
					}
					return []byte{0x20, 2, 0, 0}
				})
				e.b.Conn(1).Close()
			},
			after: func(t *testing.T, e *hostileEnv) {
				hostileCheckBackoff(t, e, 4)
			},
			reset: true, proto: 4, log: "reconnect attempt failed"},
		{name: "no CONNACK on reconnection: ErrTimeout, retried",
			act: func(t *testing.T, e *hostileEnv) {
				e.b.SetConnackFunc(func(conn int, _ fbPacket) []byte {
					if conn == 2 || conn == 3 {
						return nil // CONNECT read, never answered, connection left open
					}
					return []byte{0x20, 2, 0, 0}
				})
				e.b.Conn(1).Close()
			},
			after: func(t *testing.T, e *hostileEnv) {
				_, ts := e.d.Calls()
				if len(ts) < 4 {
					t.Fatalf("%d dials, want 4", len(ts))
				}
				rt := e.cfg.ResponseTime
				fbWithin(t, "silent attempt 1 to attempt 2", ts[2].Sub(ts[1]), rt, rt+e.cfg.ReconnectMin+300*time.Millisecond)
				fbWithin(t, "silent attempt 2 to attempt 3", ts[3].Sub(ts[2]), rt, rt+2*e.cfg.ReconnectMin+300*time.Millisecond)
				for _, n := range []int{2, 3} {
					select {
					case <-e.b.Conn(n).Ended():
					case <-time.After(2 * time.Second):
						t.Errorf("the client did not close the unanswered connection %d", n)
					}
				}
				if st := e.c.Stats(); st.FailedAttempts != 2 {
					t.Errorf("FailedAttempts = %d, want 2", st.FailedAttempts)
				}
			},
			reset: true, log: "no response from the broker within ResponseTime"},
	} {
		name := hc.name
		if hc.covered != "" {
			name += " (extends " + strings.Fields(hc.covered)[0] + ")"
		}
		t.Run(name, func(t *testing.T) { runHostile(t, hc) })
	}
}

// hostileCheckBackoff checks the dials after connection 1's loss: the first at once, then each failed
// attempt k followed by a wait drawn from [D/2, D), D = ReconnectMin·2^(k−1) capped at ReconnectMax.
func hostileCheckBackoff(t *testing.T, e *hostileEnv, failed int) {
	t.Helper()
	_, ts := e.d.Calls()
	if len(ts) < failed+2 {
		t.Fatalf("%d dials, want %d", len(ts), failed+2)
	}
	if st := e.c.Stats(); st.FailedAttempts != uint64(failed) {
		t.Errorf("FailedAttempts = %d, want %d", st.FailedAttempts, failed)
	}
	for k := 1; k <= failed; k++ {
		full := min(e.cfg.ReconnectMin<<(k-1), e.cfg.ReconnectMax)
		fbWithin(t, fmt.Sprintf("gap after failed attempt %d", k), ts[k+1].Sub(ts[k]), full/2, full+150*time.Millisecond)
	}
}

// --- Oversized packets: refused before allocating ---

func TestHostile_OversizeLengthRejectedBeforeAllocating(t *testing.T) {
	announce := []byte{0x30, 0xff, 0xff, 0xff, 0x7f} // PUBLISH, remaining length 268,435,455, no body

	t.Run("readPacket", func(t *testing.T) {
		const runs = 100
		before := hostileTotalAlloc()
		for range runs {
			_, _, err := readPacket(bufio.NewReaderSize(bytes.NewReader(announce), 16), defaultMaxPacketSize, nil)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("readPacket = %v, want a *ProtocolError", err)
			}
		}
		if per := (hostileTotalAlloc() - before) / runs; per > 4<<10 {
			t.Errorf("%d bytes allocated per refused header, want at most 4 KiB", per)
		}
	})

	// Through a connection, with the publisher running; the client's 2 MiB default MaxPacketSize applies.
	runHostile(t, hostileCase{
		name: "268 MB announced",
		act: func(t *testing.T, e *hostileEnv) {
			before := hostileTotalAlloc()
			if err := hostileWrite(e.b.Conn(1), 0, hostileHoldUntil(e.c.Down()), announce); err != nil {
				t.Fatal(err)
			}
			fbWaitEvent(t, e.c.Down(), 5*time.Second, "Down")
			// Everything the process allocated meanwhile, the publisher included, is far below even MaxPacketSize.
			grown := hostileTotalAlloc() - before
			if grown > defaultMaxPacketSize/2 {
				t.Errorf("%d bytes allocated between the header and the outage, want under %d", grown, defaultMaxPacketSize/2)
			}
			t.Logf("%d bytes allocated by the whole process between the 268 MB header and the outage", grown)
		},
		reset: true, proto: 1, log: "remaining length 268435455 over the limit of 2097151 bytes",
	})
}

// Contrast, so the measure above is known to see an allocation: a length within MaxPacketSize is allocated
// when the header arrives (memory is bounded by MaxPacketSize, not by what the broker sends), and a body
// that then never comes is a mid-packet stall.
func TestHostile_LengthWithinMaxPacketSizeAllocatedThenStalls(t *testing.T) {
	const size = 8 << 20
	runHostile(t, hostileCase{
		name: "8 MiB announced, body withheld",
		cfg:  func(c *Config) { c.MaxPacketSize = size },
		act: func(t *testing.T, e *hostileEnv) {
			before := hostileTotalAlloc()
			start := time.Now()
			// Nothing else is written until the outage: PUBACKs would count as body bytes and keep it alive.
			if err := hostileWrite(e.b.Conn(1), 0, hostileHoldUntil(e.c.Down()), appendVarint([]byte{0x30}, size)); err != nil {
				t.Fatal(err)
			}
			down := fbWaitEvent(t, e.c.Down(), 5*time.Second, "Down")
			fbWithin(t, "header to outage", down.Sub(start), e.cfg.ResponseTime*9/10, 2*e.cfg.ResponseTime+200*time.Millisecond)
			grown := hostileTotalAlloc() - before
			if grown < size {
				t.Errorf("%d bytes allocated, want at least the announced %d", grown, size)
			}
			t.Logf("%d bytes allocated between the 8 MiB header and the outage", grown)
		},
		reset: true, log: "packet stalled mid-way",
	})
}

// --- The first connection against a hostile broker: a clear error, no retry ---

func TestHostile_FirstConnect(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script func(b *fakeBroker)
		check  func(t *testing.T, err error)
		proto  uint64
	}{
		{"never answers CONNECT",
			func(b *fakeBroker) { b.SetConnackFunc(func(int, fbPacket) []byte { return nil }) },
			func(t *testing.T, err error) {
				if !errors.Is(err, ErrTimeout) {
					t.Errorf("Connect = %v, want ErrTimeout", err)
				}
			}, 0},
		{"FIN instead of CONNACK",
			func(b *fakeBroker) {
				b.SetHook(func(c *fbConn, p fbPacket) bool { c.Close(); return true })
			},
			func(t *testing.T, err error) {
				if !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "before CONNACK") {
					t.Errorf("Connect = %v, want EOF before CONNACK", err)
				}
			}, 0},
		{"RST instead of CONNACK",
			func(b *fakeBroker) {
				b.SetHook(func(c *fbConn, p fbPacket) bool { _ = hostileWrite(c, 0, hostileRST); return true })
			},
			func(t *testing.T, err error) {
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("Connect = %v, want ECONNRESET", err)
				}
			}, 0},
		{"truncated CONNACK, then FIN",
			func(b *fakeBroker) {
				b.SetHook(func(c *fbConn, p fbPacket) bool { _ = hostileWrite(c, 0, hostileFIN, []byte{0x20, 2, 0}); return true })
			},
			func(t *testing.T, err error) {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("Connect = %v, want io.ErrUnexpectedEOF", err)
				}
			}, 0},
		{"an HTTP server",
			func(b *fakeBroker) {
				b.SetConnackFunc(func(int, fbPacket) []byte { return []byte("HTTP/1.1 400 Bad Request\r\n\r\n") })
			},
			func(t *testing.T, err error) {
				var pe *ProtocolError
				if !errors.As(err, &pe) || !strings.Contains(err.Error(), "over the limit") {
					t.Errorf("Connect = %v, want a *ProtocolError about the length", err)
				}
			}, 1},
		{"a TLS alert record (a TLS-only listener)",
			func(b *fakeBroker) {
				b.SetConnackFunc(func(int, fbPacket) []byte { return []byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46} })
			},
			func(t *testing.T, err error) {
				var pe *ProtocolError
				if !errors.As(err, &pe) {
					t.Errorf("Connect = %v, want a *ProtocolError", err)
				}
			}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fbNew(t)
			tc.script(b)
			cfg := fbConfig(b)
			cfg.ResponseTime = 500 * time.Millisecond
			c := fbClient(t, cfg)
			start := time.Now()
			err := c.Connect(fbCtx(t, 10*time.Second))
			took := time.Since(start)
			if err == nil {
				t.Fatal("Connect succeeded")
			}
			tc.check(t, err)
			if errors.Is(err, ErrTimeout) {
				fbWithin(t, "Connect against a silent broker", took, cfg.ResponseTime*9/10, cfg.ResponseTime+300*time.Millisecond)
			} else if took > cfg.ResponseTime {
				t.Errorf("Connect took %v: a broken answer must fail at once, not at ResponseTime", took)
			}
			select {
			case <-b.Conn(1).Ended():
			case <-time.After(2 * time.Second):
				t.Error("the client did not close the connection")
			}
			time.Sleep(3 * cfg.ReconnectMax) // a retry would have come by now
			if n := b.Conns(); n != 1 {
				t.Errorf("%d connections: a failed first Connect must not retry", n)
			}
			if st := c.Stats(); st.ProtocolErrors != tc.proto || st.Connects != 0 || c.IsConnected() {
				t.Errorf("ProtocolErrors %d (want %d), Connects %d, connected %t", st.ProtocolErrors, tc.proto, st.Connects, c.IsConnected())
			}
			t.Logf("Connect = %v after %v", err, took.Round(time.Millisecond))
		})
	}
}

// --- Credentials are never logged nor put in errors ---

func TestHostile_CredentialsNeverLogged(t *testing.T) {
	const user, password = "hostileUser4f2c", "pw7Qx3neverLogMe9"
	secrets := []string{user, password}
	for _, s := range []string{user, password} {
		secrets = append(secrets, hex.EncodeToString([]byte(s)), base64.StdEncoding.EncodeToString([]byte(s)))
	}
	b := fbNew(t)
	logs := &fbLogBuffer{}
	cfg := fbConfig(b)
	cfg.User, cfg.Password = user, password
	cfg.Logger = fbDebugLogger(logs)
	// Connection 2 is refused (bad user name or password), connection 3 accepted.
	b.SetConnackFunc(func(conn int, _ fbPacket) []byte {
		if conn == 2 {
			return []byte{0x20, 2, 0, 4}
		}
		return []byte{0x20, 2, 0, 0}
	})
	c := fbConnect(t, cfg)
	if err := c.Publish(fbCtx(t, 5*time.Second), "cred", []byte("x"), false, 1); err != nil {
		t.Fatal(err)
	}
	c.Up().Clear()
	b.Conn(1).Close() // an outage, a refused reconnection, then a good one
	fbWaitEvent(t, c.Up(), 5*time.Second, "Up")
	c.Down().Clear()
	_ = b.Conn(3).Send([]byte{0xf0, 0}) // a protocol error, logged with the packet
	fbWaitEvent(t, c.Down(), 5*time.Second, "Down")
	fbWaitEvent(t, c.Up(), 5*time.Second, "Up")
	if err := c.Disconnect(fbCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}

	// Errors returned to the application: a refused first Connect, a password without a user name.
	var errs []error
	b.SetConnackFunc(func(int, fbPacket) []byte { return []byte{0x20, 2, 0, 4} })
	refused := fbClient(t, cfg)
	err := refused.Connect(fbCtx(t, 5*time.Second))
	var ce *ConnackError
	if !errors.As(err, &ce) || ce.Code != 4 {
		t.Errorf("Connect = %v, want CONNACK code 4", err)
	}
	errs = append(errs, err)
	noUser := cfg
	noUser.User = ""
	fbClient(t, noUser) // logs a warning about the password it will not send

	// The credentials did go to the broker, so their absence from the log means something.
	connects := b.Filter(fbType(typeConnect))
	if len(connects) < 4 || connects[0].User != user || connects[0].Password != password {
		t.Fatalf("the broker did not receive the credentials: %v", connects)
	}
	text := logs.String()
	for _, want := range []string{"mqttas: connected", "mqttas: outage", "reconnect attempt failed", "bad user name or password",
		"protocol error", "Password without User"} {
		if !strings.Contains(text, want) {
			t.Errorf("the debug log lacks %q, so it does not cover the paths it should:\n%s", want, text)
		}
	}
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("the debug log contains a credential (%q):\n%s", s, text)
		}
		for _, err := range errs {
			if strings.Contains(err.Error(), s) {
				t.Errorf("an error contains a credential (%q): %v", s, err)
			}
		}
	}
}

// hostileSYNDropper listens on 127.0.0.1 with a backlog of one and fills it, so the kernel drops every
// further SYN: a dial hangs as it does towards a host that has vanished. It returns the port.
func hostileSYNDropper(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	filler, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)), time.Second)
	if err != nil {
		t.Fatalf("filling the backlog: %v", err)
	}
	t.Cleanup(func() { _ = filler.Close() })
	return port
}

// A broker host that drops SYNs (gone, or firewalled): the first Connect's dial hangs, and Connect returns
// ErrTimeout after ResponseTime, never a bare i/o timeout, and does not retry.
func TestHostile_FirstConnectSYNsDropped(t *testing.T) {
	fbLeakCheck(t)
	port := hostileSYNDropper(t)
	for i := range 5 { // the classification used to race ctx's timer against the socket's deadline
		cfg := Config{}
		cfg.Server, cfg.Port, cfg.ClientID = "127.0.0.1", port, fmt.Sprintf("syn-%d", i)
		cfg.ResponseTime = 300 * time.Millisecond
		c := fbClient(t, cfg)
		start := time.Now()
		err := c.Connect(fbCtx(t, 5*time.Second))
		took := time.Since(start)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("attempt %d: Connect = %v, want ErrTimeout", i, err)
		}
		fbWithin(t, "Connect towards a host that drops SYNs", took, cfg.ResponseTime*9/10, cfg.ResponseTime+300*time.Millisecond)
		if st := c.Stats(); st.Connects+st.FailedAttempts != 0 {
			t.Errorf("stats %+v after a failed first Connect", st)
		}
	}
}
