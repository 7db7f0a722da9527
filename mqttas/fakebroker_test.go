package mqttas

// A scripted, in-process fake MQTT 3.1.1 broker for the claim and defect tests, plus the other fakes they
// share: a network Link, a fault-injecting Dial, a local DNS responder and a goroutine-leak check.
//
// The broker listens on 127.0.0.1:0, frames every packet the client sends by its remaining length, decodes
// it strictly (a partial or garbled packet shows up as a recorded decode error) and records it with its
// connection number and arrival time. By default it answers like a real broker: CONNACK 0, PUBACK, SUBACK
// granting the requested qos, UNSUBACK, PINGRESP, and it closes the connection after DISCONNECT. Tests
// change that with the setters, or take over completely with a hook.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// fbPacket is one packet the broker received from the client.
type fbPacket struct {
	Index int       // position in the broker's record
	Conn  int       // connection number, from 1
	At    time.Time // when the whole packet had arrived
	Raw   []byte    // the whole packet, fixed header included
	Err   string    // why the packet is malformed; "" when it decoded cleanly

	Type   byte
	Flags  byte
	DUP    bool
	QoS    byte
	Retain bool
	ID     uint16 // PUBLISH qos 1, PUBACK, SUBSCRIBE, UNSUBSCRIBE

	Topic   string   // PUBLISH; the first filter of SUBSCRIBE and UNSUBSCRIBE
	Payload []byte   // PUBLISH
	Filters []string // SUBSCRIBE, UNSUBSCRIBE
	ReqQoS  []byte   // SUBSCRIBE

	// CONNECT
	ProtoName   string
	ProtoLevel  byte
	ConnFlags   byte
	Clean       bool
	KeepAlive   uint16
	ClientID    string
	WillFlag    bool
	WillQoS     byte
	WillRetain  bool
	WillTopic   string
	WillPayload []byte
	UserFlag    bool
	PassFlag    bool
	User        string
	Password    string
}

func (p fbPacket) String() string {
	s := fmt.Sprintf("#%d conn%d %s", p.Index, p.Conn, typeName(p.Type))
	switch p.Type {
	case typePublish:
		s += fmt.Sprintf("(id=%d qos=%d dup=%t retain=%t topic=%q len=%d)", p.ID, p.QoS, p.DUP, p.Retain, p.Topic, len(p.Payload))
	case typeConnect:
		s += fmt.Sprintf("(clean=%t ka=%d id=%q)", p.Clean, p.KeepAlive, p.ClientID)
	case typePuback, typeSubscribe, typeUnsubscribe:
		s += fmt.Sprintf("(id=%d)", p.ID)
	}
	if p.Err != "" {
		s += " MALFORMED: " + p.Err
	}
	return s
}

// fbSent is one write the broker made.
type fbSent struct {
	Conn  int
	At    time.Time // when the write began (the client cannot have read it earlier)
	Bytes []byte

	failed bool // the write failed: Sent leaves it out
}

// fbHook sees every packet before the automatic answers; returning true suppresses them.
type fbHook func(c *fbConn, p fbPacket) bool

type fakeBroker struct {
	t    testing.TB
	ln   net.Listener
	done chan struct{}
	wg   sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	conns     []*fbConn
	packets   []fbPacket
	sent      []*fbSent
	changed   chan struct{} // closed and replaced whenever anything is recorded
	refuse    bool          // accept (and count) connections, then close them at once
	silent    bool          // read and discard, never answer
	code      byte          // CONNACK return code
	sp        bool          // CONNACK session present
	connackF  func(conn int, p fbPacket) []byte
	connDly   time.Duration
	puback    bool
	suback    bool
	unsuback  bool
	pingresp  bool
	ackDly    time.Duration
	subCode   int // SUBACK return code; -1 grants the requested qos
	discClose bool
	hook      fbHook
}

// fbConn is one accepted connection.
type fbConn struct {
	b      *fakeBroker
	n      int
	conn   net.Conn
	opened time.Time
	silent atomic.Bool
	wmu    sync.Mutex
	ended  chan struct{} // closed when the reader has stopped (EOF, error or Close)
	endAt  atomic.Int64  // unix nanos when the reader stopped
}

// newFakeBroker starts a broker; t.Cleanup closes it.
func newFakeBroker(t testing.TB) *fakeBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fake broker: listen: %v", err)
	}
	return newFakeBrokerOn(t, ln)
}

