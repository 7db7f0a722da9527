package mqttas

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection, closed at cleanup.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// batchedRx wraps the client end of a loopback pair in an rxConn with batching after delay.
func batchedRx(t *testing.T, delay time.Duration, acks func() int) (*rxConn, *net.TCPConn) {
	t.Helper()
	c, s := tcpPair(t)
	sock := kernelSocket(c)
	if sock == nil {
		t.Skip("read batching is Linux-only")
	}
	rx := &rxConn{conn: c, rt: 5 * time.Second}
	rx.batch.init(sock, delay, acks)
	return rx, s
}

// readN reads exactly n bytes through rx, recording the highest low-water mark used.
func readN(t *testing.T, rx *rxConn, n int, maxLowat *int) []byte {
	t.Helper()
	out := make([]byte, 0, n)
	buf := make([]byte, ioBufSize)
	for len(out) < n {
		k, err := rx.Read(buf[:min(len(buf), n-len(out))])
		if err != nil {
			t.Fatalf("read after %d of %d bytes: %v", len(out), n, err)
		}
		out = append(out, buf[:k]...)
		if maxLowat != nil {
			*maxLowat = max(*maxLowat, rx.batch.lowat)
		}
	}
	return out
}

// spinFor waits d without sleeping: time.Sleep's granularity is too coarse for a pace of tens of µs.
func spinFor(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
		runtime.Gosched()
	}
}

func TestReadBatchingEngagesOnAStreamAndStopsWhenItPauses(t *testing.T) {
	rx, srv := batchedRx(t, time.Millisecond, func() int { return 0 })
	const total = 256 << 10
	want := make([]byte, total)
	for i := range want {
		want[i] = byte(i * 7)
	}
	// The stream must come fast enough to fill a batch per delay, which a writer descheduled on a loaded
	// machine does not: up to three streams, the mark reaching its cap in one of them.
	var highest int
	for attempt := 1; attempt <= 3 && highest < maxBatchBytes; attempt++ {
		go func() {
			// 400-byte writes, five 80-byte packets each (as a broker forwarding a burst): a stream of small
			// packets fast enough to fill a batch per delay even under the race detector.
			for off := 0; off < total; off += 400 {
				if _, err := srv.Write(want[off:min(off+400, total)]); err != nil {
					return
				}
			}
		}()
		got := readN(t, rx, total, &highest)
		if !bytes.Equal(got, want) {
			t.Fatal("bytes read through batching differ from those written")
		}
		if highest < maxBatchBytes {
			t.Logf("stream %d: the low-water mark reached %d", attempt, highest)
		}
	}
	if highest < maxBatchBytes {
		t.Errorf("low-water mark reached %d during three 256 KiB streams of 400-byte writes, want %d", highest, maxBatchBytes)
	}
	// The stream pauses; a lone packet arrives later. Batching must have stopped by then (the deadline
	// fired with nothing waiting), so the packet is read as such, not after a batch's deadline.
	go func() {
		time.Sleep(50 * time.Millisecond)
		srv.Write([]byte("lone"))
	}()
	if got := readN(t, rx, 4, nil); string(got) != "lone" {
		t.Fatalf("read %q, want the lone packet", got)
	}
	if rx.batch.lowat != 1 || rx.batch.waiting() {
		t.Errorf("low-water mark %d after the stream paused, want 1 (batching off)", rx.batch.lowat)
	}
}

func TestReadBatchingLeavesAcknowledgementsThatPublishersWaitForAlone(t *testing.T) {
	var inFlight atomic.Int64
	rx, srv := batchedRx(t, 100*time.Microsecond, func() int { return int(inFlight.Load()) })
	const total = 800 * 80 // 800 writes of 20 PUBACKs
	stream := func() {
		go func() {
			b := bytes.Repeat(fbAck(typePuback, 1), 20)
			for range total / len(b) {
				if _, err := srv.Write(b); err != nil {
					return
				}
			}
		}()
	}
	for _, tc := range []struct {
		inFlight           int64
		minLowat, maxLowat int
	}{
		{3, 1, 1},         // 12 bytes of PUBACKs: no batching at all
		{40, 1, 64},       // at most half the 160 bytes those 40 PUBACKs make, as a power of two
		{1000, 256, 1024}, // enough in flight: batching engages, still at most half of 4000 bytes
	} {
		inFlight.Store(tc.inFlight)
		rx.batch.lowat, rx.batch.rate = 1, 0
		_ = setRcvLowat(rx.batch.sock, 1)
		stream()
		var highest int
		readN(t, rx, total, &highest)
		if highest > tc.maxLowat || highest < tc.minLowat {
			t.Errorf("%d requests in flight: low-water mark reached %d, want %d to %d", tc.inFlight, highest,
				tc.minLowat, tc.maxLowat)
		}
	}
}

