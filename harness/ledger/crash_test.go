package ledger

import (
	"errors"
	"testing"
	"time"
)

// A crash-capable client's history, as the soak records it across restarts: what the client reported
// durable (an OK outcome) must arrive, whenever it does, and the re-sends of a restarted client are
// duplicates, not failures. A publication refused while the client was down failed; one in flight at the
// kill is indeterminate. A durable message that never arrives is lost, however many restarts there were.
func TestJudgedAcrossRestarts(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	id := func(seq uint64) ID { return ID{Publisher: "dev-1", Topic: "t/dev-1", Seq: seq} }
	l := New(t0)
	l.Subscribe("obs", "t/#", t0)
	deliver := func(seq uint64, ms int) {
		l.Deliver(Delivery{Subscriber: "obs", Topic: "t/dev-1", Payload: Encode(id(seq), at(int(seq))), QoS: 1, At: at(ms)})
	}
	// Before the kill: 1 and 2 durable and delivered; 3 durable, its PUBACK lost in the kill; 4 in flight.
	for seq := uint64(1); seq <= 3; seq++ {
		l.Complete(l.Invoke(id(seq), at(int(seq))), OK, at(int(seq)+1), nil)
	}
	deliver(1, 10)
	deliver(2, 11)
	deliver(3, 12)
	l.Complete(l.Invoke(id(4), at(4)), Info, at(100), errors.New("driver killed"))
	// While down: 5 refused.
	l.Complete(l.Invoke(id(5), at(200)), Fail, at(200), errors.New("not sent: the process is down"))
	// After the restart: the store sends 3 again (a duplicate) and 4 (it was stored), then new traffic.
	deliver(3, 1500)
	deliver(4, 1501)
	l.Complete(l.Invoke(id(6), at(1600)), OK, at(1601), nil)
	deliver(6, 1610)
	res := l.Check()
	if !res.Valid() || res.Acknowledged != 4 || res.Failed != 1 || res.Indeterminate != 1 || res.DuplicateDeliveries != 1 {
		t.Fatalf("across a restart: %s", res.Summary())
	}
	if len(res.Recovered) != 1 || res.Recovered[0].ID != id(4) {
		t.Fatalf("the message in flight at the kill arrived after the restart: %+v", res.Recovered)
	}
	// A second kill, and a durable message that never comes back: lost.
	l.Complete(l.Invoke(id(7), at(1700)), OK, at(1701), nil)
	if res := l.Check(); res.Valid() || len(res.Lost) != 1 || res.Lost[0].ID != id(7) {
		t.Fatalf("a durable message never delivered: %s", res.Summary())
	}
}