// newFakeBrokerOn starts a broker on ln (one in another network namespace, say); t.Cleanup closes it.
func newFakeBrokerOn(t testing.TB, ln net.Listener) *fakeBroker {
	t.Helper()
	b := &fakeBroker{
		t: t, ln: ln, done: make(chan struct{}), changed: make(chan struct{}),
		puback: true, suback: true, unsuback: true, pingresp: true, subCode: -1, discClose: true,
	}
	b.wg.Add(1)
	go b.acceptLoop()
	t.Cleanup(b.Close)
	return b
}

// Port is the port the broker listens on.
func (b *fakeBroker) Port() int { return b.ln.Addr().(*net.TCPAddr).Port }

// Addr is the broker's address, host:port.
func (b *fakeBroker) Addr() string { return b.ln.Addr().String() }

// Close stops the broker: no goroutine of it is left when Close returns.
func (b *fakeBroker) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	close(b.done)
	conns := append([]*fbConn(nil), b.conns...)
	b.mu.Unlock()
	_ = b.ln.Close()
	for _, c := range conns {
		_ = c.conn.Close()
	}
	b.wg.Wait()
}

// notifyLocked wakes every waiter. b.mu must be held.
func (b *fakeBroker) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *fakeBroker) acceptLoop() {
	defer b.wg.Done()
	for {
		conn, err := b.ln.Accept()
		if err != nil {
			return // the listener was closed
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			_ = conn.Close()
			return
		}
		c := &fbConn{b: b, n: len(b.conns) + 1, conn: conn, opened: time.Now(), ended: make(chan struct{})}
		b.conns = append(b.conns, c)
		refuse := b.refuse
		b.notifyLocked()
		b.mu.Unlock()
		if refuse {
			_ = conn.Close()
			c.markEnded()
			continue
		}
		b.wg.Add(1)
		go c.readLoop()
	}
}

func (c *fbConn) markEnded() {
	c.endAt.Store(time.Now().UnixNano())
	close(c.ended)
	c.b.mu.Lock()
	c.b.notifyLocked()
	c.b.mu.Unlock()
}

// readLoop frames, records and answers packets until the connection ends.
func (c *fbConn) readLoop() {
	b := c.b
	defer b.wg.Done()
	defer c.markEnded()
	defer c.conn.Close()
	r := bufio.NewReader(c.conn)
	for {
		first, err := r.ReadByte()
		if err != nil {
			return
		}
		raw := []byte{first}
		length, mult, ok := 0, 1, false
		for i := 0; i < 4; i++ {
			d, err := r.ReadByte()
			if err != nil {
				return
			}
			raw = append(raw, d)
			length += int(d&0x7f) * mult
			mult <<= 7
			if d&0x80 == 0 {
				ok = true
				break
			}
		}
		if !ok || length > 8<<20 {
			b.record(fbPacket{Conn: c.n, At: time.Now(), Raw: raw, Type: first >> 4, Err: "bad remaining length"})
			return
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		p := decodeClientPacket(first, body)
		p.Conn, p.At, p.Raw = c.n, time.Now(), append(raw, body...)
		p = b.record(p)
		b.answer(c, p)
	}
}

func (b *fakeBroker) record(p fbPacket) fbPacket {
	b.mu.Lock()
	defer b.mu.Unlock()
	p.Index = len(b.packets)
	b.packets = append(b.packets, p)
	b.notifyLocked()
	return p
}

// answer applies the script to one received packet.
func (b *fakeBroker) answer(c *fbConn, p fbPacket) {
	b.mu.Lock()
	hook := b.hook
	silent := b.silent || c.silent.Load()
	code, sp, connackF, connDly := b.code, b.sp, b.connackF, b.connDly
	puback, suback, unsuback, pingresp := b.puback, b.suback, b.unsuback, b.pingresp
	ackDly, subCode, discClose := b.ackDly, b.subCode, b.discClose
	b.mu.Unlock()
	if hook != nil && hook(c, p) {
		return
	}
	if silent || p.Err != "" {
		return
	}
	switch p.Type {
	case typeConnect:
		ack := []byte{0x20, 2, 0, code}
		if sp {
			ack[2] = 1
		}
		if connackF != nil {
			ack = connackF(c.n, p)
		}
		if ack != nil {
			c.SendAfter(connDly, ack)
		}
		if connackF == nil && code != 0 {
			c.CloseAfter(connDly)
		}
	case typePublish:
		if p.QoS == 1 && puback {
			c.SendAfter(ackDly, fbAck(typePuback, p.ID))
		}
	case typeSubscribe:
		if suback {
			rc := make([]byte, len(p.ReqQoS))
			for i, q := range p.ReqQoS {
				rc[i] = q
				if subCode >= 0 {
					rc[i] = byte(subCode)
				}
			}
			c.SendAfter(ackDly, fbSuback(p.ID, rc...))
		}
	case typeUnsubscribe:
		if unsuback {
			c.SendAfter(ackDly, fbAck(typeUnsuback, p.ID))
		}
	case typePingreq:
		if pingresp {
			c.SendAfter(0, []byte{0xD0, 0})
		}
	case typeDisconnect:
		if discClose {
			c.Close()
		}
	}
}

// Send writes raw bytes to the client at once. The write is recorded before it begins (and withdrawn if
// it fails): a client can act on the bytes before Write returns, and a test that then asks Sent must
// find them.
func (c *fbConn) Send(bs []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := c.b
	at := time.Now()
	rec := &fbSent{Conn: c.n, At: at, Bytes: append([]byte(nil), bs...)}
	b.mu.Lock()
	b.sent = append(b.sent, rec)
	b.notifyLocked()
	b.mu.Unlock()
	_ = c.conn.SetWriteDeadline(at.Add(5 * time.Second))
	_, err := c.conn.Write(bs)
	if err != nil {
		b.mu.Lock()
		rec.failed = true
		b.mu.Unlock()
	}
	return err
}

// SendAfter writes bs after d (at once when d is 0), unless the broker or the connection ends first.
func (c *fbConn) SendAfter(d time.Duration, bs []byte) {
	if d <= 0 {
		_ = c.Send(bs)
		return
	}
	c.later(d, func() { _ = c.Send(bs) })
}

// CloseAfter closes the connection after d.
func (c *fbConn) CloseAfter(d time.Duration) {
	if d <= 0 {
		c.Close()
		return
	}
	c.later(d, c.Close)
}

func (c *fbConn) later(d time.Duration, f func()) {
	b := c.b
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			f()
		case <-b.done:
		case <-c.ended:
		}
	}()
}

