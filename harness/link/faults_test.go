package link_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
	"github.com/mqttas/mqttas-go/internal/syncbuf"
)

func TestNewListensOnLoopbackOutsideEphemeralRange(t *testing.T) {
	t.Parallel()
	l := newLink(t, echoServer(t))
	host, port, err := net.SplitHostPort(l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	if host != "127.0.0.1" || p < 20000 || p >= 32768 {
		t.Fatalf("Addr() = %s, want 127.0.0.1 with a port in [20000, 32768)", l.Addr())
	}
	roundTrip(t, dial(t, l.Addr()), "hello")

	if _, err := link.New(ctxT(t), "no-port"); !errors.Is(err, link.ErrInvalid) {
		t.Fatalf("New with a bad upstream: %v, want ErrInvalid", err)
	}
	fixed := newLink(t, echoServer(t), link.WithListenAddr("127.0.0.1:0"))
	roundTrip(t, dial(t, fixed.Addr()), "fixed")
}

func TestLatencyAddsToRoundTrip(t *testing.T) {
	t.Parallel()
	l := newLink(t, echoServer(t))
	c := dial(t, l.Addr())
	const d = 150 * time.Millisecond

	if err := l.Latency(ctxT(t), d, 0, link.Downstream); err != nil {
		t.Fatal(err)
	}
	if rtt := roundTrip(t, c, "one way"); rtt < d {
		t.Fatalf("downstream latency %v: round trip %v", d, rtt)
	}
	if err := l.Latency(ctxT(t), d, 10*time.Millisecond, link.Upstream); err != nil {
		t.Fatal(err)
	}
	if rtt := roundTrip(t, c, "both ways"); rtt < 2*d-10*time.Millisecond {
		t.Fatalf("latency %v each way (jitter 10ms): round trip %v", d, rtt)
	}
	if got := l.Active(); len(got) != 2 || got[0].Verb != link.VerbLatency || got[0].Dir != link.Downstream || got[1].Dir != link.Upstream {
		t.Fatalf("Active() = %v", got)
	}
	if err := l.Clear(ctxT(t), link.VerbLatency, link.Both); err != nil {
		t.Fatal(err)
	}
	if rtt := fastestRoundTrip(t, c, "cleared"); rtt >= d {
		t.Fatalf("latency cleared but round trip still %v", rtt)
	}
	if got := l.Active(); len(got) != 0 {
		t.Fatalf("Active() after Clear = %v", got)
	}
}

func TestBandwidthSlowsTransferInItsDirectionOnly(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	l := newLink(t, up.addr())
	if err := l.Bandwidth(ctxT(t), 0, link.Downstream); !errors.Is(err, link.ErrInvalid) {
		t.Fatalf("Bandwidth(0) = %v, want ErrInvalid", err)
	}
	if err := l.Bandwidth(ctxT(t), 100, link.Downstream); err != nil {
		t.Fatal(err)
	}
	c := dial(t, l.Addr())
	s := up.accept(t)
	data := bytes.Repeat([]byte("0123456789"), 5000) // 50 kB: 500 ms at 100 kB/s

	transfer := func(from, to net.Conn) time.Duration {
		t.Helper()
		start := time.Now()
		errc := make(chan error, 1)
		go func() { _, err := from.Write(data); errc <- err }()
		to.SetReadDeadline(time.Now().Add(10 * time.Second))
		got := make([]byte, len(data))
		if _, err := io.ReadFull(to, got); err != nil {
			t.Fatalf("read: %v", err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("write: %v", err)
		}
		if !bytes.Equal(got, data) {
			t.Fatal("data corrupted")
		}
		return time.Since(start)
	}
	if took := transfer(s, c); took < 350*time.Millisecond {
		t.Fatalf("50 kB at 100 kB/s took %v, want about 500ms", took)
	}
	fastest := transfer(c, s)
	for range 2 { // the fastest of three, to ride out a scheduling stall
		fastest = min(fastest, transfer(c, s))
	}
	if fastest >= 350*time.Millisecond {
		t.Fatalf("upstream is not limited, yet 50 kB took %v", fastest)
	}
}

func TestBlackholePassesNothingAndNoFIN(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	l := newLink(t, up.addr())
	c := dial(t, l.Addr())
	s := up.accept(t)
	roundTripRaw(t, c, s, "before")

	if err := l.Blackhole(ctxT(t), link.Upstream); err != nil {
		t.Fatal(err)
	}
	// The other direction still flows.
	roundTripRaw(t, s, c, "downstream still works")
	// Upstream: neither the data nor the client's FIN reaches the broker.
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	expectSilence(t, s, time.Second)

	// Healing a blackhole closes the connection it broke, and traffic flows
	// on a new one.
	if err := l.Heal(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, s, 5*time.Second)
	c2 := dial(t, l.Addr())
	s2 := up.accept(t)
	roundTripRaw(t, c2, s2, "after heal")
}

func TestSilentPeerIsHalfOpenBothWays(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	l := newLink(t, up.addr())
	c := dial(t, l.Addr())
	s := up.accept(t)
	if err := l.Silent(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []net.Conn{c, s} {
		if _, err := conn.Write([]byte("anyone?")); err != nil {
			t.Fatal(err)
		}
		conn.(*net.TCPConn).CloseWrite()
	}
	done := make(chan struct{})
	go func() { defer close(done); expectSilenceErr(t, s, time.Second) }()
	expectSilence(t, c, time.Second)
	<-done
	act := l.Active()
	if len(act) != 2 || act[0].Verb != link.VerbBlackhole || act[1].Verb != link.VerbBlackhole {
		t.Fatalf("Active() = %v", act)
	}
	// Calling it again keeps the connection (replacing would close it).
	if err := l.Silent(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	expectSilence(t, c, 100*time.Millisecond)
}

// expectSilenceErr is expectSilence for use off the test goroutine.
func expectSilenceErr(t *testing.T, c net.Conn, d time.Duration) {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("expected silence for %v, got %d bytes, err %v", d, n, err)
	}
}

// roundTripRaw sends msg from a to b and checks it arrives intact.
func roundTripRaw(t *testing.T, a, b net.Conn, msg string) {
	t.Helper()
	if _, err := a.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer b.SetReadDeadline(time.Time{})
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(b, got); err != nil || string(got) != msg {
		t.Fatalf("read %q, %v; want %q", got, err, msg)
	}
}

func TestDownRefusesAndUpAcceptsAtSameAddress(t *testing.T) {
	t.Parallel()
	l := newLink(t, echoServer(t))
	addr := l.Addr()
	c := dial(t, addr)
	roundTrip(t, c, "up")

	if err := l.Down(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c, 5*time.Second)
	if _, err := net.DialTimeout("tcp", addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while down: %v, want ECONNREFUSED", err)
	}
	if act := l.Active(); len(act) != 1 || act[0].Verb != link.VerbDown {
		t.Fatalf("Active() = %v", act)
	}
	if err := l.Up(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if l.Addr() != addr {
		t.Fatalf("address changed: %s → %s", addr, l.Addr())
	}
	roundTrip(t, dial(t, addr), "up again")
	if act := l.Active(); len(act) != 0 {
		t.Fatalf("Active() after Up = %v", act)
	}
}

func TestResetClosesCurrentConnectionsOnly(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	l := newLink(t, up.addr())
	c := dial(t, l.Addr())
	s := up.accept(t)
	roundTripRaw(t, c, s, "hello")

	if err := l.Reset(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// Both peers see the connection end; a new one is accepted at once.
	c2, err := net.DialTimeout("tcp", l.Addr(), time.Second)
	if err != nil {
		t.Fatalf("dial right after Reset: %v", err)
	}
	defer c2.Close()
	expectClosed(t, c, 5*time.Second)
	expectClosed(t, s, 5*time.Second)
	s2 := up.accept(t)
	roundTripRaw(t, c2, s2, "new connection")
	if n := l.Tap().Count(link.IsEvent(link.EventReset), link.OnConn(1)); n != 1 {
		t.Fatalf("tap: %d reset records for connection 1, want 1\n%s", n, l.Tap())
	}
	if n := l.Tap().Count(link.IsEvent(link.EventReset), link.OnConn(2)); n != 0 {
		t.Fatalf("the new connection was reset\n%s", l.Tap())
	}
}

func TestResetPeerSendsRSTOnNewConnections(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	l := newLink(t, up.addr())
	if err := l.ResetPeer(ctxT(t), 0, link.Upstream); err != nil {
		t.Fatal(err)
	}
	c := dial(t, l.Addr())
	up.accept(t)
	if _, err := c.Write([]byte("trigger")); err != nil {
		t.Fatal(err)
	}
	if err := expectClosed(t, c, 5*time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client saw %v, want ECONNRESET", err)
	}
}

func TestSlicerDeliversIntactDataInPieces(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	l := newLink(t, up.addr())
	if err := l.Slicer(ctxT(t), 10, 4, 3*time.Millisecond, link.Downstream); err != nil {
		t.Fatal(err)
	}
	c := dial(t, l.Addr())
	s := up.accept(t)
	data := bytes.Repeat([]byte("abcdefghij"), 60)
	if _, err := s.Write(data); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	reads := 0
	buf := make([]byte, 4096)
	for len(got) < len(data) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
		reads++
	}
	if !bytes.Equal(got, data) {
		t.Fatal("sliced data corrupted")
	}
	// About 60 pieces 3 ms apart; reads may merge some, not nearly all.
	if reads < 5 {
		t.Fatalf("600 bytes arrived in %d reads, want them sliced", reads)
	}
}

func TestLimitDataClosesAfterNBytes(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	l := newLink(t, up.addr())
	if err := l.LimitData(ctxT(t), 100, link.Downstream); err != nil {
		t.Fatal(err)
	}
	c := dial(t, l.Addr())
	s := up.accept(t)
	if _, err := s.Write(bytes.Repeat([]byte("x"), 300)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || len(got) != 100 {
		t.Fatalf("read %d bytes, err %v; want exactly 100 then EOF", len(got), err)
	}
}

func TestSlowCloseHoldsTheFIN(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	l := newLink(t, up.addr())
	const d = 400 * time.Millisecond
	if err := l.SlowClose(ctxT(t), d, link.Downstream); err != nil {
		t.Fatal(err)
	}
	c := dial(t, l.Addr())
	s := up.accept(t)
	roundTripRaw(t, s, c, "data passes")
	start := time.Now()
	s.Close()
	expectClosed(t, c, 5*time.Second)
	if took := time.Since(start); took < d {
		t.Fatalf("FIN arrived after %v, want >= %v", took, d)
	}
}

func TestHealRemovesEveryFault(t *testing.T) {
	t.Parallel()
	l := newLink(t, echoServer(t))
	ctx := ctxT(t)
	// Faults that would each make a round trip take seconds.
	steps := []error{
		l.Latency(ctx, 2*time.Second, 0, link.Both),
		l.Bandwidth(ctx, 1, link.Upstream),
		l.Slicer(ctx, 5, 0, 0, link.Downstream),
		l.SlowClose(ctx, time.Second, link.Downstream),
		l.DropPackets(link.Downstream, mqttframe.PUBACK, -1),
		l.DelayPackets(link.Downstream, mqttframe.PINGRESP, time.Second),
		l.Down(ctx),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if n := len(l.Active()); n != 8 {
		t.Fatalf("Active() has %d faults, want 8: %v", n, l.Active())
	}
	if err := l.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if act := l.Active(); len(act) != 0 {
		t.Fatalf("Active() after Heal = %v", act)
	}
	c := dial(t, l.Addr())
	if rtt := fastestRoundTrip(t, c, string(bytes.Repeat([]byte("z"), 2000))); rtt >= time.Second {
		t.Fatalf("round trip after Heal took %v", rtt)
	}
}

func TestVerbsRejectBadArgumentsAndClosedLink(t *testing.T) {
	t.Parallel()
	l := newLink(t, echoServer(t))
	ctx := ctxT(t)
	bad := map[string]error{
		"latency<0":      l.Latency(ctx, -time.Second, 0, link.Both),
		"jitter>latency": l.Latency(ctx, time.Millisecond, time.Second, link.Both),
		"bandwidth 0":    l.Bandwidth(ctx, 0, link.Both),
		"slicer avg 0":   l.Slicer(ctx, 0, 0, 0, link.Both),
		"slicer var>avg": l.Slicer(ctx, 4, 4, 0, link.Both),
		"no direction":   l.Blackhole(ctx, 0),
		"drop 0":         l.DropPackets(link.Upstream, mqttframe.PUBLISH, 0),
		"drop type 0":    l.DropPackets(link.Upstream, 0, -1),
		"delay 0":        l.DelayPackets(link.Upstream, mqttframe.PUBLISH, 0),
		"limit<0":        l.LimitData(ctx, -1, link.Both),
	}
	for name, err := range bad {
		if !errors.Is(err, link.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if len(l.Active()) != 0 {
		t.Fatalf("rejected verbs left faults: %v", l.Active())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Latency(ctx, time.Millisecond, 0, link.Both); !errors.Is(err, link.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
	if err := l.DropPackets(link.Upstream, mqttframe.PUBLISH, 1); !errors.Is(err, link.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestSetUpstreamMovesNewConnections(t *testing.T) {
	t.Parallel()
	a, b := newUpstream(t), newUpstream(t)
	var logs syncbuf.Buffer
	l := newLink(t, a.addr(), link.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	addr := l.Addr()
	c := dial(t, addr)
	roundTripRaw(t, c, a.accept(t), "to a")

	if err := l.SetUpstream(ctxT(t), b.addr()); err != nil {
		t.Fatal(err)
	}
	if l.Addr() != addr || l.Upstream() != b.addr() {
		t.Fatalf("Addr %s (was %s), Upstream %s (want %s)", l.Addr(), addr, l.Upstream(), b.addr())
	}
	expectClosed(t, c, 5*time.Second)
	roundTripRaw(t, dial(t, addr), b.accept(t), "to b")

	// A link that is down stays down when its upstream moves.
	if err := l.Down(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := l.SetUpstream(ctxT(t), a.addr()); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after moving a down link: %v, want ECONNREFUSED", err)
	}
	if err := l.SetUpstream(ctxT(t), "nonsense"); !errors.Is(err, link.ErrInvalid) {
		t.Fatalf("SetUpstream(nonsense) = %v", err)
	}
	if !strings.Contains(logs.String(), "link upstream moved") {
		t.Fatalf("no debug log of the move:\n%s", logs.String())
	}
}
