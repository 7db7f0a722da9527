package mqttframe

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/internal/mqttwire"
)

// Test streams are encoded with the test kit's codec; the framer itself never encodes.

func connect(id string, clean bool, ka uint16) []byte {
	return mqttwire.Connect{ClientID: id, CleanSession: clean, KeepAlive: ka}.Bytes()
}

func connack(sp bool, rc byte) []byte { return mqttwire.Connack{SessionPresent: sp, Code: rc}.Bytes() }

func publish(topic string, qos byte, dup, retain bool, id uint16, payload []byte) []byte {
	return mqttwire.Publish{Topic: topic, QoS: qos, DUP: dup, Retain: retain, ID: id, Payload: payload}.Bytes()
}

func ack(t Type, id uint16) []byte { return mqttwire.Ack(t, id).Bytes() }

func subscribe(id uint16, filter string, qos byte) []byte {
	return mqttwire.Subscribe{ID: id, Filters: []mqttwire.Subscription{{Filter: filter, QoS: qos}}}.Bytes()
}

func suback(id uint16, code byte) []byte { return mqttwire.Suback{ID: id, Codes: []byte{code}}.Bytes() }

func empty(t Type) []byte { return mqttwire.Empty(t).Bytes() }

// rec is a Header copied out of a Decide call.
type rec struct {
	Type           Type
	Size           int
	ID             uint16
	HasID          bool
	DUP            bool
	QoS            byte
	Retain         bool
	Topic          string
	Payload        int
	ClientID       string
	KeepAlive      uint16
	Clean          bool
	SessionPresent bool
	Code           byte
	Malformed      bool
}

func recOf(h *Header) rec {
	return rec{
		Type: h.Type, Size: h.Size, ID: h.ID, HasID: h.HasID, DUP: h.DUP(), QoS: h.QoS(),
		Retain: h.Retain(), Topic: string(h.Topic), Payload: h.PayloadSize,
		ClientID: string(h.ClientID), KeepAlive: h.KeepAlive, Clean: h.CleanSession(),
		SessionPresent: h.SessionPresent, Code: h.ReturnCode, Malformed: h.Malformed,
	}
}

// run feeds chunks through a framer that applies decide and returns the
// forwarded bytes, the headers seen, and the ops in order.
func run(chunks [][]byte, first Type, decide func(*Header) Verdict) (out []byte, recs []rec, ops []Op, f *Framer) {
	f = &Framer{First: first}
	f.Decide = func(h *Header) Verdict {
		recs = append(recs, recOf(h))
		if decide == nil {
			return Verdict{}
		}
		return decide(h)
	}
	for _, c := range chunks {
		ops = f.Feed(ops, c)
	}
	ops = f.Flush(ops)
	for _, op := range ops {
		out = append(out, op.Data...)
	}
	return out, recs, ops, f
}

func session() ([]byte, []rec) {
	pl := bytes.Repeat([]byte("x"), 200) // two-byte remaining length
	parts := [][]byte{
		connect("dev-1", false, 30),
		connack(true, 0),
		subscribe(1, "t/#", 1),
		suback(1, 1),
		publish("t/a", 1, false, false, 7, []byte("hello")),
		ack(PUBACK, 7),
		publish("t/b", 2, true, true, 8, pl),
		ack(PUBREC, 8), ack(PUBREL, 8), ack(PUBCOMP, 8),
		publish("t/c", 0, false, false, 0, nil),
		mqttwire.Unsubscribe{ID: 9, Filters: []string{"t/#"}}.Bytes(),
		ack(UNSUBACK, 9),
		empty(PINGREQ), empty(PINGRESP),
		empty(DISCONNECT),
	}
	want := []rec{
		{Type: CONNECT, Size: 19, ClientID: "dev-1", KeepAlive: 30},
		{Type: CONNACK, Size: 4, SessionPresent: true},
		{Type: SUBSCRIBE, Size: 10, ID: 1, HasID: true, Topic: "t/#"},
		{Type: SUBACK, Size: 5, ID: 1, HasID: true, Code: 1},
		{Type: PUBLISH, Size: 14, ID: 7, HasID: true, QoS: 1, Topic: "t/a", Payload: 5},
		{Type: PUBACK, Size: 4, ID: 7, HasID: true},
		{Type: PUBLISH, Size: 210, ID: 8, HasID: true, QoS: 2, DUP: true, Retain: true, Topic: "t/b", Payload: 200},
		{Type: PUBREC, Size: 4, ID: 8, HasID: true},
		{Type: PUBREL, Size: 4, ID: 8, HasID: true},
		{Type: PUBCOMP, Size: 4, ID: 8, HasID: true},
		{Type: PUBLISH, Size: 7, Topic: "t/c"},
		{Type: UNSUBSCRIBE, Size: 9, ID: 9, HasID: true, Topic: "t/#"},
		{Type: UNSUBACK, Size: 4, ID: 9, HasID: true},
		{Type: PINGREQ, Size: 2},
		{Type: PINGRESP, Size: 2},
		{Type: DISCONNECT, Size: 2},
	}
	return bytes.Join(parts, nil), want
}

