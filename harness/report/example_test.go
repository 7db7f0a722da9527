package report_test

import (
	"fmt"
	"os"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/report"
	"github.com/mqttas/mqttas-go/harness/timeline"
)

// A run records into a ledger and a timeline that share its start; Write
// checks the ledger and writes summary.json, history.jsonl.gz and index.html.
func ExampleWrite() {
	start := time.Unix(1_800_000_000, 0)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	l, tl := ledger.New(start), timeline.New(start)
	l.Subscribe("observer", "soak/#", start)
	for seq := range 3 {
		id := ledger.ID{Publisher: "p1", Topic: "soak/a", Seq: uint64(seq)}
		op := l.Invoke(id, at(seq*100))
		l.Complete(op, ledger.OK, at(seq*100+2), nil)
		l.Deliver(ledger.Delivery{Subscriber: "observer", Topic: id.Topic, Payload: ledger.Encode(id, at(seq*100)), QoS: 1, At: at(seq*100 + 5)})
	}
	fault := tl.BeginFault(at(120), "link", "latency", map[string]any{"latency_ms": 50})
	_ = tl.EndFault(at(180), fault, "healed")

	dir, err := os.MkdirTemp("", "report-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	s, err := report.Write(dir, report.Run{
		Name: "example", Started: start, Duration: 300 * time.Millisecond, Seed: 1, Client: "mqttas",
		Schedule: []report.ScheduledFault{{At: 120 * time.Millisecond, Fault: "latency", Params: map[string]string{"latency_ms": "50"}, Duration: 60 * time.Millisecond}},
		Ledger:   l, Timeline: tl,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Verdict, s.Lost, s.Acknowledged, s.Delivered, s.Latency.P50, len(s.Faults))
	// Output: PASS 0 3 3 5ms 1
}
