package mqttas

// End-to-end tests of PublishDurable with the fake broker: messages stored durably are sent in order, and
// after a "crash" (Close before the broker acknowledged them) a new client on the same store sends them
// again with new packet ids until acknowledged, and the store then forgets them.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func durableStore(t *testing.T, dir string) *FileStore {
	t.Helper()
	st, err := OpenFileStore(dir)
	if err != nil {
		t.Fatalf("OpenFileStore: %v", err)
	}
	return st
}

func durablePayloads(ps []fbPacket) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p.Payload)
	}
	return out
}

func TestDurableCrashResendsWithNewIDs(t *testing.T) {
	const n = 50
	dir := t.TempDir()
	b := fbNew(t)
	b.SetPuback(false) // the broker never acknowledges: the process "crashes" with everything pending
	st := durableStore(t, dir)
	cfg := fbConfig(b)
	cfg.Store = st
	c := fbConnect(t, cfg)
	ctx := fbCtx(t, 10*time.Second)
	for i := range n {
		if err := c.PublishDurable(ctx, "d/seq", fmt.Appendf(nil, "m%03d", i), i%2 == 0); err != nil {
			t.Fatalf("PublishDurable %d: %v", i, err)
		}
	}
	b.MustWait(t, 0, 5*time.Second, "the last message sent", fbType(typePublish), func(p fbPacket) bool { return string(p.Payload) == fmt.Sprintf("m%03d", n-1) })
	first := b.Filter(fbType(typePublish), fbOnConn(1), fbDUP(false))
	if err := c.Close(); err != nil { // a crash: no acknowledgement arrived
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	b.SetPuback(true)
	st, err := openFileStore(osFS{}, dir, 256) // the next start of the process; compacts early
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if got := st.Len(); got != n {
		t.Fatalf("the store holds %d publications after the crash, want %d", got, n)
	}
	cfg.Store = st
	mark := b.Mark()
	c2 := fbConnect(t, cfg)
	fbEventually(t, 5*time.Second, "every stored publication acknowledged", func() bool { return c2.Stats().Published == n })
	fbEventually(t, 2*time.Second, "the store empty", func() bool { return st.Len() == 0 })
	var again []fbPacket
	for _, p := range b.Packets()[mark:] {
		if p.Type == typePublish {
			again = append(again, p)
		}
	}
	if len(again) != n {
		t.Fatalf("%d PUBLISH after the restart, want %d:\n%s", len(again), n, b.dump())
	}
	lastOld := first[len(first)-1].ID
	for i, p := range again {
		want := fmt.Sprintf("m%03d", i)
		if string(p.Payload) != want || p.Topic != "d/seq" || p.QoS != 1 || p.DUP || p.Retain != (i%2 == 0) {
			t.Errorf("re-sent #%d = %v %q; want %q in order, qos 1, DUP=0, retain %t", i, p, p.Payload, want, i%2 == 0)
		}
		if p.ID != uint16(i+1) {
			t.Errorf("re-sent #%d has packet id %d, want %d (the new client's ids, new ids)", i, p.ID, i+1)
		}
	}
	if lastOld == 0 {
		t.Error("the first run sent no qos 1 PUBLISH")
	}
	// Compacted: the log keeps at most the compaction threshold (256 bytes here) of acknowledged records
	// and one more, where the 50 records take 1450 bytes.
	fbEventually(t, 2*time.Second, "the log compacted", func() bool {
		fi, err := os.Stat(filepath.Join(dir, logName))
		return err == nil && fi.Size() <= int64(len(logHeader))+256+29
	})
	// The acks reach the log: a third start finds nothing to send.
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st3 := durableStore(t, dir)
	defer st3.Close()
	if got := st3.Len(); got != 0 {
		t.Errorf("after acknowledgement and a clean close, the store holds %d, want 0", got)
	}
}

func TestDurableInOrderAcrossOutagesAndRenewals(t *testing.T) {
	b := fbNew(t)
	// The first connection acknowledges nothing and is closed after 20 PUBLISHes: the rest are renewals.
	var mu sync.Mutex
	count := 0
	b.SetHook(func(c *fbConn, p fbPacket) bool {
		if p.Type != typePublish || c.n != 1 {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if count++; count == 20 {
			c.Close()
		}
		return true
	})
	st := durableStore(t, t.TempDir())
	t.Cleanup(func() { _ = st.Close() })
	cfg := fbConfig(b)
	cfg.Store = st
	c := fbConnect(t, cfg)
	ctx := fbCtx(t, 10*time.Second)
	const n = 40
	for i := range n {
		if err := c.PublishDurable(ctx, "d", fmt.Appendf(nil, "%d", i), false); err != nil {
			t.Fatal(err)
		}
	}
	fbEventually(t, 5*time.Second, "all acknowledged", func() bool { return c.Stats().Published == n })
	second := b.Filter(fbType(typePublish), fbOnConn(2))
	if len(second) < n-1 {
		t.Fatalf("%d PUBLISH on the second connection, want at least %d:\n%s", len(second), n-1, b.dump())
	}
	got := durablePayloads(second)
	for i := 1; i < len(got); i++ {
		var a, z int
		fmt.Sscan(got[i-1], &a)
		fmt.Sscan(got[i], &z)
		if z <= a {
			t.Fatalf("out of order on the second connection: %q", got)
		}
	}
	if st := c.Stats(); st.Renewals < 19 || st.Outages != 1 {
		t.Errorf("Renewals %d, Outages %d; want at least 19 renewals (those sent on the first connection) and 1 outage", st.Renewals, st.Outages)
	}
	fbEventually(t, time.Second, "the store empty", func() bool { return st.Len() == 0 })
}

func TestDurableBeforeConnectAndWithoutStore(t *testing.T) {
	b := fbNew(t)
	if err := fbClient(t, fbConfig(b)).PublishDurable(fbCtx(t, time.Second), "t", nil, false); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("PublishDurable without a Store = %v, want ErrInvalidConfig", err)
	}
	st := durableStore(t, t.TempDir())
	t.Cleanup(func() { _ = st.Close() })
	cfg := fbConfig(b)
	cfg.Store = st
	c := fbClient(t, cfg)
	if err := c.PublishDurable(fbCtx(t, time.Second), "bad/#", nil, false); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("PublishDurable to a wildcard topic = %v, want ErrInvalidTopic", err)
	}
	if err := c.PublishDurable(fbCtx(t, time.Second), "early", []byte("x"), false); err != nil {
		t.Fatalf("PublishDurable before Connect: %v", err)
	}
	if st.Len() != 1 {
		t.Fatalf("stored %d, want 1", st.Len())
	}
	if err := c.Connect(fbCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	b.MustWait(t, 0, 2*time.Second, "the early publication", fbType(typePublish), fbTopic("early"))
	fbEventually(t, 2*time.Second, "the store empty", func() bool { return st.Len() == 0 })
	_ = c.Close()
	if err := c.PublishDurable(fbCtx(t, time.Second), "late", nil, false); !errors.Is(err, ErrClosed) {
		t.Errorf("PublishDurable after Close = %v, want ErrClosed", err)
	}
	if st.Len() != 0 {
		t.Errorf("a refused publication was stored")
	}
}

func TestDurableDiskFull(t *testing.T) {
	b := fbNew(t)
	fsys := newMemFS(1)
	st, err := openFileStore(fsys, crashDir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b.SetPuback(false)
	cfg := fbConfig(b)
	cfg.Store = st
	c := fbConnect(t, cfg)
	ctx := fbCtx(t, 5*time.Second)
	for i := range 3 {
		if err := c.PublishDurable(ctx, "full", fmt.Appendf(nil, "%d", i), false); err != nil {
			t.Fatal(err)
		}
	}
	fsys.mu.Lock()
	fsys.capacity = fsys.used()
	fsys.mu.Unlock()
	err = c.PublishDurable(ctx, "full", []byte("no room"), false)
	if !errors.Is(err, ErrStoreFull) {
		t.Fatalf("PublishDurable on a full disk = %v, want ErrStoreFull", err)
	}
	b.SetPuback(true)
	b.Last().Close() // reconnect: the three stored ones go out again and are acknowledged
	fbEventually(t, 5*time.Second, "the stored publications acknowledged", func() bool { return c.Stats().Published == 3 })
	for _, p := range b.Filter(fbType(typePublish)) {
		if string(p.Payload) == "no room" {
			t.Errorf("the refused publication was sent: %v", p)
		}
	}
	fsys.mu.Lock()
	fsys.capacity = -1
	fsys.mu.Unlock()
	if err := c.PublishDurable(ctx, "full", []byte("room again"), false); err != nil {
		t.Fatalf("PublishDurable once there is room: %v", err)
	}
	b.MustWait(t, 0, 2*time.Second, "the publication after the disk had room", fbType(typePublish), func(p fbPacket) bool { return string(p.Payload) == "room again" })
}

// The rules of Publish at qos 1 (spec §5) hold for stored publications: DUP re-sends with the same id
// ResponseTime apart, MaxRepubs of them, then the link is declared dead and the publication renewed with
// a new id and DUP=0.
func TestDurableDupResendsThenRenewal(t *testing.T) {
	b := fbNew(t)
	b.SetHook(func(c *fbConn, p fbPacket) bool { return c.n == 1 && p.Type == typePublish })
	st := durableStore(t, t.TempDir())
	t.Cleanup(func() { _ = st.Close() })
	cfg := fbConfig(b)
	cfg.ResponseTime = 200 * time.Millisecond
	cfg.MaxRepubs = 2
	cfg.Store = st
	c := fbConnect(t, cfg)
	if err := c.PublishDurable(fbCtx(t, time.Second), "q1", []byte("same"), true); err != nil {
		t.Fatal(err)
	}
	fbEventually(t, 5*time.Second, "acknowledged on the second connection", func() bool { return c.Stats().Published == 1 })
	old := b.Filter(fbType(typePublish), fbOnConn(1))
	renewed := b.Filter(fbType(typePublish), fbOnConn(2))
	if len(old) != 3 || len(renewed) != 1 {
		t.Fatalf("PUBLISH packets: %d on connection 1, %d on connection 2; want 3 and 1:\n%s", len(old), len(renewed), b.dump())
	}
	for i, p := range old {
		if p.ID != old[0].ID || p.DUP != (i > 0) {
			t.Errorf("send %d on connection 1: %v; want id %d, DUP %t", i, p, old[0].ID, i > 0)
		}
		if i > 0 {
			fbWithin(t, fmt.Sprintf("gap before re-send %d", i), p.At.Sub(old[i-1].At), 150*time.Millisecond, 400*time.Millisecond)
		}
	}
	r := renewed[0]
	if r.DUP || r.ID == old[0].ID || string(r.Payload) != "same" || r.Topic != "q1" || !r.Retain {
		t.Errorf("renewed publication %v; want DUP=0, a new id, the same topic, payload and retain", r)
	}
	if s := c.Stats(); s.Renewals != 1 || s.Repubs != 2 || s.Outages != 1 {
		t.Errorf("Stats Renewals %d Repubs %d Outages %d, want 1, 2 and 1", s.Renewals, s.Repubs, s.Outages)
	}
	if !errors.Is(c.LastError(), ErrTimeout) {
		t.Errorf("LastError = %v, want ErrTimeout (no PUBACK)", c.LastError())
	}
	fbEventually(t, time.Second, "the store empty", func() bool { return st.Len() == 0 })
}

// Disconnect stops sending and keeps what is stored; the next Connect sends it.
func TestDurableAcrossDisconnect(t *testing.T) {
	b := fbNew(t)
	b.SetPuback(false)
	st := durableStore(t, t.TempDir())
	t.Cleanup(func() { _ = st.Close() })
	cfg := fbConfig(b)
	cfg.Store = st
	c := fbConnect(t, cfg)
	ctx := fbCtx(t, 5*time.Second)
	for i := range 5 {
		if err := c.PublishDurable(ctx, "d", fmt.Appendf(nil, "%d", i), false); err != nil {
			t.Fatal(err)
		}
	}
	b.MustWait(t, 0, 2*time.Second, "the fifth PUBLISH", fbType(typePublish), func(p fbPacket) bool { return string(p.Payload) == "4" })
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.PublishDurable(ctx, "d", []byte("5"), false); err != nil { // while disconnected
		t.Fatal(err)
	}
	if st.Len() != 6 {
		t.Fatalf("the store holds %d after Disconnect, want 6", st.Len())
	}
	b.SetPuback(true)
	mark := b.Mark()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	fbEventually(t, 5*time.Second, "all six acknowledged", func() bool { return c.Stats().Published == 6 && st.Len() == 0 })
	var got []string
	for _, p := range b.Packets()[mark:] {
		if p.Type == typePublish {
			got = append(got, string(p.Payload))
		}
	}
	if want := []string{"0", "1", "2", "3", "4", "5"}; !slices.Equal(got, want) {
		t.Errorf("sent after Connect: %q, want %q", got, want)
	}
}
