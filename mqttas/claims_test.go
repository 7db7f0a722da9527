package mqttas

// One test per testable claim of spec §15 that still applies to the Go port (see CLAIMS.md for the
// mapping; claims that are §14 defects are tested in defects_test.go). Where §14 makes the port differ on
// purpose, the test checks the port's behaviour and says so. The tests at the end cover the port's own
// requirements: concurrency, validation before I/O and malformed broker packets.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// --- Configuration (claims 1–7) ---

func TestClaim01_NoServerRejectedBeforeIO(t *testing.T) {
	var dialed atomic.Bool
	cfg := Config{}
	cfg.Dial = func(context.Context, string, string) (net.Conn, error) {
		dialed.Store(true)
		return nil, errors.New("no dialling expected")
	}
	c, err := New(cfg)
	if !errors.Is(err, ErrInvalidConfig) || c != nil {
		t.Fatalf("New without Server = %v, %v; want nil, ErrInvalidConfig", c, err)
	}
	if dialed.Load() {
		t.Error("New dialled")
	}
}

func TestClaim02_KeepAliveLimit(t *testing.T) {
	cfg := Config{}
	cfg.Server = "127.0.0.1"
	cfg.KeepAlive = 65536 * time.Second
	if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("KeepAlive 65536 s: err = %v, want ErrInvalidConfig", err)
	}
	b := fbNew(t)
	cfg = fbConfig(b)
	cfg.KeepAlive = 65535 * time.Second
	fbConnect(t, cfg)
	p := b.MustWait(t, 0, time.Second, "CONNECT", fbType(typeConnect))
	if p.KeepAlive != 65535 {
		t.Errorf("CONNECT keepalive = %d, want 65535", p.KeepAlive)
	}
}

func TestClaim03_WillValidationAndDefaults(t *testing.T) {
	for name, w := range map[string]*Message{
		"empty topic": {Topic: "", Payload: []byte("x")},
		"qos 2":       {Topic: "lw", Payload: []byte("x"), QoS: 2},
		"wildcard":    {Topic: "lw/#", Payload: []byte("x")},
	} {
		cfg := Config{}
		cfg.Server = "127.0.0.1"
		cfg.Will = w
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("will with %s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
	b := fbNew(t)
	cfg := fbConfig(b)
	cfg.Will = &Message{Topic: "lw", Payload: []byte("bye")} // topic and message only
	fbConnect(t, cfg)
	p := b.MustWait(t, 0, time.Second, "CONNECT", fbType(typeConnect))
	if !p.WillFlag || p.WillQoS != 0 || p.WillRetain || p.WillTopic != "lw" || string(p.WillPayload) != "bye" {
		t.Errorf("CONNECT will: flag=%t qos=%d retain=%t topic=%q msg=%q; want true 0 false lw bye",
			p.WillFlag, p.WillQoS, p.WillRetain, p.WillTopic, p.WillPayload)
	}
	if p.ConnFlags != 0x06 {
		t.Errorf("CONNECT flags = %#x, want 0x06 (clean, will)", p.ConnFlags)
	}
}

func TestClaim04_PasswordWithoutUserNotSent(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	cfg.Password = "secret"
	fbConnect(t, cfg)
	p := b.MustWait(t, 0, time.Second, "CONNECT", fbType(typeConnect))
	if p.UserFlag || p.PassFlag || p.ConnFlags != 0x02 {
		t.Errorf("CONNECT flags = %#x (user %t, password %t), want 0x02 and neither flag", p.ConnFlags, p.UserFlag, p.PassFlag)
	}
	if bytes.Contains(p.Raw, []byte("secret")) {
		t.Error("the password went on the wire")
	}
}

func TestClaim05_DefaultPorts(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  *tls.Config
		want string
	}{
		{"plain", nil, "127.0.0.1:1883"},
		{"tls", &tls.Config{}, "127.0.0.1:8883"},
	} {
		var addr string
		cfg := Config{}
		cfg.Server = "127.0.0.1"
		cfg.TLS = tc.tls
		cfg.ResponseTime = 200 * time.Millisecond
		cfg.Dial = func(_ context.Context, _, a string) (net.Conn, error) {
			addr = a // no connection is made: the test only looks at the address
			return nil, errors.New("refused by the test")
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Connect(context.Background()); err == nil {
			t.Errorf("%s: Connect succeeded with a failing dialer", tc.name)
		}
		_ = c.Close()
		if addr != tc.want {
			t.Errorf("%s: dialled %q, want %q", tc.name, addr, tc.want)
		}
	}
}

func TestClaim06_PingIntervalDerivation(t *testing.T) {
	for _, tc := range []struct {
		keepAlive, ping, want time.Duration
	}{
		{60 * time.Second, 0, 15 * time.Second},
		{0, 0, 15 * time.Second},            // KeepAlive 0 means 60 s
		{-time.Second, 0, 20 * time.Second}, // negative: the broker's timer is off
		{-time.Second, 3 * time.Second, 3 * time.Second},
		{2 * time.Second, 0, 500 * time.Millisecond},
		{60 * time.Second, 100 * time.Second, 15 * time.Second},
		{60 * time.Second, 3 * time.Second, 3 * time.Second},
	} {
		cfg := Config{}
		cfg.Server = "127.0.0.1"
		cfg.KeepAlive, cfg.PingInterval = tc.keepAlive, tc.ping
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if c.pingEvery != tc.want {
			t.Errorf("KeepAlive %v PingInterval %v: ping interval %v, want %v", tc.keepAlive, tc.ping, c.pingEvery, tc.want)
		}
	}
}

func TestClaim07_QueueModeCallsNoCallbacks(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	cfg.QueueLen = 4
	var calls atomic.Int32
	cfg.OnMessage = func(Message) { calls.Add(1) }
	cfg.OnConnect = func(context.Context, *Client) { calls.Add(1) }
	cfg.OnLinkChange = func(bool) { calls.Add(1) }
	c := fbConnect(t, cfg)
	_ = b.Conn(1).Send(fbPublish("a", []byte("1"), 0, false, false, 0))
	m, err := c.Queue().Next(fbCtx(t, 2*time.Second))
	if err != nil || m.Topic != "a" {
		t.Fatalf("queue: %v, %v", m, err)
	}
	c.Up().Clear()
	b.Conn(1).Close() // an outage and a reconnection
	fbWaitEvent(t, c.Down(), 2*time.Second, "Down")
	fbWaitEvent(t, c.Up(), 2*time.Second, "Up")
	time.Sleep(50 * time.Millisecond) // callbacks run on goroutines: give them a chance to (wrongly) run
	if n := calls.Load(); n != 0 {
		t.Errorf("%d callback calls in queue mode, want 0", n)
	}
}

// --- Wire format (claims 8–14) ---

func TestClaim08_ConnectTestVector(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	cfg.ClientID = "010203040506"
	cfg.Will = &Message{Topic: "lw", Payload: []byte("bye"), Retain: true, QoS: 1}
	cfg.User, cfg.Password = "u", "p"
	cfg.KeepAlive = 60 * time.Second
	c := fbConnect(t, cfg)
	want := []byte{0x10, 0x27, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0xee, 0x00, 0x3c, 0x00, 0x0c,
		0x30, 0x31, 0x30, 0x32, 0x30, 0x33, 0x30, 0x34, 0x30, 0x35, 0x30, 0x36, 0x00, 0x02, 0x6c, 0x77,
		0x00, 0x03, 0x62, 0x79, 0x65, 0x00, 0x01, 0x75, 0x00, 0x01, 0x70}
	p := b.MustWait(t, 0, time.Second, "CONNECT", fbType(typeConnect))
	if !bytes.Equal(p.Raw, want) {
		t.Errorf("CONNECT\n got % x\nwant % x", p.Raw, want)
	}
	_ = c.Close()

	for _, tc := range []struct {
		keep, resume bool
		flags        byte
	}{{false, false, 0x02}, {true, true, 0x00}} {
		cfg := fbConfig(b)
		cfg.KeepSession, cfg.ResumeSession = tc.keep, tc.resume
		mark := b.Mark()
		c := fbConnect(t, cfg)
		p := b.MustWait(t, mark, time.Second, "CONNECT", fbType(typeConnect))
		if p.ConnFlags != tc.flags || p.ProtoName != "MQTT" || p.ProtoLevel != 4 {
			t.Errorf("KeepSession %t ResumeSession %t: protocol %q level %d flags %#x, want MQTT 4 %#x",
				tc.keep, tc.resume, p.ProtoName, p.ProtoLevel, p.ConnFlags, tc.flags)
		}
		_ = c.Close()
	}
}

// Port difference: there is no device unique id; the default is a random 12-digit lowercase hex id.
func TestClaim09_DefaultClientIDIsLowercaseHex(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	cfg.ClientID = ""
	c := fbConnect(t, cfg)
	p := b.MustWait(t, 0, time.Second, "CONNECT", fbType(typeConnect))
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(p.ClientID) {
		t.Errorf("default client id %q is not 12 lowercase hex digits", p.ClientID)
	}
	other, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if other.cfg.ClientID == c.cfg.ClientID {
		t.Errorf("two clients got the same default id %q", p.ClientID)
	}
}

func TestClaim10_BadConnackFailsFirstConnect(t *testing.T) {
	for _, tc := range []struct {
		name    string
		connack []byte
		want    error
	}{
		{"first byte not 0x20", []byte{0x90, 3, 0, 1, 0}, ErrProtocol},
		{"length not 2", []byte{0x20, 3, 0, 0, 0}, ErrProtocol},
		{"reserved flag bits", []byte{0x20, 2, 0x02, 0}, ErrProtocol},
		{"return code 5", []byte{0x20, 2, 0, 5}, ErrConnectionRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fbNew(t)
			b.SetConnackFunc(func(int, fbPacket) []byte { return tc.connack })
			c := fbClient(t, fbConfig(b))
			err := c.Connect(fbCtx(t, 5*time.Second))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Connect = %v, want %v", err, tc.want)
			}
			var ce *ConnackError
			if tc.want == ErrConnectionRefused && (!errors.As(err, &ce) || ce.Code != 5) {
				t.Errorf("Connect = %v, want a *ConnackError with code 5", err)
			}
			if c.IsConnected() {
				t.Error("IsConnected after a failed Connect")
			}
		})
	}
}

