package connack

import (
	"net"
	"testing"
)

func TestSessionPresent(t *testing.T) {
	for _, tc := range []struct {
		wire []byte
		want bool
	}{
		{[]byte{0x20, 0x02, 0x01, 0x00, 0x30}, true},
		{[]byte{0x20, 0x02, 0x00, 0x00}, false},
		{[]byte{0x30, 0x02, 0x01, 0x00}, false}, // not a CONNACK
	} {
		a, b := net.Pipe()
		c := Wrap(a)
		go func() { _, _ = b.Write(tc.wire); b.Close() }()
		buf := make([]byte, 1) // a byte at a time: the flag spans reads
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
		if c.SessionPresent() != tc.want {
			t.Errorf("% x: session present %t, want %t", tc.wire, c.SessionPresent(), tc.want)
		}
		a.Close()
	}
}
