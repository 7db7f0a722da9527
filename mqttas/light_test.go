package mqttas

// The light promises, exactly: 0 allocations per qos 0 Publish, qos1PublishAllocs per qos 1 Publish, and 3
// goroutines for an idle connected client (README, package doc).

import (
	"context"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// qos1PublishAllocs is the stated cost of a qos 1 Publish: 3 objects for the request registered under its
// packet id (register) and 3 for the ResponseTime timer (time.NewTimer), as a memory profile shows.
const qos1PublishAllocs = 6

// allocSink is a broker for allocation counts: the fake broker records every packet, which allocates, so
// this one frames the client's packets in a fixed buffer and answers CONNECT, qos 1 PUBLISH and PINGREQ
// without allocating once running.
func allocSink(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Go(func() { allocSinkServe(conn) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

func allocSinkServe(conn net.Conn) {
	buf := make([]byte, 64<<10)
	out := make([]byte, 4)
	n := 0
	for {
		k, err := conn.Read(buf[n:])
		if err != nil {
			return
		}
		n += k
		i := 0
		for {
			// One packet at buf[i:]: the fixed header, its remaining length, its body.
			rl, mult, hdr := 0, 1, 1
			for ; hdr <= 4 && i+hdr < n; hdr++ {
				d := buf[i+hdr]
				rl += int(d&0x7f) * mult
				mult <<= 7
				if d&0x80 == 0 {
					break
				}
			}
			if hdr > 4 || i+hdr >= n || n-i < hdr+1+rl {
				break // incomplete
			}
			first, body := buf[i], buf[i+hdr+1:i+hdr+1+rl]
			out = out[:0]
			switch first >> 4 {
			case typeConnect:
				out = append(out, 0x20, 2, 0, 0)
			case typePublish:
				if (first>>1)&3 == 1 {
					tl := int(body[0])<<8 | int(body[1])
					out = append(out, typePuback<<4, 2, body[2+tl], body[3+tl])
				}
			case typePingreq:
				out = append(out, 0xD0, 0)
			}
			if len(out) > 0 {
				if _, err := conn.Write(out); err != nil {
					return
				}
			}
			i += hdr + 1 + rl
		}
		n = copy(buf, buf[i:n])
	}
}

// stockPools makes the buffer pools hand out buffers allocated now once they are empty: under -race,
// sync.Pool drops a quarter of what is put back, and refilling would count as the Publish's allocations.
// Call it before the client exists; the pools are restored at cleanup, after the client's Close.
func stockPools(t *testing.T, n int) {
	bufNew, rxNew := bufPool.New, rxPool.New
	bufs, rxs := make([]*[]byte, n), make([]*[]byte, n)
	for i := range n {
		b, r := make([]byte, 0, 256), make([]byte, ioBufSize)
		bufs[i], rxs[i] = &b, &r
	}
	var bi, ri atomic.Int64
	bufPool.New = func() any {
		if k := bi.Add(1); k <= int64(n) {
			return bufs[k-1]
		}
		return bufNew()
	}
	rxPool.New = func() any {
		if k := ri.Add(1); k <= int64(n) {
			return rxs[k-1]
		}
		return rxNew()
	}
	t.Cleanup(func() {
		bufPool.New, rxPool.New = bufNew, rxNew
		if bi.Load() > int64(n) || ri.Load() > int64(n) {
			t.Errorf("the pools' stock of %d ran out (%d, %d taken): the count includes refills", n, bi.Load(), ri.Load())
		}
	})
}

func allocClient(t *testing.T) *Client {
	t.Helper()
	fbLeakCheck(t)
	port := allocSink(t)
	const runs = 2000
	stockPools(t, 4*runs)
	return fbConnect(t, Config{Server: "127.0.0.1", Port: port, ClientID: "allocs", ResponseTime: 5 * time.Second})
}

func TestPort_QoS0PublishAllocatesNothing(t *testing.T) {
	c := allocClient(t)
	ctx := context.Background()
	payload := make([]byte, 64)
	var err error
	allocs := testing.AllocsPerRun(2000, func() {
		if e := c.Publish(ctx, "allocs/qos0", payload, false, 0); e != nil {
			err = e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Errorf("a qos 0 Publish allocates %v times, want 0", allocs)
	}
}

func TestPort_QoS1PublishAllocations(t *testing.T) {
	c := allocClient(t)
	ctx := context.Background()
	payload := make([]byte, 64)
	var err error
	allocs := testing.AllocsPerRun(1000, func() {
		if e := c.Publish(ctx, "allocs/qos1", payload, false, 1); e != nil {
			err = e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != qos1PublishAllocs {
		t.Errorf("a qos 1 Publish allocates %v times, want %d (update the README and the package doc if that is a deliberate change)", allocs, qos1PublishAllocs)
	}
}

// clientGoroutines counts the goroutines running the client's own code, by their stacks.
func clientGoroutines() (n int, stacks []string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "mqttas.(*session).") || strings.Contains(g, "mqttas.(*Client).") {
			stacks = append(stacks, g)
		}
	}
	return len(stacks), stacks
}

// waitClientGoroutines waits until the client runs want goroutines, then checks that it stays so.
func waitClientGoroutines(t *testing.T, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	n, stacks := clientGoroutines()
	for n != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n, stacks = clientGoroutines()
	}
	if n == want {
		time.Sleep(100 * time.Millisecond)
		n, stacks = clientGoroutines()
	}
	if n != want {
		t.Errorf("%s: the client runs %d goroutines, want %d:\n%s", what, n, want, strings.Join(stacks, "\n\n"))
	}
}

// An idle connected client runs exactly 3 goroutines (reader, writer, supervisor): pings run from a timer,
// and OnConnect's goroutine has returned. Still 3 after an outage and a reconnection; 0 after Close.
func TestPort_IdleClientRunsThreeGoroutines(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	// No ping falls within the test (KeepAlive 60 s: every 15 s): a ping runs for its instant on a goroutine
	// of the timer's, which is not one the idle client keeps.
	cfg.OnConnect = func(context.Context, *Client) {}
	cfg.OnLinkChange = func(bool) {}
	c := fbConnect(t, cfg)
	waitClientGoroutines(t, 3, "idle after Connect")
	for _, want := range []string{"(*session).readLoop", "(*session).writeLoop", "(*Client).supervise"} {
		if _, stacks := clientGoroutines(); !strings.Contains(strings.Join(stacks, "\n"), want) {
			t.Errorf("no goroutine in %s", want)
		}
	}
	b.Conn(1).Close()
	fbEventually(t, 2*time.Second, "reconnected", func() bool { return c.Stats().Reconnects == 1 })
	waitClientGoroutines(t, 3, "idle after a reconnection")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitClientGoroutines(t, 0, "after Close")
}
