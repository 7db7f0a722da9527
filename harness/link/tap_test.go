package link_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker/brokertest"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
	"github.com/mqttas/mqttas-go/internal/mqttwire"
)

// want is the part of a tap record a test checks.
type want struct {
	conn    int
	dir     link.Direction
	typ     mqttframe.Type
	id      uint16
	dup     bool
	qos     byte
	topic   string
	payload int
}

func checkPackets(t *testing.T, tap *link.Tap, got []link.Packet, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("%d packets, want %d:\n%s", len(got), len(wants), tap)
	}
	for i, w := range wants {
		p := got[i]
		if p.Conn != w.conn || p.Dir != w.dir || p.Type != w.typ || p.ID != w.id || p.DUP != w.dup ||
			p.QoS != w.qos || p.Topic != w.topic || p.PayloadSize != w.payload {
			t.Fatalf("packet %d = %v, want %+v\n%s", i, p, w, tap)
		}
	}
}

func TestTapRecordsSessionsAcrossConnections(t *testing.T) {
	t.Parallel()
	l := newLink(t, brokertest.Start(t).Addr)
	tap := l.Tap()
	ctx := ctxT(t)

	// Connection 1: subscribe, publish QoS 1 to ourselves, ping, then vanish.
	m := newMQTTClient(t, l.Addr())
	if sp := m.connect("tap-1", false); sp.Body[0] != 0 {
		t.Fatal("fresh session reported as present")
	}
	m.send(mqttwire.Subscribe{ID: 1, Filters: []mqttwire.Subscription{{Filter: "tap/#", QoS: 1}}}.Bytes())
	m.expect(mqttframe.SUBACK)
	m.send(mqttwire.Publish{Topic: "tap/a", QoS: 1, ID: 10, Payload: []byte("hello")}.Bytes())
	var delivered mqttwire.Packet
	for range 2 { // PUBACK and our own delivery, in either order
		p, err := m.read(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if p.Type == mqttframe.PUBLISH {
			delivered = p
		}
	}
	if delivered.Type != mqttframe.PUBLISH {
		t.Fatal("no delivery of our own publication")
	}
	m.send(mqttwire.Ack(mqttwire.PUBACK, delivered.ID()).Bytes())
	m.send(mqttwire.Empty(mqttwire.PINGREQ).Bytes())
	m.expect(mqttframe.PINGRESP)
	m.c.Close()

	// Connection 2: resume the session, resend the publication as a duplicate.
	m2 := newMQTTClient(t, l.Addr())
	if sp := m2.connect("tap-1", false); sp.Body[0] != 1 {
		t.Fatal("session not present on reconnect")
	}
	m2.send(mqttwire.Publish{Topic: "tap/a", QoS: 1, DUP: true, ID: 10, Payload: []byte("hello")}.Bytes())
	if _, err := tap.WaitFor(ctx, link.OnConn(2), link.OfType(mqttframe.PUBACK), link.InDir(link.Downstream), link.WithID(10)); err != nil {
		t.Fatalf("no PUBACK on connection 2: %v\n%s", err, tap)
	}
	m2.send(mqttwire.Empty(mqttwire.DISCONNECT).Bytes())
	if _, err := tap.WaitFor(ctx, link.OnConn(2), link.OfType(mqttframe.DISCONNECT)); err != nil {
		t.Fatalf("no DISCONNECT: %v\n%s", err, tap)
	}

	up, down := link.Upstream, link.Downstream
	pub := mqttframe.PUBLISH
	checkPackets(t, tap, tap.Packets(link.OnConn(1), link.OfType(mqttframe.CONNECT, mqttframe.CONNACK,
		mqttframe.SUBSCRIBE, mqttframe.SUBACK, mqttframe.PUBACK, mqttframe.PINGREQ, mqttframe.PINGRESP)), []want{
		{conn: 1, dir: up, typ: mqttframe.CONNECT},
		{conn: 1, dir: down, typ: mqttframe.CONNACK},
		{conn: 1, dir: up, typ: mqttframe.SUBSCRIBE, id: 1, topic: "tap/#"},
		{conn: 1, dir: down, typ: mqttframe.SUBACK, id: 1},
		{conn: 1, dir: down, typ: mqttframe.PUBACK, id: 10},
		{conn: 1, dir: up, typ: mqttframe.PUBACK, id: delivered.ID()},
		{conn: 1, dir: up, typ: mqttframe.PINGREQ},
		{conn: 1, dir: down, typ: mqttframe.PINGRESP},
	})
	checkPackets(t, tap, tap.Packets(link.OfType(pub), link.OnConn(1)), []want{
		{conn: 1, dir: up, typ: pub, id: 10, qos: 1, topic: "tap/a", payload: 5},
		{conn: 1, dir: down, typ: pub, id: delivered.ID(), qos: 1, topic: "tap/a", payload: 5},
	})
	checkPackets(t, tap, tap.Packets(link.OfType(pub), link.OnConn(2), link.InDir(up)), []want{
		{conn: 2, dir: up, typ: pub, id: 10, dup: true, qos: 1, topic: "tap/a", payload: 5},
	})
	connect := tap.Packets(link.OfType(mqttframe.CONNECT))
	connack := tap.Packets(link.OfType(mqttframe.CONNACK))
	if len(connect) != 2 || connect[1].Conn != 2 || connect[1].ClientID != "tap-1" || connect[1].CleanSession || connect[1].KeepAlive != 30 {
		t.Fatalf("CONNECT records: %v", connect)
	}
	if len(connack) != 2 || connack[0].SessionPresent || !connack[1].SessionPresent || connack[1].Conn != 2 {
		t.Fatalf("CONNACK records: %v", connack)
	}
	if n := tap.Count(link.IsEvent(link.EventOpen)); n != 2 {
		t.Fatalf("%d open records, want 2\n%s", n, tap)
	}
	// Both connections ended in both directions (the client closed or
	// disconnected, the broker followed); after that the tap is quiet.
	for _, c := range []int{1, 2} {
		for _, d := range []link.Direction{up, down} {
			if _, err := tap.WaitFor(ctx, link.OnConn(c), link.IsEvent(link.EventEOF), link.InDir(d)); err != nil {
				t.Fatalf("no EOF %v on connection %d: %v\n%s", d, c, err, tap)
			}
		}
	}
	if s := tap.String(); !strings.Contains(s, `#2 c→b PUBLISH id=10 q1 dup "tap/a" 5B`) {
		t.Fatalf("dump lacks the duplicate PUBLISH line:\n%s", s)
	}
	var all bytes.Buffer
	if _, err := tap.WriteTo(&all); err != nil || strings.Count(all.String(), "\n") != tap.Count()+1 {
		t.Fatalf("WriteTo wrote %d lines for %d records (err %v)", strings.Count(all.String(), "\n"), tap.Count(), err)
	}
}

func TestDroppedPubacksNeverReachTheClient(t *testing.T) {
	t.Parallel()
	l := newLink(t, brokertest.Start(t).Addr)
	tap := l.Tap()
	ctx := ctxT(t)
	if err := l.DropPackets(link.Downstream, mqttframe.PUBACK, -1); err != nil {
		t.Fatal(err)
	}
	m := newMQTTClient(t, l.Addr())
	m.connect("drop-1", true)

	m.send(mqttwire.Publish{Topic: "drop/a", QoS: 1, ID: 5, Payload: []byte("x")}.Bytes())
	p, err := tap.WaitFor(ctx, link.OfType(mqttframe.PUBACK), link.WithID(5))
	if err != nil {
		t.Fatal(err)
	}
	if p.Fate != link.Dropped || p.Dir != link.Downstream {
		t.Fatalf("PUBACK record %v, want dropped broker→client", p)
	}
	if p, err := m.read(300 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("client received %v (err %v) although the PUBACK was dropped", p.Type, err)
	}
	// The packet was cut out whole: the stream goes on with the next one.
	m.send(mqttwire.Empty(mqttwire.PINGREQ).Bytes())
	m.expect(mqttframe.PINGRESP)

	// Drop only the next one.
	if err := l.DropPackets(link.Downstream, mqttframe.PUBACK, 1); err != nil {
		t.Fatal(err)
	}
	if act := l.Active(); len(act) != 1 || act[0].Verb != link.VerbDrop || !strings.Contains(act[0].Detail, "PUBACK next 1") {
		t.Fatalf("Active() = %v", act)
	}
	m.send(mqttwire.Publish{Topic: "drop/a", QoS: 1, ID: 7, Payload: []byte("x")}.Bytes(), mqttwire.Publish{Topic: "drop/a", QoS: 1, ID: 8, Payload: []byte("x")}.Bytes())
	if ack := m.expect(mqttframe.PUBACK); ack.ID() != 8 {
		t.Fatalf("first PUBACK to arrive has id %d, want 8 (7 dropped)", ack.ID())
	}
	if act := l.Active(); len(act) != 0 {
		t.Fatalf("spent drop rule still active: %v", act)
	}
	if err := l.DropPackets(link.Downstream, mqttframe.PUBACK, -1); err != nil {
		t.Fatal(err)
	}
	l.StopDropping()
	m.send(mqttwire.Publish{Topic: "drop/a", QoS: 1, ID: 9, Payload: []byte("x")}.Bytes())
	if ack := m.expect(mqttframe.PUBACK); ack.ID() != 9 {
		t.Fatalf("PUBACK id %d after StopDropping, want 9", ack.ID())
	}
	if n := tap.Count(link.OfType(mqttframe.PUBACK), link.WithFate(link.Dropped)); n != 2 {
		t.Fatalf("%d dropped PUBACKs recorded, want 2 (ids 5 and 7)\n%s", n, tap)
	}
}

func TestDelayedPingresp(t *testing.T) {
	t.Parallel()
	l := newLink(t, brokertest.Start(t).Addr)
	const d = 300 * time.Millisecond
	m := newMQTTClient(t, l.Addr())
	m.connect("delay-1", true)
	if err := l.DelayPackets(link.Downstream, mqttframe.PINGRESP, d); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m.send(mqttwire.Empty(mqttwire.PINGREQ).Bytes())
	m.expect(mqttframe.PINGRESP)
	if took := time.Since(start); took < d {
		t.Fatalf("PINGRESP after %v, want >= %v", took, d)
	}
	rec := l.Tap().Packets(link.OfType(mqttframe.PINGRESP))
	if len(rec) != 1 || rec[0].Fate != link.Delayed || rec[0].Delay != d {
		t.Fatalf("PINGRESP records: %v", rec)
	}
	// StopDelaying releases a packet being held and ends the rule.
	if err := l.DelayPackets(link.Downstream, mqttframe.PINGRESP, time.Hour); err != nil {
		t.Fatal(err)
	}
	seq := l.Tap().Seq()
	m.send(mqttwire.Empty(mqttwire.PINGREQ).Bytes())
	if _, err := l.Tap().WaitFor(ctxT(t), link.OfType(mqttframe.PINGRESP), link.AfterSeq(seq)); err != nil {
		t.Fatal(err)
	}
	if p, err := m.read(100 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v (err %v) while PINGRESP is held for an hour", p.Type, err)
	}
	l.StopDelaying()
	if p, err := m.read(time.Second); err != nil || p.Type != mqttframe.PINGRESP {
		t.Fatalf("after StopDelaying: %v, %v; want the held PINGRESP", p.Type, err)
	}
	fastest := time.Hour
	for range 3 { // the fastest of three, to ride out a scheduling stall
		start = time.Now()
		m.send(mqttwire.Empty(mqttwire.PINGREQ).Bytes())
		m.expect(mqttframe.PINGRESP)
		fastest = min(fastest, time.Since(start))
	}
	if fastest >= d {
		t.Fatalf("PINGRESP still delayed (%v) after StopDelaying", fastest)
	}
}

func TestTapWaitForHonoursContext(t *testing.T) {
	t.Parallel()
	l := newLink(t, echoServer(t))
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := l.Tap().WaitFor(ctx, link.OfType(mqttframe.CONNECT)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor = %v, want DeadlineExceeded", err)
	}
}

func TestTapMarksNonMQTTStreamsUnframed(t *testing.T) {
	t.Parallel()
	l := newLink(t, echoServer(t))
	c := dial(t, l.Addr())
	roundTrip(t, c, "GET / HTTP/1.1\r\n\r\n")
	tap := l.Tap()
	for _, d := range []link.Direction{link.Upstream, link.Downstream} {
		p, err := tap.WaitFor(ctxT(t), link.IsEvent(link.EventUnframed), link.InDir(d))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p.Note, "unexpected first packet") {
			t.Fatalf("unframed note %q", p.Note)
		}
	}
	if n := tap.Count(link.IsEvent(link.EventPacket)); n != 0 {
		t.Fatalf("%d packets parsed out of HTTP\n%s", n, tap)
	}
}

