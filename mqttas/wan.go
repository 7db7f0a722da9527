package mqttas

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// WANOK reports whether the wider network answers: false when the MQTT link is down, otherwise whether a
// DNS query for the A record of Config.WANCheckName (www.google.com by default) sent to Config.WANCheckServer
// is answered within Config.WANCheckTimeout. Any answer to that question counts, a refusal or NXDOMAIN too:
// the server was reached. Unlike mqtt_as it holds no client lock, so MQTT traffic flows meanwhile. The client
// never calls it itself.
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
	q := dnsQuery(c.cfg.WANCheckName)
	if _, err := conn.Write(q); err != nil {
		return false
	}
	resp := make([]byte, 512)
	for {
		n, err := conn.Read(resp)
		if err != nil {
			return false
		}
		if dnsAnswers(q, resp[:n]) {
			return true
		}
	}
}

// dnsQuery builds a recursive DNS query for the A record of name, which checkDNSName accepted.
func dnsQuery(name string) []byte {
	name = strings.TrimSuffix(name, ".")
	q := make([]byte, 12, 12+len(name)+6)
	_, _ = rand.Read(q[:2])                   // transaction id
	binary.BigEndian.PutUint16(q[2:], 0x0100) // recursion desired
	binary.BigEndian.PutUint16(q[4:], 1)      // one question
	for label := range strings.SplitSeq(name, ".") {
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	return append(q, 0, 0, 1, 0, 1) // root label, type A, class IN
}

// dnsAnswers reports whether resp is a response to the query q: the same transaction id, the QR (response)
// bit, one question, and that question is q's (names compare without regard to ASCII case, as DNS does). A
// datagram that is anything else (a stray or a spoofed packet) is not an answer.
func dnsAnswers(q, resp []byte) bool {
	question := q[12:]
	if len(resp) < 12+len(question) || resp[0] != q[0] || resp[1] != q[1] || resp[2]&0x80 == 0 {
		return false
	}
	if binary.BigEndian.Uint16(resp[4:]) != 1 {
		return false
	}
	for i, b := range question {
		if lowerASCII(resp[12+i]) != lowerASCII(b) {
			return false
		}
	}
	return true
}

func lowerASCII(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// checkDNSName accepts a name WANOK can ask for: labels of 1–63 printable ASCII characters other than the
// dot, at most 253 characters in all, with an optional trailing dot.
func checkDNSName(name string) error {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > 253 {
		return fmt.Errorf("%d characters, over DNS's 253", len(name))
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return errors.New("empty label")
		}
		if len(label) > 63 {
			return fmt.Errorf("label %.10q… is %d characters, over DNS's 63", label, len(label))
		}
		for i := range len(label) {
			if b := label[i]; b <= ' ' || b > '~' {
				return fmt.Errorf("label %q holds byte %#x (printable ASCII only)", label, b)
			}
		}
	}
	return nil
}
