package link

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"

	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
)

// tapType is the toxic type name of the MQTT tap in toxiproxy's registry.
const tapType = "mqttas_tap"

// registerOnce guards process-wide toxiproxy settings; see registerToxics.
var registerOnce sync.Once

// registerToxics sets what toxiproxy only offers process-wide: its toxic
// registry is a global map, and the bandwidth toxic logs through zerolog's
// global logger (trace level, to stderr) instead of the proxy's logger, so
// only zerolog's global level can silence it. Nothing else here uses zerolog.
func registerToxics() {
	registerOnce.Do(func() {
		toxics.Register(tapType, new(tapToxic))
		toxics.Register(DropToxicType, new(dropToxic))
		toxics.Register(DelayToxicType, new(delayToxic))
		zerolog.SetGlobalLevel(zerolog.Disabled)
	})
}

// tapToxic is the MQTT-aware toxic. A Link installs one per direction before
// the proxy starts, so it sits first in every connection's chain and sees
// the stream before any other fault. Its fields are set once, right after
// toxiproxy creates it and before the proxy accepts anything.
type tapToxic struct {
	dir Direction
	eng *engine
}

// NewState is called by toxiproxy once per direction of every new
// connection, and never otherwise: the tap is added while no connection
// exists and is not removed while any does.
func (t *tapToxic) NewState() any {
	if t.eng == nil {
		return nil
	}
	return t.eng.open(t.dir)
}

func (t *tapToxic) Pipe(stub *toxics.ToxicStub) {
	h, ok := stub.State.(*half)
	if !ok { // not created by a Link: behave as a noop
		new(toxics.NoopToxic).Pipe(stub)
		return
	}
	h.pipe(stub)
}

// rule is a drop or delay rule for one packet type in one direction.
type rule struct {
	action mqttframe.Action // Forward: no rule
	left   int              // packets still to drop; < 0: all
	delay  time.Duration
	since  time.Time
}

// engine is the state the two tap toxics of a Link share.
//
// Connection numbers: toxiproxy's accept loop is one goroutine that, for
// each accepted client, starts the upstream link and then the downstream
// link, calling NewState synchronously in that order. So the upstream half
// numbers a new connection and leaves it in pending, and the downstream half
// that comes next takes it. Stop/Start ends one accept loop before the next
// begins, so the pairs never interleave.
type engine struct {
	tap *Tap

	mu      sync.Mutex
	rules   [2][16]rule // [direction index][packet type]
	conns   int
	pending *conn
	live    map[*conn]struct{}
	halves  int           // halves not yet ended
	wake    chan struct{} // closed when halves end or settle; nil when nobody waits
	release chan struct{} // closed when delay rules are cleared; nil when nobody waits
}

// conn is one TCP connection through the proxy.
type conn struct {
	num     int
	abort   chan struct{} // closed by Reset/Close
	aborted bool
	started int // halves started (2 once both exist)
	settled int // halves that ended or acknowledged the abort
	open    int // halves not yet ended
}

func newEngine(tap *Tap) *engine {
	return &engine{tap: tap, live: make(map[*conn]struct{})}
}

func (e *engine) open(dir Direction) *half {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.pending
	if dir == Upstream || c == nil {
		e.conns++
		c = &conn{num: e.conns, abort: make(chan struct{})}
		e.live[c] = struct{}{}
		e.tap.add(Packet{Time: time.Now(), Conn: c.num, Dir: Both, Event: EventOpen}, nil, nil)
	}
	if dir == Upstream {
		e.pending = c
	} else {
		e.pending = nil
	}
	c.started++
	c.open++
	e.halves++
	h := &half{eng: e, conn: c, dir: dir, ops: make([]mqttframe.Op, 0, 8)}
	h.fr.First = mqttframe.CONNECT
	if dir == Downstream {
		h.fr.First = mqttframe.CONNACK
	}
	h.fr.Decide = h.decide
	return h
}

// notify wakes waiters. Call with e.mu held.
func (e *engine) notify() {
	if e.wake != nil {
		close(e.wake)
		e.wake = nil
	}
}

