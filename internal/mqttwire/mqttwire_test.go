package mqttwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// Exact bytes from MQTT 3.1.1 and from what mosquitto and the probes have
// always sent: the encoders must produce them.
func TestEncodersProduceTheSpecBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"probe CONNECT", Connect{CleanSession: true, KeepAlive: 60}.Bytes(),
			[]byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00}},
		{"CONNECT with id, persistent", Connect{ClientID: "ab", KeepAlive: 0x1234}.Bytes(),
			[]byte{0x10, 0x0e, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0x12, 0x34, 0, 2, 'a', 'b'}},
		{"CONNACK accepted", Connack{}.Bytes(), []byte{0x20, 0x02, 0x00, 0x00}},
		{"CONNACK session present, refused", Connack{SessionPresent: true, Code: 5}.Bytes(), []byte{0x20, 0x02, 0x01, 0x05}},
		{"PUBLISH qos 0 retained", Publish{Topic: "a/b", Retain: true, Payload: []byte("x")}.Bytes(),
			[]byte{0x31, 0x06, 0, 3, 'a', '/', 'b', 'x'}},
		{"PUBLISH qos 1 dup", Publish{Topic: "t", QoS: 1, DUP: true, ID: 0x0102, Payload: []byte("hi")}.Bytes(),
			[]byte{0x3a, 0x07, 0, 1, 't', 0x01, 0x02, 'h', 'i'}},
		{"PUBACK", Ack(PUBACK, 7).Bytes(), []byte{0x40, 0x02, 0x00, 0x07}},
		{"PUBREL has flags 2", Ack(PUBREL, 7).Bytes(), []byte{0x62, 0x02, 0x00, 0x07}},
		{"SUBSCRIBE", Subscribe{ID: 1, Filters: []Subscription{{"a/#", 1}, {"b", 0}}}.Bytes(),
			[]byte{0x82, 0x0c, 0, 1, 0, 3, 'a', '/', '#', 1, 0, 1, 'b', 0}},
		{"SUBACK", Suback{ID: 1, Codes: []byte{1, 0x80}}.Bytes(), []byte{0x90, 0x04, 0, 1, 1, 0x80}},
		{"UNSUBSCRIBE", Unsubscribe{ID: 2, Filters: []string{"a"}}.Bytes(), []byte{0xa2, 0x05, 0, 2, 0, 1, 'a'}},
		{"UNSUBACK", Ack(UNSUBACK, 2).Bytes(), []byte{0xb0, 0x02, 0, 2}},
		{"PINGREQ", Empty(PINGREQ).Bytes(), []byte{0xc0, 0x00}},
		{"PINGRESP", Empty(PINGRESP).Bytes(), []byte{0xd0, 0x00}},
		{"DISCONNECT", Empty(DISCONNECT).Bytes(), []byte{0xe0, 0x00}},
	} {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s: % x, want % x", tc.name, tc.got, tc.want)
		}
	}
}

func TestRemainingLengthBoundaries(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x00}}, {127, []byte{0x7f}}, {128, []byte{0x80, 0x01}}, {16_383, []byte{0xff, 0x7f}},
		{16_384, []byte{0x80, 0x80, 0x01}}, {2_097_151, []byte{0xff, 0xff, 0x7f}},
		{2_097_152, []byte{0x80, 0x80, 0x80, 0x01}}, {MaxRemaining, []byte{0xff, 0xff, 0xff, 0x7f}},
	} {
		if got := AppendLength(nil, tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("AppendLength(%d) = % x, want % x", tc.n, got, tc.want)
		}
	}
	big := Publish{Topic: "t", Payload: bytes.Repeat([]byte{'p'}, 20_000)}.Bytes()
	p, n, err := Decode(big)
	if err != nil || n != len(big) || len(p.Body) != 20_003 {
		t.Fatalf("Decode of a 3-byte-length packet: n %d of %d, body %d, %v", n, len(big), len(p.Body), err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"nothing", nil, ErrShort},
		{"first byte only", []byte{0x30}, ErrShort},
		{"length continues", []byte{0x30, 0x80}, ErrShort},
		{"body short", []byte{0x30, 0x03, 0, 1}, ErrShort},
		{"reserved 0", []byte{0x00, 0x00}, ErrReservedType},
		{"reserved 15", []byte{0xf0, 0x00}, ErrReservedType},
		{"five length bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrLength},
	} {
		_, _, err := Decode(tc.in)
		if !errors.Is(err, tc.want) {
			t.Errorf("Decode %s: %v, want %v", tc.name, err, tc.want)
		}
		_, rerr := Read(bufio.NewReader(bytes.NewReader(tc.in)))
		switch {
		case len(tc.in) == 0:
			if rerr != io.EOF {
				t.Errorf("Read %s: %v, want io.EOF", tc.name, rerr)
			}
		case !errors.Is(rerr, tc.want):
			t.Errorf("Read %s: %v, want %v", tc.name, rerr, tc.want)
		case tc.want == ErrShort && !errors.Is(rerr, io.ErrUnexpectedEOF):
			t.Errorf("Read %s: %v does not match io.ErrUnexpectedEOF", tc.name, rerr)
		}
	}
}

