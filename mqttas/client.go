package mqttas

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

type state int

const (
	stateIdle         state = iota // never connected, or after Disconnect
	stateConnecting                // first Connect in progress
	stateUp                        // a session is established
	stateReconnecting              // an outage: the supervisor is reconnecting
	stateClosed
)

// maxInFlight is the number of packet identifiers: at most this many requests wait for acknowledgement.
const maxInFlight = 65535

// Client is a resilient MQTT 3.1.1 client. Once Connect has succeeded it rides through network and broker
// outages by itself: Publish at qos 1, Subscribe and Unsubscribe block until the broker acknowledges, across
// any number of reconnections, and never return a network error. All methods are safe for concurrent use.
type Client struct {
	cfg       Config
	log       *slog.Logger
	pingEvery time.Duration

	mu        sync.Mutex
	state     state
	sess      *session        // the established session, nil unless stateUp
	sessCh    chan struct{}   // closed when a session comes up; replaced when it goes down
	run       context.Context // the current run (Connect … Disconnect); cancelled to stop it
	stopRun   context.CancelFunc
	runDone   chan struct{} // closed when the supervisor has returned
	epoch     uint64        // sessions so far
	nextID    uint16        // last packet id handed out
	ids       map[uint16]*request
	lastErr   error           // why the last outage began
	closed    chan struct{}   // closed by Close
	closedCtx context.Context // done after Close; bounds a first Connect in progress
	closeCtx  context.CancelFunc

	out   chan outItem  // publications and requests for the writer; outlives sessions (qos 0 carries over)
	slots chan struct{} // one token per packet id in use

	ob *outbox // the publications of PublishDurable; nil without Config.Store

	queue *Queue
	up    Event
	down  Event
	stats counters

	deliverMu sync.Mutex // held while OnMessage runs

	notifyMu      sync.Mutex
	notifyQ       []bool
	notifyRunning bool

	resolver *net.Resolver // the default dialer's resolver; nil means net.DefaultResolver (tests set one)

	wg sync.WaitGroup // every goroutine the client started
}

// request is one acknowledged exchange in flight: a qos 1 PUBLISH, a SUBSCRIBE or an UNSUBSCRIBE.
// It belongs to the caller waiting for it; its packet id lives only as long as one session.
type request struct {
	kind byte
	id   uint16
	sess *session
	ack  chan packet // buffered: the reader never blocks on it
	// onAck, when set, receives the acknowledgement instead of ack (on the reader: it must not block).
	onAck func(packet)
}

// New validates cfg and returns a client ready to Connect. It does no network I/O. With Config.Store it
// reads the store's pending publications (Store.Pending), to be sent again, in order, once connected.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.User == "" && cfg.Password != "" {
		log.Warn("mqttas: Password without User is not sent (MQTT 3.1.1 §3.1.2.9)")
	}
	c := &Client{
		cfg:       cfg,
		log:       log.With("client", cfg.ClientID),
		pingEvery: cfg.pingInterval(),
		sessCh:    make(chan struct{}),
		ids:       make(map[uint16]*request),
		closed:    make(chan struct{}),
		out:       make(chan outItem, 32),
		slots:     make(chan struct{}, maxInFlight),
	}
	c.run, c.stopRun = context.WithCancel(context.Background())
	c.stopRun() // not running yet
	c.closedCtx, c.closeCtx = context.WithCancel(context.Background())
	if cfg.QueueLen > 0 {
		c.queue = newQueue(cfg.QueueLen)
	}
	if cfg.Store != nil {
		ob, err := newOutbox(cfg.Store)
		if err != nil {
			return nil, err
		}
		c.ob = ob
	}
	return c, nil
}

// Queue returns the event-mode message queue, or nil in callback mode (Config.QueueLen 0).
func (c *Client) Queue() *Queue { return c.queue }

// Up is set after every successful connection, the first included. The client never clears it.
func (c *Client) Up() *Event { return &c.up }

// Down is set after every detected outage (not after Disconnect or Close). The client never clears it.
func (c *Client) Down() *Event { return &c.down }

// IsConnected reports whether an MQTT session is established right now.
func (c *Client) IsConnected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess != nil
}

