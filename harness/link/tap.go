package link

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
)

// Event says what a tap record is about.
type Event uint8

const (
	// EventPacket is an MQTT control packet seen by the proxy.
	EventPacket Event = iota
	// EventOpen is a new TCP connection through the proxy.
	EventOpen
	// EventEOF is the end of one direction of a connection (a FIN, a reset,
	// or the proxy closing it).
	EventEOF
	// EventReset is Link.Reset aborting the connection.
	EventReset
	// EventUnframed means the direction stopped being parsed as MQTT (garbage,
	// or not MQTT at all); later bytes pass through unrecorded.
	EventUnframed
)

func (e Event) String() string {
	switch e {
	case EventPacket:
		return "packet"
	case EventOpen:
		return "open"
	case EventEOF:
		return "eof"
	case EventReset:
		return "reset"
	case EventUnframed:
		return "unframed"
	}
	return fmt.Sprintf("Event(%d)", uint8(e))
}

// Fate is what the link did with a packet.
type Fate uint8

const (
	Forwarded Fate = iota // passed on at once
	Dropped               // removed from the stream by DropPackets
	Delayed               // held by DelayPackets
)

func (f Fate) String() string {
	switch f {
	case Forwarded:
		return "forwarded"
	case Dropped:
		return "dropped"
	case Delayed:
		return "delayed"
	}
	return fmt.Sprintf("Fate(%d)", uint8(f))
}

// Packet is one tap record: an MQTT control packet, or a connection event.
// Time is when the proxy read the bytes that completed the packet's header,
// before any fault after the tap (latency, blackhole, ...) applies.
type Packet struct {
	Seq   uint64 // 1, 2, 3 ... in recording order, across the link's life
	Time  time.Time
	Conn  int       // TCP connection through the proxy: 1, 2, 3 ...
	Dir   Direction // Upstream or Downstream; Both for open and reset
	Event Event

	Type           mqttframe.Type
	ID             uint16 // packet identifier, when HasID
	HasID          bool
	DUP            bool
	QoS            byte
	Retain         bool
	Topic          string // PUBLISH topic; first filter of SUBSCRIBE/UNSUBSCRIBE
	Size           int    // whole packet on the wire
	PayloadSize    int    // PUBLISH payload
	ClientID       string // CONNECT
	CleanSession   bool   // CONNECT
	KeepAlive      uint16 // CONNECT, seconds
	SessionPresent bool   // CONNACK
	Code           byte   // CONNACK return code, first SUBACK return code
	Malformed      bool

	Fate  Fate
	Delay time.Duration // for Delayed

	Note string // for EventUnframed: why
}

// format renders the record on one line, with times relative to origin
// (the zero time prints wall-clock times).
func (p Packet) format(origin time.Time) string {
	var b strings.Builder
	if origin.IsZero() {
		fmt.Fprintf(&b, "%5d %s", p.Seq, p.Time.Format("15:04:05.000"))
	} else {
		fmt.Fprintf(&b, "%5d %+9.3fs", p.Seq, p.Time.Sub(origin).Seconds())
	}
	fmt.Fprintf(&b, " #%d %s ", p.Conn, p.Dir.short())
	if p.Event != EventPacket {
		b.WriteString(strings.ToUpper(p.Event.String()))
		if p.Note != "" {
			fmt.Fprintf(&b, " (%s)", p.Note)
		}
		return b.String()
	}
	b.WriteString(p.Type.String())
	if p.HasID {
		fmt.Fprintf(&b, " id=%d", p.ID)
	}
	switch p.Type {
	case mqttframe.PUBLISH:
		fmt.Fprintf(&b, " q%d", p.QoS)
		if p.DUP {
			b.WriteString(" dup")
		}
		if p.Retain {
			b.WriteString(" retain")
		}
		fmt.Fprintf(&b, " %q %dB", p.Topic, p.PayloadSize)
	case mqttframe.CONNECT:
		fmt.Fprintf(&b, " client=%q clean=%v keepalive=%d", p.ClientID, p.CleanSession, p.KeepAlive)
	case mqttframe.CONNACK:
		fmt.Fprintf(&b, " sp=%v rc=%d", p.SessionPresent, p.Code)
	case mqttframe.SUBSCRIBE, mqttframe.UNSUBSCRIBE:
		fmt.Fprintf(&b, " %q", p.Topic)
	case mqttframe.SUBACK:
		fmt.Fprintf(&b, " rc=%d", p.Code)
	}
	if p.Malformed {
		b.WriteString(" MALFORMED")
	}
	switch p.Fate {
	case Dropped:
		b.WriteString(" DROPPED")
	case Delayed:
		fmt.Fprintf(&b, " DELAYED %v", p.Delay)
	}
	return b.String()
}

// String renders the record on one line.
func (p Packet) String() string { return p.format(time.Time{}) }

// Format renders the record on one line with its time as an offset from origin.
func (p Packet) Format(origin time.Time) string { return p.format(origin) }

// Filter selects tap records. Several filters given together must all match.
type Filter func(Packet) bool

// OfType matches packets of any of the given types.
func OfType(types ...mqttframe.Type) Filter {
	return func(p Packet) bool {
		if p.Event != EventPacket {
			return false
		}
		for _, t := range types {
			if p.Type == t {
				return true
			}
		}
		return false
	}
}

// InDir matches records in direction d (Both matches either).
func InDir(d Direction) Filter { return func(p Packet) bool { return p.Dir&d != 0 } }

