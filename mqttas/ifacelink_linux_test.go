package mqttas

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// vethNet is a veth pair whose far end lives in a network namespace of its own, made for one test run
// and removed at its cleanup: the client's side (host) stays in this process's namespace.
type vethNet struct {
	ns, host, peer   string
	hostIP, peerIP   netip.Addr
	hostCIDR, prefix string
}

// newVethNet creates the namespace and the pair. Names are unique per run; the /30 is drawn from
// 198.18.0.0/15, the range set aside for network tests, so no real network is touched.
func newVethNet(t *testing.T) *vethNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: not root, and creating a network namespace and a veth pair needs root (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: iproute2's ip is not installed")
	}
	var r [5]byte
	_, _ = rand.Read(r[:])
	id := hex.EncodeToString(r[:3])
	block := binary.BigEndian.Uint16(r[3:]) & 0x7fff // one of the 32768 /30 blocks of 198.18.0.0/15
	base := (uint32(198)<<24 | uint32(18)<<16) + uint32(block)*4
	ip := func(n uint32) netip.Addr { return netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, n))) }
	v := &vethNet{ns: "mqttas-test-" + id, host: "mqa" + id, peer: "mqb" + id, hostIP: ip(base + 1), peerIP: ip(base + 2)}
	v.hostCIDR = v.hostIP.String() + "/30"

	v.ip(t, "netns", "add", v.ns)
	t.Cleanup(func() { v.ipQuiet("netns", "del", v.ns) }) // takes the far end, and with it the pair, away
	v.ip(t, "link", "add", v.host, "type", "veth", "peer", "name", v.peer, "netns", v.ns)
	t.Cleanup(func() { v.ipQuiet("link", "del", v.host) })
	v.ip(t, "addr", "add", v.hostCIDR, "dev", v.host)
	v.ip(t, "link", "set", v.host, "up")
	v.ip(t, "-n", v.ns, "addr", "add", v.peerIP.String()+"/30", "dev", v.peer)
	v.ip(t, "-n", v.ns, "link", "set", v.peer, "up")
	return v
}

// ip runs ip with args and returns how long it took; the change is made when it returns.
func (v *vethNet) ip(t *testing.T, args ...string) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return time.Since(start)
}

func (v *vethNet) ipQuiet(args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = exec.CommandContext(ctx, "ip", args...).Run()
}

// listen opens a TCP listener on the far end's address, inside the namespace: a goroutine locked to its
// thread joins the namespace, creates the socket (which stays there) and returns the thread to this
// process's namespace. Should the return fail, the goroutine ends still locked, so the runtime retires the
// thread instead of running other goroutines in the wrong namespace.
func (v *vethNet) listen(t *testing.T) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer home.Close()
		target, err := os.Open("/run/netns/" + v.ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if _, _, errno := syscall.Syscall(sysSetns, target.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("setns into %s: %w", v.ns, errno)}
			return
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(v.peerIP.String(), "0"))
		if _, _, errno := syscall.Syscall(sysSetns, home.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
			if ln != nil {
				_ = ln.Close()
			}
			ch <- result{err: fmt.Errorf("setns back home: %w", errno)} // still locked: the thread is retired
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listening in namespace %s: %v", v.ns, r.err)
	}
	return r.ln
}

// netlinkRouteSockets counts this process's open NETLINK_ROUTE sockets.
func netlinkRouteSockets(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/net/netlink")
	if err != nil {
		t.Fatal(err)
	}
	route := make(map[string]bool)
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 10 && f[1] == "0" { // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
			route["socket:["+f[9]+"]"] = true
		}
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && route[target] {
			n++
		}
	}
	return n
}