func TestClaim11_PublishHeaderByte(t *testing.T) {
	b := fbNew(t)
	// Withhold the first PUBACK of the qos 1 publication, so that its DUP re-send shows up too.
	b.SetHook(func(c *fbConn, p fbPacket) bool { return p.Type == typePublish && p.QoS == 1 && !p.DUP })
	c := fbConnect(t, fbConfig(b))
	ctx := fbCtx(t, 5*time.Second)
	if err := c.Publish(ctx, "t", []byte("ab"), true, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "t", []byte("cd"), false, 1); err != nil {
		t.Fatal(err)
	}
	pubs := b.Filter(fbType(typePublish))
	if len(pubs) != 3 {
		t.Fatalf("got %d PUBLISH packets, want 3:\n%s", len(pubs), b.dump())
	}
	if want := []byte{0x31, 5, 0, 1, 't', 'a', 'b'}; !bytes.Equal(pubs[0].Raw, want) {
		t.Errorf("qos 0 retained PUBLISH = % x, want % x (no packet id)", pubs[0].Raw, want)
	}
	id := pubs[1].ID
	if want := []byte{0x32, 7, 0, 1, 't', byte(id >> 8), byte(id), 'c', 'd'}; !bytes.Equal(pubs[1].Raw, want) {
		t.Errorf("qos 1 PUBLISH = % x, want % x", pubs[1].Raw, want)
	}
	if want := []byte{0x3a, 7, 0, 1, 't', byte(id >> 8), byte(id), 'c', 'd'}; !bytes.Equal(pubs[2].Raw, want) {
		t.Errorf("qos 1 DUP PUBLISH = % x, want % x", pubs[2].Raw, want)
	}
}

func TestClaim12_SubscribeUnsubscribeWireFormat(t *testing.T) {
	b := fbNew(t)
	c := fbConnect(t, fbConfig(b))
	ctx := fbCtx(t, 5*time.Second)
	if err := c.Subscribe(ctx, "a/+", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Unsubscribe(ctx, "a/+"); err != nil {
		t.Fatal(err)
	}
	sub := b.MustWait(t, 0, time.Second, "SUBSCRIBE", fbType(typeSubscribe))
	if want := []byte{0x82, 8, 0, byte(sub.ID), 0, 3, 'a', '/', '+', 1}; !bytes.Equal(sub.Raw, want) {
		t.Errorf("SUBSCRIBE = % x, want % x", sub.Raw, want)
	}
	unsub := b.MustWait(t, 0, time.Second, "UNSUBSCRIBE", fbType(typeUnsubscribe))
	if want := []byte{0xa2, 7, 0, byte(unsub.ID), 0, 3, 'a', '/', '+'}; !bytes.Equal(unsub.Raw, want) {
		t.Errorf("UNSUBSCRIBE = % x, want % x", unsub.Raw, want)
	}
}

func TestClaim13_PingreqAndDisconnectBytes(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	cfg.PingInterval = 100 * time.Millisecond
	c := fbConnect(t, cfg)
	ping := b.MustWait(t, 0, time.Second, "PINGREQ", fbType(typePingreq))
	if !bytes.Equal(ping.Raw, []byte{0xc0, 0}) {
		t.Errorf("PINGREQ = % x, want c0 00", ping.Raw)
	}
	if err := c.Disconnect(fbCtx(t, 2*time.Second)); err != nil {
		t.Fatal(err)
	}
	disc := b.MustWait(t, 0, time.Second, "DISCONNECT", fbType(typeDisconnect))
	if !bytes.Equal(disc.Raw, []byte{0xe0, 0}) {
		t.Errorf("DISCONNECT = % x, want e0 00", disc.Raw)
	}
}

func TestClaim14_OversizePublishRefusedLocally(t *testing.T) {
	b := fbNew(t)
	c := fbConnect(t, fbConfig(b)) // default MaxPacketSize: 2,097,151, mqtt_as's limit
	ctx := fbCtx(t, 5*time.Second)
	payload := make([]byte, 2_097_151-2-1) // remaining length 2 + 2 ("ab") + payload = 2,097,152
	err := c.Publish(ctx, "ab", payload, false, 0)
	if !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("Publish of remaining length 2,097,152 = %v, want ErrPacketTooLarge", err)
	}
	// Anything written before this qos 1 publication would have reached the broker before it.
	if err := c.Publish(ctx, "ok", nil, false, 1); err != nil {
		t.Fatal(err)
	}
	if pubs := b.Filter(fbType(typePublish)); len(pubs) != 1 || pubs[0].Topic != "ok" {
		t.Errorf("broker received %d PUBLISH packets, want only the one to \"ok\":\n%s", len(pubs), b.dump())
	}
}

// --- Incoming PUBLISH (claims 15–17; 17 is in defects_test.go) ---

func TestClaim15_IncomingQoS1DeliveredThenAcked(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	got := make(chan Message, 1)
	release := make(chan struct{})
	cfg.OnMessage = func(m Message) {
		got <- m
		<-release
	}
	fbConnect(t, cfg)
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the client's Close, which waits for the reader
	_ = b.Conn(1).Send(fbPublish("sensors/t", []byte("21.5"), 1, true, false, 0x1234))
	var m Message
	select {
	case m = <-got:
	case <-time.After(2 * time.Second):
		t.Fatal("message not delivered")
	}
	if m.Topic != "sensors/t" || string(m.Payload) != "21.5" || m.QoS != 1 || !m.Retain {
		t.Errorf("delivered %+v", m)
	}
	time.Sleep(150 * time.Millisecond)
	if acks := b.Filter(fbType(typePuback)); len(acks) != 0 {
		t.Fatalf("PUBACK sent while the application still held the message: %v", acks)
	}
	free()
	ack := b.MustWait(t, 0, 2*time.Second, "PUBACK", fbType(typePuback))
	if ack.ID != 0x1234 {
		t.Errorf("PUBACK id %#x, want the broker's 0x1234", ack.ID)
	}
}