func TestFramerParsesEveryPacketType(t *testing.T) {
	stream, want := session()
	out, recs, ops, f := run([][]byte{stream}, CONNECT, nil)
	if !bytes.Equal(out, stream) {
		t.Fatalf("forwarded bytes differ from input")
	}
	if len(ops) != 1 {
		t.Errorf("a fully forwarded chunk should be one op, got %d", len(ops))
	}
	if !reflect.DeepEqual(recs, want) {
		t.Fatalf("headers:\n got %+v\nwant %+v", recs, want)
	}
	if f.Err() != nil || f.Packets() != len(want) {
		t.Fatalf("err=%v packets=%d", f.Err(), f.Packets())
	}
}

func TestFramerEverySplitPoint(t *testing.T) {
	stream, want := session()
	for cut1 := 0; cut1 <= len(stream); cut1++ {
		cut2 := min(len(stream), cut1+3) // a second cut close by splits varints and ids
		chunks := [][]byte{stream[:cut1], stream[cut1:cut2], stream[cut2:]}
		out, recs, _, _ := run(chunks, CONNECT, nil)
		if !bytes.Equal(out, stream) {
			t.Fatalf("cut %d: forwarded bytes differ", cut1)
		}
		if !reflect.DeepEqual(recs, want) {
			t.Fatalf("cut %d: headers differ:\n got %+v\nwant %+v", cut1, recs, want)
		}
	}
	// One byte at a time: every head is held across chunks.
	var chunks [][]byte
	for i := range stream {
		chunks = append(chunks, stream[i:i+1])
	}
	out, recs, _, _ := run(chunks, CONNECT, nil)
	if !bytes.Equal(out, stream) || !reflect.DeepEqual(recs, want) {
		t.Fatalf("byte-by-byte: bytes equal=%v, headers %+v", bytes.Equal(out, stream), recs)
	}
}

func dropType(typ Type) func(*Header) Verdict {
	return func(h *Header) Verdict {
		if h.Type == typ {
			return Verdict{Action: Drop}
		}
		return Verdict{}
	}
}

func TestFramerDropKeepsStreamValid(t *testing.T) {
	stream, want := session()
	var wantOut []byte
	var wantRecs []rec
	for _, r := range want {
		if r.Type != PUBLISH {
			wantRecs = append(wantRecs, r)
		}
	}
	// The expected output is the input without its PUBLISH packets.
	rest := stream
	for _, r := range want {
		if r.Type != PUBLISH {
			wantOut = append(wantOut, rest[:r.Size]...)
		}
		rest = rest[r.Size:]
	}
	for _, size := range []int{1, 2, 3, 5, 64, len(stream)} {
		var chunks [][]byte
		for i := 0; i < len(stream); i += size {
			chunks = append(chunks, stream[i:min(i+size, len(stream))])
		}
		out, recs, _, _ := run(chunks, 0, dropType(PUBLISH))
		if len(recs) != len(want) {
			t.Fatalf("chunk %d: dropped packets must still be seen: %d of %d", size, len(recs), len(want))
		}
		if !bytes.Equal(out, wantOut) {
			t.Fatalf("chunk %d: output is not the input minus PUBLISH packets", size)
		}
		// The output is itself a valid stream of the remaining packets.
		_, again, _, f := run([][]byte{out}, 0, nil)
		if f.Err() != nil || !reflect.DeepEqual(again, wantRecs) {
			t.Fatalf("chunk %d: re-framed output: err=%v\n got %+v\nwant %+v", size, f.Err(), again, wantRecs)
		}
	}
}

