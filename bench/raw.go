package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"time"
)

// RawName names the floor in the qos 1 sequential measurement: a publisher and a subscriber that are no
// client library at all, each one goroutine doing blocking reads and writes on its socket. What a client
// adds to the round trip is its latency minus the floor's.
const RawName = "raw socket (floor)"

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
	// CONNECT: protocol "MQTT" level 4, clean session, keepalive 0 (no pings needed).
	var body []byte
	body = appendString(body, "MQTT")
	body = append(body, 4, 0x02, 0, 0)
	body = appendString(body, id)
	if err := r.write(0x10, body); err != nil {
		c.Close()
		return nil, err
	}
	typ, b, err := r.read()
	if err != nil || typ != 0x20 || len(b) != 2 || b[1] != 0 {
		c.Close()
		return nil, fmt.Errorf("raw connect: type %#x body %v: %v", typ, b, err)
	}
	return r, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendLength(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// write sends one packet with the given first byte and body.
func (r *rawConn) write(first byte, body []byte) error {
	r.buf = append(r.buf[:0], first)
	r.buf = appendLength(r.buf, len(body))
	r.buf = append(r.buf, body...)
	_, err := r.c.Write(r.buf)
	return err
}

// read returns the next packet's first byte and body (valid until the next read).
func (r *rawConn) read() (byte, []byte, error) {
	first, err := r.br.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		b, err := r.br.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		if mult <<= 7; i == 3 {
			return 0, nil, errors.New("raw: bad remaining length")
		}
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	body := r.buf[:n]
	_, err = io.ReadFull(r.br, body)
	return first, body, err
}

func (r *rawConn) subscribe(topic string) error {
	body := binary.BigEndian.AppendUint16(nil, 1)
	body = appendString(body, topic)
	body = append(body, 1)
	if err := r.write(0x82, body); err != nil {
		return err
	}
	typ, b, err := r.read()
	if err != nil || typ != 0x90 || len(b) != 3 || b[2] > 1 {
		return fmt.Errorf("raw subscribe: type %#x body %v: %v", typ, b, err)
	}
	return nil
}

// publish1 sends a qos 1 PUBLISH and reads until its PUBACK.
func (r *rawConn) publish1(topic string, payload []byte, id uint16) error {
	body := make([]byte, 0, 4+len(topic)+len(payload))
	body = appendString(body, topic)
	body = binary.BigEndian.AppendUint16(body, id)
	body = append(body, payload...)
	if err := r.write(0x32, body); err != nil {
		return err
	}
	for {
		typ, b, err := r.read()
		if err != nil {
			return err
		}
		if typ == 0x40 && len(b) == 2 && binary.BigEndian.Uint16(b) == id {
			return nil
		}
	}
}

// serve reads PUBLISH packets, hands their payloads to onMessage and acknowledges qos 1 ones, until the
// connection fails.
func (r *rawConn) serve(onMessage func([]byte)) {
	ack := make([]byte, 4)
	for {
		first, b, err := r.read()
		if err != nil {
			return
		}
		if first>>4 != 3 || len(b) < 2 {
			continue
		}
		tl := int(binary.BigEndian.Uint16(b))
		rest := b[2+tl:]
		if qos := first >> 1 & 3; qos > 0 {
			id := rest[:2]
			rest = rest[2:]
			ack[0], ack[1], ack[2], ack[3] = 0x40, 2, id[0], id[1]
			if _, err := r.c.Write(ack); err != nil {
				return
			}
		}
		onMessage(rest)
	}
}

// runRawQoS1Seq is runQoS1Seq for the raw floor.
func runRawQoS1Seq(ctx context.Context, addr string, n, size int, tag string, brokerPID int) (flowResult, error) {
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
	payloads := makePayloads(n, size)
	lat := make([]time.Duration, n)
	runtime.GC()
	r0, w0 := sysCalls()
	meter := startCPU(brokerPID)
	start := time.Now()
	for i := range n {
		t := time.Now()
		if err := pub.publish1(topic, payloads[i], uint16(i%65535+1)); err != nil {
			return flowResult{}, fmt.Errorf("raw publish %d: %w", i, err)
		}
		lat[i] = time.Since(t)
	}
	pubDur := time.Since(start)
	rcv.wait(ctx, quietAfter)
	f := rcv.result(n, start, pubDur)
	f.countSyscalls(r0, w0)
	f.ClientCPU, f.BrokerCPU = meter.stop()
	f.Latencies = lat
	return f, ctx.Err()
}
