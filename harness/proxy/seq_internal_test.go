package proxy

import (
	"regexp"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/ledger"
)

// TestProxySequences feeds numbered deliveries and checks the per-topic figures and the ledger's verdict
// agree: a gap is lost until its number arrives (then reordered), a repeat is a duplicate, a jump back is
// a restart, and payloads without a number are counted apart.
func TestProxySequences(t *testing.T) {
	start := time.Now()
	led := ledger.New(start)
	led.Subscribe("observer", "#", start)
	s := newSequences(regexp.MustCompile(`seq=(\d+)`), led, "observer")
	at := start
	send := func(topic, payload string) {
		at = at.Add(time.Millisecond)
		s.deliver(clients.Delivery{Topic: topic, Payload: []byte(payload), QoS: 1, At: at})
	}
	// a: 1 2 3 5 4 7 7 9 (6 and 8 never come); b: 10 11, then a reboot: 1 2; c: no numbers.
	for _, n := range []string{"1", "2", "3", "5", "4", "7", "7", "9"} {
		send("a", "seq="+n)
	}
	for _, n := range []string{"5000", "5001", "1", "2"} {
		send("b", "x seq="+n+" y")
	}
	send("c", "hello")
	if got := s.missing(); got != 2 {
		t.Fatalf("missing = %d, want 2 (a#6, a#8)", got)
	}
	figs := s.figures(map[string]wireTopic{"a": {publishes: 9, resends: 1}})
	want := []TopicFigures{
		{Topic: "a", First: 1, Last: 9, Received: 7, Deliveries: 8, Lost: 2, Duplicates: 1, Reordered: 1, WirePublishes: 9, WireResends: 1},
		{Topic: "b", First: 1, Last: 2, Restarts: 1, Received: 4, Deliveries: 4},
		{Topic: "c", Unnumbered: 1},
	}
	if len(figs) != len(want) {
		t.Fatalf("figures = %+v", figs)
	}
	for i := range want {
		if figs[i] != want[i] {
			t.Errorf("figures[%d] = %+v, want %+v", i, figs[i], want[i])
		}
	}
	res := led.Check()
	if len(res.Lost) != 2 || len(res.Duplicated) != 1 || len(res.Reordered) != 1 || len(res.Unexpected) != 0 {
		t.Fatalf("ledger: lost %v, duplicated %v, reordered %v, unexpected %v; want a#6 and a#8, a#7, a#4, none",
			res.Lost, res.Duplicated, res.Reordered, res.Unexpected)
	}
	for _, l := range res.Lost {
		if l.ID.Topic != "a" || (l.ID.Seq != 6 && l.ID.Seq != 8) {
			t.Errorf("lost %v, want a#6 or a#8", l.ID)
		}
	}
}