func TestClaim16_DuplicateDeliveredAndAckedAgain(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	got := make(chan Message, 4)
	cfg.OnMessage = func(m Message) { got <- m }
	fbConnect(t, cfg)
	_ = b.Conn(1).Send(fbPublish("d", []byte("x"), 1, false, false, 9))
	_ = b.Conn(1).Send(fbPublish("d", []byte("x"), 1, false, true, 9))
	for i := range 2 {
		select {
		case m := <-got:
			if m.Topic != "d" || string(m.Payload) != "x" {
				t.Errorf("delivery %d: %+v", i, m)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("only %d deliveries, want 2", i)
		}
	}
	if err := b.WaitCond(fbCtx(t, 2*time.Second), func() bool {
		return len(b.Filter(fbType(typePuback), fbID(9))) == 2
	}); err != nil {
		t.Fatalf("PUBACKs for id 9: %v, want 2", b.Filter(fbType(typePuback)))
	}
}

// --- Acknowledgements for unknown ids (claim 18: fixed in the port) ---

// Port difference (§14): an acknowledgement for an id that is not pending is logged, counted in
// Stats().StrayAcks and ignored; mqtt_as dropped the connection.
func TestClaim18_StrayAcksIgnoredNoReconnect(t *testing.T) {
	b := fbNew(t)
	logs := &fbLogBuffer{}
	cfg := fbConfig(b)
	cfg.Logger = fbDebugLogger(logs)
	c := fbConnect(t, cfg)
	conn := b.Conn(1)
	_ = conn.Send(fbAck(typePuback, 4242))
	_ = conn.Send(fbSuback(4243, 0))
	_ = conn.Send(fbAck(typeUnsuback, 4244))
	fbEventually(t, 2*time.Second, "StrayAcks == 3", func() bool { return c.Stats().StrayAcks == 3 })
	if err := c.Publish(fbCtx(t, 2*time.Second), "after", []byte("x"), false, 1); err != nil {
		t.Fatal(err)
	}
	if p := b.MustWait(t, 0, time.Second, "PUBLISH", fbType(typePublish)); p.Conn != 1 {
		t.Errorf("the publication went out on connection %d, want 1", p.Conn)
	}
	if st := c.Stats(); st.Outages != 0 || b.Conns() != 1 || c.Down().IsSet() {
		t.Errorf("outages %d, connections %d, Down %t; want 0, 1, false", st.Outages, b.Conns(), c.Down().IsSet())
	}
	if !bytes.Contains([]byte(logs.String()), []byte("unknown packet id")) {
		t.Errorf("stray acknowledgements not logged:\n%s", logs)
	}
}

// --- Packet identifiers (claims 20–22) ---

func TestClaim20_PacketIDsStartAtOneAndWrapSkippingZero(t *testing.T) {
	b := fbNew(t)
	c := fbConnect(t, fbConfig(b))
	ctx := fbCtx(t, 5*time.Second)
	publish := func() uint16 {
		t.Helper()
		mark := b.Mark()
		if err := c.Publish(ctx, "id", nil, false, 1); err != nil {
			t.Fatal(err)
		}
		return b.MustWait(t, mark, time.Second, "PUBLISH", fbType(typePublish)).ID
	}
	for want := uint16(1); want <= 3; want++ {
		if id := publish(); id != want {
			t.Errorf("publication %d got id %d", want, id)
		}
	}
	if err := c.Subscribe(ctx, "s", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Unsubscribe(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if s := b.Filter(fbType(typeSubscribe)); len(s) != 1 || s[0].ID != 4 {
		t.Errorf("SUBSCRIBE ids %v, want [4]", s)
	}
	if u := b.Filter(fbType(typeUnsubscribe)); len(u) != 1 || u[0].ID != 5 {
		t.Errorf("UNSUBSCRIBE ids %v, want [5]", u)
	}
	c.mu.Lock()
	c.nextID = 65533 // jump ahead rather than publish 65,528 times
	c.mu.Unlock()
	for _, want := range []uint16{65534, 65535, 1, 2} {
		if id := publish(); id != want {
			t.Errorf("after the jump: id %d, want %d", id, want)
		}
	}
}

func TestClaim21_QoS0PublishConsumesAnID(t *testing.T) {
	b := fbNew(t)
	c := fbConnect(t, fbConfig(b))
	ctx := fbCtx(t, 5*time.Second)
	steps := []func() error{
		func() error { return c.Publish(ctx, "q", nil, false, 0) },
		func() error { return c.Publish(ctx, "q", nil, false, 1) },
		func() error { return c.Publish(ctx, "q", nil, false, 0) },
		func() error { return c.Publish(ctx, "q", nil, false, 1) },
		func() error { return c.Subscribe(ctx, "q", 1) },
		func() error { return c.Unsubscribe(ctx, "q") },
	}
	for i, f := range steps {
		if err := f(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	var ids []uint16
	for _, p := range b.Filter(func(p fbPacket) bool { return p.ID != 0 }) {
		ids = append(ids, p.ID)
	}
	// mqtt_as's observed sequence: qos0 = 1, qos1 = 2, qos0 = 3, qos1 = 4, subscribe = 5, unsubscribe = 6.
	if want := []uint16{2, 4, 5, 6}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("ids on the wire %v, want %v", ids, want)
	}
}

func TestClaim22_PacketIDsContinueAcrossReconnect(t *testing.T) {
	b := fbNew(t)
	c := fbConnect(t, fbConfig(b))
	ctx := fbCtx(t, 5*time.Second)
	if err := c.Publish(ctx, "r", nil, false, 1); err != nil {
		t.Fatal(err)
	}
	c.Up().Clear()
	b.Conn(1).Close()
	fbWaitEvent(t, c.Up(), 2*time.Second, "Up after the reconnection")
	if err := c.Publish(ctx, "r", nil, false, 1); err != nil {
		t.Fatal(err)
	}
	pubs := b.Filter(fbType(typePublish))
	if len(pubs) != 2 || pubs[0].Conn != 1 || pubs[1].Conn != 2 || pubs[1].ID != pubs[0].ID+1 {
		t.Errorf("publications %v, want ids n on connection 1 and n+1 on connection 2", pubs)
	}
}

// --- The qos 1 state machine (claims 23–31) ---

func TestClaim23_DupResendSameIDResponseTimeApart(t *testing.T) {
	b := fbNew(t)
	b.SetHook(func(c *fbConn, p fbPacket) bool { return c.n == 1 && p.Type == typePublish }) // no PUBACK on conn 1
	cfg := fbConfig(b)
	cfg.ResponseTime = 250 * time.Millisecond
	cfg.MaxRepubs = 4
	c := fbConnect(t, cfg)
	done := fbResult(func() error { return c.Publish(fbCtx(t, 10*time.Second), "q1", []byte("payload"), false, 1) })
	if err := fbRecv(t, done, 5*time.Second, "Publish"); err != nil {
		t.Fatalf("Publish = %v", err)
	}
	pubs := b.Filter(fbType(typePublish), fbOnConn(1))
	if len(pubs) != 1+cfg.MaxRepubs {
		t.Fatalf("%d PUBLISH packets on connection 1, want 1 + MaxRepubs = %d:\n%s", len(pubs), 1+cfg.MaxRepubs, b.dump())
	}
	for i, p := range pubs {
		if p.ID != pubs[0].ID || p.DUP != (i > 0) || string(p.Payload) != "payload" {
			t.Errorf("send %d: %v; want id %d, DUP %t", i, p, pubs[0].ID, i > 0)
		}
		if i > 0 {
			fbWithin(t, fmt.Sprintf("gap before DUP re-send %d", i), p.At.Sub(pubs[i-1].At),
				cfg.ResponseTime*8/10, 2*cfg.ResponseTime)
		}
	}
}

func TestClaim24_LinkDeclaredDeadAfterMaxRepubsPlusOneResponseTimes(t *testing.T) {
	b := fbNew(t)
	b.SetPuback(false)
	cfg := fbConfig(b)
	cfg.ResponseTime = 200 * time.Millisecond
	cfg.MaxRepubs = 2
	c := fbConnect(t, cfg)
	go func() { _ = c.Publish(context.Background(), "q1", []byte("x"), false, 1) }() // ends at Close
	first := b.MustWait(t, 0, time.Second, "PUBLISH", fbType(typePublish))
	select {
	case <-b.Conn(1).Ended():
	case <-time.After(3 * time.Second):
		t.Fatal("the client never dropped the connection")
	}
	want := time.Duration(cfg.MaxRepubs+1) * cfg.ResponseTime
	fbWithin(t, "first send to connection drop", b.Conn(1).EndedAt().Sub(first.At), want*9/10, want+2*cfg.ResponseTime)
	fbWaitEvent(t, c.Down(), time.Second, "Down")
	b.MustWait(t, 0, 2*time.Second, "reconnection", fbType(typeConnect), fbOnConn(2))
}

func TestClaim25_RepublishedWithNewIDAfterReconnect(t *testing.T) {
	b := fbNew(t)
	b.SetHook(func(c *fbConn, p fbPacket) bool { return c.n == 1 && p.Type == typePublish })
	cfg := fbConfig(b)
	cfg.ResponseTime = 200 * time.Millisecond
	cfg.MaxRepubs = 1
	c := fbConnect(t, cfg)
	if err := c.Publish(fbCtx(t, 5*time.Second), "q1", []byte("same"), true, 1); err != nil {
		t.Fatal(err)
	}
	old := b.Filter(fbType(typePublish), fbOnConn(1))
	renewed := b.Filter(fbType(typePublish), fbOnConn(2))
	if len(old) != 2 || len(renewed) != 1 {
		t.Fatalf("PUBLISH packets: %d on connection 1, %d on connection 2; want 2 and 1:\n%s", len(old), len(renewed), b.dump())
	}
	r := renewed[0]
	if r.DUP || r.ID != old[0].ID+1 || string(r.Payload) != "same" || r.Topic != "q1" || !r.Retain {
		t.Errorf("renewed publication %v; want DUP=0, id %d (the next id), same topic, payload and retain", r, old[0].ID+1)
	}
	if st := c.Stats(); st.Renewals != 1 || st.Repubs != 1 {
		t.Errorf("Stats Renewals %d Repubs %d, want 1 and 1", st.Renewals, st.Repubs)
	}
}

func TestClaim26_QoS1ReturnsOnlyAfterPubackAcrossOutages(t *testing.T) {
	b := fbNew(t)
	b.SetHook(func(c *fbConn, p fbPacket) bool {
		switch {
		case p.Type != typePublish:
			return false
		case c.n == 1:
			c.Close() // the network "fails" while the publication waits
		default:
			c.SendAfter(200*time.Millisecond, fbAck(typePuback, p.ID))
		}
		return true
	})
	c := fbConnect(t, fbConfig(b))
	err := c.Publish(fbCtx(t, 5*time.Second), "q1", []byte("x"), false, 1)
	returned := time.Now()
	if err != nil {
		t.Fatalf("Publish surfaced %v", err)
	}
	ack := b.MustWaitSent(t, 2, typePuback, time.Second)
	if returned.Before(ack.At) {
		t.Errorf("Publish returned %v before the PUBACK was sent", ack.At.Sub(returned))
	}
	if st := c.Stats(); st.Outages != 1 || st.Published != 1 {
		t.Errorf("outages %d published %d, want 1 and 1", st.Outages, st.Published)
	}
}

// Port difference (§14): the broker's second PUBACK for the same id is ignored (StrayAcks); mqtt_as
// dropped the connection.
func TestClaim27_PubackAfterDupCompletesSecondIgnored(t *testing.T) {
	b := fbNew(t)
	b.SetHook(func(c *fbConn, p fbPacket) bool {
		if p.Type != typePublish {
			return false
		}
		if p.DUP { // ack the original late, and the DUP
			_ = c.Send(fbAck(typePuback, p.ID))
			_ = c.Send(fbAck(typePuback, p.ID))
		}
		return true
	})
	cfg := fbConfig(b)
	c := fbConnect(t, cfg)
	if err := c.Publish(fbCtx(t, 5*time.Second), "q1", []byte("x"), false, 1); err != nil {
		t.Fatal(err)
	}
	fbEventually(t, time.Second, "StrayAcks == 1", func() bool { return c.Stats().StrayAcks == 1 })
	time.Sleep(2 * cfg.ResponseTime)
	if st := c.Stats(); st.Outages != 0 || b.Conns() != 1 || st.Repubs != 1 {
		t.Errorf("outages %d connections %d repubs %d; want 0, 1, 1", st.Outages, b.Conns(), st.Repubs)
	}
}

func TestClaim28_LinkLossDuringWaitNoDupNewID(t *testing.T) {
	b := fbNew(t)
	b.SetHook(func(c *fbConn, p fbPacket) bool { return c.n == 1 && p.Type == typePublish })
	c, link, _ := fbLinkedClient(t, b, 50*time.Millisecond, func(cfg *Config) { cfg.ResponseTime = 300 * time.Millisecond })
	done := fbResult(func() error { return c.Publish(fbCtx(t, 5*time.Second), "q1", []byte("x"), false, 1) })
	first := b.MustWait(t, 0, time.Second, "PUBLISH", fbType(typePublish))
	link.Drop()
	if err := fbRecv(t, done, 3*time.Second, "Publish"); err != nil {
		t.Fatal(err)
	}
	old := b.Filter(fbType(typePublish), fbOnConn(1))
	renewed := b.Filter(fbType(typePublish), fbOnConn(2))
	if len(old) != 1 {
		t.Errorf("%d PUBLISH packets on connection 1, want 1 (no DUP re-send after the link loss)", len(old))
	}
	if len(renewed) != 1 || renewed[0].DUP || renewed[0].ID != first.ID+1 {
		t.Errorf("on connection 2: %v; want one PUBLISH, DUP=0, id %d", renewed, first.ID+1)
	}
}

func TestClaim29_RepubsCountsEachDupResend(t *testing.T) {
	b := fbNew(t)
	var dups atomic.Int32
	b.SetHook(func(c *fbConn, p fbPacket) bool {
		if p.Type != typePublish || string(p.Payload) != "first" {
			return false // the second publication is acked at once
		}
		if p.DUP && dups.Add(1) == 2 {
			_ = c.Send(fbAck(typePuback, p.ID)) // ack the second DUP re-send
		}
		return true
	})
	cfg := fbConfig(b)
	cfg.ResponseTime = 150 * time.Millisecond
	cfg.MaxRepubs = 4
	c := fbConnect(t, cfg)
	ctx := fbCtx(t, 5*time.Second)
	if err := c.Publish(ctx, "q1", []byte("first"), false, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "q1", []byte("second"), false, 1); err != nil { // acked at once
		t.Fatal(err)
	}
	onWire := len(b.Filter(fbType(typePublish), fbDUP(true)))
	if st := c.Stats(); st.Repubs != 2 || onWire != 2 {
		t.Errorf("Stats().Repubs = %d, DUP packets on the wire %d; want 2 and 2", st.Repubs, onWire)
	}
}

// Port difference (§14, no polling): the publication goes out as soon as the link is back, not ~1 s later.
func TestClaim30_PublishWhileDownSentAfterReconnect(t *testing.T) {
	b := fbNew(t)
	c := fbConnect(t, fbConfig(b))
	b.SetRefuse(true)
	b.Conn(1).Close()
	fbWaitEvent(t, c.Down(), 2*time.Second, "Down")
	done := fbResult(func() error { return c.Publish(fbCtx(t, 5*time.Second), "later", []byte("x"), false, 0) })
	select {
	case err := <-done:
		t.Fatalf("Publish returned %v while the broker was unreachable", err)
	case <-time.After(300 * time.Millisecond):
	}
	b.SetRefuse(false)
	if err := fbRecv(t, done, 3*time.Second, "Publish"); err != nil {
		t.Fatal(err)
	}
	p := b.MustWait(t, 0, 2*time.Second, "PUBLISH", fbType(typePublish))
	connack := b.MustWaitSent(t, p.Conn, typeConnack, time.Second)
	fbWithin(t, "CONNACK to PUBLISH", p.At.Sub(connack.At), 0, 300*time.Millisecond)
}

func TestClaim31_QoS2RefusedAtOnceEvenWhenDown(t *testing.T) {
	b := fbNew(t)
	c := fbClient(t, fbConfig(b))
	ctx := fbCtx(t, 5*time.Second)
	if err := c.Publish(ctx, "t", nil, false, 2); !errors.Is(err, ErrInvalidQoS) {
		t.Errorf("qos 2 before Connect = %v, want ErrInvalidQoS", err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	b.SetRefuse(true)
	b.Conn(1).Close()
	fbWaitEvent(t, c.Down(), 2*time.Second, "Down")
	start := time.Now()
	if err := c.Publish(ctx, "t", nil, false, 2); !errors.Is(err, ErrInvalidQoS) {
		t.Errorf("qos 2 during an outage = %v, want ErrInvalidQoS", err)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("qos 2 refusal took %v during an outage", d)
	}
}

// --- Keepalive and outage detection (claims 32–38; 38 is in defects_test.go) ---

func TestClaim32_PingsEveryIntervalDespiteTraffic(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	cfg.PingInterval = 200 * time.Millisecond
	c := fbConnect(t, cfg)
	connack := b.MustWaitSent(t, 1, typeConnack, time.Second).At
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // client → broker
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				_ = c.Publish(context.Background(), "up", []byte("x"), false, 0)
			}
		}
	})
	wg.Go(func() { // broker → client
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				_ = b.Conn(1).Send(fbPublish("down", []byte("y"), 0, false, false, 0))
			}
		}
	})
	window := 2400 * time.Millisecond
	time.Sleep(window + 50*time.Millisecond - time.Since(connack))
	close(stop)
	wg.Wait()
	var pings []time.Duration
	for _, p := range b.Filter(fbType(typePingreq), fbOnConn(1)) {
		if d := p.At.Sub(connack); d <= window {
			pings = append(pings, d)
		}
	}
	// 12 intervals: 11 to 12 pings (each interval runs a little late). Pinging every 1.33 intervals gives 9
	// and a mean gap of 266 ms; the mean gap allows 30 ms of timer lateness per ping.
	pi := cfg.PingInterval
	if n := len(pings); n < 11 || n > 12 {
		t.Errorf("%d PINGREQs in %v at a %v interval, want 11 or 12: %v", n, window, pi, pings)
	}
	if len(pings) > 1 {
		fbWithin(t, "first PINGREQ after the CONNACK", pings[0], pi*9/10, pi+50*time.Millisecond)
		mean := (pings[len(pings)-1] - pings[0]) / time.Duration(len(pings)-1)
		fbWithin(t, "mean gap between PINGREQs", mean, pi*95/100, pi+30*time.Millisecond)
	}
	if up, down := len(b.Filter(fbType(typePublish))), c.Stats().Received; up < 20 || down < 20 {
		t.Errorf("traffic: %d PUBLISH up, %d down; want at least 20 each way", up, down)
	}
}