// TestTapKeepsHeavyTrafficIntact pushes thousands of packets, written in
// random sizes so packets straddle reads, through the tap with a drop rule
// active, and checks the broker side gets exactly the stream minus the
// dropped packets.
func TestTapKeepsHeavyTrafficIntact(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	l := newLink(t, up.addr(), link.WithTapCapacity(1000))
	if err := l.DropPackets(link.Upstream, mqttframe.PINGREQ, -1); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var stream, want []byte
	stream = append(stream, mqttwire.Connect{ClientID: "bulk", CleanSession: true}.Bytes()...)
	want = append(want, stream...)
	const n = 3000
	for i := range n {
		p := mqttwire.Publish{Topic: "bulk/t", QoS: 1, ID: uint16(i + 1), Payload: []byte(strings.Repeat("p", rng.IntN(3000)))}.Bytes()
		stream, want = append(stream, p...), append(want, p...)
		if i%10 == 0 {
			stream = append(stream, mqttwire.Empty(mqttwire.PINGREQ).Bytes()...)
		}
	}
	c := dial(t, l.Addr())
	s := up.accept(t)
	errc := make(chan error, 1)
	go func() {
		rest := stream
		for len(rest) > 0 {
			k := min(len(rest), 1+rng.IntN(5000))
			if _, err := c.Write(rest[:k]); err != nil {
				errc <- err
				return
			}
			rest = rest[k:]
		}
		errc <- nil
	}()
	s.SetReadDeadline(time.Now().Add(20 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatalf("broker side: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("broker side stream differs from the sent stream minus PINGREQs")
	}
	tap := l.Tap()
	if _, err := tap.WaitFor(ctxT(t), link.OfType(mqttframe.PUBLISH), link.WithID(n)); err != nil {
		t.Fatal(err)
	}
	total := uint64(tap.Count()) + tap.Overwritten()
	if want := uint64(1 + 1 + n + n/10); total != want { // open, CONNECT, PUBLISHes, PINGREQs
		t.Fatalf("tap saw %d records, want %d", total, want)
	}
	if tap.Count() != 1000 {
		t.Fatalf("tap retains %d records, capacity 1000", tap.Count())
	}
}
