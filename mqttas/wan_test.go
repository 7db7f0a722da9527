package mqttas

import (
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// wanDNS is a DNS server on 127.0.0.1 that records the name of every query it receives and answers as its
// mode says: "echo" answers correctly (the query sent back as an empty response), "wrong-id" and
// "other-name" answer something that is not a response to the query, "mute" never answers.
type wanDNS struct {
	pc   net.PacketConn
	mode string
	wg   sync.WaitGroup

	mu    sync.Mutex
	names []string
}

func newWANDNS(t *testing.T, mode string) *wanDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &wanDNS{pc: pc, mode: mode}
	d.wg.Go(d.serve)
	t.Cleanup(func() {
		_ = pc.Close()
		d.wg.Wait()
	})
	return d
}

func (d *wanDNS) serve() {
	buf := make([]byte, 512)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		name, qlen, err := wanParseQuestion(buf[:n])
		d.mu.Lock()
		if err != nil {
			name = "malformed: " + err.Error()
		}
		d.names = append(d.names, name)
		d.mu.Unlock()
		if err != nil {
			continue
		}
		resp := append([]byte(nil), buf[:12+qlen]...)
		resp[2] |= 0x80 // QR: a response
		resp[3] = 0x80  // RA, rcode 0
		switch d.mode {
		case "mute":
			continue
		case "wrong-id":
			resp[0] ^= 0xff
		case "other-name":
			resp[13] ^= 0x01 // the first character of the first label
		}
		_, _ = d.pc.WriteTo(resp, from)
	}
}

func (d *wanDNS) Addr() string { return d.pc.LocalAddr().String() }

func (d *wanDNS) Names() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.names...)
}

// wanParseQuestion decodes a query's single question: the dotted name and the question's length in bytes.
func wanParseQuestion(p []byte) (string, int, error) {
	if len(p) < 12 || binary.BigEndian.Uint16(p[4:]) != 1 || p[2]&0x80 != 0 {
		return "", 0, errors.New("not a query with one question")
	}
	var labels []string
	i := 12
	for {
		if i >= len(p) {
			return "", 0, errors.New("name runs past the datagram")
		}
		l := int(p[i])
		i++
		if l == 0 {
			break
		}
		if l > 63 || i+l > len(p) {
			return "", 0, errors.New("bad label length")
		}
		labels = append(labels, string(p[i:i+l]))
		i += l
	}
	if i+4 != len(p) || binary.BigEndian.Uint32(p[i:]) != 1<<16|1 {
		return "", 0, errors.New("question is not type A, class IN, at the end")
	}
	return strings.Join(labels, "."), i + 4 - 12, nil
}

// WANOK sends the query Config.WANCheckName names (www.google.com when it is empty) and counts only a
// response to that query.
func TestWANOKAsksConfiguredName(t *testing.T) {
	b := fbNew(t)
	ctx := fbCtx(t, 10*time.Second)
	for _, tc := range []struct {
		name, want string
	}{
		{"", "www.google.com"},
		{"gateway.example.net", "gateway.example.net"},
		{"Broker.Local.", "Broker.Local"},
	} {
		dns := newWANDNS(t, "echo")
		cfg := fbConfig(b)
		cfg.WANCheckServer = dns.Addr()
		cfg.WANCheckName = tc.name
		c := fbConnect(t, cfg)
		if !c.WANOK(ctx) {
			t.Errorf("WANCheckName %q: WANOK = false with a server that answers", tc.name)
		}
		if got := dns.Names(); len(got) != 1 || got[0] != tc.want {
			t.Errorf("WANCheckName %q: the server received %q, want one query for %q", tc.name, got, tc.want)
		}
	}
}

// A server that does not answer the query (silence, a response with another id or for another name) makes
// WANOK false once WANCheckTimeout has passed, not before and not much later.
func TestWANOKFalseWithoutAnAnswer(t *testing.T) {
	b := fbNew(t)
	ctx := fbCtx(t, 10*time.Second)
	for _, mode := range []string{"mute", "wrong-id", "other-name"} {
		dns := newWANDNS(t, mode)
		cfg := fbConfig(b)
		cfg.WANCheckServer = dns.Addr()
		cfg.WANCheckName = "wan.example.org"
		cfg.WANCheckTimeout = 300 * time.Millisecond
		c := fbConnect(t, cfg)
		start := time.Now()
		if c.WANOK(ctx) {
			t.Errorf("%s server: WANOK = true", mode)
		}
		fbWithin(t, mode+" server: WANOK's return", time.Since(start), cfg.WANCheckTimeout*95/100, cfg.WANCheckTimeout+300*time.Millisecond)
		if got := dns.Names(); len(got) != 1 || got[0] != "wan.example.org" {
			t.Errorf("%s server received %q, want one query for wan.example.org", mode, got)
		}
	}
}

// A WANCheckName no DNS query can carry is a configuration error from New.
func TestWANCheckNameValidation(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"example.com", true},
		{"example.com.", true},
		{"_wan-check.local", true},
		{long + ".com", true},
		{strings.Repeat(long+".", 3) + strings.Repeat("b", 61), true}, // 253 characters
		{".", false},
		{"example..com", false},
		{".example.com", false},
		{long + "a.com", false},
		{strings.Repeat(long+".", 3) + strings.Repeat("b", 62), false}, // 254 characters
		{"exa mple.com", false},
		{"example.com\x00", false},
		{"exämple.com", false},
	} {
		c, err := New(Config{Server: "127.0.0.1", WANCheckName: tc.name})
		if tc.ok {
			if err != nil {
				t.Errorf("WANCheckName %q: New: %v", tc.name, err)
				continue
			}
			_ = c.Close()
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("WANCheckName %q: New returned %v, want ErrInvalidConfig", tc.name, err)
		}
		if c != nil {
			_ = c.Close()
		}
	}
}
