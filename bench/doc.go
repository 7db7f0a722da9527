// Package bench measures the mqttas client against eclipse/paho.mqtt.golang v1.5.1 on one machine, side
// by side: throughput, latency, outage detection and recovery, memory per idle connection and
// allocations per message, each throughput against the broker's ceiling and the latency against the
// raw-socket floor of the same run, and what the harness itself costs (the link's latency, CPU and
// saturation rate, the ledger's cost per event) ("make bench"); and how each client fares under the
// harness's faults, judged by the delivery ledger ("make compare").
//
// Every measurement runs the two clients interleaved, A B A B, over several rounds against one private
// Mosquitto broker (max_queued_messages 0, so the broker never drops), and is reported as the median and
// the min–max over the rounds; ratios mqttas/paho are the median (and range) of the per-round ratios, so
// the two clients of a round share the machine's momentary load. The machine's facts go with every
// report, because the absolute figures mean little on another machine.
//
// The machine's facts include the date and the commit measured. cmd/bench is the command; RunBench and
// RunCompare are its two halves, usable from tests with small sizes. Their reports are committed in
// ResultsDir, and the README's tables are rendered from them (Render, Update): the README quotes
// no figure that is not in a committed results file, and a test checks that its tables match them.
package bench
