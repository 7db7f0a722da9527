// Package connack notes CONNACK's session-present flag from the first bytes an MQTT client library reads
// from its connection, for libraries that do not expose it after a reconnect (paho.mqtt.golang).
package connack

import (
	"net"
	"sync/atomic"
)

// Conn is a connection that watches its first four bytes read for a CONNACK (fixed header 0x20,
// remaining length 2, flags, return code).
type Conn struct {
	net.Conn
	head [4]byte // fixed header, remaining length, flags, return code
	n    int     // bytes of head seen; touched only by the library's reader
	sp   atomic.Bool
}

// Wrap returns c watched.
func Wrap(c net.Conn) *Conn { return &Conn{Conn: c} }

func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.n < len(c.head) && n > 0 {
		c.n += copy(c.head[c.n:], p[:n])
		if c.n == len(c.head) && c.head[0] == 0x20 && c.head[1] == 0x02 {
			c.sp.Store(c.head[2]&0x01 != 0)
		}
	}
	return n, err
}

// SessionPresent reports the flag of the CONNACK read on c (false before one).
func (c *Conn) SessionPresent() bool { return c.sp.Load() }
