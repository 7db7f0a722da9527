package timeline_test

import (
	"fmt"
	"time"

	"github.com/mqttas/mqttas-go/harness/timeline"
)

func Example() {
	start := time.Unix(1_800_000_000, 0)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }

	tl := timeline.New(start)
	tl.Record(at(0), "mqttas", timeline.Up, "session_present=false")
	f := tl.BeginFault(at(1000), "link", "timeout", map[string]any{"timeout": 0, "stream": "both"})
	tl.Record(at(3500), "mqttas", timeline.Outage, "no PINGRESP")
	_ = tl.EndFault(at(5000), f, "")
	tl.Record(at(5200), "mqttas", timeline.Up, "session_present=true")

	fmt.Print(tl)
	for _, w := range tl.Faults() {
		fmt.Printf("fault #%d %s from %v to %v\n", w.Fault, w.Name, w.Start, w.End)
	}
	// Output:
	// +0.000000s  mqttas    up             session_present=false
	// +1.000000s  link      fault-start    #1 timeout stream=both timeout=0
	// +3.500000s  mqttas    outage         no PINGRESP
	// +5.000000s  link      fault-end      #1 timeout
	// +5.200000s  mqttas    up             session_present=true
	// fault #1 timeout from 1s to 5s
}
