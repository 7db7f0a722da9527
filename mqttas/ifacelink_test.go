package mqttas

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKernel plays rtnetlink for InterfaceLink's watch on every platform: it keeps links and addresses,
// answers dump requests from that state, multicasts each change to every open socket, and can lose
// messages (an overrun), refuse or interrupt dumps, and fail sockets.
type fakeKernel struct {
	mu      sync.Mutex
	links   map[int32]fkLink
	addrs   []fkAddr
	conns   []*fakeNlConn
	dumps   []uint16 // every dump request, in order
	dialErr error
	// onDump, when set, replaces the answer to a dump request (nil: answer from the state).
	onDump func(typ uint16, seq uint32) [][]byte
	// intrDumps marks the next n link dumps interrupted (NLM_F_DUMP_INTR).
	intrDumps int
}

type fkLink struct {
	name  string
	flags uint32
	oper  int
}

type fkAddr struct {
	index         int32
	family, scope uint8
	flags         uint32
	addr          []byte
	prefixLen     uint8
}

type fkDatagram struct {
	b   []byte
	err error
}

type fakeNlConn struct {
	k      *fakeKernel
	in     chan fkDatagram
	closed chan struct{}
	once   sync.Once
}

func newFakeKernel() *fakeKernel { return &fakeKernel{links: make(map[int32]fkLink)} }

func (k *fakeKernel) dial() (nlConn, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dialErr != nil {
		return nil, k.dialErr
	}
	c := &fakeNlConn{k: k, in: make(chan fkDatagram, 1024), closed: make(chan struct{})}
	k.conns = append(k.conns, c)
	return c, nil
}

// open counts the sockets not closed yet.
func (k *fakeKernel) open() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, c := range k.conns {
		select {
		case <-c.closed:
		default:
			n++
		}
	}
	return n
}

func (k *fakeKernel) dumpCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.dumps)
}

func (k *fakeKernel) linkMsgLocked(typ uint16, flags uint16, seq uint32, index int32) []byte {
	l := k.links[index]
	return nlTestLink(typ, flags, seq, index, l.name, l.flags, l.oper)
}

func (k *fakeKernel) addrMsgLocked(typ uint16, flags uint16, seq uint32, a fkAddr) []byte {
	return nlTestAddr(typ, flags, seq, a.index, a.family, a.prefixLen, a.scope, a.flags, a.addr)
}

// multicastLocked sends b to every open socket, or an overrun to each when lose is set.
func (k *fakeKernel) multicastLocked(b []byte, lose bool) {
	for _, c := range k.conns {
		d := fkDatagram{b: b}
		if lose {
			d = fkDatagram{err: errNetlinkOverrun}
		}
		select {
		case <-c.closed:
		case c.in <- d:
		}
	}
}

// setLink creates or changes a link and multicasts RTM_NEWLINK.
func (k *fakeKernel) setLink(index int32, name string, flags uint32, oper int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.links[index] = fkLink{name, flags, oper}
	k.multicastLocked(k.linkMsgLocked(rtmNewLink, 0, 0, index), false)
}

func (k *fakeKernel) delLink(index int32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.linkMsgLocked(rtmDelLink, 0, 0, index)
	delete(k.links, index)
	k.multicastLocked(b, false)
}

func (k *fakeKernel) addAddr(a fkAddr) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.addrs = append(k.addrs, a)
	k.multicastLocked(k.addrMsgLocked(rtmNewAddr, 0, 0, a), false)
}

// delAddr deletes the addresses of index; with lose set the deletion's message is lost (an overrun).
func (k *fakeKernel) delAddrs(index int32, lose bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kept := k.addrs[:0]
	for _, a := range k.addrs {
		if a.index != index {
			kept = append(kept, a)
			continue
		}
		k.multicastLocked(k.addrMsgLocked(rtmDelAddr, 0, 0, a), lose)
	}
	k.addrs = kept
}