func TestClaim33_SilentBrokerDeclaredDeadAfterFourIntervals(t *testing.T) {
	b := fbNew(t)
	b.SetPingresp(false) // the broker says nothing after its CONNACK
	cfg := fbConfig(b)
	cfg.PingInterval = 150 * time.Millisecond
	c := fbConnect(t, cfg)
	connack := b.MustWaitSent(t, 1, typeConnack, time.Second).At
	down := fbWaitEvent(t, c.Down(), 3*time.Second, "Down")
	pi := cfg.PingInterval
	fbWithin(t, "last received byte to outage", down.Sub(connack), 4*pi, 5*pi+100*time.Millisecond)
	if n := len(b.Filter(fbType(typePingreq), fbOnConn(1))); n < 3 {
		t.Errorf("%d PINGREQs before the outage, want at least 3", n)
	}
	b.SetPingresp(true)
	b.MustWait(t, 0, 2*time.Second, "reconnection", fbType(typeConnect), fbOnConn(2))
}

func TestClaim34_ReceivedBytesPostponeDetection(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	pi := 100 * time.Millisecond
	cfg.PingInterval = pi
	c := fbConnect(t, cfg)
	time.Sleep(6 * pi) // phase A: PINGRESPs only
	if n := c.Stats().Outages; n != 0 {
		t.Fatalf("%d outages while the broker answered pings", n)
	}
	b.SetPingresp(false) // phase B: no PINGRESP, but a PUBLISH every 2 intervals
	var last time.Time
	for range 4 {
		_ = b.Conn(1).Send(fbPublish("alive", []byte("x"), 0, false, false, 0))
		last = time.Now()
		time.Sleep(2 * pi)
	}
	if n := c.Stats().Outages; n != 0 {
		t.Fatalf("%d outages while the broker sent a PUBLISH every 2 intervals", n)
	}
	// Phase C: silence.
	down := fbWaitEvent(t, c.Down(), 2*time.Second, "Down")
	fbWithin(t, "last received byte to outage", down.Sub(last), 4*pi, 5*pi+100*time.Millisecond)
}