func TestReadBatchingLearnsAClosedLoop(t *testing.T) {
	// The sender sends 1000 bytes and waits for the reader to have them all before sending more, as a
	// broker does with its window of qos 1 messages in flight. A 2048-byte batch would never fill.
	rx, srv := batchedRx(t, 2*time.Millisecond, func() int { return 0 })
	next := make(chan struct{})
	const rounds = 200
	go func() {
		chunk := bytes.Repeat([]byte{'x'}, 1000)
		for range rounds {
			if _, err := srv.Write(chunk); err != nil {
				return
			}
			if _, ok := <-next; !ok {
				return
			}
		}
	}()
	defer close(next)
	start := time.Now()
	for range rounds {
		readN(t, rx, 1000, nil)
		next <- struct{}{}
	}
	// Each deadline that fires costs the loop 2 ms. Two in a row cap the batch; the cap relaxes every
	// capRelax, costing at most two more.
	allowed := 2 + 2*int(time.Since(start)/capRelax+1)
	if rx.batch.helds > allowed {
		t.Errorf("%d batch deadlines fired in %d rounds of a closed loop (%v), want at most %d",
			rx.batch.helds, rounds, time.Since(start).Round(time.Millisecond), allowed)
	}
}

func TestReadBatchingDoesNotStallAPacketSplitMidway(t *testing.T) {
	// Once batching is on, a packet whose second half comes later must still be read when it arrives: a
	// low-water mark above the bytes still to come would hold the read until ResponseTime (an outage).
	b := fbNew(t)
	cfg := fbConfig(b)
	cfg.ResponseTime = 2 * time.Second
	var got atomic.Int64
	var big atomic.Bool
	cfg.OnMessage = func(m Message) {
		got.Add(1)
		if len(m.Payload) == 1400 {
			big.Store(true)
		}
	}
	c := fbConnect(t, cfg)
	conn := b.MustWaitConns(t, 1, 2*time.Second)
	if runtime.GOOS != "linux" {
		t.Skip("read batching is Linux-only")
	}
	small := fbPublish("s", bytes.Repeat([]byte{'p'}, 60), 0, false, false, 0)
	var burst []byte
	for range 4000 {
		burst = append(burst, small...)
	}
	for off := 0; off < len(burst); off += 4 * len(small) {
		if err := conn.Send(burst[off:min(off+4*len(small), len(burst))]); err != nil {
			t.Fatal(err)
		}
	}
	whole := fbPublish("big", bytes.Repeat([]byte{'b'}, 1400), 0, false, false, 0)
	if err := conn.Send(whole[:700]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	sent := time.Now()
	if err := conn.Send(whole[700:]); err != nil {
		t.Fatal(err)
	}
	fbEventually(t, 3*time.Second, "every message delivered", func() bool { return got.Load() == 4001 && big.Load() })
	if late := time.Since(sent); late > time.Second {
		t.Errorf("the split packet was delivered %v after its second half arrived", late.Round(time.Millisecond))
	}
	if st := c.Stats(); st.Outages != 0 {
		t.Errorf("%d outages, want 0 (last error %v)", st.Outages, c.LastError())
	}
}

func TestReadBatchDelayConfig(t *testing.T) {
	for _, tc := range []struct {
		delay time.Duration
		ok    bool
		want  time.Duration
	}{
		{0, true, defaultReadBatch},
		{-1, true, -1},
		{50 * time.Microsecond, true, 50 * time.Microsecond},
		{2 * time.Second, false, 0},
	} {
		cfg := Config{}
		cfg.Server = "127.0.0.1"
		cfg.ReadBatchDelay = tc.delay
		err := cfg.validate()
		if (err == nil) != tc.ok {
			t.Errorf("ReadBatchDelay %v: err %v, want ok %v", tc.delay, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("ReadBatchDelay %v: %v is not ErrInvalidConfig", tc.delay, err)
			}
			continue
		}
		if cfg.ReadBatchDelay != tc.want {
			t.Errorf("ReadBatchDelay %v became %v, want %v", tc.delay, cfg.ReadBatchDelay, tc.want)
		}
	}
}

func TestReadBatchingLeavesAModerateStreamAlone(t *testing.T) {
	// 80-byte packets about 200 µs apart (at most 400 bytes per millisecond), each sent once the previous
	// one was read: a request/response exchange such as one qos 1 publication at a time, mirrored to a
	// subscriber. It would never fill a batch within the delay, so batching must not start: every packet
	// is read as it arrives, none waits for a deadline.
	rx, srv := batchedRx(t, time.Millisecond, func() int { return 0 })
	next := make(chan struct{})
	const packets = 1000
	go func() {
		p := bytes.Repeat([]byte{'m'}, 80)
		for range packets {
			spinFor(200 * time.Microsecond)
			if _, err := srv.Write(p); err != nil {
				return
			}
			if _, ok := <-next; !ok {
				return
			}
		}
	}()
	defer close(next)
	var highest int
	for range packets {
		readN(t, rx, 80, &highest)
		next <- struct{}{}
	}
	if highest > 1 || rx.batch.helds > 0 {
		t.Errorf("a moderate request/response stream was batched: low-water mark reached %d, %d deadlines fired",
			highest, rx.batch.helds)
	}
}

func TestReadBatchingGathersTheAcknowledgementsOfManyRequests(t *testing.T) {
	// 64 publications in flight, their PUBACKs trickling in at 25 per millisecond (a busy broker): they
	// are due, so they are read in batches (half of them at most), not one wakeup per PUBACK.
	rx, srv := batchedRx(t, time.Millisecond, func() int { return 64 })
	const acks = 2500
	go func() {
		ack := fbAck(typePuback, 1)
		for range acks {
			spinFor(40 * time.Microsecond)
			if _, err := srv.Write(ack); err != nil {
				return
			}
		}
	}()
	var highest int
	readN(t, rx, acks*4, &highest)
	if highest < minBatchBytes || highest > 2*64 {
		t.Errorf("low-water mark reached %d while PUBACKs for 64 requests trickled in, want %d to %d",
			highest, minBatchBytes, 2*64)
	}
}

func TestReadBatchingCountsOnlyTheAcknowledgementsStillDue(t *testing.T) {
	// A read returned the PUBACKs of most of the requests in flight; once they are dispatched only a few
	// remain. The next read must not wait for a batch sized for all of them: the broker owes no more than
	// the few, so it would wait out the whole delay with their PUBACKs in the socket.
	var inFlight atomic.Int64
	inFlight.Store(64)
	rx, srv := batchedRx(t, 200*time.Millisecond, func() int { return int(inFlight.Load()) })
	rx.batch.rate = 1 // PUBACKs are flowing
	ack := fbAck(typePuback, 1)
	if _, err := srv.Write(bytes.Repeat(ack, 32)); err != nil {
		t.Fatal(err)
	}
	var highest int
	readN(t, rx, 32*len(ack), &highest)
	if highest < minBatchBytes {
		t.Fatalf("64 requests in flight: low-water mark %d, want a batch (the test's premise)", highest)
	}
	inFlight.Store(8) // the 32 dispatched, others completed meanwhile: 8 PUBACKs are due
	go func() {
		time.Sleep(20 * time.Millisecond) // they come once the reader waits (bytes already there are read at once)
		_, _ = srv.Write(bytes.Repeat(ack, 8))
	}()
	helds := rx.batch.helds
	readN(t, rx, 8*len(ack), nil)
	if rx.batch.helds != helds {
		t.Error("the read of the last 8 PUBACKs waited out the batch delay: its mark counted requests whose PUBACKs the previous read returned")
	}
}
