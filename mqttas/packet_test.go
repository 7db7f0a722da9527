package mqttas

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// The CONNECT test vector of spec §3.2, taken from mqtt_as itself.
func TestAppendConnectMatchesMqttAsVector(t *testing.T) {
	got := appendConnect(nil, connectFields{
		clientID:  "010203040506",
		clean:     true,
		keepAlive: 60,
		will:      &Message{Topic: "lw", Payload: []byte("bye"), Retain: true, QoS: 1},
		user:      "u",
		password:  "p",
	})
	want, _ := hex.DecodeString("10270004" + "4d515454" + "04ee003c000c303130323033303430353036" +
		"00026c77" + "0003627965" + "000175" + "000170")
	if !bytes.Equal(got, want) {
		t.Fatalf("CONNECT\n got %x\nwant %x", got, want)
	}
}

func TestVarintBoundaries(t *testing.T) {
	for _, n := range []int{0, 127, 128, 16383, 16384, 2_097_151, 2_097_152, maxRemainingLength} {
		b := appendVarint([]byte{0x30}, n)
		first, got, err := readHeader(bufio.NewReader(bytes.NewReader(b)), maxRemainingLength)
		if err != nil || got != n || first != 0x30 {
			t.Fatalf("varint %d: got %d, %v", n, got, err)
		}
		var wantLen int
		switch {
		case n < 128:
			wantLen = 1
		case n < 16384:
			wantLen = 2
		case n < 2_097_152:
			wantLen = 3
		default:
			wantLen = 4
		}
		if len(b)-1 != wantLen {
			t.Fatalf("varint %d took %d bytes, want %d", n, len(b)-1, wantLen)
		}
	}
}

func TestReadHeaderRejectsFiveByteLength(t *testing.T) {
	_, _, err := readHeader(bufio.NewReader(bytes.NewReader([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01})), maxRemainingLength)
	var pe *ProtocolError
	if !errors.As(err, &pe) || !errors.Is(err, ErrProtocol) {
		t.Fatalf("got %v, want a *ProtocolError", err)
	}
}

func TestReadPacketRejectsOversizeBeforeAllocating(t *testing.T) {
	// A header that announces 200 MB, followed by nothing: the limit must trip before any read of the body.
	hdr := appendVarint([]byte{0x30}, 200<<20)
	_, buf, err := readPacket(bufio.NewReader(bytes.NewReader(hdr)), 1<<20, nil)
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("got %v", err)
	}
	if cap(buf) != 0 {
		t.Fatalf("allocated %d bytes for a refused packet", cap(buf))
	}
}

func TestPublishRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		qos         byte
		retain, dup bool
		id          uint16
	}{{0, false, false, 0}, {1, true, false, 7}, {1, false, true, 65535}} {
		b := appendPublish(nil, "a/b/ü", []byte("payload"), tc.qos, tc.retain, tc.dup, tc.id)
		p, _, err := readPacket(bufio.NewReader(bytes.NewReader(b)), 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.typ != typePublish || p.topic != "a/b/ü" || string(p.body) != "payload" || p.qos != tc.qos ||
			p.retain != tc.retain || p.dup != tc.dup || p.id != tc.id {
			t.Fatalf("round trip of %+v gave %s", tc, p.String())
		}
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	cases := map[string][]byte{
		"connack long":          {0x20, 3, 0, 0, 0},
		"connack reserved bits": {0x20, 2, 2, 0},
		"publish qos3":          {0x36, 4, 0, 1, 'a', 0},
		"publish short topic":   {0x30, 3, 0, 5, 'a'},
		"publish id 0":          {0x32, 5, 0, 1, 'a', 0, 0},
		"publish wildcard":      {0x30, 3, 0, 1, '#'},
		"puback long":           {0x40, 3, 0, 1, 0},
		"suback bad code":       {0x90, 3, 0, 1, 3},
		"pingresp long":         {0xd0, 1, 0},
		"connect from server":   {0x10, 0},
		"reserved type 15":      {0xf0, 0},
		"subscribe from server": {0x82, 0},
	}
	for name, b := range cases {
		_, _, err := readPacket(bufio.NewReader(bytes.NewReader(b)), 1<<20, nil)
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: got %v, want a protocol error", name, err)
		}
	}
}