// inject sends raw datagrams (or errors) to every open socket.
func (k *fakeKernel) inject(ds ...fkDatagram) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, d := range ds {
		for _, c := range k.conns {
			select {
			case <-c.closed:
			case c.in <- d:
			}
		}
	}
}

func (c *fakeNlConn) recv(b []byte) (int, error) {
	select {
	case d := <-c.in:
		if d.err != nil {
			return 0, d.err
		}
		return copy(b, d.b), nil
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

func (c *fakeNlConn) send(b []byte) error {
	ne := binary.NativeEndian
	if len(b) < nlmsgHdrLen || ne.Uint16(b[6:])&nlmFDump != nlmFDump {
		return errors.New("fake kernel: not a dump request")
	}
	typ, seq := ne.Uint16(b[4:]), ne.Uint32(b[8:])
	k := c.k
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dumps = append(k.dumps, typ)
	var ds [][]byte
	if k.onDump != nil {
		ds = k.onDump(typ, seq)
	}
	if ds == nil {
		// Two datagrams: the objects, then NLMSG_DONE, as the kernel splits a dump.
		var objs []byte
		flags := uint16(0x2) // NLM_F_MULTI
		if typ == rtmGetLink && k.intrDumps > 0 {
			k.intrDumps--
			flags |= nlmFDumpIntr
		}
		switch typ {
		case rtmGetLink:
			for index := range k.links {
				objs = append(objs, k.linkMsgLocked(rtmNewLink, flags, seq, index)...)
			}
		case rtmGetAddr:
			for _, a := range k.addrs {
				objs = append(objs, k.addrMsgLocked(rtmNewAddr, flags, seq, a)...)
			}
		}
		ds = [][]byte{objs, nlTestDone(seq, 0)}
	}
	for _, d := range ds {
		if len(d) == 0 {
			continue
		}
		select {
		case <-c.closed:
		case c.in <- fkDatagram{b: d}:
		}
	}
	return nil
}

func (c *fakeNlConn) close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

var fkWlanAddr = fkAddr{index: 3, family: afInet, prefixLen: 24, addr: nlTestIPv4}

// fkUsable sets up wlan0 (index 3) up, running, with an IPv4 address.
func fkUsable(k *fakeKernel) {
	k.setLink(3, "wlan0", iffUp|iffRunning, operUp)
	k.addAddr(fkWlanAddr)
}

func fkConnect(t *testing.T, l *InterfaceLink, within time.Duration) <-chan error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	t.Cleanup(cancel)
	return fbResult(func() error { return l.Connect(ctx) })
}

func fkClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func fkWaitClosed(t *testing.T, ch <-chan struct{}, within time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(within):
		t.Fatalf("%s: Lost not closed within %v", what, within)
	}
}