func TestReadAStream(t *testing.T) {
	stream := bytes.Join([][]byte{
		Connect{ClientID: "c", CleanSession: true}.Bytes(),
		Publish{Topic: "t", QoS: 2, ID: 9, Payload: []byte("x")}.Bytes(),
		Empty(PINGREQ).Bytes(),
	}, nil)
	r := bufio.NewReader(bytes.NewReader(stream))
	var got []string
	for {
		p, err := Read(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.String())
	}
	if want := []string{"CONNECT", "PUBLISH(id 9)", "PINGREQ"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
}

func TestTypedRoundTrips(t *testing.T) {
	decode := func(b []byte) Packet {
		t.Helper()
		p, n, err := Decode(b)
		if err != nil || n != len(b) {
			t.Fatalf("Decode % x: n %d, %v", b, n, err)
		}
		return p
	}
	c := Connect{ClientID: "dev-1", CleanSession: true, KeepAlive: 30}
	if got, err := decode(c.Bytes()).Connect(); err != nil || got != c {
		t.Errorf("Connect: %+v, %v", got, err)
	}
	ca := Connack{SessionPresent: true, Code: 0}
	if got, err := decode(ca.Bytes()).Connack(); err != nil || got != ca {
		t.Errorf("Connack: %+v, %v", got, err)
	}
	m := Publish{Topic: "a/b", QoS: 1, DUP: true, Retain: true, ID: 65535, Payload: []byte("payload")}
	if got, err := decode(m.Bytes()).Publish(); err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("Publish: %+v, %v", got, err)
	}
	for _, typ := range []Type{PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK} {
		p := decode(Ack(typ, 300).Bytes())
		if id, err := p.Ack(); err != nil || id != 300 || p.ID() != 300 {
			t.Errorf("%v: %d (ID %d), %v", typ, id, p.ID(), err)
		}
	}
	s := Subscribe{ID: 4, Filters: []Subscription{{"x/+", 2}, {"#", 0}}}
	if got, err := decode(s.Bytes()).Subscribe(); err != nil || !reflect.DeepEqual(got, s) {
		t.Errorf("Subscribe: %+v, %v", got, err)
	}
	sa := Suback{ID: 4, Codes: []byte{2, 0x80}}
	if got, err := decode(sa.Bytes()).Suback(); err != nil || !reflect.DeepEqual(got, sa) {
		t.Errorf("Suback: %+v, %v", got, err)
	}
	u := Unsubscribe{ID: 5, Filters: []string{"x/+", "#"}}
	if got, err := decode(u.Bytes()).Unsubscribe(); err != nil || !reflect.DeepEqual(got, u) {
		t.Errorf("Unsubscribe: %+v, %v", got, err)
	}
}

func TestTypedDecodersRejectMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Packet
		dec  func(Packet) error
		want error
	}{
		{"CONNECT with a will", Packet{Type: CONNECT, Body: []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 0, 0, 0}},
			func(p Packet) error { _, err := p.Connect(); return err }, ErrUnsupported},
		{"MQTT 3.1", Packet{Type: CONNECT, Body: []byte{0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x02, 0, 0, 0, 0}},
			func(p Packet) error { _, err := p.Connect(); return err }, ErrUnsupported},
		{"CONNECT reserved flag", Packet{Type: CONNECT, Body: []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x03, 0, 0, 0, 0}},
			func(p Packet) error { _, err := p.Connect(); return err }, ErrMalformed},
		{"CONNECT id longer than the packet", Packet{Type: CONNECT, Body: []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, 9}},
			func(p Packet) error { _, err := p.Connect(); return err }, ErrMalformed},
		{"CONNACK of three bytes", Packet{Type: CONNACK, Body: []byte{0, 0, 0}},
			func(p Packet) error { _, err := p.Connack(); return err }, ErrMalformed},
		{"CONNACK flag bits", Packet{Type: CONNACK, Body: []byte{2, 0}},
			func(p Packet) error { _, err := p.Connack(); return err }, ErrMalformed},
		{"PUBLISH qos 3", Packet{Type: PUBLISH, Flags: 0x06, Body: []byte{0, 1, 't', 0, 1}},
			func(p Packet) error { _, err := p.Publish(); return err }, ErrMalformed},
		{"PUBLISH dup at qos 0", Packet{Type: PUBLISH, Flags: 0x08, Body: []byte{0, 1, 't'}},
			func(p Packet) error { _, err := p.Publish(); return err }, ErrMalformed},
		{"PUBLISH qos 1 without id", Packet{Type: PUBLISH, Flags: 0x02, Body: []byte{0, 1, 't'}},
			func(p Packet) error { _, err := p.Publish(); return err }, ErrMalformed},
		{"PUBREL without its flags", Packet{Type: PUBREL, Body: []byte{0, 1}},
			func(p Packet) error { _, err := p.Ack(); return err }, ErrMalformed},
		{"PINGREQ is no ack", Packet{Type: PINGREQ},
			func(p Packet) error { _, err := p.Ack(); return err }, ErrMalformed},
		{"SUBSCRIBE without filters", Packet{Type: SUBSCRIBE, Flags: 2, Body: []byte{0, 1}},
			func(p Packet) error { _, err := p.Subscribe(); return err }, ErrMalformed},
		{"SUBSCRIBE qos byte 3", Packet{Type: SUBSCRIBE, Flags: 2, Body: []byte{0, 1, 0, 1, 'a', 3}},
			func(p Packet) error { _, err := p.Subscribe(); return err }, ErrMalformed},
		{"SUBACK without codes", Packet{Type: SUBACK, Body: []byte{0, 1}},
			func(p Packet) error { _, err := p.Suback(); return err }, ErrMalformed},
		{"UNSUBSCRIBE flags 0", Packet{Type: UNSUBSCRIBE, Body: []byte{0, 1, 0, 1, 'a'}},
			func(p Packet) error { _, err := p.Unsubscribe(); return err }, ErrMalformed},
		{"a PUBLISH is no CONNACK", Publish{Topic: "t"}.Packet(),
			func(p Packet) error { _, err := p.Connack(); return err }, ErrMalformed},
	} {
		if err := tc.dec(tc.p); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestIDOfPacketsWithout(t *testing.T) {
	for _, p := range []Packet{Empty(PINGREQ), Publish{Topic: "t", Payload: []byte("abcd")}.Packet(),
		Connack{}.Packet(), {Type: PUBLISH, Flags: 2, Body: []byte{0, 9, 'x'}}, {Type: PUBACK}} {
		if id := p.ID(); id != 0 {
			t.Errorf("%v % x: ID %d, want 0", p.Type, p.Body, id)
		}
	}
	if s := Type(15).String(); s != "RESERVED15" || Type(15).Valid() || !strings.HasPrefix(Type(16).String(), "Type(") {
		t.Errorf("reserved types: %q, valid %v", s, Type(15).Valid())
	}
}

func TestReadIntoReusesTheBuffer(t *testing.T) {
	stream := bytes.Join([][]byte{Ack(PUBACK, 1).Bytes(), Publish{Topic: "t", Payload: bytes.Repeat([]byte{'x'}, 100)}.Bytes()}, nil)
	r := bufio.NewReader(bytes.NewReader(stream))
	buf := make([]byte, 16)
	p, err := ReadInto(r, buf)
	if err != nil || p.ID() != 1 || &p.Body[0] != &buf[0] {
		t.Fatalf("a packet that fits: %v, %v, in buf %v", p, err, err == nil && &p.Body[0] == &buf[0])
	}
	p, err = ReadInto(r, buf)
	if err != nil || len(p.Body) != 103 || buf[0] != 0 {
		t.Fatalf("a packet larger than buf: %d bytes, %v; buf[0] %d", len(p.Body), err, buf[0])
	}
}
