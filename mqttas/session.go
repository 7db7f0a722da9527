package mqttas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// session is one MQTT connection's life: from CONNACK until the first error. It owns the socket; a reader
// and a writer goroutine serve it. Everything a session learns dies with it: in-flight publications belong
// to their callers, who renew them on the next session.
type session struct {
	c     *Client
	conn  net.Conn
	rx    *rxConn // under br: the bytes the handshake read ahead stay buffered
	br    *rxBuffer
	epoch uint64 // numbers sessions; stale queued packets are dropped by epoch

	done    chan struct{} // closed when the session ends
	endOnce sync.Once
	err     error // why it ended; read only after done is closed
	quiet   bool  // ended deliberately (Disconnect, Close): no outage is signalled

	prio    chan outItem    // control packets (PINGREQ, PUBACK, DISCONNECT) that overtake queued publications
	kick    chan struct{}   // one token wakes the writer: something was queued, or the session ended
	acks    *[]byte         // PUBACKs the reader holds until it has dispatched what it has read (reader only)
	waiters []chan struct{} // closed once the writer's current batch is written (writer only)

	lastRx atomic.Int64 // unix nanos of the last byte the reader read
	// What the silence rule counts as received besides lastRx (see ping). queue is the kernel socket, whose
	// waiting bytes the pinger counts; nil where the client cannot see it, and then OnMessage's run counts.
	queue        syscall.RawConn
	queued       int          // bytes waiting in queue at the last ping (pinger only)
	queuedAt     int64        // unix nanos of the last ping that found more bytes waiting than the one before (pinger only)
	handlerStart atomic.Int64 // unix nanos when the running OnMessage began, 0 when none runs (only without queue)
	handlerEnd   atomic.Int64 // unix nanos when OnMessage last returned (only without queue)

	rxMu     sync.Mutex
	rxWait   chan struct{} // closed by the reader on the next packet; nil when nobody waits
	rxWaitOn atomic.Bool

	hookCtx    context.Context // OnConnect's context, cancelled when the session ends
	hookCancel context.CancelFunc

	gone chan struct{} // closed by goDown once the client no longer offers this session
}

