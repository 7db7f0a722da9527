package mqttas

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// outboxWindow bounds the durable publications in flight on one connection.
const outboxWindow = 256

// outbox holds the durable publications not yet acknowledged, in the order of their sequence numbers, and
// sends them from one goroutine per run (Connect … Disconnect or Close), so they go out in order on every
// connection.
type outbox struct {
	store Store

	mu   sync.Mutex
	recs []*outRec     // not acknowledged, in order (acknowledged ones leave from the front)
	acks []*outRec     // acknowledged by the broker, for the loop to record
	kick chan struct{} // one token wakes the loop
}

type outRec struct {
	seq uint64
	msg Message
	// Loop only:
	req     *request  // in flight on the current connection
	due     time.Time // when to re-send or give up
	resends int
	sent    bool // went out on an earlier connection of this process: the next send is a renewal
	acked   bool
}

func newOutbox(st Store) (*outbox, error) {
	pending, err := st.Pending()
	if err != nil {
		return nil, fmt.Errorf("mqttas: reading the store: %w", err)
	}
	ob := &outbox{store: st, kick: make(chan struct{}, 1)}
	for _, p := range pending {
		m := p.Message
		m.QoS = 1
		ob.recs = append(ob.recs, &outRec{seq: p.Seq, msg: m})
	}
	return ob, nil
}

func (ob *outbox) wake() {
	select {
	case ob.kick <- struct{}{}:
	default:
	}
}

// PublishDurable publishes a message at qos 1 through Config.Store: it returns once the message is stored
// durably (for a FileStore: written and fsynced), not waiting for the broker. The client then sends it, in
// the order of PublishDurable calls, with the same re-sends as Publish at qos 1 (DUP re-sends, a new packet
// id after an outage), until the broker acknowledges it, and then tells the store. A process that crashes
// or loses power before that sends it again at the next New and Connect with the same store, with a new
// packet id: a stored publication is acknowledged by the broker at least once across any number of
// crashes (and may arrive more than once). It may be called before Connect and while reconnecting.
//
// Errors: bad arguments (nothing stored), ErrInvalidConfig without a Store, ctx's end or ErrClosed before
// the message was stored, and the store's own, e.g. ErrStoreFull when the disk is full (the message was not
// stored; nothing stored before is lost).
func (c *Client) PublishDurable(ctx context.Context, topic string, payload []byte, retain bool) error {
	ob := c.ob
	if ob == nil {
		return fmt.Errorf("%w: PublishDurable needs Config.Store", ErrInvalidConfig)
	}
	if err := CheckTopic(topic); err != nil {
		return err
	}
	if n := publishLength(topic, payload, 1); n > c.cfg.MaxPacketSize {
		return fmt.Errorf("%w: a PUBLISH of %d bytes is over MaxPacketSize %d", ErrPacketTooLarge, n, c.cfg.MaxPacketSize)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-c.closed:
		return ErrClosed
	default:
	}
	m := Message{Topic: topic, Payload: payload, QoS: 1, Retain: retain}
	seq, err := ob.store.Append(m)
	if err != nil {
		return err
	}
	m.Payload = append([]byte(nil), payload...)
	ob.mu.Lock()
	// Appends may return out of order (group commit): keep recs sorted by sequence number.
	i := len(ob.recs)
	for i > 0 && ob.recs[i-1].seq > seq {
		i--
	}
	ob.recs = append(ob.recs, nil)
	copy(ob.recs[i+1:], ob.recs[i:])
	ob.recs[i] = &outRec{seq: seq, msg: m}
	ob.mu.Unlock()
	ob.wake()
	return nil
}

// runOutbox sends the outbox's publications on each connection of the run until the run ends.
func (c *Client) runOutbox(run context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for waited := false; ; waited = true {
		s, err := c.currentSession(run, waited)
		if err != nil {
			return
		}
		c.serveOutbox(run, s, timer)
	}
}