// Connect waits for the interface to be usable; Lost is closed (only) when it stops being usable;
// Disconnect stops the watch and closes its socket, and the link is down again.
func TestInterfaceLinkWatchLifecycle(t *testing.T) {
	fbLeakCheck(t)
	k := newFakeKernel()
	l := newInterfaceLink("wlan0", k.dial)
	if !fkClosed(l.Lost()) {
		t.Fatal("Lost before Connect: want a closed channel")
	}

	// No such interface yet: Connect waits until its context ends, then leaves no socket open.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err := l.Connect(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || k.open() != 0 {
		t.Fatalf("Connect without the interface: %v with %d sockets open; want DeadlineExceeded and none", err, k.open())
	}

	done := fkConnect(t, l, 5*time.Second)
	fbEventually(t, time.Second, "the state dumped", func() bool { return k.dumpCount() >= 4 })
	k.setLink(3, "wlan0", iffUp|iffRunning, operUp) // up, but no address yet
	k.setLink(2, "eth0", iffUp|iffRunning, operUp)
	k.addAddr(fkAddr{index: 2, family: afInet, prefixLen: 24, addr: []byte{10, 1, 1, 1}}) // another interface's
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Connect returned %v before wlan0 had an address", err)
	default:
	}
	if !fkClosed(l.Lost()) {
		t.Error("Lost while Connect waits: want a closed channel")
	}
	k.addAddr(fkWlanAddr)
	if err := fbRecv(t, done, time.Second, "Connect"); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	lost := l.Lost()
	if fkClosed(lost) || k.open() != 1 {
		t.Fatalf("after Connect: Lost closed %t, %d sockets open; want open and 1", fkClosed(lost), k.open())
	}

	// Changes that leave it usable are no loss; losing the carrier is.
	k.setLink(3, "wlan0", iffUp|iffRunning|0x1000, operUp)
	k.addAddr(fkAddr{index: 3, family: afInet6, prefixLen: 64, scope: rtScopeLink, addr: nlTestIPv6Link})
	k.delAddrs(2, false)
	time.Sleep(50 * time.Millisecond)
	if fkClosed(lost) {
		t.Fatal("Lost closed by changes that leave wlan0 usable")
	}
	k.setLink(3, "wlan0", iffUp, 2)
	fkWaitClosed(t, lost, time.Second, "carrier lost")
	if !fkClosed(l.Lost()) {
		t.Error("Lost after the loss: want a closed channel")
	}
	fbEventually(t, time.Second, "the lost watch's socket closed", func() bool { return k.open() == 0 })

	// Connect again: it waits for the carrier, then the link is up with a new watch.
	done = fkConnect(t, l, 5*time.Second)
	fbEventually(t, time.Second, "a fresh dump", func() bool { return k.dumpCount() >= 6 })
	k.setLink(3, "wlan0", iffUp|iffRunning, operUp)
	if err := fbRecv(t, done, time.Second, "Connect"); err != nil {
		t.Fatal(err)
	}
	if err := l.Connect(context.Background()); err != nil || k.open() != 1 || k.dumpCount() != 6 {
		t.Fatalf("Connect while up: %v, %d sockets, %d dumps; want nil, the same watch (1 socket, 6 dumps)", err, k.open(), k.dumpCount())
	}
	lost = l.Lost()
	if err := l.Disconnect(); err != nil {
		t.Fatal(err)
	}
	if !fkClosed(lost) || !fkClosed(l.Lost()) || k.open() != 0 {
		t.Errorf("after Disconnect: the old Lost closed %t, Lost closed %t, %d sockets open", fkClosed(lost), fkClosed(l.Lost()), k.open())
	}
	if err := l.Disconnect(); err != nil {
		t.Errorf("Disconnect while down: %v", err)
	}
}

// Removing, renaming and re-creating the interface, and removing its last address, each end the watch.
func TestInterfaceLinkWatchLosses(t *testing.T) {
	fbLeakCheck(t)
	for _, tc := range []struct {
		what string
		lose func(k *fakeKernel)
	}{
		{"set down", func(k *fakeKernel) { k.setLink(3, "wlan0", iffRunning, operUp) }},
		{"dormant", func(k *fakeKernel) { k.setLink(3, "wlan0", iffUp, 5) }},
		{"removed", func(k *fakeKernel) { k.delLink(3) }},
		{"renamed", func(k *fakeKernel) { k.setLink(3, "wlan1", iffUp|iffRunning, operUp) }},
		{"last address removed", func(k *fakeKernel) { k.delAddrs(3, false) }},
	} {
		k := newFakeKernel()
		fkUsable(k)
		l := newInterfaceLink("wlan0", k.dial)
		if err := fbRecv(t, fkConnect(t, l, 5*time.Second), time.Second, "Connect"); err != nil {
			t.Fatalf("%s: Connect: %v", tc.what, err)
		}
		lost := l.Lost()
		tc.lose(k)
		fkWaitClosed(t, lost, time.Second, tc.what)
		_ = l.Disconnect()
		if k.open() != 0 {
			t.Errorf("%s: %d sockets open after Disconnect", tc.what, k.open())
		}
	}
}

