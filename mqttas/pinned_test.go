package mqttas

// Behaviour that no other test pins down: packet ids across a wrap, acknowledgements of the wrong type,
// ids and slots freed by outages, the will on every CONNECT, backoff restarting per outage, Close during a
// backoff, and OnLinkChange's order.

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// One qos 1 publication held unacknowledged across a full wrap of the id counter: the request that would
// get its id after the wrap gets the next free one, and the PUBACK for that id leaves the held one waiting.
func TestPort_PacketIDWrapSkipsIDsInFlight(t *testing.T) {
	b := fbNew(t)
	held := uint16(1)
	b.SetHook(func(_ *fbConn, p fbPacket) bool { return p.Type == typePublish && p.QoS == 1 && p.ID == held })
	cfg := fbConfig(b)
	cfg.ResponseTime = time.Minute // the held publication must outlive the wrap without a DUP or an outage
	c := fbConnect(t, cfg)
	ctx := fbCtx(t, 30*time.Second)
	heldDone := fbResult(func() error { return c.Publish(ctx, "held", nil, false, 1) })
	first := b.MustWait(t, 0, 2*time.Second, "the held PUBLISH", fbType(typePublish), fbTopic("held"))
	if first.ID != held {
		t.Fatalf("the first publication has id %d, want %d", first.ID, held)
	}
	// A qos 0 publish advances the counter (claim 21) without holding an id: 65534 of them bring it to 65535.
	for i := range 65534 {
		if err := c.Publish(ctx, "q0", nil, false, 0); err != nil {
			t.Fatalf("qos 0 publish %d: %v", i, err)
		}
	}
	// Waited for before looking: a wait on the broker while 65534 packets arrive would rescan them all.
	// The fake broker may still be reading the 65534 under the race detector on a loaded machine: bounds of
	// 30 s, not 5 (ResponseTime is a minute, so waiting longer changes nothing the test checks).
	afterErr := c.Publish(fbCtx(t, 30*time.Second), "after-wrap", nil, false, 1)
	p := b.MustWait(t, 0, 30*time.Second, "the PUBLISH after the wrap", fbType(typePublish), fbTopic("after-wrap"))
	if p.ID != held+1 {
		t.Fatalf("after the wrap the id is %d, want %d: 0 is never used and %d is still in flight", p.ID, held+1, held)
	}
	if afterErr != nil {
		t.Fatal(afterErr)
	}
	select {
	case err := <-heldDone:
		t.Fatalf("the held publication completed (%v) without its PUBACK", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := b.Conn(1).Send(fbAck(typePuback, held)); err != nil {
		t.Fatal(err)
	}
	if err := fbRecv(t, heldDone, 2*time.Second, "the held publication"); err != nil {
		t.Fatal(err)
	}
	if n := c.Stats().Outages; n != 0 {
		t.Errorf("%d outages during the wrap", n)
	}
}

// A SUBACK or UNSUBACK carrying the id of a publication in flight, or a PUBACK carrying a subscription's,
// never completes it: each is a stray acknowledgement; the right type then completes it.
func TestPort_WrongTypeAckNeverCompletes(t *testing.T) {
	b := fbNew(t)
	b.SetAutoAcks(false, false, true, true)
	cfg := fbConfig(b)
	cfg.ResponseTime = 10 * time.Second
	c := fbConnect(t, cfg)
	ctx := fbCtx(t, 10*time.Second)
	pub := fbResult(func() error { return c.Publish(ctx, "wrong-ack", nil, false, 1) })
	pp := b.MustWait(t, 0, 2*time.Second, "PUBLISH", fbType(typePublish))
	sub := fbResult(func() error { return c.Subscribe(ctx, "wrong/ack", 1) })
	sp := b.MustWait(t, 0, 2*time.Second, "SUBSCRIBE", fbType(typeSubscribe))
	conn := b.Conn(1)
	for _, bs := range [][]byte{fbSuback(pp.ID, 1), fbAck(typeUnsuback, pp.ID), fbAck(typePuback, sp.ID), fbAck(typeUnsuback, sp.ID)} {
		if err := conn.Send(bs); err != nil {
			t.Fatal(err)
		}
	}
	fbEventually(t, 2*time.Second, "4 stray acknowledgements", func() bool { return c.Stats().StrayAcks == 4 })
	select {
	case err := <-pub:
		t.Fatalf("the publication completed (%v) on an acknowledgement of the wrong type", err)
	case err := <-sub:
		t.Fatalf("the subscription completed (%v) on an acknowledgement of the wrong type", err)
	case <-time.After(50 * time.Millisecond):
	}
	_ = conn.Send(fbAck(typePuback, pp.ID))
	_ = conn.Send(fbSuback(sp.ID, 1))
	if err := fbRecv(t, pub, 2*time.Second, "Publish"); err != nil {
		t.Fatal(err)
	}
	if err := fbRecv(t, sub, 2*time.Second, "Subscribe"); err != nil {
		t.Fatal(err)
	}
	if n := c.Stats().Outages; n != 0 {
		t.Errorf("%d outages: a stray acknowledgement is ignored", n)
	}
}

// Outage after outage with requests in flight: each outage frees the ids and slots of the requests it
// ended, so afterwards a full window of requests (shrunk to 16 slots here) goes through.
func TestPort_OutagesFreeIDsAndSlots(t *testing.T) {
	b := fbNew(t)
	b.SetAutoAcks(false, false, false, true)
	cfg := fbConfig(b)
	cfg.ResponseTime = 10 * time.Second
	c := fbClient(t, cfg)
	const window = 16
	c.slots = make(chan struct{}, window) // before Connect: nothing uses it yet
	if err := c.Connect(fbCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	ctx := fbCtx(t, 30*time.Second)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range window {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				err = c.Publish(ctx, "inflight", nil, false, 1)
			} else {
				err = c.Subscribe(ctx, "inflight/+", 1)
			}
			if err != nil {
				failed.Add(1)
			}
		})
	}
	const outages = 10
	for n := 1; n <= outages; n++ {
		if err := b.WaitCond(fbCtx(t, 3*time.Second), func() bool {
			return len(b.Filter(fbOnConn(n), func(p fbPacket) bool { return p.Type == typePublish || p.Type == typeSubscribe })) == window
		}); err != nil {
			t.Fatalf("connection %d: the %d requests were not all sent", n, window)
		}
		if ids, slots := c.pending(); ids != window || slots != window {
			t.Fatalf("connection %d: %d ids and %d slots in use, want %d each", n, ids, slots, window)
		}
		if n == outages {
			b.SetAutoAcks(true, true, true, true) // the last connection acknowledges what is sent again
		}
		b.Conn(n).Close()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("the window's requests did not complete after %d outages; %d ids, %d slots in use", outages, len(c.ids), len(c.slots))
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed", n)
	}
	if ids, slots := c.pending(); ids != 0 || slots != 0 {
		t.Errorf("after the outages: %d ids and %d slots in use, want 0", ids, slots)
	}
	// The whole window is free: as many new requests at once complete.
	var again sync.WaitGroup
	for range window {
		again.Go(func() {
			if err := c.Publish(ctx, "window", nil, false, 1); err != nil {
				failed.Add(1)
			}
		})
	}
	again.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests of the new window failed", n)
	}
}

