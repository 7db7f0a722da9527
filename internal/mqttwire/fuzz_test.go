package mqttwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode and Read and checks that they
// agree, that a decoded packet encodes to bytes that decode to the same
// packet, and that whatever a typed decoder accepts encodes back to itself.
func FuzzDecode(f *testing.F) {
	for _, b := range [][]byte{
		Connect{ClientID: "c", CleanSession: true, KeepAlive: 60}.Bytes(),
		Connack{SessionPresent: true}.Bytes(),
		Publish{Topic: "a/b", QoS: 1, ID: 1, Payload: []byte("x")}.Bytes(),
		Ack(PUBREL, 2).Bytes(),
		Subscribe{ID: 3, Filters: []Subscription{{"a/#", 2}}}.Bytes(),
		Suback{ID: 3, Codes: []byte{0x80}}.Bytes(),
		Unsubscribe{ID: 4, Filters: []string{"a", "b"}}.Bytes(),
		Empty(PINGREQ).Bytes(),
		{0x30, 0x80, 0x00},                   // a length in two bytes where one would do
		{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, // five length bytes
		{0xf0, 0x00},
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, n, err := Decode(b)
		rp, rerr := Read(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			if n != 0 {
				t.Fatalf("Decode failed (%v) but consumed %d bytes", err, n)
			}
			if rerr == nil {
				t.Fatalf("Decode: %v, but Read read %v", err, rp)
			}
			if errors.Is(err, ErrShort) != (errors.Is(rerr, ErrShort) || rerr == io.EOF) {
				t.Fatalf("Decode: %v, Read: %v", err, rerr)
			}
			return
		}
		if n > len(b) || n < 2+len(p.Body) || n > 5+len(p.Body) {
			t.Fatalf("size %d for a body of %d in %d bytes", n, len(p.Body), len(b))
		}
		if rerr != nil || !samePacket(rp, p) {
			t.Fatalf("Read: %v, %v; Decode: %v", rp, rerr, p)
		}
		enc := p.Bytes()
		if len(enc) > n {
			t.Fatalf("re-encoded to %d bytes, more than the %d read", len(enc), n)
		}
		q, m, err := Decode(enc)
		if err != nil || m != len(enc) || !samePacket(q, p) {
			t.Fatalf("re-decoded %v (%d of %d bytes, %v), want %v", q, m, len(enc), err, p)
		}
		typed(t, p)
	})
}

// samePacket: an empty Body is the same packet whether nil or not.
func samePacket(a, b Packet) bool {
	return a.Type == b.Type && a.Flags == b.Flags && bytes.Equal(a.Body, b.Body)
}

// typed checks each typed decoder that accepts p against its encoder.
func typed(t *testing.T, p Packet) {
	t.Helper()
	same := func(name string, enc Packet, back func(Packet) (any, error), v any) {
		t.Helper()
		w, err := back(enc)
		if err != nil || !reflect.DeepEqual(w, v) {
			t.Fatalf("%s %+v re-encoded to % x, decoded to %+v, %v", name, v, enc.Bytes(), w, err)
		}
	}
	if v, err := p.Connect(); err == nil {
		same("Connect", v.Packet(), func(q Packet) (any, error) { return q.Connect() }, v)
		if !bytes.Equal(v.Packet().Body, p.Body) {
			t.Fatalf("Connect %+v encodes to % x, read from % x", v, v.Packet().Body, p.Body)
		}
	}
	if v, err := p.Connack(); err == nil {
		same("Connack", v.Packet(), func(q Packet) (any, error) { return q.Connack() }, v)
	}
	if v, err := p.Publish(); err == nil {
		same("Publish", v.Packet(), func(q Packet) (any, error) { return q.Publish() }, v)
		if !samePacket(v.Packet(), p) {
			t.Fatalf("Publish %+v encodes to %v, read %v", v, v.Packet(), p)
		}
	}
	if id, err := p.Ack(); err == nil {
		if Ack(p.Type, id).ID() != id || !samePacket(Ack(p.Type, id), p) {
			t.Fatalf("Ack %v %d encodes to %v, read %v", p.Type, id, Ack(p.Type, id), p)
		}
	}
	if v, err := p.Subscribe(); err == nil {
		same("Subscribe", v.Packet(), func(q Packet) (any, error) { return q.Subscribe() }, v)
	}
	if v, err := p.Suback(); err == nil {
		same("Suback", v.Packet(), func(q Packet) (any, error) { return q.Suback() }, v)
	}
	if v, err := p.Unsubscribe(); err == nil {
		same("Unsubscribe", v.Packet(), func(q Packet) (any, error) { return q.Unsubscribe() }, v)
	}
}