// Close ends the connection: a FIN to the client, then the socket is closed.
func (c *fbConn) Close() {
	if tc, ok := c.conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = c.conn.Close()
}

// Silence makes this connection read and discard without ever answering again (TCP stays open).
func (c *fbConn) Silence() { c.silent.Store(true) }

// Ended returns a channel closed once the connection has ended, and when.
func (c *fbConn) Ended() <-chan struct{} { return c.ended }

func (c *fbConn) EndedAt() time.Time { return time.Unix(0, c.endAt.Load()) }

// --- script setters ---

func (b *fakeBroker) set(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f()
}

// SetConnack sets the CONNACK return code and session-present flag.
func (b *fakeBroker) SetConnack(code byte, sessionPresent bool) {
	b.set(func() { b.code, b.sp = code, sessionPresent })
}

// SetConnackFunc replaces the CONNACK with whatever f returns (nil: no answer, connection left open).
func (b *fakeBroker) SetConnackFunc(f func(conn int, p fbPacket) []byte) {
	b.set(func() { b.connackF = f })
}

// SetConnackDelay delays the CONNACK.
func (b *fakeBroker) SetConnackDelay(d time.Duration) { b.set(func() { b.connDly = d }) }

// SetAutoAcks turns the automatic PUBACK, SUBACK, UNSUBACK and PINGRESP on or off.
func (b *fakeBroker) SetAutoAcks(puback, suback, unsuback, pingresp bool) {
	b.set(func() { b.puback, b.suback, b.unsuback, b.pingresp = puback, suback, unsuback, pingresp })
}

// SetPingresp turns the automatic PINGRESP on or off.
func (b *fakeBroker) SetPingresp(on bool) { b.set(func() { b.pingresp = on }) }

// SetPuback turns the automatic PUBACK on or off.
func (b *fakeBroker) SetPuback(on bool) { b.set(func() { b.puback = on }) }

// SetAckDelay delays PUBACK, SUBACK and UNSUBACK.
func (b *fakeBroker) SetAckDelay(d time.Duration) { b.set(func() { b.ackDly = d }) }

// SetSubackCode makes every SUBACK carry code (-1: grant the requested qos).
func (b *fakeBroker) SetSubackCode(code int) { b.set(func() { b.subCode = code }) }

