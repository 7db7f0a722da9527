package mqttas

// SUBSCRIBE and UNSUBSCRIBE that the broker does not acknowledge (spec §5): one ResponseTime wait, then the
// link is declared dead; no DUP re-send; after the reconnection the request goes out again with a new
// packet id, and the call returns nil once that one is acknowledged.

import (
	"context"
	"errors"
	"testing"
	"time"
)

// pending returns the packet ids registered and the slots taken: both 0 when nothing waits.
func (c *Client) pending() (ids, slots int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids), len(c.slots)
}

type unackedKind struct {
	name string
	typ  byte
	call func(ctx context.Context, c *Client) error
	ack  func(id uint16) []byte
}

var unackedKinds = []unackedKind{
	{"SUBSCRIBE", typeSubscribe,
		func(ctx context.Context, c *Client) error { return c.Subscribe(ctx, "unacked/+", 1) },
		func(id uint16) []byte { return fbSuback(id, 1) }},
	{"UNSUBSCRIBE", typeUnsubscribe,
		func(ctx context.Context, c *Client) error { return c.Unsubscribe(ctx, "unacked/+") },
		func(id uint16) []byte { return fbAck(typeUnsuback, id) }},
}

func TestPort_UnacknowledgedSubscribeAndUnsubscribe(t *testing.T) {
	for _, k := range unackedKinds {
		t.Run(k.name, func(t *testing.T) {
			b := fbNew(t)
			b.SetAutoAcks(true, false, false, true)
			cfg := fbConfig(b)
			rt := 400 * time.Millisecond
			cfg.ResponseTime = rt
			c := fbConnect(t, cfg)
			done := fbResult(func() error { return k.call(fbCtx(t, 10*time.Second), c) })
			first := b.MustWait(t, 0, 2*time.Second, "the first "+k.name, fbType(k.typ), fbOnConn(1))
			down := fbWaitEvent(t, c.Down(), 4*rt, "Down after the unacknowledged "+k.name)
			// One ResponseTime wait, not MaxRepubs+1 of them; timers fire up to ~150 ms late under load.
			fbWithin(t, "first "+k.name+" to outage", down.Sub(first.At), rt, rt+150*time.Millisecond)
			if err := c.LastError(); !errors.Is(err, ErrTimeout) {
				t.Errorf("LastError = %v, want ErrTimeout", err)
			}
			again := b.MustWait(t, first.Index+1, 2*time.Second, k.name+" after the reconnection", fbType(k.typ), fbOnConn(2))
			if err := b.Last().Send(k.ack(again.ID)); err != nil {
				t.Fatal(err)
			}
			if err := fbRecv(t, done, 2*time.Second, k.name); err != nil {
				t.Fatalf("%s = %v, want nil once acknowledged", k.name, err)
			}
			if again.ID == first.ID {
				t.Errorf("re-sent with the same packet id %d, want a new one", again.ID)
			}
			if again.Topic != first.Topic || string(again.Raw[4:]) != string(first.Raw[4:]) {
				t.Errorf("re-sent %v, want the same request as %v", again, first)
			}
			if n := len(b.Filter(fbType(k.typ), fbOnConn(1))); n != 1 {
				t.Errorf("%d %s packets on the first connection, want 1 (no re-send before the outage)", n, k.name)
			}
			for _, p := range b.Filter(fbType(k.typ)) {
				if p.Flags != 0x2 {
					t.Errorf("%v: flags %#x, want 0x2 (no DUP)", p, p.Flags)
				}
			}
			b.AssertWellFormed(t)
			if n := c.Stats().Outages; n != 1 {
				t.Errorf("%d outages, want 1", n)
			}
			if n := c.Stats().Repubs; n != 0 {
				t.Errorf("Repubs = %d, want 0: only qos 1 publications are re-sent with DUP", n)
			}
			if ids, slots := c.pending(); ids != 0 || slots != 0 {
				t.Errorf("after the acknowledgement: %d ids and %d slots in use, want 0", ids, slots)
			}
		})
	}
}

// A call whose context ends while it waits for the acknowledgement returns the context's error at once
// and leaves nothing pending: no id, no slot, no outage later; the late acknowledgement is a stray.
func TestPort_CancelledSubscribeLeavesNothingPending(t *testing.T) {
	for _, k := range unackedKinds {
		t.Run(k.name, func(t *testing.T) {
			b := fbNew(t)
			b.SetAutoAcks(true, false, false, true)
			cfg := fbConfig(b)
			rt := 300 * time.Millisecond
			cfg.ResponseTime = rt
			c := fbConnect(t, cfg)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := fbResult(func() error { return k.call(ctx, c) })
			p := b.MustWait(t, 0, 2*time.Second, k.name, fbType(k.typ))
			if ids, slots := c.pending(); ids != 1 || slots != 1 {
				t.Errorf("while waiting: %d ids and %d slots in use, want 1 each", ids, slots)
			}
			cancel()
			if err := fbRecv(t, done, rt/2, k.name+" after cancel"); !errors.Is(err, context.Canceled) {
				t.Fatalf("%s = %v, want context.Canceled", k.name, err)
			}
			if ids, slots := c.pending(); ids != 0 || slots != 0 {
				t.Errorf("after cancel: %d ids and %d slots in use, want 0", ids, slots)
			}
			time.Sleep(rt + 100*time.Millisecond) // past the ResponseTime the cancelled wait would have ended in
			if n := c.Stats().Outages; n != 0 {
				t.Errorf("%d outages after a cancelled %s, want 0", n, k.name)
			}
			if err := b.Conn(1).Send(k.ack(p.ID)); err != nil {
				t.Fatal(err)
			}
			fbEventually(t, time.Second, "the late acknowledgement counted as stray", func() bool { return c.Stats().StrayAcks == 1 })
			if n := len(b.Filter(fbType(k.typ))); n != 1 {
				t.Errorf("%d %s packets, want 1: a cancelled request is not sent again", n, k.name)
			}
		})
	}
}