// outItem is one packet for the writer. buf is returned to the pool after writing when pooled.
type outItem struct {
	buf    *[]byte
	epoch  uint64        // 0: any session may write it (qos 0); otherwise only that session
	pooled bool          // buf came from bufPool
	done   chan struct{} // closed once written or dropped; nil when nobody waits
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

const maxPooledBuf = 64 << 10

// ioBufSize sizes each connection's read buffer. Small, because an idle client keeps it (an edge gateway may
// hold many clients); a packet larger than the buffer is read straight into its own memory.
const ioBufSize = 2 << 10

// maxBatch bounds how many queued packets one write takes; batchBytes writes a batch early once it is
// this large.
const (
	maxBatch    = 128
	batchBytes  = 16 << 10
	maxAckBatch = 1 << 10 // PUBACK bytes the reader holds at most before handing them to the writer
)

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

func newSession(c *Client, conn net.Conn, rx *rxConn, br *rxBuffer, epoch uint64) *session {
	s := &session{c: c, conn: conn, rx: rx, br: br, epoch: epoch, done: make(chan struct{}), prio: make(chan outItem, 16), kick: make(chan struct{}, 1),
		gone: make(chan struct{})}
	s.lastRx.Store(time.Now().UnixNano())
	rx.lastRx = &s.lastRx
	s.queue = queueSocket(conn)
	br.quiet = true // the first packet of a session may be long in coming (a PINGRESP, say)
	if d := c.cfg.ReadBatchDelay; d > 0 {
		if rx.sock != nil {
			rx.batch.init(rx.sock, d, func() int { return len(c.slots) })
		}
	}
	s.hookCtx, s.hookCancel = context.WithCancel(context.Background())
	return s
}

// end closes the session once; err says why. quiet marks a deliberate end.
func (s *session) end(err error, quiet bool) {
	s.endOnce.Do(func() {
		s.err = err
		s.quiet = quiet
		close(s.done)
		s.wake()
		s.hookCancel()
		_ = s.conn.Close()
	})
}

func (s *session) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// sendPrio queues a control packet ahead of publications. It gives up when the session ends.
func (s *session) sendPrio(it outItem) bool {
	select {
	case s.prio <- it:
		s.wake()
		return true
	case <-s.done:
		return false
	}
}

// txConn gives writes mqtt_as's inactivity rule: a write fails only after ResponseTime without progress.
type txConn struct {
	conn net.Conn
	rt   time.Duration
}

func (w txConn) Write(b []byte) (int, error) {
	written := 0
	for written < len(b) {
		_ = w.conn.SetWriteDeadline(time.Now().Add(w.rt))
		n, err := w.conn.Write(b[written:])
		written += n
		if err != nil {
			var ne net.Error
			if n > 0 && errors.As(err, &ne) && ne.Timeout() {
				continue // progress was made: the inactivity timer starts again
			}
			return written, err
		}
	}
	return written, nil
}

// writeLoop writes queued packets, coalescing whatever is ready into one write. The batch buffer is
// borrowed from the pool only while there is something to write: an idle client holds none. It parks on
// one plain receive (kick), the shallowest way to park, so an idle writer's stack stays at (or shrinks
// back to) the minimum.
func (s *session) writeLoop() {
	for s.alive() { // checked first: a qos 0 publication taken after the end would be lost, not carried over
		if it, ok := s.poll(); ok {
			if !s.writeBatch(it) {
				return
			}
			continue
		}
		<-s.kick
		if n := len(s.c.slots); n >= 8 {
			// Many requests in flight: PUBACKs are waking their publishers right now. Let them queue their
			// next publications first (yielding at most 32 times, a few µs, while fewer than half have), so
			// one write carries many. Measured with 64 in flight: 1.15 -> 0.5 writes per message, 20% less
			// client CPU, 1.35x -> 1.5-1.6x paho's throughput.
			for i := 0; i < 32 && len(s.c.out) < n/2; i++ {
				runtime.Gosched()
			}
		}
	}
}

// wake makes the writer look at its queues (and at done) again.
func (s *session) wake() {
	select {
	case s.kick <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// poll returns a queued packet without waiting, control packets first.
func (s *session) poll() (outItem, bool) {
	select {
	case it := <-s.prio:
		return it, true
	default:
	}
	select {
	case it := <-s.prio:
		return it, true
	case it := <-s.c.out:
		return it, true
	default:
		return outItem{}, false
	}
}

// writeBatch writes first and whatever else is ready without blocking (a bounded batch: the flush also
// wakes Disconnect) in one write. false means the session has ended.
//
//go:noinline
func (s *session) writeBatch(first outItem) bool {
	c := s.c
	w := txConn{s.conn, c.cfg.ResponseTime}
	var batch *[]byte
	flush := func() {
		if batch != nil && len(*batch) > 0 {
			if _, err := w.Write(*batch); err != nil {
				s.end(fmt.Errorf("write: %w", err), false)
			}
		}
		if batch != nil {
			putBuf(batch)
			batch = nil
		}
	}
	write := func(it outItem) {
		if it.epoch == 0 || it.epoch == s.epoch {
			if batch == nil {
				batch = getBuf()
			}
			*batch = append(*batch, *it.buf...)
			if len(*batch) >= batchBytes {
				flush()
			}
		}
		if it.pooled {
			putBuf(it.buf)
		}
		if it.done != nil {
			s.waiters = append(s.waiters, it.done)
		}
	}
	write(first)
drain:
	for n := 0; n < maxBatch && s.alive(); n++ {
		select {
		case it := <-s.prio:
			write(it)
		case it := <-c.out:
			write(it)
		default:
			break drain
		}
	}
	flush()
	for _, w := range s.waiters {
		close(w)
	}
	clear(s.waiters)
	s.waiters = s.waiters[:0]
	return s.alive()
}

// rxConn records when bytes arrive and, while a packet is half read, applies ResponseTime as an inactivity
// timeout. Between packets there is no deadline (silence is the pinger's business: the 4-interval rule),
// except the short one of a batched read (rxBatcher).
type rxConn struct {
	conn   net.Conn
	rt     time.Duration
	lastRx *atomic.Int64   // the session's; nil during the handshake
	armed  bool            // inside a packet
	set    bool            // a read deadline is set on the socket
	batch  rxBatcher       // between packets, once the session is up
	sock   syscall.RawConn // the kernel socket under conn (plain TCP), or nil
}

// waitReadable waits, between packets and without a buffer, until bytes can be read. Where conn is not
// a kernel socket it returns at once (the read then waits with the buffer).
func (r *rxConn) waitReadable() error {
	if r.sock == nil || r.armed || r.batch.waiting() {
		return nil
	}
	if r.set {
		_ = r.conn.SetReadDeadline(time.Time{})
		r.set = false
	}
	return waitReadable(r.sock)
}

func (r *rxConn) Read(p []byte) (int, error) {
	r.batch.prepare()
	batching := r.batch.waiting()
	switch {
	case batching:
		_ = r.conn.SetReadDeadline(time.Now().Add(min(r.batch.delay, r.rt)))
		r.set = true
	case r.armed:
		_ = r.conn.SetReadDeadline(time.Now().Add(r.rt))
		r.set = true
	case r.set:
		_ = r.conn.SetReadDeadline(time.Time{})
		r.set = false
	}
	n, err := r.conn.Read(p)
	if n == 0 && batching && errors.Is(err, os.ErrDeadlineExceeded) {
		// Less than a batch came within the delay: hand over what did, or wait as usual.
		if r.armed {
			_ = r.conn.SetReadDeadline(time.Now().Add(r.rt))
		} else {
			_ = r.conn.SetReadDeadline(time.Time{})
			r.set = false
		}
		if n, err = r.batch.held(p); n == 0 && err == nil {
			n, err = r.conn.Read(p)
		}
	}
	r.batch.observe(n)
	if n > 0 && r.lastRx != nil {
		r.lastRx.Store(time.Now().UnixNano())
	}
	return n, err
}

// readLoop reads and dispatches packets until the connection fails. Between packets it parks in a
// shallow call chain (the packet work is in readPacketAndDispatch), so the stack of an idle client's
// reader stays at the minimum, or shrinks back to it at the next GC after a burst.
func (s *session) readLoop() {
	var scratch []byte
	for {
		if s.br.Buffered() == 0 {
			s.flushAcks()      // before waiting for more: the broker must not wait for PUBACKs we hold
			s.br.release()     // a quiet connection waits without a buffer
			s.rx.armed = false // the next read starts a packet: no deadline, or a batch's
			if err := s.br.waitQuiet(); err != nil {
				s.end(readErr(err), false)
				return
			}
		}
		var ok bool
		if scratch, ok = s.readPacketAndDispatch(scratch); !ok {
			return
		}
	}
}

// readPacketAndDispatch reads one packet and acts on it; false means the session has ended. scratch is
// the body buffer carried from packet to packet.
//
//go:noinline
func (s *session) readPacketAndDispatch(scratch []byte) ([]byte, bool) {
	c := s.c
	first, err := s.br.ReadByte()
	if err != nil {
		s.end(readErr(err), false)
		return scratch, false
	}
	s.rx.armed = true
	_ = s.br.UnreadByte()
	p, buf, err := readPacket(s.br, c.cfg.MaxPacketSize, scratch)
	scratch = buf
	if cap(scratch) > maxPooledBuf {
		scratch = nil // a large packet's buffer is not kept (mqtt_as's never shrank)
	}
	if err != nil {
		var pe *ProtocolError
		if errors.As(err, &pe) {
			c.stats.protocolErrors.Add(1)
			c.log.Warn("mqttas: protocol error, resetting the connection", "err", err, "first", first)
		}
		s.end(readErr(err), false)
		return scratch, false
	}
	if s.rxWaitOn.Load() {
		s.rxMu.Lock()
		if s.rxWait != nil {
			close(s.rxWait)
			s.rxWait = nil
		}
		s.rxWaitOn.Store(false)
		s.rxMu.Unlock()
	}
	if err := s.dispatch(p); err != nil {
		c.stats.protocolErrors.Add(1)
		c.log.Warn("mqttas: protocol error, resetting the connection", "err", err)
		s.end(err, false)
		return scratch, false
	}
	return scratch, true
}

func readErr(err error) error {
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("broker closed the connection: %w", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("broker closed the connection mid-packet: %w", err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: packet stalled mid-way: %v", ErrTimeout, err)
	}
	return fmt.Errorf("read: %w", err)
}

func (s *session) dispatch(p packet) error {
	c := s.c
	switch p.typ {
	case typePublish:
		m := Message{Topic: p.topic, Payload: p.body, QoS: p.qos, Retain: p.retain}
		c.deliver(s, m)
		c.stats.received.Add(1) // after delivery: Received never runs ahead of Queue().Len() + Discards
		switch p.qos {
		case 1:
			// Held until the packets already read are dispatched: one write carries their PUBACKs.
			if s.acks == nil {
				s.acks = getBuf()
			}
			*s.acks = appendPuback(*s.acks, p.id)
			if len(*s.acks) >= maxAckBatch {
				s.flushAcks()
			}
		case 2:
			// mqtt_as delivers, then drops the link; qos 2 is out of scope (subscriptions are capped at 1).
			return protoErr(p.typ, "qos 2 is not supported (message delivered, no PUBREC sent)")
		}
	case typePuback:
		c.complete(s, p, typePublish)
	case typeSuback:
		c.complete(s, p, typeSubscribe)
	case typeUnsuback:
		c.complete(s, p, typeUnsubscribe)
	case typePingresp:
	default:
		return protoErr(p.typ, "unexpected on an established connection")
	}
	return nil
}

// flushAcks hands the PUBACKs held by the reader to the writer.
func (s *session) flushAcks() {
	if s.acks == nil {
		return
	}
	b := s.acks
	s.acks = nil
	if !s.sendPrio(outItem{buf: b, epoch: s.epoch, pooled: true}) {
		putBuf(b)
	}
}

// waitRx returns a channel closed when the next packet arrives.
func (s *session) waitRx() <-chan struct{} {
	s.rxMu.Lock()
	defer s.rxMu.Unlock()
	if s.rxWait == nil {
		s.rxWait = make(chan struct{})
	}
	s.rxWaitOn.Store(true)
	return s.rxWait
}

// startPings pings every interval from connection time and applies the silence rule: the broker is dead
// after 4 whole ping intervals without a received byte. The pings run from a timer, not from a goroutine
// waiting on a ticker: an idle client keeps no goroutine for them. The returned func stops them.
func (s *session) startPings() (stop func()) {
	every := s.c.pingEvery
	var t *time.Timer
	t = time.AfterFunc(time.Duration(math.MaxInt64), func() {
		if s.ping(time.Now()) && s.alive() {
			t.Reset(every)
		}
	})
	t.Reset(every) // armed only now that t is set
	return func() { t.Stop() }
}

// ping queues a PINGREQ and applies the silence rule at now; false when it ended the session.
//
// A byte counts as received when it reaches the socket, not only when the reader reads it: while the reader
// is held up (inside a slow OnMessage) the broker's PINGRESPs wait in the kernel, and a ping that finds more
// bytes waiting than the one before counts them as received then. So a slow or hung handler neither makes a
// live broker look silent nor hides a silent one: a broker whose bytes stop arriving is declared dead at the
// first ping 4 whole intervals after the ping that last saw bytes arrive, within the 5th interval after
// its last byte, as when the reader reads. Where the client cannot see the socket's queue (a Config.Dial
// connection that exposes no kernel socket, or a system other than Linux), the handler's run counts as
// traffic instead, from its start: a broker is then declared dead within 5 intervals of the start of a
// handler that hangs, and a handler that runs for 4 intervals or more is taken for a silent broker.
//
//go:noinline
func (s *session) ping(now time.Time) bool {
	every := s.c.pingEvery
	b := getBuf()
	*b = append(*b, pingreqBytes...)
	select {
	case s.prio <- outItem{buf: b, epoch: s.epoch, pooled: true}:
		s.wake()
	default: // the writer is stuck; its write deadline will end the session
		putBuf(b)
	}
	last := s.lastRx.Load()
	if s.queue != nil {
		if n, ok := socketQueued(s.queue); ok {
			if n > s.queued {
				s.queuedAt = now.UnixNano()
			}
			s.queued = n
		}
		last = max(last, s.queuedAt)
	} else {
		last = max(last, s.handlerStart.Load(), s.handlerEnd.Load())
	}
	if silent := now.Sub(time.Unix(0, last)); silent/every >= 4 {
		s.end(fmt.Errorf("%w: nothing received for %v (%d ping intervals)", ErrTimeout,
			silent.Round(time.Millisecond), silent/every), false)
		return false
	}
	return true
}