// SetRefuse makes the broker accept and count new connections but close them at once.
func (b *fakeBroker) SetRefuse(on bool) { b.set(func() { b.refuse = on }) }

// SetSilent makes every connection read and discard without answering.
func (b *fakeBroker) SetSilent(on bool) { b.set(func() { b.silent = on }) }

// SetHook installs a hook that sees every packet first; returning true suppresses the automatic answer.
func (b *fakeBroker) SetHook(h fbHook) { b.set(func() { b.hook = h }) }

// --- inspection ---

// Conns is the number of connections accepted so far (refused ones included).
func (b *fakeBroker) Conns() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// Conn returns connection n (from 1), or nil.
func (b *fakeBroker) Conn(n int) *fbConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n < 1 || n > len(b.conns) {
		return nil
	}
	return b.conns[n-1]
}

// Last returns the latest connection, or nil.
func (b *fakeBroker) Last() *fbConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.conns) == 0 {
		return nil
	}
	return b.conns[len(b.conns)-1]
}

// Packets returns a copy of everything received so far.
func (b *fakeBroker) Packets() []fbPacket {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]fbPacket(nil), b.packets...)
}

// Sent returns a copy of everything the broker wrote.
func (b *fakeBroker) Sent() []fbSent {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]fbSent, 0, len(b.sent))
	for _, r := range b.sent {
		if !r.failed {
			out = append(out, *r)
		}
	}
	return out
}

// Mark is the index the next received packet will get.
func (b *fakeBroker) Mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.packets)
}

// Filter returns the received packets that match every predicate.
func (b *fakeBroker) Filter(preds ...func(fbPacket) bool) []fbPacket {
	var out []fbPacket
	for _, p := range b.Packets() {
		if fbAll(preds...)(p) {
			out = append(out, p)
		}
	}
	return out
}

// Wait blocks until a packet at index from or later matches pred, or ctx ends.
func (b *fakeBroker) Wait(ctx context.Context, from int, pred func(fbPacket) bool) (fbPacket, error) {
	for {
		b.mu.Lock()
		for _, p := range b.packets[min(from, len(b.packets)):] {
			if pred(p) {
				b.mu.Unlock()
				return p, nil
			}
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fbPacket{}, ctx.Err()
		}
	}
}

// WaitCond blocks until cond (called with nothing locked) holds, re-checking whenever the broker records
// something, or until ctx ends.
func (b *fakeBroker) WaitCond(ctx context.Context, cond func() bool) error {
	for {
		b.mu.Lock()
		ch := b.changed
		b.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// MustWait is Wait with a timeout that fails the test.
func (b *fakeBroker) MustWait(t testing.TB, from int, timeout time.Duration, what string, preds ...func(fbPacket) bool) fbPacket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p, err := b.Wait(ctx, from, fbAll(preds...))
	if err != nil {
		t.Fatalf("fake broker: no %s within %v; received:\n%s", what, timeout, b.dump())
	}
	return p
}

// MustWaitConns waits until at least n connections were accepted.
func (b *fakeBroker) MustWaitConns(t testing.TB, n int, timeout time.Duration) *fbConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := b.WaitCond(ctx, func() bool { return b.Conns() >= n }); err != nil {
		t.Fatalf("fake broker: %d connections, want %d within %v", b.Conns(), n, timeout)
	}
	return b.Conn(n)
}

