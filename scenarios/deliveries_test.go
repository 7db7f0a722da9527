package scenarios

// What subscribers received: logs of deliveries, in the ledger or beside it.

import (
	"slices"
	"sync"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/rig"
	"github.com/mqttas/mqttas-go/mqttas"
)

// deliveryLog is what one mqttas subscriber received, in arrival order: each message's topic and the
// sequence number its ledger payload names. With a ledger it also records every delivery there, under the
// subscriber's name, so the rig's checker judges it like any other subscriber.
type deliveryLog struct {
	sub    string
	ledger *ledger.Ledger // nil: not recorded in a ledger

	mu  sync.Mutex
	got []deliveredSeq
}

type deliveredSeq struct {
	topic string
	seq   uint64
}

func newDeliveryLog(sub string, l *ledger.Ledger) *deliveryLog {
	return &deliveryLog{sub: sub, ledger: l}
}

// record is an OnMessage callback, or what an event-mode reader calls for each message it takes.
func (d *deliveryLog) record(m mqttas.Message) {
	if d.ledger != nil {
		d.ledger.Deliver(ledger.Delivery{Subscriber: d.sub, Topic: m.Topic, Payload: m.Payload, QoS: m.QoS,
			Retain: m.Retain, At: time.Now()})
	}
	seq := uint64(0) // a foreign payload: the ledger reports it as unexpected
	if id, _, err := ledger.Decode(m.Payload); err == nil {
		seq = id.Seq
	}
	d.mu.Lock()
	d.got = append(d.got, deliveredSeq{topic: m.Topic, seq: seq})
	d.mu.Unlock()
}

// all lists the sequence numbers received on topic, in arrival order, duplicates included.
func (d *deliveryLog) all(topic string) []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []uint64
	for _, g := range d.got {
		if g.topic == topic {
			out = append(out, g.seq)
		}
	}
	return out
}

// firsts lists the first deliveries on topic in arrival order: a qos 1 redelivery (allowed, counted by
// duplicates) is left out, so specs assert what arrived and in which order, not how often.
func (d *deliveryLog) firsts(topic string) []uint64 {
	var out []uint64
	for _, s := range d.all(topic) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// distinct is how many different messages arrived on topic.
func (d *deliveryLog) distinct(topic string) int { return len(d.firsts(topic)) }

// duplicates is how many deliveries on topic repeated an earlier one.
func (d *deliveryLog) duplicates(topic string) int { return len(d.all(topic)) - d.distinct(topic) }

// has reports whether message seq on topic arrived.
func (d *deliveryLog) has(topic string, seq uint64) bool {
	return slices.Contains(d.all(topic), seq)
}

// seqRange returns from, from+1, ..., to.
func seqRange(from, to uint64) []uint64 {
	out := make([]uint64, 0, to-from+1)
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// secLedgerSink records an mqttas client's deliveries in led under subscriber.
func secLedgerSink(led *ledger.Ledger, subscriber string) func(mqttas.Message) {
	return func(m mqttas.Message) {
		led.Deliver(ledger.Delivery{Subscriber: subscriber, Topic: m.Topic, Payload: m.Payload, QoS: m.QoS,
			Retain: m.Retain, At: time.Now()})
	}
}

// secReceived collects the payloads an mqttas client received, per topic, in arrival order.
type secReceived struct {
	mu  sync.Mutex
	got map[string][]string
}

func (r *secReceived) record(m mqttas.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string][]string{}
	}
	r.got[m.Topic] = append(r.got[m.Topic], string(m.Payload))
}

func (r *secReceived) payloads(topic string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got[topic]...)
}

// willArrivals returns when the observer received messages on topic. A will is no publication of the
// ledger's, so the ledger files it under unexpected deliveries; its time is an offset from the rig's start.
func willArrivals(r *rig.Rig, topic string) []time.Time {
	var at []time.Time
	res := r.Ledger.Check()
	for _, u := range res.Unexpected {
		if u.Topic == topic {
			at = append(at, r.Start.Add(u.At))
		}
	}
	return at
}
