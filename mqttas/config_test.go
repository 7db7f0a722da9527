package mqttas

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The zero Config with Server and ClientID set behaves as mqtt_as's defaults, on the wire: CONNECT carries
// keepalive 60 and the clean-session flag, on the first connection and on a reconnection, with no clean-init
// dance; the client pings every 15 s and waits 10 s for the broker.
func TestZeroConfigIsMQTTAsDefaults(t *testing.T) {
	b := fbNew(t)
	c := fbConnect(t, Config{Server: "127.0.0.1", Port: b.Port(), ClientID: "zero"}) // Port: the fake broker's
	if c.pingEvery != 15*time.Second || c.cfg.ResponseTime != 10*time.Second {
		t.Errorf("ping interval %v, ResponseTime %v; want 15 s and 10 s", c.pingEvery, c.cfg.ResponseTime)
	}
	c.Up().Clear()
	b.Conn(1).Close()
	fbWaitEvent(t, c.Up(), 2*time.Second, "Up")
	cs := b.Filter(fbType(typeConnect))
	if len(cs) != 2 || b.Conns() != 2 {
		t.Fatalf("%d CONNECTs over %d connections, want one per connection:\n%s", len(cs), b.Conns(), b.dump())
	}
	for _, p := range cs {
		if p.KeepAlive != 60 || p.ConnFlags != 0x02 || p.ClientID != "zero" {
			t.Errorf("CONNECT %v flags %#x, want keepalive 60, flags 0x02 (clean, nothing else), id zero", p, p.ConnFlags)
		}
	}
}

// MaxRepubs 0 means mqtt_as's 4 re-sends with DUP before the link is declared dead.
func TestZeroMaxRepubsIsFour(t *testing.T) {
	b := fbNew(t)
	b.SetHook(func(c *fbConn, p fbPacket) bool { return c.n == 1 && p.Type == typePublish }) // no PUBACK on conn 1
	// ResponseTime is shortened so that 5 ResponseTimes fit in a test.
	c := fbConnect(t, Config{Server: "127.0.0.1", Port: b.Port(), ClientID: "zero", ResponseTime: 100 * time.Millisecond})
	if err := c.Publish(fbCtx(t, 10*time.Second), "q1", []byte("x"), false, 1); err != nil {
		t.Fatalf("Publish = %v", err)
	}
	pubs := b.Filter(fbType(typePublish), fbOnConn(1))
	if dups := b.Filter(fbType(typePublish), fbOnConn(1), fbDUP(true)); len(pubs) != 5 || len(dups) != 4 {
		t.Fatalf("%d PUBLISH packets on connection 1 (%d with DUP), want 1 + 4 re-sends:\n%s", len(pubs), len(dups), b.dump())
	}
	if n := len(b.Filter(fbType(typePublish), fbOnConn(2))); n != 1 {
		t.Errorf("%d PUBLISH packets after reconnecting, want 1", n)
	}
}

// A negative KeepAlive turns the broker's timer off (CONNECT carries 0; the client pings every 20 s) and a
// negative MaxRepubs asks for no re-send: the first ResponseTime without a PUBACK ends the connection.
func TestNegativeKeepAliveAndMaxRepubsMeanOff(t *testing.T) {
	b := fbNew(t)
	b.SetHook(func(c *fbConn, p fbPacket) bool { return c.n == 1 && p.Type == typePublish })
	c := fbConnect(t, Config{Server: "127.0.0.1", Port: b.Port(), ClientID: "off",
		KeepAlive: -1, MaxRepubs: -1, ResponseTime: 200 * time.Millisecond})
	if p := b.MustWait(t, 0, time.Second, "CONNECT", fbType(typeConnect)); p.KeepAlive != 0 {
		t.Errorf("CONNECT keepalive %d, want 0", p.KeepAlive)
	}
	if c.pingEvery != keepAliveZeroPing {
		t.Errorf("ping interval %v, want %v", c.pingEvery, keepAliveZeroPing)
	}
	if err := c.Publish(fbCtx(t, 10*time.Second), "q1", []byte("x"), false, 1); err != nil {
		t.Fatalf("Publish = %v", err)
	}
	first := b.MustWait(t, 0, time.Second, "PUBLISH", fbType(typePublish))
	if pubs := b.Filter(fbType(typePublish), fbOnConn(1)); len(pubs) != 1 || pubs[0].DUP {
		t.Fatalf("PUBLISH packets on connection 1: %v, want one without DUP:\n%s", pubs, b.dump())
	}
	fbWithin(t, "first send to connection drop", b.Conn(1).EndedAt().Sub(first.At), 180*time.Millisecond, 600*time.Millisecond)
	if st := c.Stats(); st.Repubs != 0 || st.Renewals != 1 {
		t.Errorf("Stats Repubs %d Renewals %d, want 0 and 1", st.Repubs, st.Renewals)
	}
}

// A persistent session needs a stable client id: KeepSession with an empty ClientID is a configuration error
// from New, before any I/O (a random id would strand the session at the next start, and MQTT 3.1.1 makes the
// broker refuse it). A random id stays for clean sessions only.
func TestKeepSessionNeedsClientID(t *testing.T) {
	var dialed atomic.Bool
	dial := func(context.Context, string, string) (net.Conn, error) {
		dialed.Store(true)
		return nil, errors.New("no dialling expected")
	}
	for _, cfg := range []Config{
		{Server: "127.0.0.1", KeepSession: true, Dial: dial},
		{Server: "127.0.0.1", KeepSession: true, ResumeSession: true, Dial: dial},
	} {
		c, err := New(cfg)
		if !errors.Is(err, ErrInvalidConfig) || c != nil {
			t.Errorf("KeepSession %t ResumeSession %t without ClientID: New = %v, %v; want nil, ErrInvalidConfig",
				cfg.KeepSession, cfg.ResumeSession, c, err)
		}
		if err != nil && !strings.Contains(err.Error(), "KeepSession needs a ClientID") {
			t.Errorf("error %q does not say what is missing", err)
		}
	}
	if dialed.Load() {
		t.Error("New dialled")
	}

	// With an id, the same configuration is accepted and keeps the session on the wire.
	b := fbNew(t)
	fbConnect(t, Config{Server: "127.0.0.1", Port: b.Port(), ClientID: "stable", KeepSession: true, ResumeSession: true})
	if p := b.MustWait(t, 0, time.Second, "CONNECT", fbType(typeConnect)); p.Clean || p.ClientID != "stable" {
		t.Errorf("CONNECT %v, want clean=0 with id stable", p)
	}
	// A clean session without an id still gets a random one.
	mark := b.Mark()
	fbConnect(t, Config{Server: "127.0.0.1", Port: b.Port()})
	if p := b.MustWait(t, mark, time.Second, "CONNECT", fbType(typeConnect)); !p.Clean || !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(p.ClientID) {
		t.Errorf("CONNECT %v, want clean=1 with a random 12-hex-digit id", p)
	}
}