// MustWaitSent waits until the broker has written a packet of type typ on connection conn (0: any).
func (b *fakeBroker) MustWaitSent(t testing.TB, conn int, typ byte, timeout time.Duration) fbSent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var found fbSent
	err := b.WaitCond(ctx, func() bool {
		for _, s := range b.Sent() {
			if (conn == 0 || s.Conn == conn) && len(s.Bytes) > 0 && s.Bytes[0]>>4 == typ {
				found = s
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("fake broker: sent no %s on connection %d within %v", typeName(typ), conn, timeout)
	}
	return found
}

// AssertWellFormed fails the test if any packet the client sent was malformed.
func (b *fakeBroker) AssertWellFormed(t testing.TB) {
	t.Helper()
	for _, p := range b.Packets() {
		if p.Err != "" {
			t.Errorf("fake broker: malformed packet from the client: %v (raw % x)", p, p.Raw[:min(len(p.Raw), 32)])
		}
	}
}

func (b *fakeBroker) dump() string {
	var sb strings.Builder
	for _, p := range b.Packets() {
		sb.WriteString("  " + p.String() + "\n")
	}
	fmt.Fprintf(&sb, "  (%d connections)", b.Conns())
	return sb.String()
}

// --- predicates and packet builders ---

func fbAll(preds ...func(fbPacket) bool) func(fbPacket) bool {
	return func(p fbPacket) bool {
		for _, f := range preds {
			if !f(p) {
				return false
			}
		}
		return true
	}
}

func fbType(t byte) func(fbPacket) bool    { return func(p fbPacket) bool { return p.Type == t } }
func fbOnConn(n int) func(fbPacket) bool   { return func(p fbPacket) bool { return p.Conn == n } }
func fbID(id uint16) func(fbPacket) bool   { return func(p fbPacket) bool { return p.ID == id } }
func fbDUP(dup bool) func(fbPacket) bool   { return func(p fbPacket) bool { return p.DUP == dup } }
func fbTopic(s string) func(fbPacket) bool { return func(p fbPacket) bool { return p.Topic == s } }

// fbAck builds a PUBACK or UNSUBACK.
func fbAck(typ byte, id uint16) []byte { return []byte{typ << 4, 2, byte(id >> 8), byte(id)} }

// fbSuback builds a SUBACK.
func fbSuback(id uint16, codes ...byte) []byte {
	b := []byte{typeSuback << 4, byte(2 + len(codes)), byte(id >> 8), byte(id)}
	return append(b, codes...)
}

// fbPublish builds a PUBLISH for the client.
func fbPublish(topic string, payload []byte, qos byte, retain, dup bool, id uint16) []byte {
	return appendPublish(nil, topic, payload, qos, retain, dup, id)
}

// decodeClientPacket decodes what a client sends, strictly: anything a correct client would not send is
// reported in Err.
func decodeClientPacket(first byte, body []byte) fbPacket {
	p := fbPacket{Type: first >> 4, Flags: first & 0x0f}
	rd := fbReader{b: body}
	fail := func(format string, args ...any) fbPacket {
		p.Err = fmt.Sprintf(format, args...)
		return p
	}
	switch p.Type {
	case typeConnect:
		if p.Flags != 0 {
			return fail("CONNECT flags %#x", p.Flags)
		}
		p.ProtoName = rd.str()
		p.ProtoLevel = rd.u8()
		p.ConnFlags = rd.u8()
		p.KeepAlive = rd.u16()
		p.ClientID = rd.str()
		f := p.ConnFlags
		p.Clean = f&0x02 != 0
		p.WillFlag = f&0x04 != 0
		p.WillQoS = (f >> 3) & 3
		p.WillRetain = f&0x20 != 0
		p.PassFlag = f&0x40 != 0
		p.UserFlag = f&0x80 != 0
		if p.WillFlag {
			p.WillTopic = rd.str()
			p.WillPayload = rd.bytes()
		}
		if p.UserFlag {
			p.User = rd.str()
		}
		if p.PassFlag {
			p.Password = rd.str()
		}
		switch {
		case rd.err != "":
			return fail("CONNECT: %s", rd.err)
		case len(rd.b) != 0:
			return fail("CONNECT: %d bytes left over", len(rd.b))
		case p.ProtoName != "MQTT" || p.ProtoLevel != 4:
			return fail("CONNECT: protocol %q level %d", p.ProtoName, p.ProtoLevel)
		case f&0x01 != 0:
			return fail("CONNECT: reserved flag set")
		case !p.WillFlag && f&0x38 != 0:
			return fail("CONNECT: will qos/retain without a will")
		case p.PassFlag && !p.UserFlag:
			return fail("CONNECT: password flag without user flag")
		}
	case typePublish:
		p.QoS = (p.Flags >> 1) & 3
		p.DUP = p.Flags&8 != 0
		p.Retain = p.Flags&1 != 0
		p.Topic = rd.str()
		if p.QoS > 0 {
			p.ID = rd.u16()
		}
		p.Payload = append([]byte(nil), rd.b...)
		switch {
		case rd.err != "":
			return fail("PUBLISH: %s", rd.err)
		case p.QoS > 1:
			return fail("PUBLISH: qos %d", p.QoS)
		case p.QoS == 0 && p.DUP:
			return fail("PUBLISH: DUP at qos 0")
		case p.QoS == 1 && p.ID == 0:
			return fail("PUBLISH: packet id 0")
		case p.Topic == "" || strings.ContainsAny(p.Topic, "+#") || !utf8.ValidString(p.Topic):
			return fail("PUBLISH: bad topic %q", p.Topic)
		}
	case typePuback:
		p.ID = rd.u16()
		if p.Flags != 0 || len(body) != 2 || p.ID == 0 {
			return fail("PUBACK: flags %#x length %d id %d", p.Flags, len(body), p.ID)
		}
	case typeSubscribe, typeUnsubscribe:
		if p.Flags != 2 {
			return fail("%s flags %#x", typeName(p.Type), p.Flags)
		}
		p.ID = rd.u16()
		for len(rd.b) > 0 && rd.err == "" {
			p.Filters = append(p.Filters, rd.str())
			if p.Type == typeSubscribe {
				p.ReqQoS = append(p.ReqQoS, rd.u8())
			}
		}
		switch {
		case rd.err != "":
			return fail("%s: %s", typeName(p.Type), rd.err)
		case len(p.Filters) == 0 || p.ID == 0:
			return fail("%s: %d filters, id %d", typeName(p.Type), len(p.Filters), p.ID)
		}
		p.Topic = p.Filters[0]
	case typePingreq, typeDisconnect:
		if p.Flags != 0 || len(body) != 0 {
			return fail("%s: flags %#x length %d", typeName(p.Type), p.Flags, len(body))
		}
	default:
		return fail("a client never sends %s", typeName(p.Type))
	}
	return p
}

// fbReader reads MQTT fields, remembering the first error.
type fbReader struct {
	b   []byte
	err string
}

func (r *fbReader) take(n int) []byte {
	if r.err != "" {
		return nil
	}
	if len(r.b) < n {
		r.err = fmt.Sprintf("need %d bytes, have %d", n, len(r.b))
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *fbReader) u8() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *fbReader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *fbReader) bytes() []byte {
	n := r.u16()
	return append([]byte(nil), r.take(int(n))...)
}

func (r *fbReader) str() string { return string(r.bytes()) }

// --- the other fakes ---

// fakeLink is a scripted network Link. It starts down.
type fakeLink struct {
	mu       sync.Mutex
	up       bool
	lost     chan struct{}
	failNext int // Connect calls that fail before one succeeds
	events   []fbLinkEvent
	changed  chan struct{}
}

type fbLinkEvent struct {
	What string // "connect", "connect-failed", "disconnect", "drop"
	At   time.Time
}

func newFakeLink() *fakeLink {
	l := &fakeLink{lost: make(chan struct{}), changed: make(chan struct{})}
	close(l.lost)
	return l
}

// fbLinkedClient makes a client for b behind a new fake link that must stay up for stable, applies
// configure, and connects it with ConnectQuick.
func fbLinkedClient(t *testing.T, b *fakeBroker, stable time.Duration, configure ...func(*Config)) (*Client, *fakeLink, Config) {
	t.Helper()
	link := newFakeLink()
	cfg := fbConfig(b)
	cfg.Link = link
	cfg.LinkStableFor = stable
	for _, f := range configure {
		f(&cfg)
	}
	c := fbClient(t, cfg)
	if err := c.ConnectQuick(fbCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	return c, link, cfg
}

func (l *fakeLink) recordLocked(what string) {
	l.events = append(l.events, fbLinkEvent{What: what, At: time.Now()})
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *fakeLink) Connect(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.failNext > 0 {
		l.failNext--
		l.recordLocked("connect-failed")
		return errors.New("fake link: join failed")
	}
	if !l.up {
		l.up = true
		l.lost = make(chan struct{})
	}
	l.recordLocked("connect")
	return nil
}

func (l *fakeLink) Disconnect() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.downLocked()
	l.recordLocked("disconnect")
	return nil
}

// Drop simulates losing the link (the access point vanished).
func (l *fakeLink) Drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.downLocked()
	l.recordLocked("drop")
}

func (l *fakeLink) downLocked() {
	if l.up {
		l.up = false
		close(l.lost)
	}
}

func (l *fakeLink) Lost() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// FailNext makes the next n Connect calls fail.
func (l *fakeLink) FailNext(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failNext = n
}

func (l *fakeLink) Events() []fbLinkEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]fbLinkEvent(nil), l.events...)
}

