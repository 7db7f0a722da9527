package mqttas

import (
	"context"
	"runtime/trace"
	"strconv"
	"syscall"
	"time"
)

// Read batching. A client that drains its socket as fast as packets arrive sleeps between packets, so
// every packet of a stream costs the broker a wakeup of this process (on a VM an inter-processor
// interrupt): measured with mosquitto, that doubled the broker's CPU per message and halved the
// throughput of a qos 0 stream. While a stream of small packets arrives, rxBatcher asks the kernel to
// wake the reader only once a batch of bytes is waiting (SO_RCVLOWAT), under a read deadline of
// Config.ReadBatchDelay. When the deadline fires the reader takes whatever has arrived. If nothing had,
// the stream has paused and batching stops, so the next packet wakes the reader at once. If bytes were
// waiting twice in a row, the sender waits for this side before sending more (a closed loop, such as a
// broker's window of qos 1 messages in flight): batches are capped below what arrived, for capRelax.
//
// Batching starts only for a stream that would fill a whole batch within the delay, and stops when the
// stream falls below two minimal batches per delay (the gap between the two keeps a stream that dips for
// a moment batched). The rate is measured over windows of at least the delay, not per read, so one read
// that happens to find two packets does not look like a stream: a slower exchange, such as one qos 1
// publication at a time mirrored to a subscriber (about 1 KB per ms on loopback), is not batched and
// keeps its latency.
//
// Requests this client has in flight cap the batch at half the size of their acknowledgements, so a
// publisher waiting for PUBACKs is never held for all of them, and one with few in flight (under 32) not
// at all. With more in flight their PUBACKs are due, so they are read in batches as soon as any arrive.
// The mark for a read is set as the read begins, from the requests still in flight then: the PUBACKs the
// previous read returned no longer count.

const (
	minBatchBytes = 64                    // smaller batches are not worth a system call
	maxBatchBytes = ioBufSize             // a batch fills the read buffer
	capRelax      = 50 * time.Millisecond // how long a lowered cap stays before it doubles again...
	maxCapRelax   = 2 * time.Second       // ...doubling (up to this) each time the raised cap failed at once
)

// rxBatcher sets a socket's receive low-water mark from the incoming byte rate. The zero value is off.
type rxBatcher struct {
	sock  syscall.RawConn // nil: batching is off (not a kernel socket, TLS, or not supported here)
	delay time.Duration   // longest a batch may be waited for
	acks  func() int      // requests in flight, whose acknowledgements alone must be able to fill a batch
	lowat int             // the socket's low-water mark now; ≤ 1 means no batching
	cap   int             // bound on the batch, lowered when a deadline fires with bytes waiting (see held)
	capAt time.Time       // when cap last changed
	relax time.Duration   // how long a lowered cap stays; grows while raising it keeps failing
	rate  float64         // bytes per nanosecond over the last complete window
	win   int             // bytes read in the current window...
	winAt time.Time       // ...which began then and completes once it spans at least delay
	// strikes counts deadlines in a row that fired with bytes waiting; fresh is false after one until a
	// batch read returns in time.
	strikes int
	fresh   bool
	helds   int // deadlines that fired (for tests)
}

func (b *rxBatcher) init(sock syscall.RawConn, delay time.Duration, acks func() int) {
	now := time.Now()
	*b = rxBatcher{sock: sock, delay: delay, acks: acks, lowat: 1, cap: maxBatchBytes, capAt: now, winAt: now,
		relax: capRelax}
}

// waiting reports whether the next read waits for a batch, and so needs a deadline of b.delay.
func (b *rxBatcher) waiting() bool { return b.lowat > 1 }

// observe records a read of n bytes and sets the low-water mark for the next one.
func (b *rxBatcher) observe(n int) {
	if b.sock == nil || n <= 0 {
		return
	}
	now := time.Now()
	if b.waiting() && b.fresh {
		b.strikes = 0 // a batch came in time
	}
	b.fresh = true
	b.win += n
	if span := now.Sub(b.winAt); span >= b.delay {
		b.rate = float64(b.win) / float64(span)
		b.win, b.winAt = 0, now
	}
	if b.cap < maxBatchBytes && now.Sub(b.capAt) >= b.relax {
		b.cap = min(2*b.cap, maxBatchBytes)
		b.capAt = now
	}
}

// prepare sets the low-water mark for the read about to begin.
func (b *rxBatcher) prepare() {
	if b.sock == nil {
		return
	}
	b.set(b.want())
}

// want returns the low-water mark for the next read: 1 (no batching) or a batch size.
func (b *rxBatcher) want() int {
	want, k := b.cap, b.acks()
	var stream bool
	if k > 0 {
		// Half of what their PUBACKs (4 bytes each) add up to: waiting for all of them would drain the
		// publishers' pipeline before refilling it. They are due, so they batch as soon as bytes flow.
		want = min(want, 2*k)
		stream = b.rate > 0
	} else {
		perDelay := b.rate * float64(b.delay)
		stream = perDelay >= maxBatchBytes || b.waiting() && perDelay >= 2*minBatchBytes
	}
	if want = floorPow2(want); want < minBatchBytes || !stream {
		return 1
	}
	return want
}

// held is called when a batch read's deadline fired: fewer than the low-water mark arrived within the
// delay. It reads, without waiting, whatever did arrive into p. If nothing did, the stream has paused:
// batching stops, so the next packet wakes the reader at once. A stream that merely slowed leaves a
// fuller batch next time; twice in a row means a closed loop (the sender waits for this side before
// sending more), and the batch is capped below what arrived.
func (b *rxBatcher) held(p []byte) (int, error) {
	b.helds++
	n, err := readNoWait(b.sock, p)
	if n > 0 && trace.IsEnabled() { // the bench's -trace shows these stalls (go tool trace -d=parsed)
		trace.Log(context.Background(), "mqttas.rxbatch", "batch deadline fired with "+strconv.Itoa(n)+
			" bytes waiting for a batch of "+strconv.Itoa(b.lowat)+" ("+strconv.Itoa(b.acks())+" requests in flight)")
	}
	if n <= 0 || err != nil {
		b.set(1)
		b.rate, b.strikes = 0, 0
		b.win, b.winAt = 0, time.Now()
		return 0, err // the ordinary read waits for the next packet, or sees the end
	}
	if b.strikes++; b.strikes >= 2 {
		now := time.Now()
		if b.cap > floorPow2(n) && now.Sub(b.capAt) < 2*b.relax {
			b.relax = min(2*b.relax, maxCapRelax) // the cap was raised too soon: keep it lower for longer
		} else {
			b.relax = capRelax
		}
		b.cap = floorPow2(n)
		b.capAt = now
		b.strikes = 0
	}
	b.fresh = false
	return n, nil
}

func (b *rxBatcher) set(lowat int) {
	if lowat == b.lowat || b.sock == nil {
		return
	}
	if err := setRcvLowat(b.sock, lowat); err != nil {
		b.sock = nil // not supported: stay off
		b.lowat = 1
		return
	}
	b.lowat = lowat
}

func floorPow2(n int) int {
	if n < 1 {
		return 0
	}
	p := 1
	for p*2 <= n {
		p *= 2
	}
	return p
}
