package mqttas

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"net"
	"time"
)

// WANOK reports whether the wider network answers: false when the MQTT link is down, otherwise whether a
// DNS query for www.google.com to Config.WANCheckServer is answered within Config.WANCheckTimeout. Unlike
// mqtt_as it holds no client lock, so MQTT traffic flows meanwhile. The client never calls it itself.
func (c *Client) WANOK(ctx context.Context) bool {
	if !c.IsConnected() {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.WANCheckTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", c.cfg.WANCheckServer)
	if err != nil {
		return false
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	q := dnsQuery("www.google.com")
	if _, err := conn.Write(q); err != nil {
		return false
	}
	resp := make([]byte, 512)
	for {
		n, err := conn.Read(resp)
		if err != nil {
			return false
		}
		// An answer carries our transaction id and the QR (response) bit.
		if n >= 12 && resp[0] == q[0] && resp[1] == q[1] && resp[2]&0x80 != 0 {
			return true
		}
	}
}

// dnsQuery builds a recursive DNS query for the A record of name.
func dnsQuery(name string) []byte {
	q := make([]byte, 12, 12+len(name)+6)
	_, _ = rand.Read(q[:2])                   // transaction id
	binary.BigEndian.PutUint16(q[2:], 0x0100) // recursion desired
	binary.BigEndian.PutUint16(q[4:], 1)      // one question
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			q = append(q, byte(i-start))
			q = append(q, name[start:i]...)
			start = i + 1
		}
	}
	return append(q, 0, 0, 1, 0, 1) // root label, type A, class IN
}