// WaitEvents waits until at least n events have been recorded.
func (l *fakeLink) WaitEvents(t testing.TB, n int, timeout time.Duration) []fbLinkEvent {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		ev, ch := append([]fbLinkEvent(nil), l.events...), l.changed
		l.mu.Unlock()
		if len(ev) >= n {
			return ev
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("fake link: %d events, want %d within %v: %v", len(ev), n, timeout, ev)
		}
	}
}

// fbDialer is a Config.Dial that records every call and can inject faults into the connections it makes.
type fbDialer struct {
	target string // where every call really goes (the fake broker)
	mu     sync.Mutex
	addrs  []string
	times  []time.Time
	conns  []*faultConn
	fail   func(n int) error // non-nil error fails call n (from 1)
}

func (d *fbDialer) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	d.times = append(d.times, time.Now())
	n := len(d.addrs)
	fail := d.fail
	d.mu.Unlock()
	if fail != nil {
		if err := fail(n); err != nil {
			return nil, err
		}
	}
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, d.target)
	if err != nil {
		return nil, err
	}
	fc := &faultConn{Conn: conn, closed: make(chan struct{})}
	d.mu.Lock()
	d.conns = append(d.conns, fc)
	d.mu.Unlock()
	return fc, nil
}

func (d *fbDialer) Calls() ([]string, []time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...), append([]time.Time(nil), d.times...)
}