func TestFramerDelayInsertsWaitAtPacketBoundary(t *testing.T) {
	pong := empty(PINGRESP)
	pub := publish("a", 0, false, false, 0, []byte("p"))
	stream := bytes.Join([][]byte{pub, pong, pub}, nil)
	delay := func(h *Header) Verdict {
		if h.Type == PINGRESP {
			return Verdict{Action: Delay, Delay: 5 * time.Millisecond}
		}
		return Verdict{}
	}
	_, _, ops, _ := run([][]byte{stream}, 0, delay)
	want := []Op{{Data: pub}, {Wait: 5 * time.Millisecond}, {Data: append(pong, pub...)}}
	if !reflect.DeepEqual(ops, want) {
		t.Fatalf("ops = %v, want %v", ops, want)
	}
	// A delayed head held across chunks is emitted after the wait.
	chunks := [][]byte{append(append([]byte{}, pub...), pong[0]), append([]byte{pong[1]}, pub...)}
	_, _, ops, _ = run(chunks, 0, delay)
	want = []Op{{Data: pub}, {Wait: 5 * time.Millisecond}, {Data: pong}, {Data: pub}}
	if !reflect.DeepEqual(ops, want) {
		t.Fatalf("split: ops = %v, want %v", ops, want)
	}
}

func TestFramerFourByteRemainingLength(t *testing.T) {
	payload := make([]byte, 2_097_152) // needs a 4-byte remaining length
	big := publish("big/topic", 1, false, false, 42, payload)
	if big[4]&0x80 != 0 || big[3]&0x80 == 0 {
		t.Fatalf("test packet does not have a 4-byte remaining length: % x", big[:6])
	}
	stream := append(append([]byte{}, big...), empty(PINGREQ)...)
	var chunks [][]byte
	for i := 0; i < len(stream); i += 65536 {
		chunks = append(chunks, stream[i:min(i+65536, len(stream))])
	}
	out, recs, _, _ := run(chunks, 0, nil)
	if !bytes.Equal(out, stream) {
		t.Fatal("forwarded bytes differ")
	}
	want := []rec{
		{Type: PUBLISH, Size: len(big), ID: 42, HasID: true, QoS: 1, Topic: "big/topic", Payload: len(payload)},
		{Type: PINGREQ, Size: 2},
	}
	if !reflect.DeepEqual(recs, want) {
		t.Fatalf("headers:\n got %+v\nwant %+v", recs, want)
	}
	out, _, _, _ = run(chunks, 0, dropType(PUBLISH))
	if !bytes.Equal(out, empty(PINGREQ)) {
		t.Fatalf("dropping the big PUBLISH left %d bytes, want only the PINGREQ", len(out))
	}
}

func TestFramerLosesFramingOnGarbageAndPassesThrough(t *testing.T) {
	ping := empty(PINGREQ)
	cases := []struct {
		name   string
		stream []byte
		first  Type
		err    error
		seen   int
	}{
		{"reserved type 0", append(append([]byte{}, ping...), 0x00, 0x01, 0x02), 0, ErrReservedType, 1},
		{"reserved type 15", append(append([]byte{}, ping...), 0xf0, 0x00), 0, ErrReservedType, 1},
		{"five length bytes", append(append([]byte{}, ping...), 0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00), 0, ErrLengthOverflow, 1},
		{"not MQTT", []byte("GET / HTTP/1.1\r\n\r\n"), CONNECT, ErrUnexpectedFirst, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{1, 2, len(tc.stream)} {
				var chunks [][]byte
				for i := 0; i < len(tc.stream); i += size {
					chunks = append(chunks, tc.stream[i:min(i+size, len(tc.stream))])
				}
				// Even a framer that drops everything passes unframed bytes on.
				out, recs, _, f := run(chunks, tc.first, func(*Header) Verdict { return Verdict{Action: Forward} })
				if !errors.Is(f.Err(), tc.err) {
					t.Fatalf("chunk %d: Err() = %v, want %v", size, f.Err(), tc.err)
				}
				if !bytes.Equal(out, tc.stream) || len(recs) != tc.seen {
					t.Fatalf("chunk %d: out equal=%v, %d packets seen, want %d", size, bytes.Equal(out, tc.stream), len(recs), tc.seen)
				}
				// Later chunks pass through untouched.
				if more := f.Feed(nil, []byte{0x30, 0x00}); len(more) != 1 || !bytes.Equal(more[0].Data, []byte{0x30, 0x00}) {
					t.Fatalf("chunk %d: bytes after losing framing were not passed through: %v", size, more)
				}
			}
		})
	}
}