// LastError returns why the most recent outage began (nil before the first one): the error that ended the
// connection, e.g. an EOF from the broker, ErrTimeout for silence, ErrLinkDown.
func (c *Client) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	st := Stats{
		Connects:       c.stats.connects.Load(),
		Reconnects:     c.stats.reconnects.Load(),
		Outages:        c.stats.outages.Load(),
		FailedAttempts: c.stats.failedAttempts.Load(),
		Repubs:         c.stats.repubs.Load(),
		Renewals:       c.stats.renewals.Load(),
		Published:      c.stats.published.Load(),
		Received:       c.stats.received.Load(),
		StrayAcks:      c.stats.strayAcks.Load(),
		ProtocolErrors: c.stats.protocolErrors.Load(),
		SessionPresent: c.stats.sessionPresent.Load(),
	}
	if c.queue != nil {
		st.Discards = c.queue.Discards()
	}
	return st
}

// currentSession waits until a session is established and returns it. It returns ErrNotConnected when
// the client is not running, ErrDisconnected when Disconnect stopped it after the call began (waited says
// the caller already had a session), ErrClosed after Close.
func (c *Client) currentSession(ctx context.Context, waited bool) (*session, error) {
	for {
		c.mu.Lock()
		st, s, ch, stop := c.state, c.sess, c.sessCh, c.run.Done()
		c.mu.Unlock()
		switch {
		case st == stateClosed:
			return nil, ErrClosed
		case st == stateIdle || st == stateConnecting:
			if waited {
				return nil, ErrDisconnected
			}
			return nil, ErrNotConnected
		case s != nil && s.alive():
			return s, nil
		case s != nil:
			// s has ended but the supervisor has not yet recorded the outage: returning s would make
			// callers spin (and burn packet ids) until it does.
			ch = s.gone
		}
		waited = true
		select {
		case <-ch:
		case <-stop:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// enqueue hands a packet to the writer. It fails when s ends or ctx ends first; a packet handed over is
// written whole or not at all, so cancelling never leaves a partial packet on the wire.
func (c *Client) enqueue(ctx context.Context, s *session, it outItem) bool {
	select {
	case c.out <- it:
		s.wake()
		return true
	case <-s.done:
	case <-ctx.Done():
	}
	if it.pooled {
		putBuf(it.buf)
	}
	return false
}

// register claims a packet id for a request on session s. It blocks while all 65535 ids are in use.
func (c *Client) register(ctx context.Context, kind byte, s *session, onAck func(packet)) (*request, error) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.closed:
		return nil, ErrClosed
	}
	r := &request{kind: kind, sess: s, onAck: onAck}
	if onAck == nil {
		r.ack = make(chan packet, 1)
	}
	c.mu.Lock()
	for {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, used := c.ids[c.nextID]; !used {
			break
		}
	}
	r.id = c.nextID
	c.ids[r.id] = r
	c.mu.Unlock()
	return r, nil
}

// release frees r's packet id unless an acknowledgement already did.
func (c *Client) release(r *request) {
	c.mu.Lock()
	if c.ids[r.id] == r {
		delete(c.ids, r.id)
		<-c.slots
	}
	c.mu.Unlock()
}

// consumeID advances the id counter as a qos 0 publish does in mqtt_as (spec §4), so ids on the wire match.
func (c *Client) consumeID() {
	c.mu.Lock()
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	c.mu.Unlock()
}

// complete routes an acknowledgement to its request. One for an unknown or completed id is logged and
// ignored (mqtt_as dropped the link, so a late PUBACK after a DUP re-send caused an outage).
func (c *Client) complete(s *session, p packet, kind byte) {
	c.mu.Lock()
	r := c.ids[p.id]
	if r == nil || r.kind != kind || r.sess != s {
		c.mu.Unlock()
		c.stats.strayAcks.Add(1)
		c.log.Debug("mqttas: ignoring acknowledgement for an unknown packet id", "packet", p.String())
		return
	}
	delete(c.ids, p.id)
	<-c.slots
	c.mu.Unlock()
	if r.onAck != nil {
		r.onAck(p)
		return
	}
	r.ack <- p
}

// exchange sends a request and waits for its acknowledgement, through any number of outages. encode
// appends the packet for a packet id and DUP flag. An unacknowledged request is re-sent with DUP=1 up to
// resends times, ResponseTime apart; after that the link is declared dead, and once reconnected the
// request starts again with a new packet id.
func (c *Client) exchange(ctx context.Context, kind byte, resends int, encode func(b []byte, id uint16, dup bool) []byte) (packet, error) {
	rt := c.cfg.ResponseTime
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	sent := false // a previous session carried this request: the next one is a renewal
	for attempt := 0; ; attempt++ {
		s, err := c.currentSession(ctx, attempt > 0)
		if err != nil {
			return packet{}, err
		}
		r, err := c.register(ctx, kind, s, nil)
		if err != nil {
			return packet{}, err
		}
		if sent && kind == typePublish {
			c.stats.renewals.Add(1)
			c.log.Debug("mqttas: re-publishing with a new packet id after an outage", "id", r.id)
		}
		b := getBuf()
		*b = encode(*b, r.id, false)
		if !c.enqueue(ctx, s, outItem{buf: b, epoch: s.epoch, pooled: true}) {
			c.release(r)
			if ctx.Err() != nil {
				return packet{}, ctx.Err()
			}
			continue
		}
		sent = true
		if timer == nil {
			timer = time.NewTimer(rt)
		} else {
			timer.Reset(rt)
		}
		for count := 0; ; {
			select {
			case p := <-r.ack:
				return p, nil
			case <-ctx.Done():
				c.release(r) // a late acknowledgement for this id is ignored
				return packet{}, ctx.Err()
			case <-s.done:
				c.release(r)
			case <-timer.C:
				if count >= resends {
					c.log.Debug("mqttas: no acknowledgement, declaring the link dead", "id", r.id, "type", typeName(kind))
					s.end(fmt.Errorf("%w: no %s acknowledgement for packet id %d", ErrTimeout, typeName(kind), r.id), false)
					c.release(r)
					break
				}
				count++
				c.stats.repubs.Add(1)
				c.log.Debug("mqttas: re-sending with DUP", "id", r.id, "count", count)
				b := getBuf()
				*b = encode(*b, r.id, true)
				if !c.enqueue(ctx, s, outItem{buf: b, epoch: s.epoch, pooled: true}) && ctx.Err() != nil {
					c.release(r)
					return packet{}, ctx.Err()
				}
				timer.Reset(rt)
				continue
			}
			break
		}
	}
}

// Publish sends a message. At qos 0 it returns once the message is queued for writing. At qos 1 it returns
// only after the broker's PUBACK, re-sending as needed through any outage; it returns an error only for
// bad arguments (nothing sent), ctx's end, Disconnect or Close. Cancelling ctx never leaves a partial packet
// on the wire; a qos 1 message already sent may still reach the broker.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte, retain bool, qos byte) error {
	if err := checkQoS(qos); err != nil {
		return err
	}
	if err := CheckTopic(topic); err != nil {
		return err
	}
	if n := publishLength(topic, payload, qos); n > c.cfg.MaxPacketSize {
		return fmt.Errorf("%w: a PUBLISH of %d bytes is over MaxPacketSize %d", ErrPacketTooLarge, n, c.cfg.MaxPacketSize)
	}
	if qos == 0 {
		s, err := c.currentSession(ctx, false)
		if err != nil {
			return err
		}
		c.consumeID()
		b := getBuf()
		*b = appendPublish(*b, topic, payload, 0, retain, false, 0)
		for !c.enqueue(ctx, s, outItem{buf: b, pooled: true}) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if s, err = c.currentSession(ctx, true); err != nil {
				return err
			}
			b = getBuf()
			*b = appendPublish(*b, topic, payload, 0, retain, false, 0)
		}
		c.stats.published.Add(1)
		return nil
	}
	_, err := c.exchange(ctx, typePublish, c.cfg.MaxRepubs, func(b []byte, id uint16, dup bool) []byte {
		return appendPublish(b, topic, payload, 1, retain, dup, id)
	})
	if err == nil {
		c.stats.published.Add(1)
	}
	return err
}