// ConnAt returns the connection of successful dial number i (from 1).
func (d *fbDialer) ConnAt(i int) *faultConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i < 1 || i > len(d.conns) {
		return nil
	}
	return d.conns[i-1]
}

// faultConn wraps a connection so that a test can make its writes stall (no progress until the write
// deadline) or fail at once.
type faultConn struct {
	net.Conn
	stall     atomic.Bool
	failWrite atomic.Bool
	mu        sync.Mutex
	wdl       time.Time
	failedAt  time.Time
	failedBuf []byte
	closeOnce sync.Once
	closed    chan struct{}
}

func (f *faultConn) SetDeadline(t time.Time) error {
	f.mu.Lock()
	f.wdl = t
	f.mu.Unlock()
	return f.Conn.SetDeadline(t)
}

func (f *faultConn) SetWriteDeadline(t time.Time) error {
	f.mu.Lock()
	f.wdl = t
	f.mu.Unlock()
	return f.Conn.SetWriteDeadline(t)
}

func (f *faultConn) Write(b []byte) (int, error) {
	if f.failWrite.Load() {
		f.mu.Lock()
		if f.failedBuf == nil {
			f.failedAt, f.failedBuf = time.Now(), append([]byte{}, b...)
		}
		f.mu.Unlock()
		return 0, errors.New("injected write failure")
	}
	if f.stall.Load() {
		f.mu.Lock()
		dl := f.wdl
		f.mu.Unlock()
		var expired <-chan time.Time
		if !dl.IsZero() {
			t := time.NewTimer(time.Until(dl))
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		case <-f.closed:
			return 0, net.ErrClosed
		}
	}
	return f.Conn.Write(b)
}

func (f *faultConn) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return f.Conn.Close()
}

// Failed returns the first write that was failed on purpose, and when.
func (f *faultConn) Failed() ([]byte, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failedBuf, f.failedAt
}

// fakeDNS answers DNS queries on 127.0.0.1 with an empty response carrying the query's id, after delay;
// with answer false it never answers.
type fakeDNS struct {
	pc      net.PacketConn
	delay   time.Duration
	answer  bool
	queries atomic.Int32
	wg      sync.WaitGroup
	done    chan struct{}
}

func newFakeDNS(t testing.TB, answer bool, delay time.Duration) *fakeDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fake DNS: %v", err)
	}
	d := &fakeDNS{pc: pc, delay: delay, answer: answer, done: make(chan struct{})}
	d.wg.Add(1)
	go d.serve()
	t.Cleanup(func() {
		close(d.done)
		_ = pc.Close()
		d.wg.Wait()
	})
	return d
}

func (d *fakeDNS) Addr() string { return d.pc.LocalAddr().String() }

func (d *fakeDNS) serve() {
	defer d.wg.Done()
	buf := make([]byte, 512)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		d.queries.Add(1)
		if !d.answer || n < 12 {
			continue
		}
		resp := append([]byte(nil), buf[:n]...)
		resp[2] |= 0x80 // QR: a response
		resp[3] = 0x80  // RA, rcode 0
		if d.delay > 0 {
			t := time.NewTimer(d.delay)
			select {
			case <-t.C:
			case <-d.done:
				t.Stop()
				return
			}
		}
		_, _ = d.pc.WriteTo(resp, from)
	}
}