// waitUntil waits until cond (called with e.mu held) holds.
func (e *engine) waitUntil(ctx context.Context, cond func() bool) error {
	for {
		e.mu.Lock()
		if cond() {
			e.mu.Unlock()
			return nil
		}
		if e.wake == nil {
			e.wake = make(chan struct{})
		}
		wake := e.wake
		e.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// abortAll tells every live connection's halves to close, and waits until
// each has acknowledged or ended.
func (e *engine) abortAll(ctx context.Context) error {
	e.mu.Lock()
	var targets []*conn
	for c := range e.live {
		if !c.aborted {
			c.aborted = true
			close(c.abort)
			targets = append(targets, c)
			e.tap.add(Packet{Time: time.Now(), Conn: c.num, Dir: Both, Event: EventReset}, nil, nil)
		}
	}
	e.mu.Unlock()
	return e.waitUntil(ctx, func() bool {
		for _, c := range targets {
			if c.settled < c.started {
				return false
			}
		}
		return true
	})
}

// waitIdle waits until no connection half is running.
func (e *engine) waitIdle(ctx context.Context) error {
	return e.waitUntil(ctx, func() bool { return e.halves == 0 })
}

// verdict applies the rule for t in dir. For a delay it also returns the
// channel that releases the packet early, taken under the same lock so a
// StopDelaying cannot slip in between.
func (e *engine) verdict(dir Direction, t mqttframe.Type) (mqttframe.Verdict, <-chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := &e.rules[dir.index()][t&0x0f]
	v := mqttframe.Verdict{Action: r.action, Delay: r.delay}
	switch r.action {
	case mqttframe.Drop:
		if r.left > 0 {
			r.left--
			if r.left == 0 {
				*r = rule{}
			}
		}
	case mqttframe.Delay:
		if e.release == nil {
			e.release = make(chan struct{})
		}
		return v, e.release
	}
	return v, nil
}

func (e *engine) setRule(dir Direction, t mqttframe.Type, r rule) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range dir.each() {
		e.rules[d.index()][t&0x0f] = r
	}
}

// clearRules removes the rules with the given action (Forward: all rules).
// Clearing delay rules also releases the packets being held.
func (e *engine) clearRules(dir Direction, action mqttframe.Action) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if action != mqttframe.Drop && e.release != nil {
		close(e.release)
		e.release = nil
	}
	for _, d := range dir.each() {
		for i := range e.rules[d.index()] {
			r := &e.rules[d.index()][i]
			if action == mqttframe.Forward || r.action == action {
				*r = rule{}
			}
		}
	}
}

// activeRules lists the rules as effects.
func (e *engine) activeRules() []Effect {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Effect
	for _, d := range Both.each() {
		for t, r := range e.rules[d.index()] {
			switch r.action {
			case mqttframe.Drop:
				n := "all"
				if r.left > 0 {
					n = fmt.Sprintf("next %d", r.left)
				}
				out = append(out, Effect{Verb: VerbDrop, Dir: d, Detail: fmt.Sprintf("%v %s", mqttframe.Type(t), n), Since: r.since})
			case mqttframe.Delay:
				out = append(out, Effect{Verb: VerbDelay, Dir: d, Detail: fmt.Sprintf("%v by %v", mqttframe.Type(t), r.delay), Since: r.since})
			}
		}
	}
	return out
}

// half is one direction of one connection: the tap toxic's per-connection
// state. It survives the interruptions toxiproxy makes when other toxics are
// added or removed, so everything in flight lives here, not in Pipe.
type half struct {
	eng  *engine
	conn *conn
	dir  Direction
	fr   mqttframe.Framer

	ops       []mqttframe.Op      // what forwards the current chunk
	next      int                 // first op not yet done
	chunk     *stream.StreamChunk // the chunk ops came from
	restamp   bool                // a delay passed: later data gets a fresh timestamp
	waitUntil time.Time           // end of the delay in progress
	release   <-chan struct{}     // closed when delay rules are cleared

	eof      bool // input ended; flush ops, then close
	aborting bool // Reset: output closed, input drained and discarded
	settled  bool // under eng.mu
	ended    bool // under eng.mu
}

func (h *half) pipe(stub *toxics.ToxicStub) {
	for {
		if h.aborting {
			h.drain(stub)
			return
		}
		if !h.flush(stub) {
			return // interrupted; the ops left resume on the next Run
		}
		if h.aborting {
			continue
		}
		if h.eof {
			stub.Close()
			h.end()
			return
		}
		select {
		case <-stub.Interrupt:
			return
		case <-h.conn.abort:
			h.abort(stub)
		case c := <-stub.Input:
			if c == nil {
				h.eof = true
				h.ops, h.next = h.fr.Flush(h.ops[:0]), 0
				h.chunk = &stream.StreamChunk{Timestamp: time.Now()}
				h.eng.tap.add(Packet{Time: h.chunk.Timestamp, Conn: h.conn.num, Dir: h.dir, Event: EventEOF}, nil, nil)
				continue
			}
			h.feed(c)
		}
	}
}