// Subscribe subscribes to a topic filter at qos 0 or 1 and returns once the broker acknowledges. A refusal
// (SUBACK 0x80) returns ErrSubscriptionRefused; the link stays up. Like mqtt_as, a SUBSCRIBE that is not
// acknowledged within ResponseTime declares the link dead and is sent again after reconnecting.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte) error {
	if err := checkQoS(qos); err != nil {
		return err
	}
	if err := CheckFilter(filter); err != nil {
		return err
	}
	if n := 5 + len(filter); n > c.cfg.MaxPacketSize {
		return fmt.Errorf("%w: a SUBSCRIBE of %d bytes is over MaxPacketSize %d", ErrPacketTooLarge, n, c.cfg.MaxPacketSize)
	}
	p, err := c.exchange(ctx, typeSubscribe, 0, func(b []byte, id uint16, _ bool) []byte {
		return appendSubscribe(b, id, filter, qos)
	})
	if err != nil {
		return err
	}
	if len(p.body) != 1 {
		// Framed correctly, so the stream is intact and the link stays up; counted and logged like any other.
		err := protoErr(typeSuback, "%d return codes for one topic filter", len(p.body))
		c.stats.protocolErrors.Add(1)
		c.log.Warn("mqttas: protocol error, subscription not confirmed", "err", err)
		return err
	}
	if p.body[0] == 0x80 {
		return fmt.Errorf("%w: %q", ErrSubscriptionRefused, filter)
	}
	return nil
}

