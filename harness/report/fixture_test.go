package report

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/timeline"
)

var fixtureStart = time.Unix(1_800_000_000, 0).UTC()

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func at(n int) time.Time { return fixtureStart.Add(ms(n)) }

// fixtureRun is a small hand-built run whose every figure is known:
//
//   - p1 publishes t/a#0..9, invoked at seq×100ms, acknowledged 5ms later and
//     delivered to sub 20ms after the invoke, except that
//   - #3 is acknowledged and never delivered (lost),
//   - #5 is delivered twice (a duplicate),
//   - #6 is delivered at 1000ms, after #9 (reordered; latency 400ms),
//   - #7 gets no acknowledgement (info) and is delivered (recovered),
//   - #8 definitely fails and is not delivered;
//   - a foreign payload arrives at 950ms (unexpected);
//   - faults: #1 partition 250→450ms, #2 latency 700→800ms;
//   - p1 goes down at 260ms (noticed at 270ms) and is up at 460ms, sub is
//     down from 265ms to 470ms.
func fixtureRun(t testing.TB) Run {
	t.Helper()
	l := ledger.New(fixtureStart)
	tl := timeline.New(fixtureStart)
	l.Subscribe("sub", "t/#", fixtureStart)
	deliver := func(seq uint64, when int) {
		id := ledger.ID{Publisher: "p1", Topic: "t/a", Seq: seq}
		l.Deliver(ledger.Delivery{Subscriber: "sub", Topic: "t/a", Payload: ledger.Encode(id, at(int(seq)*100)), QoS: 1, At: at(when)})
	}
	errGone := errors.New("connection lost")
	errNotSent := errors.New("not sent")
	for seq := range uint64(10) {
		id := ledger.ID{Publisher: "p1", Topic: "t/a", Seq: seq}
		inv := int(seq) * 100
		op := l.Invoke(id, at(inv))
		switch seq {
		case 7:
			l.Complete(op, ledger.Info, at(inv+5), errGone)
		case 8:
			l.Complete(op, ledger.Fail, at(inv+5), errNotSent)
		default:
			l.Complete(op, ledger.OK, at(inv+5), nil)
		}
		switch seq {
		case 3, 8, 6:
		case 5:
			deliver(seq, inv+20)
			deliver(seq, inv+30)
		default:
			deliver(seq, inv+20)
		}
	}
	l.Deliver(ledger.Delivery{Subscriber: "sub", Topic: "t/a", Payload: []byte("garbage"), QoS: 1, At: at(950)})
	deliver(6, 1000)

	f1 := tl.BeginFault(at(250), "link", "partition", map[string]any{"direction": "both"})
	tl.Record(at(260), "p1", timeline.Down, "EOF")
	tl.Record(at(265), "sub", timeline.Down, "EOF")
	tl.Record(at(270), "p1", timeline.Outage, "keepalive")
	tl.Record(at(300), "p1", timeline.Reconnect, "")
	tl.Record(at(310), "p1", timeline.ConnectFailed, "refused")
	if err := tl.EndFault(at(450), f1, "healed"); err != nil {
		t.Fatal(err)
	}
	tl.Record(at(460), "p1", timeline.Up, "")
	tl.Record(at(470), "sub", timeline.Up, "")
	f2 := tl.BeginFault(at(700), "link", "latency", map[string]any{"latency_ms": 200})
	if err := tl.EndFault(at(800), f2, "healed"); err != nil {
		t.Fatal(err)
	}

	return Run{
		Name:     "fixture",
		Started:  fixtureStart,
		Duration: time.Second,
		Seed:     42,
		Client:   "mqttas",
		Config:   map[string]any{"clients": 2, "rate": 10, "keepalive": 2 * time.Second},
		Versions: map[string]string{"go": "go1.26.8", "mosquitto": "2.0.11"},
		Schedule: []ScheduledFault{
			{At: ms(250), Fault: "partition", Params: map[string]string{"direction": "both"}, Duration: ms(200)},
			{At: ms(700), Fault: "latency", Params: map[string]string{"latency_ms": "200"}, Duration: ms(100)},
		},
		Ledger:   l,
		Timeline: tl,
		Clients: []ClientSummary{
			{Name: "p1", Clean: false, Stats: map[string]int64{"published": 10, "reconnects": 1}, Outages: 1, Detection: []time.Duration{ms(10)}, Reconnect: []time.Duration{ms(200)}},
			{Name: "sub", Clean: false, Stats: map[string]int64{"received": 10}, Outages: 1, Detection: []time.Duration{ms(30)}, Reconnect: []time.Duration{ms(205)}},
		},
	}
}

// cleanRun is a passing run of n messages at rate per second from two
// publishers, each delivered once, with one partition in the middle.
func cleanRun(t testing.TB, n, rate int) Run {
	t.Helper()
	l := ledger.New(fixtureStart)
	tl := timeline.New(fixtureStart)
	l.Subscribe("observer", "soak/#", fixtureStart)
	step := time.Second / time.Duration(rate)
	total := time.Duration(n) * step
	var payload []byte
	for i := range n {
		sent := fixtureStart.Add(time.Duration(i) * step)
		id := ledger.ID{Publisher: fmt.Sprintf("pub-%d", i%2), Topic: "soak/t", Seq: uint64(i / 2)}
		op := l.Invoke(id, sent)
		lat := 2*time.Millisecond + time.Duration(i%7)*time.Millisecond
		if off := sent.Sub(fixtureStart); off > total/2 && off < total/2+total/10 {
			lat += 300 * time.Millisecond // held up by the partition
		}
		l.Complete(op, ledger.OK, sent.Add(lat/2), nil)
		payload = ledger.AppendEncode(payload[:0], id, sent, 0)
		l.Deliver(ledger.Delivery{Subscriber: "observer", Topic: "soak/t", Payload: payload, QoS: 1, At: sent.Add(lat)})
	}
	f := tl.BeginFault(fixtureStart.Add(total/2), "link", "partition", nil)
	tl.Record(fixtureStart.Add(total/2+50*time.Millisecond), "pub-0", timeline.Down, "EOF")
	tl.Record(fixtureStart.Add(total/2+total/10+20*time.Millisecond), "pub-0", timeline.Up, "")
	if err := tl.EndFault(fixtureStart.Add(total/2+total/10), f, ""); err != nil {
		t.Fatal(err)
	}
	return Run{
		Name: "clean", Started: fixtureStart, Duration: total, Seed: 7, Client: "mqttas",
		Ledger: l, Timeline: tl,
		Clients: []ClientSummary{
			{Name: "pub-0", Outages: 1, Detection: []time.Duration{50 * time.Millisecond}, Reconnect: []time.Duration{total/10 + 20*time.Millisecond}},
			{Name: "pub-1"},
		},
	}
}