// serveOutbox sends on s, window by window, and handles acknowledgements, DUP re-sends and the end of s.
func (c *Client) serveOutbox(run context.Context, s *session, timer *time.Timer) {
	ob := c.ob
	var inflight []*outRec
	defer func() {
		c.recordAcks(&inflight) // what the broker acknowledged is not sent again by the next run
		for _, r := range inflight {
			if r.req != nil {
				c.release(r.req)
				r.req = nil
			}
		}
	}()
	for {
		// Acknowledgements first: an acknowledged publication is never sent again.
		c.recordAcks(&inflight)
		// Send what is not in flight, in order, while the window has room.
		if len(inflight) < outboxWindow {
			ob.mu.Lock()
			var next []*outRec
			for _, r := range ob.recs {
				if len(inflight)+len(next) >= outboxWindow {
					break
				}
				if !r.acked && r.req == nil {
					next = append(next, r)
				}
			}
			ob.mu.Unlock()
			for _, r := range next {
				if !c.sendDurable(run, s, r, false) {
					return
				}
				inflight = append(inflight, r)
			}
		}
		// Wait for an acknowledgement, a new publication, a re-send's time, or the end.
		var due time.Time
		for _, r := range inflight {
			if r.req != nil && (due.IsZero() || r.due.Before(due)) {
				due = r.due
			}
		}
		if !due.IsZero() {
			timer.Reset(time.Until(due))
		}
		select {
		case <-ob.kick:
		case <-s.done:
			timer.Stop()
			return
		case <-run.Done():
			timer.Stop()
			return
		case <-timer.C:
			now := time.Now()
			for _, r := range inflight {
				if r.req == nil || now.Before(r.due) {
					continue
				}
				if r.resends >= c.cfg.MaxRepubs {
					c.log.Debug("mqttas: no acknowledgement, declaring the link dead", "id", r.req.id, "type", "PUBLISH")
					s.end(fmt.Errorf("%w: no PUBLISH acknowledgement for packet id %d", ErrTimeout, r.req.id), false)
					return
				}
				r.resends++
				c.stats.repubs.Add(1)
				c.log.Debug("mqttas: re-sending with DUP", "id", r.req.id, "count", r.resends)
				if !c.sendDurable(run, s, r, true) {
					return
				}
			}
		}
		timer.Stop()
	}
}

// recordAcks tells the store about the publications the broker acknowledged, and forgets them.
func (c *Client) recordAcks(inflight *[]*outRec) {
	ob := c.ob
	ob.mu.Lock()
	acks := ob.acks
	ob.acks = nil
	ob.mu.Unlock()
	if len(acks) == 0 {
		return
	}
	for _, r := range acks {
		if r.acked {
			continue
		}
		// Possibly the acknowledgement of an earlier connection's send: it counts all the same, and the
		// packet id of a renewal in flight is given up (its late PUBACK is a stray one).
		r.acked = true
		if r.req != nil {
			c.release(r.req)
			r.req = nil
		}
		if err := ob.store.Ack(r.seq); err != nil {
			c.log.Warn("mqttas: store: recording an acknowledgement failed (the message will be sent again after a restart)", "seq", r.seq, "err", err)
		}
		c.stats.published.Add(1)
	}
	*inflight = deleteAcked(*inflight)
	ob.mu.Lock()
	n := 0
	for n < len(ob.recs) && ob.recs[n].acked {
		n++
	}
	clear(ob.recs[:n])
	ob.recs = ob.recs[n:]
	ob.mu.Unlock()
}

// sendDurable queues r's PUBLISH on s: the first send on s with a new packet id, or a DUP re-send with
// its id. false means s or the run ended.
func (c *Client) sendDurable(run context.Context, s *session, r *outRec, dup bool) bool {
	ob := c.ob
	if !dup {
		req, err := c.register(run, typePublish, s, func(packet) {
			ob.mu.Lock()
			ob.acks = append(ob.acks, r)
			ob.mu.Unlock()
			ob.wake()
		})
		if err != nil {
			return false
		}
		if r.sent {
			c.stats.renewals.Add(1)
			c.log.Debug("mqttas: re-publishing with a new packet id after an outage", "id", req.id)
		}
		r.req, r.resends, r.sent = req, 0, true
	}
	b := getBuf()
	*b = appendPublish(*b, r.msg.Topic, r.msg.Payload, 1, r.msg.Retain, dup, r.req.id)
	if !c.enqueue(run, s, outItem{buf: b, epoch: s.epoch, pooled: true}) {
		if !dup {
			c.release(r.req)
			r.req = nil
		}
		return false
	}
	r.due = time.Now().Add(c.cfg.ResponseTime)
	return true
}

func deleteAcked(rs []*outRec) []*outRec {
	n := 0
	for _, r := range rs {
		if !r.acked {
			rs[n] = r
			n++
		}
	}
	clear(rs[n:])
	return rs[:n]
}
