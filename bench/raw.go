package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/mqttas/mqttas-go/internal/mqttwire"
)

// RawName names the floor in the qos 1 sequential measurement: a publisher and a subscriber that are no
// client library at all, each one goroutine doing blocking reads and writes on its socket. What a client
// adds to the round trip is its latency minus the floor's.
const RawName = "raw socket (floor)"

// RawReaderName names the second floor: the raw publisher with its reads on a goroutine of their own that
// hands each PUBACK to the publishing goroutine over a channel. That handoff is the least any client pays
// that reads while its caller waits (for pings and incoming messages, as every non-blocking client must);
// its distance from RawName is what the handoff costs on the machine.
const RawReaderName = "raw socket + reader goroutine"

// rawConn is a minimal synchronous MQTT 3.1.1 connection: no keepalive, no retries, no goroutines.
type rawConn struct {
	c   net.Conn
	br  *bufio.Reader
	buf []byte
}

func rawDial(ctx context.Context, addr, id string) (*rawConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &rawConn{c: c, br: bufio.NewReaderSize(c, 32<<10)}
	// Clean session, keepalive 0 (no pings needed).
	if err := r.write(mqttwire.Connect{ClientID: id, CleanSession: true}.Packet()); err != nil {
		c.Close()
		return nil, err
	}
	p, err := r.read()
	if err == nil {
		var ack mqttwire.Connack
		if ack, err = p.Connack(); err == nil && ack.Code != 0 {
			err = fmt.Errorf("return code %d", ack.Code)
		}
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("raw connect: %w", err)
	}
	return r, nil
}

// write sends one packet.
func (r *rawConn) write(p mqttwire.Packet) error {
	r.buf = p.Append(r.buf[:0])
	_, err := r.c.Write(r.buf)
	return err
}

// read returns the next packet (its body valid until the next read or write).
func (r *rawConn) read() (mqttwire.Packet, error) {
	p, err := mqttwire.ReadInto(r.br, r.buf)
	if err == nil && cap(p.Body) > cap(r.buf) {
		r.buf = p.Body[:0] // keep the larger buffer
	}
	return p, err
}

func (r *rawConn) subscribe(topic string) error {
	if err := r.write(mqttwire.Subscribe{ID: 1, Filters: []mqttwire.Subscription{{Filter: topic, QoS: 1}}}.Packet()); err != nil {
		return err
	}
	p, err := r.read()
	if err == nil {
		var ack mqttwire.Suback
		if ack, err = p.Suback(); err == nil && (len(ack.Codes) != 1 || ack.Codes[0] > 1) {
			err = fmt.Errorf("return codes % x", ack.Codes)
		}
	}
	if err != nil {
		return fmt.Errorf("raw subscribe: %w", err)
	}
	return nil
}

// publish1 sends a qos 1 PUBLISH and reads until its PUBACK.
func (r *rawConn) publish1(topic string, payload []byte, id uint16) error {
	if err := r.write(mqttwire.Publish{Topic: topic, QoS: 1, ID: id, Payload: payload}.Packet()); err != nil {
		return err
	}
	for {
		p, err := r.read()
		if err != nil {
			return err
		}
		if got, err := p.Ack(); p.Type == mqttwire.PUBACK && err == nil && got == id {
			return nil
		}
	}
}

// serve reads PUBLISH packets, hands their payloads to onMessage and acknowledges qos 1 ones, until the
// connection fails.
func (r *rawConn) serve(onMessage func([]byte)) {
	var ack []byte
	for {
		p, err := r.read()
		if err != nil {
			return
		}
		m, err := p.Publish()
		if err != nil {
			continue
		}
		if m.QoS > 0 {
			ack = mqttwire.Ack(mqttwire.PUBACK, m.ID).Append(ack[:0])
			if _, err := r.c.Write(ack); err != nil {
				return
			}
		}
		onMessage(m.Payload)
	}
}

// ackReader reads r's packets on a goroutine of its own from now on and sends the id of every PUBACK on
// the returned channel, which is closed when the connection fails. r's writes stay the caller's.
func (r *rawConn) ackReader() <-chan uint16 {
	rd := &rawConn{c: r.c, br: r.br} // a buffer of its own: the writer keeps r.buf
	acks := make(chan uint16, 1)
	go func() {
		defer close(acks)
		for {
			p, err := rd.read()
			if err != nil {
				return
			}
			if id, err := p.Ack(); p.Type == mqttwire.PUBACK && err == nil {
				acks <- id
			}
		}
	}()
	return acks
}

// publish1Via sends a qos 1 PUBLISH and waits for its PUBACK from acks (see ackReader).
func (r *rawConn) publish1Via(acks <-chan uint16, topic string, payload []byte, id uint16) error {
	if err := r.write(mqttwire.Publish{Topic: topic, QoS: 1, ID: id, Payload: payload}.Packet()); err != nil {
		return err
	}
	for got := range acks {
		if got == id {
			return nil
		}
	}
	return errors.New("connection lost before the PUBACK")
}

// runRawQoS1Seq is runQoS1Seq for the raw floor; with readerGoroutine, for RawReaderName's.
func runRawQoS1Seq(ctx context.Context, addr string, n, size int, tag string, brokerPID int, readerGoroutine bool) (flowResult, error) {
	topic := "bench/q1s/" + tag
	rcv := newReceiver(n)
	sub, err := rawDial(ctx, addr, "sub-"+tag)
	if err != nil {
		return flowResult{}, err
	}
	defer sub.c.Close()
	if err := sub.subscribe(topic); err != nil {
		return flowResult{}, err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		sub.serve(rcv.onMessage)
	}()
	defer func() { sub.c.Close(); <-served }()
	pub, err := rawDial(ctx, addr, "pub-"+tag)
	if err != nil {
		return flowResult{}, err
	}
	defer pub.c.Close()
	stop := context.AfterFunc(ctx, func() { pub.c.SetDeadline(time.Now()) })
	defer stop()
	publish := pub.publish1
	if readerGoroutine {
		acks := pub.ackReader()
		defer func() {
			pub.c.Close()
			for range acks { // the reader has ended once its channel is closed
			}
		}()
		publish = func(topic string, payload []byte, id uint16) error { return pub.publish1Via(acks, topic, payload, id) }
	}
	payloads := makePayloads(n, size)
	lat := make([]time.Duration, n)
	runtime.GC()
	r0, w0 := sysCalls()
	meter := startCPU(brokerPID)
	start := time.Now()
	for i := range n {
		t := time.Now()
		if err := publish(topic, payloads[i], uint16(i%65535+1)); err != nil {
			return flowResult{}, fmt.Errorf("raw publish %d: %w", i, err)
		}
		lat[i] = time.Since(t)
	}
	pubDur := time.Since(start)
	rcv.wait(ctx, quietAfter)
	f := rcv.result(n, start, pubDur)
	f.countSyscalls(r0, w0)
	f.setCPU(meter.stop())
	f.Latencies = lat
	return f, ctx.Err()
}