// OnConn matches records of connection n.
func OnConn(n int) Filter { return func(p Packet) bool { return p.Conn == n } }

// WithID matches packets carrying packet identifier id.
func WithID(id uint16) Filter { return func(p Packet) bool { return p.HasID && p.ID == id } }

// OnTopic matches packets whose topic (or first filter) is topic.
func OnTopic(topic string) Filter { return func(p Packet) bool { return p.Topic == topic } }

// WithFate matches packets the link treated as f.
func WithFate(f Fate) Filter {
	return func(p Packet) bool { return p.Event == EventPacket && p.Fate == f }
}

// IsEvent matches records of the given kind.
func IsEvent(e Event) Filter { return func(p Packet) bool { return p.Event == e } }

// AfterSeq matches records made after the record with sequence number seq;
// pair it with Tap.Seq to wait for something that has not happened yet.
func AfterSeq(seq uint64) Filter { return func(p Packet) bool { return p.Seq > seq } }

func matches(p Packet, fs []Filter) bool {
	for _, f := range fs {
		if !f(p) {
			return false
		}
	}
	return true
}

// internCap bounds the topic/client-id intern table.
const internCap = 4096

// Tap records the control packets that cross a link, in both directions and
// on every connection, in a ring of bounded size. It is safe for concurrent
// use.
type Tap struct {
	origin time.Time

	mu          sync.Mutex
	ring        []Packet // grows to capacity, then wraps
	head        int      // index of the oldest record once the ring is full
	capacity    int
	seq         uint64
	overwritten uint64
	wake        chan struct{} // closed at the next record; nil when nobody waits
	strs        map[string]string
}

func newTap(capacity int, origin time.Time) *Tap {
	return &Tap{origin: origin, capacity: capacity, strs: make(map[string]string)}
}

// intern returns b as a string, sharing the allocation between records with
// the same topic. Call with t.mu held.
func (t *Tap) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := t.strs[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if len(t.strs) < internCap {
		t.strs[s] = s
	}
	return s
}

// add records p, with topic and clientID copied from the framer's buffers.
func (t *Tap) add(p Packet, topic, clientID []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p.Topic, p.ClientID = t.intern(topic), t.intern(clientID)
	t.seq++
	p.Seq = t.seq
	if len(t.ring) < t.capacity {
		t.ring = append(t.ring, p)
	} else {
		t.ring[t.head] = p
		t.head = (t.head + 1) % t.capacity
		t.overwritten++
	}
	if t.wake != nil {
		close(t.wake)
		t.wake = nil
	}
}

// each calls fn on the retained records with Seq > after, oldest first, until
// fn returns false. Call with t.mu held.
func (t *Tap) each(after uint64, fn func(*Packet) bool) {
	n := len(t.ring)
	oldest := t.seq - uint64(n) + 1
	skip := 0
	if after >= oldest {
		skip = int(after - oldest + 1)
	}
	for i := skip; i < n; i++ {
		if !fn(&t.ring[(t.head+i)%n]) {
			return
		}
	}
}

// Packets returns the retained records that match all filters, oldest first.
func (t *Tap) Packets(filters ...Filter) []Packet {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Packet
	t.each(0, func(p *Packet) bool {
		if matches(*p, filters) {
			out = append(out, *p)
		}
		return true
	})
	return out
}

// Count returns how many retained records match all filters.
func (t *Tap) Count(filters ...Filter) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	t.each(0, func(p *Packet) bool {
		if matches(*p, filters) {
			n++
		}
		return true
	})
	return n
}

// Seq returns the sequence number of the latest record (0 if none yet).
func (t *Tap) Seq() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seq
}

// Overwritten returns how many records the ring has overwritten since the
// last Reset.
func (t *Tap) Overwritten() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.overwritten
}

// WaitFor returns the oldest retained record matching all filters, waiting
// for one to be recorded if none is retained yet.
func (t *Tap) WaitFor(ctx context.Context, filters ...Filter) (Packet, error) {
	var after uint64
	for {
		t.mu.Lock()
		var found *Packet
		t.each(after, func(p *Packet) bool {
			if matches(*p, filters) {
				found = p
				return false
			}
			return true
		})
		if found != nil {
			p := *found
			t.mu.Unlock()
			return p, nil
		}
		after = t.seq
		if t.wake == nil {
			t.wake = make(chan struct{})
		}
		wake := t.wake
		t.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return Packet{}, fmt.Errorf("link: tap: no matching packet: %w", ctx.Err())
		}
	}
}

// Reset forgets every retained record and the overwritten count. Sequence
// numbers keep increasing.
func (t *Tap) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ring, t.head, t.overwritten = t.ring[:0], 0, 0
}

// dumpTail is how many records String shows.
const dumpTail = 200

// String is a compact dump of the latest records, for failure output.
func (t *Tap) String() string {
	var b strings.Builder
	t.dump(&b, dumpTail)
	return b.String()
}

// WriteTo writes every retained record, one per line.
func (t *Tap) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	t.dump(&b, -1)
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func (t *Tap) dump(b *strings.Builder, last int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.ring)
	fmt.Fprintf(b, "tap: %d records retained, %d overwritten (times from link start)\n", n, t.overwritten)
	skip := 0
	if last >= 0 && n > last {
		skip = n - last
		fmt.Fprintf(b, "  ... %d older records not shown\n", skip)
	}
	for i := skip; i < n; i++ {
		b.WriteString("  ")
		b.WriteString(t.ring[(t.head+i)%n].format(t.origin))
		b.WriteByte('\n')
	}
}
