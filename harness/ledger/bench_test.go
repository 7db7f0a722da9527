package ledger

import (
	"fmt"
	"runtime"
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

// BenchmarkOnlineMemory feeds an Online check healthy runs of growing length
// and reports the heap it retains per message (B/msg), which falls as the run
// grows because the check's memory does not grow with it, beside an
// in-memory Ledger's for the same run (ledger-B/msg).
func BenchmarkOnlineMemory(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var online, inMemory float64
			for b.Loop() {
				before := heapInUse()
				o := NewOnline(0)
				cleanRun(b, o, n)
				online = float64(heapInUse()-before) / float64(n)
				if r := o.Result(); !r.Valid() || r.Attempted != n {
					b.Fatal(r.Summary())
				}
				runtime.KeepAlive(o)
			}
			before := heapInUse()
			l := New(time.Unix(0, 0))
			l.Subscribe("obs", "t/#", time.Unix(0, 0))
			var buf []byte
			for i := range n {
				x := ID{Publisher: "c0", Topic: "t/c0", Seq: uint64(i)}
				at := time.Unix(0, int64(i)*int64(time.Millisecond))
				op := l.Invoke(x, at)
				buf = AppendEncode(buf[:0], x, at, 0)
				l.Deliver(Delivery{Subscriber: "obs", Topic: x.Topic, Payload: buf, QoS: 1, At: at})
				l.Deliver(Delivery{Subscriber: "c1", Topic: x.Topic, Payload: buf, QoS: 1, At: at})
				l.Complete(op, OK, at, nil)
			}
			inMemory = float64(heapInUse()-before) / float64(n)
			runtime.KeepAlive(l)
			b.ReportMetric(online, "B/msg")
			b.ReportMetric(inMemory, "ledger-B/msg")
		})
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