func TestClaim35_PingWriteFailureReconnectsAtOnce(t *testing.T) {
	b := fbNew(t)
	d := &fbDialer{target: b.Addr()}
	cfg := fbConfig(b)
	cfg.Dial = d.Dial
	cfg.PingInterval = 150 * time.Millisecond
	c := fbConnect(t, cfg)
	d.ConnAt(1).failWrite.Store(true) // the next write (the PINGREQ) fails
	down := fbWaitEvent(t, c.Down(), 2*time.Second, "Down")
	buf, at := d.ConnAt(1).Failed()
	if len(buf) == 0 || buf[0] != 0xc0 {
		t.Fatalf("the failed write was % x, want a PINGREQ", buf)
	}
	fbWithin(t, "failed PINGREQ write to outage", down.Sub(at), 0, 100*time.Millisecond)
	b.MustWait(t, 0, 2*time.Second, "reconnection", fbType(typeConnect), fbOnConn(2))
}

func TestClaim36_StallOverResponseTimeIsOutage(t *testing.T) {
	t.Run("mid-packet read", func(t *testing.T) {
		b := fbNew(t)
		cfg := fbConfig(b)
		c := fbConnect(t, cfg)
		_ = b.Conn(1).Send([]byte{0x30, 10, 0, 3}) // 4 of a PUBLISH's 12 bytes, then nothing
		start := time.Now()
		down := fbWaitEvent(t, c.Down(), 2*time.Second, "Down")
		fbWithin(t, "stall to outage", down.Sub(start), cfg.ResponseTime*9/10, 2*cfg.ResponseTime+100*time.Millisecond)
		b.MustWait(t, 0, 2*time.Second, "reconnection", fbType(typeConnect), fbOnConn(2))
	})
	t.Run("write without progress", func(t *testing.T) {
		b := fbNew(t)
		d := &fbDialer{target: b.Addr()}
		cfg := fbConfig(b)
		cfg.Dial = d.Dial
		c := fbConnect(t, cfg)
		d.ConnAt(1).stall.Store(true)
		start := time.Now()
		if err := c.Publish(fbCtx(t, time.Second), "w", []byte("x"), false, 0); err != nil {
			t.Fatal(err)
		}
		down := fbWaitEvent(t, c.Down(), 2*time.Second, "Down")
		fbWithin(t, "stalled write to outage", down.Sub(start), cfg.ResponseTime*9/10, 2*cfg.ResponseTime+100*time.Millisecond)
		b.MustWait(t, 0, 2*time.Second, "reconnection", fbType(typeConnect), fbOnConn(2))
	})
}

func TestClaim37_LinkLossIsOutageWithinTensOfMs(t *testing.T) {
	b := fbNew(t)
	// ResponseTime 1 s: no MQTT timeout can explain a fast detection.
	c, link, _ := fbLinkedClient(t, b, 50*time.Millisecond, func(cfg *Config) { cfg.ResponseTime = time.Second })
	start := time.Now()
	link.Drop()
	down := fbWaitEvent(t, c.Down(), 2*time.Second, "Down")
	fbWithin(t, "link loss to outage", down.Sub(start), 0, 100*time.Millisecond)
	if c.IsConnected() {
		t.Error("IsConnected right after the link loss was signalled")
	}
}

// --- Reconnection (claims 39–45; 42 and 44 are in defects_test.go) ---

// Port difference: the Link is disconnected and reconnected after every outage, but with no fixed 1 s pause.
func TestClaim39_EveryOutageCyclesTheLink(t *testing.T) {
	b := fbNew(t)
	_, link, cfg := fbLinkedClient(t, b, 50*time.Millisecond)
	b.Conn(1).Close() // a pure broker outage: the link itself is fine
	conn2 := b.MustWait(t, 0, 2*time.Second, "reconnection", fbType(typeConnect), fbOnConn(2))
	ev := link.Events()
	if len(ev) != 3 || ev[0].What != "connect" || ev[1].What != "disconnect" || ev[2].What != "connect" {
		t.Fatalf("link events %v, want connect, disconnect, connect", ev)
	}
	if !ev[2].At.Before(conn2.At) {
		t.Error("the MQTT reconnection preceded the link reconnection")
	}
	fbWithin(t, "link up to CONNECT", conn2.At.Sub(ev[2].At), cfg.LinkStableFor, cfg.LinkStableFor+300*time.Millisecond)
}