// Lost messages (an overrun) make the watch read the whole state again; it judges the interface on the
// fresh state: still usable is no loss, a change it missed is.
func TestInterfaceLinkWatchResyncAfterOverrun(t *testing.T) {
	fbLeakCheck(t)
	k := newFakeKernel()
	fkUsable(k)
	l := newInterfaceLink("wlan0", k.dial)
	defer l.Disconnect()
	if err := fbRecv(t, fkConnect(t, l, 5*time.Second), time.Second, "Connect"); err != nil {
		t.Fatal(err)
	}
	lost := l.Lost()
	k.inject(fkDatagram{err: errNetlinkOverrun})
	fbEventually(t, time.Second, "the state read again after ENOBUFS", func() bool { return k.dumpCount() == 4 })
	k.inject(fkDatagram{b: nlTestMsg(nlmsgOverrun, 0, 0, nil)})
	fbEventually(t, time.Second, "the state read again after NLMSG_OVERRUN", func() bool { return k.dumpCount() == 6 })
	time.Sleep(50 * time.Millisecond)
	if fkClosed(lost) {
		t.Fatal("Lost closed by an overrun that changed nothing")
	}
	k.delAddrs(3, true) // the deletion itself is lost
	fkWaitClosed(t, lost, time.Second, "address deleted during an overrun")
	if k.dumpCount() != 8 {
		t.Errorf("%d dumps, want 8 (link and addresses, at start and after each of three overruns)", k.dumpCount())
	}
}

// A dump the kernel marks interrupted (the state changed while it was read) is read again before the
// interface is judged.
func TestInterfaceLinkWatchDumpInterrupted(t *testing.T) {
	fbLeakCheck(t)
	k := newFakeKernel()
	fkUsable(k)
	k.intrDumps = 2
	l := newInterfaceLink("wlan0", k.dial)
	defer l.Disconnect()
	if err := fbRecv(t, fkConnect(t, l, 5*time.Second), time.Second, "Connect"); err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	dumps := append([]uint16(nil), k.dumps...)
	k.mu.Unlock()
	if want := []uint16{rtmGetLink, rtmGetLink, rtmGetLink, rtmGetAddr}; !slices.Equal(dumps, want) {
		t.Errorf("dumps %v, want %v", dumps, want)
	}
}