func (h *half) feed(c *stream.StreamChunk) {
	framed := h.fr.Err() == nil
	h.chunk, h.restamp = c, false
	h.ops, h.next = h.fr.Feed(h.ops[:0], c.Data), 0
	if err := h.fr.Err(); framed && err != nil {
		h.eng.tap.add(Packet{Time: c.Timestamp, Conn: h.conn.num, Dir: h.dir, Event: EventUnframed, Note: err.Error()}, nil, nil)
	}
}

// flush carries out the pending ops. It returns false when interrupted.
func (h *half) flush(stub *toxics.ToxicStub) bool {
	for h.next < len(h.ops) {
		op := h.ops[h.next]
		if op.Data == nil {
			if h.waitUntil.IsZero() {
				// From the chunk's arrival, like toxiproxy's latency, so
				// several delayed packets in one chunk do not add up.
				h.waitUntil = h.chunk.Timestamp.Add(op.Wait)
			}
			if d := time.Until(h.waitUntil); d > 0 {
				timer := time.NewTimer(d)
				select {
				case <-timer.C:
				case <-h.release:
					timer.Stop()
				case <-stub.Interrupt:
					timer.Stop()
					return false
				case <-h.conn.abort:
					timer.Stop()
					h.abort(stub)
					return true
				}
			}
			h.waitUntil, h.restamp = time.Time{}, true
			h.next++
			continue
		}
		out := h.chunk
		if h.restamp || len(h.ops) != 1 || len(op.Data) != len(h.chunk.Data) {
			ts := h.chunk.Timestamp
			if h.restamp {
				ts = time.Now()
			}
			out = &stream.StreamChunk{Data: op.Data, Timestamp: ts}
		}
		select {
		case stub.Output <- out:
		case <-stub.Interrupt:
			return false
		case <-h.conn.abort:
			h.abort(stub)
			return true
		}
		h.next++
	}
	return true
}

// abort closes this direction at the tap: the toxics after it see the end of
// the stream and toxiproxy closes the destination socket. The input is then
// drained, so the reader behind the tap never blocks.
func (h *half) abort(stub *toxics.ToxicStub) {
	h.aborting = true
	h.ops, h.next, h.chunk = h.ops[:0], 0, nil
	stub.Close()
	h.eng.mu.Lock()
	h.settle()
	h.eng.mu.Unlock()
}

func (h *half) drain(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				h.end()
				return
			}
		}
	}
}

// settle marks the half as done for Reset's purpose. Call with eng.mu held.
func (h *half) settle() {
	if !h.settled {
		h.settled = true
		h.conn.settled++
		h.eng.notify()
	}
}

// end marks the half as finished.
func (h *half) end() {
	e := h.eng
	e.mu.Lock()
	defer e.mu.Unlock()
	if h.ended {
		return
	}
	h.ended = true
	h.settle()
	h.conn.open--
	e.halves--
	if h.conn.open == 0 {
		delete(e.live, h.conn)
	}
	e.notify()
}

// decide records a packet and applies the rules. It runs inside Framer.Feed.
func (h *half) decide(hd *mqttframe.Header) mqttframe.Verdict {
	v, release := h.eng.verdict(h.dir, hd.Type)
	fate := Forwarded
	switch v.Action {
	case mqttframe.Drop:
		fate = Dropped
	case mqttframe.Delay:
		fate = Delayed
		h.release = release
	}
	h.eng.tap.add(Packet{
		Time: h.chunk.Timestamp, Conn: h.conn.num, Dir: h.dir, Event: EventPacket,
		Type: hd.Type, ID: hd.ID, HasID: hd.HasID, DUP: hd.DUP(), QoS: hd.QoS(), Retain: hd.Retain(),
		Size: hd.Size, PayloadSize: hd.PayloadSize,
		CleanSession: hd.CleanSession(), KeepAlive: hd.KeepAlive,
		SessionPresent: hd.SessionPresent, Code: hd.ReturnCode, Malformed: hd.Malformed,
		Fate: fate, Delay: v.Delay,
	}, hd.Topic, hd.ClientID)
	return v
}

// clearRule removes the rule for packet type t in dir, releasing what a delay rule holds.
func (e *engine) clearRule(dir Direction, t mqttframe.Type) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range dir.each() {
		r := &e.rules[d.index()][t&0x0f]
		if r.action == mqttframe.Delay && e.release != nil {
			close(e.release)
			e.release = nil
		}
		*r = rule{}
	}
}

// rule reports the action of the rule for t in the single direction d.
func (e *engine) ruleAction(d Direction, t mqttframe.Type) mqttframe.Action {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rules[d.index()][t&0x0f].action
}