// Unsubscribe removes a subscription and returns once the broker acknowledges. Unsubscribing a filter
// never subscribed succeeds.
func (c *Client) Unsubscribe(ctx context.Context, filter string) error {
	if err := CheckFilter(filter); err != nil {
		return err
	}
	if n := 4 + len(filter); n > c.cfg.MaxPacketSize {
		return fmt.Errorf("%w: an UNSUBSCRIBE of %d bytes is over MaxPacketSize %d", ErrPacketTooLarge, n, c.cfg.MaxPacketSize)
	}
	_, err := c.exchange(ctx, typeUnsubscribe, 0, func(b []byte, id uint16, _ bool) []byte {
		return appendUnsubscribe(b, id, filter)
	})
	return err
}

// deliver hands a received message to the application.
func (c *Client) deliver(s *session, m Message) {
	if c.queue != nil {
		c.queue.put(m)
		return
	}
	if c.cfg.OnMessage == nil {
		return
	}
	// One call at a time, also across connections: a handler still running when its connection ended (a
	// hung one lets the silence rule end it) holds up the next connection's reader, never runs beside it.
	c.deliverMu.Lock()
	defer c.deliverMu.Unlock()
	if s.queue == nil {
		s.handlerStart.Store(time.Now().UnixNano())
		defer func() {
			s.handlerEnd.Store(time.Now().UnixNano())
			s.handlerStart.Store(0)
		}()
	}
	c.cfg.OnMessage(m)
}

// BrokerUp reports whether the broker answers: true at once if anything arrived in the last second,
// otherwise it pings and waits up to ResponseTime for any packet. It never triggers a reconnection.
func (c *Client) BrokerUp(ctx context.Context) bool {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return false
	}
	if time.Since(time.Unix(0, s.lastRx.Load())) < time.Second {
		return true
	}
	arrived := s.waitRx()
	b := getBuf()
	*b = append(*b, pingreqBytes...)
	if !s.sendPrio(outItem{buf: b, epoch: s.epoch, pooled: true}) {
		return false
	}
	t := time.NewTimer(c.cfg.ResponseTime)
	defer t.Stop()
	select {
	case <-arrived:
		return true
	case <-t.C:
	case <-s.done:
	case <-ctx.Done():
	}
	return false
}

// notifyLink queues an OnLinkChange call. Calls run in order on a goroutine that exists only while there
// is something to deliver.
func (c *Client) notifyLink(up bool) {
	if c.cfg.OnLinkChange == nil || c.queue != nil {
		return
	}
	c.notifyMu.Lock()
	defer c.notifyMu.Unlock()
	c.notifyQ = append(c.notifyQ, up)
	if c.notifyRunning {
		return
	}
	c.notifyRunning = true
	c.wg.Go(func() {
		for {
			c.notifyMu.Lock()
			if len(c.notifyQ) == 0 {
				c.notifyRunning = false
				c.notifyMu.Unlock()
				return
			}
			v := c.notifyQ[0]
			c.notifyQ = c.notifyQ[1:]
			c.notifyMu.Unlock()
			c.cfg.OnLinkChange(v)
		}
	})
}