// A watch that cannot run (no socket, a refused or failed dump, a broken datagram, a failing socket) makes
// Connect return an error, or closes Lost, and leaves no socket open.
func TestInterfaceLinkWatchErrors(t *testing.T) {
	fbLeakCheck(t)
	ctx := fbCtx(t, 5*time.Second)

	k := newFakeKernel()
	sockErr := errors.New("no netlink here")
	k.dialErr = sockErr
	l := newInterfaceLink("wlan0", k.dial)
	if err := l.Connect(ctx); !errors.Is(err, sockErr) || !strings.Contains(err.Error(), "wlan0") {
		t.Errorf("Connect without a socket: %v, want the socket's error naming the interface", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	k.dialErr = nil
	if err := l.Connect(cancelled); !errors.Is(err, context.Canceled) || len(k.conns) != 0 {
		t.Errorf("Connect with a cancelled context: %v, %d sockets; want Canceled and none", err, len(k.conns))
	}

	for _, tc := range []struct {
		what   string
		answer [][]byte
		want   string
	}{
		{"refused", [][]byte{nlTestError(1, -1)}, "refused a dump"},
		{"failed", [][]byte{nlTestDone(1, -4)}, "ended a dump"},
		{"malformed", [][]byte{{1, 2, 3}}, "malformed"},
	} {
		k := newFakeKernel()
		fkUsable(k)
		k.onDump = func(uint16, uint32) [][]byte { return tc.answer }
		l := newInterfaceLink("wlan0", k.dial)
		err := l.Connect(ctx)
		if err == nil || !strings.Contains(err.Error(), tc.want) || k.open() != 0 {
			t.Errorf("dump %s: Connect = %v with %d sockets open; want an error saying %q and none", tc.what, err, k.open(), tc.want)
		}
	}

	// After Connect: a broken datagram or a failing socket ends the watch.
	for _, d := range []fkDatagram{{b: []byte{200, 0, 0, 0}}, {err: errors.New("socket failed")}} {
		k := newFakeKernel()
		fkUsable(k)
		l := newInterfaceLink("wlan0", k.dial)
		if err := l.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		lost := l.Lost()
		k.inject(d)
		fkWaitClosed(t, lost, time.Second, "a broken datagram or socket")
		fbEventually(t, time.Second, "the socket closed", func() bool { return k.open() == 0 })
		_ = l.Disconnect()
	}

	// Disconnect while Connect waits: Connect returns at once, with an error.
	k = newFakeKernel()
	l = newInterfaceLink("wlan0", k.dial)
	done := fkConnect(t, l, 5*time.Second)
	fbEventually(t, time.Second, "the watch started", func() bool { return k.dumpCount() == 2 })
	start := time.Now()
	if err := l.Disconnect(); err != nil {
		t.Fatal(err)
	}
	if err := fbRecv(t, done, time.Second, "Connect"); !errors.Is(err, errWatchStopped) {
		t.Errorf("Connect cut short by Disconnect: %v, want errWatchStopped", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond || k.open() != 0 {
		t.Errorf("Disconnect during Connect: returned after %v with %d sockets open", d, k.open())
	}
}

// A client over an InterfaceLink declares the outage as soon as the interface is lost, reconnects once it
// is back and LinkStableFor has passed, and its Close leaves no socket open.
func TestInterfaceLinkClientOutage(t *testing.T) {
	b := fbNew(t)
	k := newFakeKernel()
	fkUsable(k)
	cfg := fbConfig(b)
	cfg.Link = newInterfaceLink("wlan0", k.dial)
	cfg.LinkStableFor = 100 * time.Millisecond
	c := fbConnect(t, cfg)
	c.Up().Clear()
	start := time.Now()
	k.setLink(3, "wlan0", iffUp, 2)
	fbWaitEvent(t, c.Down(), time.Second, "Down")
	// The ping rule would take 4 × 15 s; nothing but scheduling lies between the message and Down.
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("outage declared %v after the carrier was lost", d)
	}
	if err := c.LastError(); !errors.Is(err, ErrLinkDown) {
		t.Errorf("LastError = %v, want ErrLinkDown", err)
	}
	time.Sleep(200 * time.Millisecond)
	if b.Conns() != 1 {
		t.Fatalf("%d connections while the interface is down, want 1", b.Conns())
	}
	start = time.Now()
	k.setLink(3, "wlan0", iffUp|iffRunning, operUp)
	fbWaitEvent(t, c.Up(), 2*time.Second, "Up")
	fbWithin(t, "reconnection after the carrier returned", time.Since(start), cfg.LinkStableFor, cfg.LinkStableFor+500*time.Millisecond)
	if st := c.Stats(); st.Outages != 1 || b.Conns() != 2 {
		t.Errorf("%d outages and %d connections, want 1 and 2", st.Outages, b.Conns())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if k.open() != 0 {
		t.Errorf("%d netlink sockets open after Close", k.open())
	}
}

func TestInterfaceLinkNewChecksName(t *testing.T) {
	for _, name := range []string{"", "a23456789012345x", ".", "..", "wl/an0", "wlan:0", "wl an0", "wlan0\n"} {
		if _, err := NewInterfaceLink(name); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewInterfaceLink(%q) = %v, want ErrInvalidConfig", name, err)
		}
	}
	l, err := NewInterfaceLink("wwan0-lte.1")
	if runtime.GOOS != "linux" {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("NewInterfaceLink on %s = %v, want ErrUnsupported", runtime.GOOS, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("NewInterfaceLink of an interface that need not exist yet: %v", err)
	}
	if l.Name() != "wwan0-lte.1" || !fkClosed(l.Lost()) {
		t.Errorf("a new link: name %q, Lost closed %t", l.Name(), fkClosed(l.Lost()))
	}
}
