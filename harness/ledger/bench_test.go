package ledger

import (
	"testing"
	"time"
)

func BenchmarkInvokeComplete(b *testing.B) {
	l := New(time.Now())
	now := time.Now()
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		op := l.Invoke(ID{Publisher: "p1", Topic: "bench/t", Seq: seq}, now)
		l.Complete(op, OK, now, nil)
		seq++
	}
}

func BenchmarkDeliver(b *testing.B) {
	l := New(time.Now())
	now := time.Now()
	payload := AppendEncode(nil, ID{Publisher: "p1", Topic: "bench/t", Seq: 12345}, now, 64)
	d := Delivery{Subscriber: "obs", Topic: "bench/t", Payload: payload, QoS: 1, At: now}
	b.ReportAllocs()
	for b.Loop() {
		l.Deliver(d)
	}
}

// BenchmarkCheck checks a soak-sized history: 250k messages, 1M events.
func BenchmarkCheck(b *testing.B) {
	l := New(time.Now())
	l.Subscribe("obs", "bench/#", time.Now())
	now := time.Now()
	var buf []byte
	for seq := range uint64(250_000) {
		x := ID{Publisher: "p1", Topic: "bench/t", Seq: seq}
		at := now.Add(time.Duration(seq) * time.Microsecond)
		op := l.Invoke(x, at)
		l.Complete(op, OK, at.Add(time.Millisecond), nil)
		buf = AppendEncode(buf[:0], x, at, 0)
		for range 2 {
			l.Deliver(Delivery{Subscriber: "obs", Topic: x.Topic, Payload: buf, QoS: 1, At: at.Add(2 * time.Millisecond)})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := l.Check(); !r.Valid() || r.DuplicateDeliveries != 250_000 {
			b.Fatal(r.Summary())
		}
	}
}