func TestFramerMalformedPacketKeepsFraming(t *testing.T) {
	// PUBLISH whose topic length (0x00ff) runs past its remaining length (4).
	bad := []byte{0x32, 0x04, 0x00, 0xff, 'a', 'b'}
	stream := append(append([]byte{}, bad...), ack(PUBACK, 3)...)
	for _, size := range []int{1, len(stream)} {
		var chunks [][]byte
		for i := 0; i < len(stream); i += size {
			chunks = append(chunks, stream[i:min(i+size, len(stream))])
		}
		out, recs, _, f := run(chunks, 0, nil)
		if f.Err() != nil || !bytes.Equal(out, stream) {
			t.Fatalf("chunk %d: err=%v, out equal=%v", size, f.Err(), bytes.Equal(out, stream))
		}
		want := []rec{{Type: PUBLISH, Size: 6, QoS: 1, Malformed: true}, {Type: PUBACK, Size: 4, ID: 3, HasID: true}}
		if !reflect.DeepEqual(recs, want) {
			t.Fatalf("chunk %d:\n got %+v\nwant %+v", size, recs, want)
		}
	}
	// Wrong fixed flags on a PUBACK are reported, not fatal.
	_, recs, _, f := run([][]byte{{0x41, 0x02, 0x00, 0x01}, ack(PUBACK, 2)}, 0, nil)
	if f.Err() != nil || len(recs) != 2 || !recs[0].Malformed || recs[1].Malformed {
		t.Fatalf("flags: err=%v recs=%+v", f.Err(), recs)
	}
}

func TestFramerFlushReturnsHeldHead(t *testing.T) {
	pub := publish("some/topic", 1, false, false, 1, []byte("x"))
	f := &Framer{}
	ops := f.Feed(nil, pub[:5]) // cut inside the topic
	if len(ops) != 0 {
		t.Fatalf("a partial head must be held, got %v", ops)
	}
	ops = f.Flush(nil)
	if len(ops) != 1 || !bytes.Equal(ops[0].Data, pub[:5]) {
		t.Fatalf("Flush = %v, want the 5 held bytes", ops)
	}
}

func TestFramerFeedDoesNotAllocate(t *testing.T) {
	var chunk []byte
	for i := range 100 {
		chunk = append(chunk, publish("sensors/temp", 1, false, false, uint16(i+1), make([]byte, 64))...)
		chunk = append(chunk, ack(PUBACK, uint16(i+1))...)
	}
	n := 0
	f := &Framer{Decide: func(h *Header) Verdict {
		n += len(h.Topic)
		if h.Type == PUBACK && h.ID%2 == 0 {
			return Verdict{Action: Drop}
		}
		return Verdict{}
	}}
	ops := make([]Op, 0, 256)
	allocs := testing.AllocsPerRun(50, func() { ops = f.Feed(ops[:0], chunk) })
	if allocs != 0 {
		t.Fatalf("Feed allocated %.1f times per chunk, want 0", allocs)
	}
	if n == 0 || len(ops) != 50 {
		t.Fatalf("decide saw %d topic bytes, %d ops (want 50: one run before each dropped PUBACK)", n, len(ops))
	}
}

func BenchmarkFramerFeed(b *testing.B) {
	var chunk []byte
	for i := range 200 {
		chunk = append(chunk, publish("sensors/temp", 1, false, false, uint16(i+1), make([]byte, 128))...)
	}
	f := &Framer{Decide: func(*Header) Verdict { return Verdict{} }}
	ops := make([]Op, 0, 16)
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		ops = f.Feed(ops[:0], chunk)
	}
}