// A real interface: a client whose Link is an InterfaceLink on the near end of a veth pair, and whose
// broker listens on the far end inside a network namespace. The interface is set down, loses its carrier
// (the far end set down), and loses its address; each time the outage must be declared promptly and the
// client must reconnect once the interface is back.
//
// The bounds. When ip returns, the kernel has made the change and multicast it to the watch's socket; from
// there to Down there is no timer, only one netlink read, a channel close and the supervisor's wakeup, so
// the bound is the ip command's own time plus a scheduling slack of 500 ms (for a loaded 2-core machine
// under -race). Without the Link the outage would be found by the ping rule, 4 ping intervals (60 s with
// this KeepAlive) after the last byte. After the heal, the reconnection waits for the interface (the
// reconnection is parked in Link.Connect, not backing off), then LinkStableFor, then a TCP connect and
// CONNACK over the veth: between LinkStableFor and the heal's own time + LinkStableFor + 1 s.
func TestInterfaceLinkVethOutages(t *testing.T) {
	v := newVethNet(t)
	b := newFakeBrokerOn(t, v.listen(t))
	fbLeakCheck(t)
	baseSockets := netlinkRouteSockets(t)

	link, err := NewInterfaceLink(v.host)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fbConfig(b)
	cfg.Server = v.peerIP.String()
	cfg.Link = link
	cfg.LinkStableFor = 300 * time.Millisecond
	const detectSlack, recoverSlack = 500 * time.Millisecond, time.Second
	pingDetection := 4 * cfg.pingInterval()
	if pingDetection < 10*(time.Second+detectSlack) {
		t.Fatalf("the ping rule (%v) would not be far slower than the bound: the test proves nothing", pingDetection)
	}
	c := fbConnect(t, cfg)
	ctx := fbCtx(t, time.Minute)
	if err := c.Publish(ctx, "veth/hello", []byte("0"), false, 1); err != nil {
		t.Fatal(err)
	}
	if n := netlinkRouteSockets(t); n != baseSockets+1 {
		t.Errorf("%d netlink route sockets while connected, want %d (one watch)", n, baseSockets+1)
	}

	for i, tc := range []struct {
		what        string
		fault, heal []string
	}{
		{"interface set down", []string{"link", "set", v.host, "down"}, []string{"link", "set", v.host, "up"}},
		{"carrier lost (far end down)", []string{"-n", v.ns, "link", "set", v.peer, "down"}, []string{"-n", v.ns, "link", "set", v.peer, "up"}},
		{"address removed", []string{"addr", "del", v.hostCIDR, "dev", v.host}, []string{"addr", "add", v.hostCIDR, "dev", v.host}},
	} {
		c.Down().Clear()
		c.Up().Clear()
		conns := b.Conns()
		start := time.Now()
		took := v.ip(t, tc.fault...)
		detected := fbWaitEvent(t, c.Down(), 10*time.Second, tc.what+": Down").Sub(start)
		if bound := took + detectSlack; detected > bound {
			t.Errorf("%s: outage declared after %v, over the bound %v (ip took %v; the ping rule: %v)", tc.what, detected, bound, took, pingDetection)
		}
		if err := c.LastError(); !errors.Is(err, ErrLinkDown) {
			t.Errorf("%s: LastError = %v, want ErrLinkDown", tc.what, err)
		}

		start = time.Now()
		took = v.ip(t, tc.heal...)
		recovered := fbWaitEvent(t, c.Up(), 20*time.Second, tc.what+": Up").Sub(start)
		fbWithin(t, tc.what+": reconnection after the heal", recovered, cfg.LinkStableFor, took+cfg.LinkStableFor+recoverSlack)
		if got, st := b.Conns(), c.Stats(); got != conns+1 || st.Outages != uint64(i+1) {
			t.Errorf("%s: %d connections and %d outages, want %d and %d", tc.what, got, st.Outages, conns+1, i+1)
		}
		if err := c.Publish(ctx, "veth/after", []byte(strconv.Itoa(i+1)), false, 1); err != nil {
			t.Fatalf("%s: Publish after the reconnection: %v", tc.what, err)
		}
		t.Logf("%s: outage declared %v after the fault (ip %v), up %v after the heal", tc.what, detected.Round(time.Millisecond), took.Round(time.Millisecond), recovered.Round(time.Millisecond))
	}
	if n := netlinkRouteSockets(t); n != baseSockets+1 {
		t.Errorf("%d netlink route sockets after three outages, want %d", n, baseSockets+1)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := netlinkRouteSockets(t); n != baseSockets {
		t.Errorf("%d netlink route sockets after Close, want %d: the watch leaked its socket", n, baseSockets)
	}
}