// With KeepSession (mqtt_as's clean=False) the will goes in every CONNECT, the resumed ones included, so
// the broker publishes it after an abrupt loss of any of them (the real broker: TestIntegrationWillAfterResume).
func TestPort_WillOnEveryConnect(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	cfg.KeepSession = true
	cfg.Will = &Message{Topic: "will/t", Payload: []byte("gone"), QoS: 1, Retain: true}
	c := fbConnect(t, cfg)
	for n := 1; n <= 2; n++ {
		b.Conn(b.Conns()).Close()
		fbEventually(t, 2*time.Second, "reconnected", func() bool { return c.Stats().Reconnects == uint64(n) })
	}
	connects := b.Filter(fbType(typeConnect))
	if len(connects) < 3 {
		t.Fatalf("%d CONNECTs, want at least 3", len(connects))
	}
	for _, p := range connects {
		if !p.WillFlag || p.WillTopic != "will/t" || string(p.WillPayload) != "gone" || p.WillQoS != 1 || !p.WillRetain {
			t.Errorf("%v: will flag %t topic %q payload %q qos %d retain %t, want the will", p, p.WillFlag,
				p.WillTopic, p.WillPayload, p.WillQoS, p.WillRetain)
		}
	}
	if last := connects[len(connects)-1]; last.Clean {
		t.Errorf("reconnection %v has the clean flag, want a kept session", last)
	}
}

