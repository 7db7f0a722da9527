package link

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
)

func TestTapRingKeepsTheLatestRecords(t *testing.T) {
	tap := newTap(4, time.Now())
	for i := range 10 {
		tap.add(Packet{Conn: 1, Dir: Upstream, Type: mqttframe.PUBLISH, ID: uint16(i + 1), HasID: true}, []byte("a/b"), nil)
	}
	got := tap.Packets()
	if len(got) != 4 || tap.Overwritten() != 6 || tap.Seq() != 10 {
		t.Fatalf("%d retained, %d overwritten, seq %d; want 4, 6, 10", len(got), tap.Overwritten(), tap.Seq())
	}
	for i, p := range got {
		if p.Seq != uint64(7+i) || p.ID != uint16(7+i) || p.Topic != "a/b" {
			t.Fatalf("record %d = %v, want seq/id %d", i, p, 7+i)
		}
	}
	if got[0].Topic != got[3].Topic || tap.Count(WithID(9)) != 1 || tap.Count(WithID(2)) != 0 {
		t.Fatal("filters over the ring are wrong")
	}
	if !strings.Contains(tap.String(), "4 records retained, 6 overwritten") {
		t.Fatalf("dump: %s", tap)
	}

	// WaitFor sees retained records at once and new ones as they come.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if p, err := tap.WaitFor(ctx, WithID(8)); err != nil || p.Seq != 8 {
		t.Fatalf("WaitFor retained: %v, %v", p, err)
	}
	after := tap.Seq()
	go tap.add(Packet{Conn: 2, Dir: Downstream, Type: mqttframe.PUBACK, ID: 8, HasID: true}, nil, nil)
	if p, err := tap.WaitFor(ctx, WithID(8), AfterSeq(after)); err != nil || p.Conn != 2 {
		t.Fatalf("WaitFor new: %v, %v", p, err)
	}

	tap.Reset()
	if tap.Count() != 0 || tap.Overwritten() != 0 {
		t.Fatal("Reset kept records")
	}
	tap.add(Packet{Type: mqttframe.PINGREQ}, nil, nil)
	if p := tap.Packets(); len(p) != 1 || p[0].Seq != 12 {
		t.Fatalf("after Reset: %v (sequence numbers must keep increasing)", p)
	}
}

func TestEngineNumbersConnectionsInAcceptOrder(t *testing.T) {
	e := newEngine(newTap(16, time.Now()))
	// toxiproxy's accept loop: upstream half, then downstream half, per client.
	var nums []int
	for range 3 {
		up, down := e.open(Upstream), e.open(Downstream)
		if up.conn != down.conn {
			t.Fatal("the two halves of a connection got different records")
		}
		nums = append(nums, up.conn.num)
	}
	if nums[0] != 1 || nums[1] != 2 || nums[2] != 3 {
		t.Fatalf("connection numbers %v, want [1 2 3]", nums)
	}
	if n := e.tap.Count(IsEvent(EventOpen)); n != 3 {
		t.Fatalf("%d open records, want 3", n)
	}
}

func TestRulesDropNextNThenExpire(t *testing.T) {
	e := newEngine(newTap(16, time.Now()))
	e.setRule(Downstream, mqttframe.PUBACK, rule{action: mqttframe.Drop, left: 2})
	e.setRule(Both, mqttframe.PINGRESP, rule{action: mqttframe.Delay, delay: time.Second})
	var acts []mqttframe.Action
	for range 3 {
		v, _ := e.verdict(Downstream, mqttframe.PUBACK)
		acts = append(acts, v.Action)
	}
	if acts[0] != mqttframe.Drop || acts[1] != mqttframe.Drop || acts[2] != mqttframe.Forward {
		t.Fatalf("drop next 2 gave %v", acts)
	}
	if v, _ := e.verdict(Upstream, mqttframe.PUBACK); v.Action != mqttframe.Forward {
		t.Fatalf("rule leaked into the other direction: %v", v)
	}
	v, release := e.verdict(Upstream, mqttframe.PINGRESP)
	if v.Action != mqttframe.Delay || v.Delay != time.Second || release == nil {
		t.Fatalf("delay rule: %v", v)
	}
	if n := len(e.activeRules()); n != 2 {
		t.Fatalf("%d active rules, want the two delay rules", n)
	}
	e.clearRules(Both, mqttframe.Delay)
	if n := len(e.activeRules()); n != 0 {
		t.Fatalf("%d rules after clearing", n)
	}
	select {
	case <-release:
	default:
		t.Fatal("clearing delay rules did not release the held packet")
	}
}
