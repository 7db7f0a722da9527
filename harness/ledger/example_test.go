package ledger_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
)

// A publisher records each attempt and its outcome; a subscriber records what
// it received; Check compares the two.
func Example() {
	start := time.Unix(1_800_000_000, 0)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	errNotSent := errors.New("not sent")

	l := ledger.New(start)
	l.Subscribe("observer", "soak/#", start)
	for seq := range uint64(3) {
		id := ledger.ID{Publisher: "p1", Topic: "soak/a", Seq: seq}
		payload := ledger.Encode(id, at(int(seq)*10)) // what would go on the wire
		op := l.Invoke(id, at(int(seq)*10))
		var err error // the client's answer to the publish
		l.Complete(op, ledger.OutcomeOf(err, errNotSent), at(int(seq)*10+1), err)
		if seq != 1 { // the broker "loses" #1
			l.Deliver(ledger.Delivery{Subscriber: "observer", Topic: id.Topic, Payload: payload, QoS: 1, At: at(int(seq)*10 + 2)})
		}
	}
	res := l.Check()
	fmt.Println(res.Valid())
	for _, lost := range res.Lost {
		fmt.Println(lost)
	}
	// Output:
	// false
	// p1 soak/a#1 never delivered to observer (invoked +0.010000s, acked +0.011000s)
}