func TestClaim40_ReconnectWaitsLinkStableForEvenAfterQuick(t *testing.T) {
	b := fbNew(t)
	start := time.Now()
	_, link, cfg := fbLinkedClient(t, b, 300*time.Millisecond)
	if d := time.Since(start); d >= cfg.LinkStableFor {
		t.Errorf("ConnectQuick took %v, not under LinkStableFor %v", d, cfg.LinkStableFor)
	}
	b.Conn(1).Close()
	conn2 := b.MustWait(t, 0, 3*time.Second, "reconnection", fbType(typeConnect), fbOnConn(2))
	ev := link.Events()
	last := ev[len(ev)-1]
	if last.What != "connect" {
		t.Fatalf("last link event %v, want connect", last)
	}
	fbWithin(t, "link up to CONNECT on reconnection", conn2.At.Sub(last.At), cfg.LinkStableFor, cfg.LinkStableFor+300*time.Millisecond)
}

// Port difference: the minimum outage-to-up time is LinkStableFor (with a Link) instead of mqtt_as's 7–8 s.
func TestClaim41_MinimumOutageToUpIsLinkStableFor(t *testing.T) {
	b := fbNew(t)
	c, link, cfg := fbLinkedClient(t, b, 300*time.Millisecond)
	c.Up().Clear()
	link.Drop()
	down := fbWaitEvent(t, c.Down(), time.Second, "Down")
	up := fbWaitEvent(t, c.Up(), 3*time.Second, "Up")
	fbWithin(t, "Down to Up", up.Sub(down), cfg.LinkStableFor, cfg.LinkStableFor+500*time.Millisecond)
}

// Port difference: joining is the Link's business (no 60 × 1 s polls in the client); a failed
// Link.Connect is retried, after a Disconnect, with backoff, until it succeeds.
func TestClaim43_FailedLinkJoinRetried(t *testing.T) {
	b := fbNew(t)
	c, link, _ := fbLinkedClient(t, b, 20*time.Millisecond)
	link.FailNext(3)
	link.Drop()
	b.MustWait(t, 0, 3*time.Second, "reconnection", fbType(typeConnect), fbOnConn(2))
	var got []string
	for _, e := range link.Events()[2:] { // after the first connect and the drop
		got = append(got, e.What)
	}
	want := []string{"disconnect", "connect-failed", "disconnect", "connect-failed", "disconnect", "connect-failed", "disconnect", "connect"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("link events after the drop %v, want %v", got, want)
	}
	if n := c.Stats().FailedAttempts; n != 3 {
		t.Errorf("FailedAttempts = %d, want 3", n)
	}
}

