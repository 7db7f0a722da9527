package mqttas

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the packet reader the way a broker's stream would arrive. It must
// never panic, never allocate beyond the size limit, and every PUBLISH it accepts must re-encode to a
// packet that decodes to the same message.
func FuzzDecode(f *testing.F) {
	for _, seed := range [][]byte{
		{0x20, 2, 0, 0},                      // CONNACK
		{0x20, 2, 1, 5},                      // CONNACK session present, refused
		{0x30, 5, 0, 1, 'a', 'h', 'i'},       // PUBLISH qos 0
		{0x3b, 7, 0, 1, 'a', 0, 9, 'h', 'i'}, // PUBLISH qos 1 dup retain
		{0x40, 2, 0, 1},                      // PUBACK
		{0x90, 3, 0, 1, 0x80},                // SUBACK refused
		{0xb0, 2, 0, 1},                      // UNSUBACK
		{0xd0, 0},                            // PINGRESP
		{0x30, 0xff, 0xff, 0xff, 0xff, 1},    // 5-byte remaining length
		{0x34, 4, 0, 1, 'a', 0},              // qos 2 missing id byte
		append(appendPublish(nil, "t/ü", []byte("x"), 1, false, false, 1), 0xd0, 0),
	} {
		f.Add(seed)
	}
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		var scratch []byte
		for range 64 {
			p, buf, err := readPacket(r, limit, scratch)
			scratch = buf
			if cap(scratch) > limit {
				t.Fatalf("scratch grew to %d, over the %d limit", cap(scratch), limit)
			}
			if err != nil {
				var pe *ProtocolError
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &pe) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				if errors.As(err, &pe) {
					continue // the stream is resynchronised by the next packet boundary, or fails again
				}
				return
			}
			if p.typ == typePublish && p.qos < 2 {
				b := appendPublish(nil, p.topic, p.body, p.qos, p.retain, p.dup, p.id)
				q, _, err := readPacket(bufio.NewReader(bytes.NewReader(b)), limit+8, nil)
				if err != nil || q.topic != p.topic || !bytes.Equal(q.body, p.body) || q.id != p.id ||
					q.qos != p.qos || q.dup != p.dup || q.retain != p.retain {
					t.Fatalf("re-encoded %s decodes to %s, %v", p.String(), q.String(), err)
				}
			}
		}
	})
}