// Each outage's reconnection starts again at once and then from ReconnectMin, however far the backoff of
// the previous outage had grown.
func TestPort_BackoffRestartsEachOutage(t *testing.T) {
	b := fbNew(t)
	d := &fbDialer{target: b.Addr()}
	cfg := fbConfig(b)
	cfg.Dial = d.Dial
	cfg.ReconnectMin, cfg.ReconnectMax = 40*time.Millisecond, 640*time.Millisecond
	c := fbConnect(t, cfg)
	// Outage 1: 6 attempts fail, the wait grows to the cap (40, 80, …, 640 ms).
	var refused atomic.Int32
	d.mu.Lock()
	d.fail = func(n int) error {
		if n > 1 && refused.Add(1) <= 6 {
			return errors.New("refused")
		}
		return nil
	}
	d.mu.Unlock()
	b.Conn(1).Close()
	fbEventually(t, 5*time.Second, "reconnected after outage 1", func() bool { return c.Stats().Reconnects == 1 })
	_, ts := d.Calls()
	if last := ts[len(ts)-1].Sub(ts[len(ts)-2]); last < cfg.ReconnectMax/4 {
		t.Fatalf("the last wait of outage 1 was %v: the backoff did not grow", last)
	}
	// Outage 2: two attempts fail.
	mark := len(ts)
	d.mu.Lock()
	refused.Store(0)
	d.fail = func(n int) error {
		if n > mark && refused.Add(1) <= 2 {
			return errors.New("refused")
		}
		return nil
	}
	d.mu.Unlock()
	outage := time.Now()
	b.Conn(2).Close()
	fbEventually(t, 5*time.Second, "reconnected after outage 2", func() bool { return c.Stats().Reconnects == 2 })
	_, ts = d.Calls()
	ts = ts[mark:]
	if len(ts) != 3 {
		t.Fatalf("%d attempts in outage 2, want 3", len(ts))
	}
	fbWithin(t, "outage 2 to its first attempt", ts[0].Sub(outage), 0, 100*time.Millisecond)
	min := cfg.ReconnectMin
	fbWithin(t, "wait after outage 2's first failure", ts[1].Sub(ts[0]), min/2, min+100*time.Millisecond)
	fbWithin(t, "wait after outage 2's second failure", ts[2].Sub(ts[1]), min, 2*min+100*time.Millisecond)
}

// Close during a reconnection backoff returns at once, not at the end of the wait.
func TestPort_CloseDuringBackoffReturnsAtOnce(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	cfg.ReconnectMin, cfg.ReconnectMax = 10*time.Second, 10*time.Second
	c := fbConnect(t, cfg)
	b.SetRefuse(true)
	b.Conn(1).Close()
	fbEventually(t, 2*time.Second, "the first attempt failed", func() bool { return c.Stats().FailedAttempts == 1 })
	time.Sleep(50 * time.Millisecond) // into the wait of at least 5 s
	start := time.Now()
	done := fbResult(c.Close)
	if err := fbRecv(t, done, 2*time.Second, "Close during the backoff"); err != nil {
		t.Fatal(err)
	}
	fbWithin(t, "Close during a backoff of at least 5 s", time.Since(start), 0, 200*time.Millisecond)
}

// OnLinkChange calls run one at a time and in the order of the events, even when the handler is slower
// than the outages come.
func TestPort_OnLinkChangeSerialInOrder(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	var mu sync.Mutex
	var got []bool
	var running atomic.Int32
	var overlap atomic.Bool
	cfg.OnLinkChange = func(up bool) {
		if running.Add(1) > 1 {
			overlap.Store(true)
		}
		defer running.Add(-1)
		time.Sleep(30 * time.Millisecond) // slower than an outage and a reconnection
		mu.Lock()
		got = append(got, up)
		mu.Unlock()
	}
	c := fbConnect(t, cfg)
	const outages = 5
	for n := 1; n <= outages; n++ {
		b.Conn(n).Close()
		b.MustWaitConns(t, n+1, 2*time.Second)
		fbEventually(t, 2*time.Second, "reconnected", func() bool { return c.Stats().Reconnects == uint64(n) })
	}
	fbEventually(t, 3*time.Second, "all OnLinkChange calls", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 2*outages+1
	})
	mu.Lock()
	defer mu.Unlock()
	for i, up := range got {
		if want := i%2 == 0; up != want {
			t.Fatalf("OnLinkChange calls %v: call %d is %t, want alternating true, false, … from true", got, i, up)
		}
	}
	if overlap.Load() {
		t.Error("OnLinkChange calls overlapped")
	}
}