func TestClaim45_ConnectQuickSkipsStabilityWait(t *testing.T) {
	b := fbNew(t)
	for _, quick := range []bool{false, true} {
		link := newFakeLink()
		cfg := fbConfig(b)
		cfg.Link = link
		cfg.LinkStableFor = 300 * time.Millisecond
		c := fbClient(t, cfg)
		connect := c.Connect
		if quick {
			connect = c.ConnectQuick
		}
		start := time.Now()
		if err := connect(fbCtx(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		if quick && d >= cfg.LinkStableFor {
			t.Errorf("ConnectQuick took %v, want under LinkStableFor %v", d, cfg.LinkStableFor)
		}
		if !quick && d < cfg.LinkStableFor {
			t.Errorf("Connect took %v, want at least LinkStableFor %v", d, cfg.LinkStableFor)
		}
		_ = c.Close()
	}
}

// Close takes the Link down as mqtt_as's close() switches WiFi off: connected, in the middle of a
// reconnection, and never connected; a second Close does nothing, and no reconnection brings the link up
// behind it.
func TestPort_CloseTakesLinkDown(t *testing.T) {
	lastIsDisconnect := func(t *testing.T, l *fakeLink) {
		t.Helper()
		ev := l.Events()
		if len(ev) == 0 || ev[len(ev)-1].What != "disconnect" {
			t.Fatalf("link events after Close %v, want them to end with a disconnect", ev)
		}
		select {
		case <-l.Lost():
		default:
			t.Fatal("Lost() is open after Close: the link is still up")
		}
		n := len(ev)
		time.Sleep(200 * time.Millisecond) // a reconnection left running would bring the link up again
		if ev := l.Events(); len(ev) != n {
			t.Errorf("link events after Close returned: %v", ev[n:])
		}
	}
	t.Run("connected", func(t *testing.T) {
		b := fbNew(t)
		c, link, _ := fbLinkedClient(t, b, 20*time.Millisecond)
		_ = c.Close()
		lastIsDisconnect(t, link)
		n := len(link.Events())
		_ = c.Close()
		if ev := link.Events(); len(ev) != n {
			t.Errorf("a second Close touched the link: %v", ev[n:])
		}
	})
	t.Run("reconnecting", func(t *testing.T) {
		b := fbNew(t)
		c, link, _ := fbLinkedClient(t, b, 20*time.Millisecond)
		b.SetRefuse(true) // every reconnection's CONNECT finds the connection closed: the link keeps cycling
		b.Conn(1).Close()
		link.WaitEvents(t, 6, 3*time.Second) // connect, then disconnect/connect twice and more
		_ = c.Close()
		lastIsDisconnect(t, link)
	})
	t.Run("never connected", func(t *testing.T) {
		b := fbNew(t)
		link := newFakeLink()
		cfg := fbConfig(b)
		cfg.Link = link
		c := fbClient(t, cfg)
		_ = c.Close()
		lastIsDisconnect(t, link)
	})
}

// --- Sessions (claims 46–50; 49 is in defects_test.go) ---

func TestClaim46_CleanTrueAlwaysSetsCleanFlag(t *testing.T) {
	// clean=True is KeepSession false; clean_init=False is ResumeSession, which then changes nothing.
	for _, resume := range []bool{false, true} {
		t.Run(fmt.Sprintf("ResumeSession=%t", resume), func(t *testing.T) {
			b := fbNew(t)
			cfg := fbConfig(b)
			cfg.KeepSession, cfg.ResumeSession = false, resume
			c := fbConnect(t, cfg)
			if n := b.Conns(); n != 1 {
				t.Errorf("%d connections for the first Connect, want 1 (no clean-init dance)", n)
			}
			c.Up().Clear()
			b.Conn(1).Close()
			fbWaitEvent(t, c.Up(), 2*time.Second, "Up")
			for _, p := range b.Filter(fbType(typeConnect)) {
				if !p.Clean {
					t.Errorf("CONNECT without the clean flag: %v", p)
				}
			}
		})
	}
}

// Port difference: instead of sleeping 2 s after the DISCONNECT, the client waits (up to ResponseTime)
// for the broker to close the connection.
func TestClaim47_CleanInitDance(t *testing.T) {
	b := fbNew(t)
	b.SetConnackFunc(func(conn int, _ fbPacket) []byte {
		if conn >= 3 {
			return []byte{0x20, 2, 1, 0} // the session kept since connection 2
		}
		return []byte{0x20, 2, 0, 0}
	})
	cfg := fbConfig(b)
	cfg.KeepSession = true // clean_init=True, clean=False
	c := fbConnect(t, cfg)
	got := b.Packets()
	if len(got) != 3 {
		t.Fatalf("first Connect: %d packets, want CONNECT, DISCONNECT, CONNECT:\n%s", len(got), b.dump())
	}
	if p := got[0]; p.Type != typeConnect || p.Conn != 1 || !p.Clean {
		t.Errorf("first packet %v, want CONNECT clean=1 on connection 1", p)
	}
	if p := got[1]; p.Type != typeDisconnect || p.Conn != 1 {
		t.Errorf("second packet %v, want DISCONNECT on connection 1", p)
	}
	if p := got[2]; p.Type != typeConnect || p.Conn != 2 || p.Clean {
		t.Errorf("third packet %v, want CONNECT clean=0 on a new connection", p)
	}
	c.Up().Clear()
	b.Conn(2).Close()
	fbWaitEvent(t, c.Up(), 2*time.Second, "Up")
	if p := b.MustWait(t, 0, time.Second, "reconnection", fbType(typeConnect), fbOnConn(3)); p.Clean {
		t.Errorf("reconnection %v, want clean=0", p)
	}
	if !c.Stats().SessionPresent {
		t.Error("the reconnection's session present flag was not reported")
	}
}

func TestClaim48_ResumeSessionFirstConnectUnclean(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	cfg.KeepSession, cfg.ResumeSession = true, true // clean_init=False, clean=False
	fbConnect(t, cfg)
	if cs := b.Filter(fbType(typeConnect)); len(cs) != 1 || cs[0].Clean || b.Conns() != 1 {
		t.Errorf("CONNECTs %v over %d connections, want one with clean=0", cs, b.Conns())
	}
}

// Port: in-flight state belongs to each publication and its ids to one connection: after a reconnection an
// acknowledgement carrying an id of the previous connection completes nothing.
func TestClaim50_PendingIDsDiscardedOnReconnect(t *testing.T) {
	b := fbNew(t)
	b.SetHook(func(c *fbConn, p fbPacket) bool {
		switch {
		case p.Type != typePublish:
			return false
		case c.n == 1:
			c.Close()
		default:
			_ = c.Send(fbAck(typePuback, p.ID-1)) // the id the first connection carried
			c.SendAfter(100*time.Millisecond, fbAck(typePuback, p.ID))
		}
		return true
	})
	c := fbConnect(t, fbConfig(b))
	if err := c.Publish(fbCtx(t, 5*time.Second), "q1", []byte("x"), false, 1); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	old := b.MustWait(t, 0, time.Second, "PUBLISH", fbType(typePublish), fbOnConn(1))
	renewed := b.MustWait(t, 0, time.Second, "PUBLISH", fbType(typePublish), fbOnConn(2))
	if renewed.ID == old.ID {
		t.Errorf("the id %d of connection 1 was reused on connection 2", old.ID)
	}
	if returned.Sub(renewed.At) < 100*time.Millisecond {
		t.Errorf("Publish returned %v after its renewal was sent: before the PUBACK for the new id", returned.Sub(renewed.At))
	}
	fbEventually(t, time.Second, "StrayAcks == 1", func() bool { return c.Stats().StrayAcks == 1 })
}

// --- Events, callbacks, queue (claims 51–56; 53, 54 are in defects_test.go) ---

func TestClaim51_UpAndDownEventsNeverCleared(t *testing.T) {
	b := fbNew(t)
	c := fbConnect(t, fbConfig(b))
	if !c.Up().IsSet() || c.Down().IsSet() {
		t.Fatalf("after Connect: Up %t Down %t, want true false", c.Up().IsSet(), c.Down().IsSet())
	}
	for i := 2; i <= 3; i++ {
		c.Up().Clear()
		c.Down().Clear()
		b.Conn(i - 1).Close()
		fbWaitEvent(t, c.Down(), 2*time.Second, "Down")
		fbWaitEvent(t, c.Up(), 2*time.Second, "Up")
	}
	time.Sleep(50 * time.Millisecond)
	if !c.Up().IsSet() || !c.Down().IsSet() {
		t.Error("the client cleared an event")
	}
	if st := c.Stats(); st.Connects != 3 || st.Reconnects != 2 || st.Outages != 2 {
		t.Errorf("stats %+v, want 3 connects, 2 reconnects, 2 outages", st)
	}
}

func TestClaim52_FailedFirstConnectSignalsNothing(t *testing.T) {
	b := fbNew(t)
	b.SetConnack(5, false)
	cfg := fbConfig(b)
	var calls atomic.Int32
	cfg.OnLinkChange = func(bool) { calls.Add(1) }
	cfg.OnConnect = func(context.Context, *Client) { calls.Add(1) }
	c := fbClient(t, cfg)
	var ce *ConnackError
	if err := c.Connect(fbCtx(t, 5*time.Second)); !errors.As(err, &ce) || ce.Code != 5 {
		t.Fatalf("Connect = %v, want CONNACK code 5", err)
	}
	time.Sleep(300 * time.Millisecond) // a reconnection would have begun by now
	if c.IsConnected() || c.Up().IsSet() || c.Down().IsSet() || calls.Load() != 0 {
		t.Errorf("after a failed Connect: connected %t Up %t Down %t callbacks %d", c.IsConnected(), c.Up().IsSet(), c.Down().IsSet(), calls.Load())
	}
	if n := b.Conns(); n != 1 {
		t.Errorf("%d connections, want 1: a failed first Connect starts no reconnection", n)
	}
}

func TestClaim55_QueueItems(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	cfg.QueueLen = 4
	c := fbConnect(t, cfg)
	_ = b.Conn(1).Send(fbPublish("a/b", []byte("one"), 1, true, false, 1))
	_ = b.Conn(1).Send(fbPublish("c", []byte("two"), 0, false, false, 0))
	ctx := fbCtx(t, 2*time.Second)
	m1, err1 := c.Queue().Next(ctx)
	m2, err2 := c.Queue().Next(ctx)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if m1.Topic != "a/b" || string(m1.Payload) != "one" || !m1.Retain || m1.QoS != 1 {
		t.Errorf("first item %+v", m1)
	}
	if m2.Topic != "c" || string(m2.Payload) != "two" || m2.Retain || m2.QoS != 0 {
		t.Errorf("second item %+v", m2)
	}
	m1.Payload[0] = 'X' // each payload is the item's own copy
	if string(m2.Payload) != "two" {
		t.Error("payloads share memory")
	}
}

func TestClaim56_CallbacksAfterEveryConnectionAndOutage(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	var mu sync.Mutex
	var links []bool
	var hooks int
	cfg.OnLinkChange = func(up bool) {
		mu.Lock()
		links = append(links, up)
		mu.Unlock()
	}
	cfg.OnConnect = func(_ context.Context, cl *Client) {
		mu.Lock()
		hooks++
		mu.Unlock()
	}
	c := fbConnect(t, cfg)
	c.Up().Clear()
	b.Conn(1).Close()
	fbWaitEvent(t, c.Up(), 2*time.Second, "Up")
	fbEventually(t, time.Second, "callbacks", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(links) == 3 && hooks == 2
	})
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(links) != "[true false true]" || hooks != 2 {
		t.Errorf("OnLinkChange %v, OnConnect %d calls; want [true false true] and 2", links, hooks)
	}
}

// --- Methods (claims 57–60; 57 is in defects_test.go) ---

func TestClaim58_BrokerUp(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	cfg.ResponseTime = 300 * time.Millisecond
	c := fbConnect(t, cfg)
	ctx := fbCtx(t, 10*time.Second)
	if !c.BrokerUp(ctx) {
		t.Error("BrokerUp just after the CONNACK = false")
	}
	if n := len(b.Filter(fbType(typePingreq))); n != 0 {
		t.Errorf("BrokerUp with fresh data sent %d PINGREQs", n)
	}
	time.Sleep(1100 * time.Millisecond)
	b.SetPingresp(false)
	start := time.Now()
	if c.BrokerUp(ctx) {
		t.Error("BrokerUp = true with a silent broker")
	}
	fbWithin(t, "BrokerUp with a silent broker", time.Since(start), cfg.ResponseTime*95/100, cfg.ResponseTime+300*time.Millisecond)
	if n := len(b.Filter(fbType(typePingreq))); n != 1 {
		t.Errorf("%d PINGREQs, want 1", n)
	}
	b.SetPingresp(true)
	if !c.BrokerUp(ctx) {
		t.Error("BrokerUp = false although the broker answered the ping")
	}
	if st := c.Stats(); st.Outages != 0 || b.Conns() != 1 || !c.IsConnected() {
		t.Errorf("BrokerUp caused an outage: %d outages, %d connections", st.Outages, b.Conns())
	}
}

// Port difference (§14): WANOK uses Config.WANCheckServer with a timeout and holds no client lock.
func TestClaim59_WANOK(t *testing.T) {
	b := fbNew(t)
	good := newFakeDNS(t, true, 0)
	mute := newFakeDNS(t, false, 0)
	cfg := fbConfig(b)
	cfg.WANCheckServer = good.Addr()
	c := fbClient(t, cfg)
	ctx := fbCtx(t, 5*time.Second)
	if c.WANOK(ctx) || good.queries.Load() != 0 {
		t.Error("WANOK before Connect: want false and no query")
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if !c.WANOK(ctx) || good.queries.Load() != 1 {
		t.Errorf("WANOK with an answering DNS server: want true after one query (%d queries)", good.queries.Load())
	}
	cfg.WANCheckServer = mute.Addr()
	cfg.WANCheckTimeout = 200 * time.Millisecond
	c2 := fbConnect(t, cfg)
	start := time.Now()
	if c2.WANOK(ctx) {
		t.Error("WANOK = true with a DNS server that never answers")
	}
	fbWithin(t, "WANOK with no answer", time.Since(start), cfg.WANCheckTimeout*95/100, cfg.WANCheckTimeout+300*time.Millisecond)
}

// Port difference (deliberate): IsConnected reports the established session, so it is false while the
// first Connect runs (mqtt_as returned True during connect()).
func TestClaim60_IsConnectedFalseDuringConnect(t *testing.T) {
	b := fbNew(t)
	b.SetConnackDelay(300 * time.Millisecond)
	cfg := fbConfig(b)
	cfg.ResponseTime = time.Second // longer than the CONNACK delay
	c := fbClient(t, cfg)
	done := fbResult(func() error { return c.Connect(fbCtx(t, 5*time.Second)) })
	b.MustWait(t, 0, time.Second, "CONNECT", fbType(typeConnect))
	if c.IsConnected() {
		t.Error("IsConnected = true while Connect waits for the CONNACK")
	}
	if err := fbRecv(t, done, 3*time.Second, "Connect"); err != nil {
		t.Fatal(err)
	}
	if !c.IsConnected() {
		t.Error("IsConnected = false after Connect returned")
	}
}

// --- Port requirements beyond the claims ---

func TestPort_ConcurrentQoS1PublishersGetOwnIDs(t *testing.T) {
	b := fbNew(t)
	b.SetAckDelay(30 * time.Millisecond) // keep many in flight at once
	c := fbConnect(t, fbConfig(b))
	const n = 50
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs <- c.Publish(fbCtx(t, 5*time.Second), "many", []byte(fmt.Sprint(i)), false, 1)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	pubs := b.Filter(fbType(typePublish))
	ids := map[uint16]string{}
	for _, p := range pubs {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("id %d used for %q and %q", p.ID, prev, p.Payload)
		}
		ids[p.ID] = string(p.Payload)
	}
	if len(pubs) != n || len(ids) != n {
		t.Errorf("%d PUBLISH packets with %d ids, want %d and %d", len(pubs), len(ids), n, n)
	}
	if st := c.Stats(); st.Published != n || st.Repubs != 0 || st.StrayAcks != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestPort_CancelledPublishLeavesNoPartialPacket(t *testing.T) {
	b := fbNew(t)
	b.SetAckDelay(5 * time.Millisecond)
	c := fbConnect(t, fbConfig(b))
	const n = 40
	payload := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 48<<10) }
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if i%2 == 0 { // cancel half of them at a random point
				time.AfterFunc(time.Duration(rand.IntN(4000))*time.Microsecond, cancel)
			}
			errs[i] = c.Publish(ctx, "big", payload(i), false, byte(i/2%2))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 1 && err != nil {
			t.Errorf("uncancelled publisher %d: %v", i, err)
		}
		if i%2 == 0 && err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled publisher %d: %v", i, err)
		}
	}
	// Everyone else keeps working on the same connection.
	if err := c.Publish(fbCtx(t, 2*time.Second), "after", []byte("x"), false, 1); err != nil {
		t.Fatal(err)
	}
	b.AssertWellFormed(t)
	for _, p := range b.Filter(fbType(typePublish), fbTopic("big")) {
		if len(p.Payload) != 48<<10 || !bytes.Equal(p.Payload, payload(int(p.Payload[0]))) {
			t.Errorf("corrupt payload in %v", p)
		}
	}
	if st := c.Stats(); st.Outages != 0 || st.ProtocolErrors != 0 || b.Conns() != 1 {
		t.Errorf("outages %d, protocol errors %d, connections %d; want 0, 0, 1", st.Outages, st.ProtocolErrors, b.Conns())
	}
}

