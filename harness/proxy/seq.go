package proxy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/ledger"
)

// Bounds on how a sequence number may move before it counts as the device numbering afresh (a
// reboot resets its counter): back by more than restartBack, or forward by more than maxGap.
const (
	restartBack = 1000
	maxGap      = 100_000
)

// TopicFigures is what the observer saw of one topic's sequence numbers, and what the wire saw of it.
type TopicFigures struct {
	Topic      string `json:"topic"`
	First      uint64 `json:"first"` // of the latest numbering
	Last       uint64 `json:"last"`  // highest seen in the latest numbering
	Restarts   int    `json:"restarts,omitempty"`
	Received   int    `json:"received"`   // distinct sequence numbers delivered
	Deliveries int    `json:"deliveries"` // numbered deliveries, duplicates included
	Lost       int    `json:"lost"`       // numbers below the highest one never delivered
	Duplicates int    `json:"duplicates"` // deliveries of a number already delivered
	Reordered  int    `json:"reordered"`  // first deliveries of a number below one delivered before
	Unnumbered int    `json:"unnumbered,omitempty"`
	// On the wire, from devices through the proxy: first sends and re-sends (DUP) of PUBLISH.
	WirePublishes int `json:"wire_publishes"`
	WireResends   int `json:"wire_resends"`
}

// seqTopic is one topic's numbering.
type seqTopic struct {
	f       TopicFigures
	started bool
	seen    map[uint64]int
}

// sequences reads the sequence numbers of the deliveries to the observer and records them in the ledger
// as one publisher per topic and numbering ("device", "device.2" after a restart): each number is
// invoked and acknowledged when it or a higher one is first seen, since the device made every number
// up to the highest, and delivered when seen. So the ledger's lost messages are the numbers that never
// arrived, its duplicates and reordering the device's.
type sequences struct {
	re  *regexp.Regexp
	led *ledger.Ledger
	sub string

	mu     sync.Mutex
	topics map[string]*seqTopic
	recv   int
	closed bool
}

func newSequences(re *regexp.Regexp, led *ledger.Ledger, sub string) *sequences {
	return &sequences{re: re, led: led, sub: sub, topics: map[string]*seqTopic{}}
}

// number finds the sequence number in a payload.
func (s *sequences) number(payload []byte) (uint64, bool) {
	m := s.re.FindSubmatch(payload)
	if m == nil {
		return 0, false
	}
	g := m[0]
	if len(m) > 1 && m[1] != nil {
		g = m[1]
	}
	n, err := strconv.ParseUint(string(g), 10, 64)
	return n, err == nil
}

func (t *seqTopic) publisher() string {
	if t.f.Restarts == 0 {
		return "device"
	}
	return fmt.Sprintf("device.%d", t.f.Restarts+1)
}

func (s *sequences) deliver(d clients.Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.recv++
	t := s.topics[d.Topic]
	if t == nil {
		t = &seqTopic{f: TopicFigures{Topic: d.Topic}, seen: map[uint64]int{}}
		s.topics[d.Topic] = t
	}
	n, ok := s.number(d.Payload)
	if !ok {
		t.f.Unnumbered++
		return
	}
	if t.started && (n+restartBack < t.f.Last || n > t.f.Last+maxGap) {
		t.f.Restarts++
		t.started = false
		t.seen = map[uint64]int{}
	}
	invoke := func(k uint64) {
		op := s.led.Invoke(ledger.ID{Publisher: t.publisher(), Topic: d.Topic, Seq: k}, d.At)
		s.led.Complete(op, ledger.OK, d.At, nil)
	}
	switch {
	case !t.started:
		t.started, t.f.First, t.f.Last = true, n, n
		invoke(n)
	case n > t.f.Last:
		for k := t.f.Last + 1; k < n; k++ {
			invoke(k)
			t.f.Lost++
		}
		invoke(n)
		t.f.Last = n
	case t.seen[n] > 0:
		t.f.Duplicates++
	case n < t.f.Last:
		t.f.Reordered++
		if n >= t.f.First {
			t.f.Lost--
		} else {
			invoke(n) // below the first seen: arrived late, after a later one
		}
	}
	if t.seen[n] == 0 {
		t.f.Received++
	}
	t.seen[n]++
	t.f.Deliveries++
	id := ledger.ID{Publisher: t.publisher(), Topic: d.Topic, Seq: n}
	s.led.Deliver(ledger.Delivery{Subscriber: s.sub, Topic: d.Topic, Payload: ledger.Encode(id, d.At), QoS: d.QoS,
		Dup: d.Dup, Retain: d.Retain, At: d.At})
}

// close stops recording (the report is being written).
func (s *sequences) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
}

func (s *sequences) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recv
}

func (s *sequences) missing() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.topics {
		n += t.f.Lost
	}
	return n
}

// figures returns the per-topic figures, with the wire's counts, sorted by topic.
func (s *sequences) figures(wire map[string]wireTopic) []TopicFigures {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := map[string]bool{}
	for k := range s.topics {
		names[k] = true
	}
	for k := range wire {
		names[k] = true
	}
	var out []TopicFigures
	for _, k := range slices.Sorted(maps.Keys(names)) {
		f := TopicFigures{Topic: k}
		if t := s.topics[k]; t != nil {
			f = t.f
		}
		f.WirePublishes, f.WireResends = wire[k].publishes, wire[k].resends
		out = append(out, f)
	}
	return out
}