// --- shared test helpers ---

// fbLeakCheck records the goroutine count now and, at cleanup (after every cleanup registered later, such
// as closing the client and the broker), fails if it has not come back down within a bounded wait.
func fbLeakCheck(t testing.TB) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= base {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d goroutines, %d at the start\n%s", n, base, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// fbConfig is a client configuration for the fake broker with short timings.
func fbConfig(b *fakeBroker) Config {
	cfg := Config{}
	cfg.Server = "127.0.0.1"
	cfg.Port = b.Port()
	cfg.ClientID = "fake-test"
	cfg.ResponseTime = 250 * time.Millisecond
	cfg.KeepAlive = 60 * time.Second
	cfg.ReconnectMin = 20 * time.Millisecond
	cfg.ReconnectMax = 200 * time.Millisecond
	return cfg
}

// fbNew starts the leak check and a fake broker.
func fbNew(t *testing.T) *fakeBroker {
	t.Helper()
	fbLeakCheck(t)
	return newFakeBroker(t)
}

// fbClient creates a client (closed at cleanup) without connecting.
func fbClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// fbConnect creates a client and connects it, failing the test if that does not succeed within 5 s.
func fbConnect(t *testing.T, cfg Config) *Client {
	t.Helper()
	c := fbClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c
}

// fbCtx is a context that ends after d or at cleanup.
func fbCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// fbWaitEvent waits for e to be set and returns when it was seen.
func fbWaitEvent(t *testing.T, e *Event, timeout time.Duration, what string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := e.Wait(ctx); err != nil {
		t.Fatalf("%s not set within %v", what, timeout)
	}
	return time.Now()
}

// fbEventually polls cond (for counters with no notification) every 5 ms until it holds or timeout passes.
func fbEventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not true within %v: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fbWithin fails unless lo ≤ d ≤ hi.
func fbWithin(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s = %v, want between %v and %v", what, d, lo, hi)
	}
}

// fbResult runs f in a goroutine and returns a channel with its error.
func fbResult(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// fbRecv waits for an error from ch.
func fbRecv(t *testing.T, ch <-chan error, timeout time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(timeout):
		t.Fatalf("%s did not return within %v", what, timeout)
		return nil
	}
}

// fbDebugLogger logs everything, in text, to w.
func fbDebugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fbLogBuffer collects log output from several goroutines.
type fbLogBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (l *fbLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sb.Write(p)
}

func (l *fbLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sb.String()
}

// fakeADNS is a DNS server on 127.0.0.1 that answers every A query with one address (which a test may
// change) and every other query with no answer; resolver returns a pure-Go resolver that asks it.
type fakeADNS struct {
	pc      net.PacketConn
	mu      sync.Mutex
	ip      net.IP
	queries atomic.Int32
	wg      sync.WaitGroup
}

func newFakeADNS(t testing.TB, ip net.IP) *fakeADNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fake DNS: %v", err)
	}
	d := &fakeADNS{pc: pc, ip: ip.To4()}
	d.wg.Go(d.serve)
	t.Cleanup(func() {
		_ = pc.Close()
		d.wg.Wait()
	})
	return d
}

func (d *fakeADNS) set(ip net.IP) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ip = ip.To4()
}

func (d *fakeADNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "udp", d.pc.LocalAddr().String())
	}}
}

func (d *fakeADNS) serve() {
	buf := make([]byte, 512)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		// The question: a name of labels after the 12-byte header, then type and class.
		end := 12
		for end < n && buf[end] != 0 {
			end += int(buf[end]) + 1
		}
		end += 5
		if n < end {
			continue
		}
		d.queries.Add(1)
		resp := append([]byte(nil), buf[:end]...)
		resp[2] |= 0x80 // QR: a response
		resp[3] = 0x80  // RA, rcode 0
		resp[6], resp[7] = 0, 0
		resp[8], resp[9], resp[10], resp[11] = 0, 0, 0, 0
		if qtype := binary.BigEndian.Uint16(buf[end-4:]); qtype == 1 {
			d.mu.Lock()
			ip := d.ip
			d.mu.Unlock()
			resp[7] = 1 // one answer: the question's name (a pointer to it), A, IN, TTL 0, 4 bytes
			resp = append(resp, 0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4)
			resp = append(resp, ip...)
		}
		_, _ = d.pc.WriteTo(resp, from)
	}
}