func TestPort_ValidationBeforeIO(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	cfg.MaxPacketSize = 64
	c := fbConnect(t, cfg)
	ctx := fbCtx(t, 5*time.Second)
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"publish to +", c.Publish(ctx, "a/+", nil, false, 0), ErrInvalidTopic},
		{"publish to #", c.Publish(ctx, "a/#", nil, false, 1), ErrInvalidTopic},
		{"publish to empty topic", c.Publish(ctx, "", nil, false, 0), ErrInvalidTopic},
		{"publish to non-UTF-8 topic", c.Publish(ctx, "a/\xff", nil, false, 1), ErrInvalidTopic},
		{"publish to topic with U+0000", c.Publish(ctx, "a\x00b", nil, false, 0), ErrInvalidTopic},
		{"publish qos 2", c.Publish(ctx, "a", nil, false, 2), ErrInvalidQoS},
		{"publish over MaxPacketSize", c.Publish(ctx, "a", make([]byte, 62), false, 0), ErrPacketTooLarge},
		{"subscribe bad filter", c.Subscribe(ctx, "a/b#", 0), ErrInvalidTopic},
		{"subscribe empty filter", c.Subscribe(ctx, "", 0), ErrInvalidTopic},
		{"subscribe qos 2", c.Subscribe(ctx, "a", 2), ErrInvalidQoS},
		{"subscribe over MaxPacketSize", c.Subscribe(ctx, string(bytes.Repeat([]byte("a"), 60)), 0), ErrPacketTooLarge},
		{"unsubscribe bad filter", c.Unsubscribe(ctx, "a+"), ErrInvalidTopic},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if err := c.Publish(ctx, "a", make([]byte, 61), false, 0); err != nil { // exactly 64: accepted
		t.Errorf("publish of exactly MaxPacketSize: %v", err)
	}
	if err := c.Publish(ctx, "ok", nil, false, 1); err != nil {
		t.Fatal(err)
	}
	var sent []string
	for _, p := range b.Packets()[1:] {
		sent = append(sent, p.Topic)
	}
	if fmt.Sprint(sent) != "[a ok]" {
		t.Errorf("packets after CONNECT carry topics %v, want [a ok]: rejected calls must write nothing", sent)
	}
}

func TestPort_MalformedBrokerPackets(t *testing.T) {
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"remaining length over 4 bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"remaining length over MaxPacketSize", []byte{0x30, 0x80, 0x40}}, // 8192 bytes announced, none sent
		{"reserved type 0", []byte{0x00, 0x00}},
		{"reserved type 15", []byte{0xf0, 0x00}},
		{"CONNECT from the broker", []byte{0x10, 0x00}},
		{"PUBACK with length 3", []byte{0x40, 3, 0, 1, 0}},
		{"PUBLISH with qos 3", []byte{0x36, 5, 0, 1, 'a', 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fbNew(t)
			cfg := fbConfig(b)
			cfg.MaxPacketSize = 1024
			c := fbConnect(t, cfg)
			_ = b.Conn(1).Send(tc.send)
			fbWaitEvent(t, c.Down(), time.Second, "Down")
			b.MustWait(t, 0, 2*time.Second, "reconnection", fbType(typeConnect), fbOnConn(2))
			if n := c.Stats().ProtocolErrors; n != 1 {
				t.Errorf("ProtocolErrors = %d, want 1", n)
			}
			if err := c.Publish(fbCtx(t, 2*time.Second), "after", nil, false, 1); err != nil {
				t.Errorf("publish after the reset: %v", err)
			}
		})
	}
	t.Run("garbage CONNACK on reconnection", func(t *testing.T) {
		b := fbNew(t)
		b.SetConnackFunc(func(conn int, _ fbPacket) []byte {
			if conn == 2 {
				return []byte{0x20, 2, 0xfe, 0}
			}
			return []byte{0x20, 2, 0, 0}
		})
		c := fbConnect(t, fbConfig(b))
		c.Up().Clear()
		b.Conn(1).Close()
		fbWaitEvent(t, c.Up(), 2*time.Second, "Up")
		if b.Conns() != 3 {
			t.Errorf("%d connections, want 3 (the garbage CONNACK's was dropped)", b.Conns())
		}
		if st := c.Stats(); st.FailedAttempts != 1 || st.ProtocolErrors != 1 {
			t.Errorf("FailedAttempts %d ProtocolErrors %d, want 1 and 1", st.FailedAttempts, st.ProtocolErrors)
		}
	})
	t.Run("garbage CONNACK on first connect", func(t *testing.T) {
		b := fbNew(t)
		b.SetConnackFunc(func(int, fbPacket) []byte { return []byte{0x20, 0x82, 0x80, 0x80, 0x80, 0x01} })
		c := fbClient(t, fbConfig(b))
		if err := c.Connect(fbCtx(t, 2*time.Second)); !errors.Is(err, ErrProtocol) {
			t.Errorf("Connect = %v, want ErrProtocol", err)
		}
		time.Sleep(100 * time.Millisecond)
		if b.Conns() != 1 {
			t.Errorf("%d connections after a failed first Connect, want 1", b.Conns())
		}
	})
}
