package ledger

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
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

// BenchmarkMerge merges two shards of a healthy run (compressed histories of 20,000 messages each,
// every one delivered to an observer and a neighbour) in memory (Merge, then Check) and online
// (MergeOnline, the merged history written compressed), reporting the heap each still holds once done
// per history line (retained-B/line): the in-memory ledger's grows with the run, the online check's
// does not. Peak memory, which decoding adds to, is make scale's to measure (peak RSS).
func BenchmarkMerge(b *testing.B) {
	const msgs = 20_000
	var texts [][]byte
	for k := range 2 {
		l := New(time.Unix(0, 0))
		for c := range 8 {
			l.Subscribe(fmt.Sprintf("s%d-c%d", k, c), fmt.Sprintf("s%d/c%d", k, (c+1)%8), time.Unix(0, 0))
		}
		l.Subscribe(fmt.Sprintf("s%d-obs", k), fmt.Sprintf("s%d/#", k), time.Unix(0, 0))
		var buf []byte
		for i := range msgs {
			c := i % 8
			x := ID{Publisher: fmt.Sprintf("s%d-c%d", k, c), Topic: fmt.Sprintf("s%d/c%d", k, c), Seq: uint64(i/8 + 1)}
			at := time.Unix(0, int64(i)*int64(time.Millisecond))
			op := l.Invoke(x, at)
			buf = AppendEncode(buf[:0], x, at, 0)
			l.Deliver(Delivery{Subscriber: fmt.Sprintf("s%d-obs", k), Topic: x.Topic, Payload: buf, QoS: 1, At: at.Add(time.Millisecond)})
			l.Deliver(Delivery{Subscriber: fmt.Sprintf("s%d-c%d", k, (c+7)%8), Topic: x.Topic, Payload: buf, QoS: 1, At: at.Add(2 * time.Millisecond)})
			l.Complete(op, OK, at.Add(3*time.Millisecond), nil)
		}
		texts = append(texts, written(b, l, true).Bytes())
	}
	const lines = 2 * (4*msgs + 9)
	shards := func() []Shard {
		return []Shard{{Name: "0", History: bytes.NewReader(texts[0])}, {Name: "1", Offset: time.Second, History: bytes.NewReader(texts[1])}}
	}
	b.Run("in-memory", func(b *testing.B) {
		var held int64
		for b.Loop() {
			before := heapInUse()
			l, err := Merge(shards()...)
			if err != nil {
				b.Fatal(err)
			}
			if r := l.Check(); !r.Valid() || r.Attempted != 2*msgs {
				b.Fatal(r.Summary())
			}
			held = heapInUse() - before
			runtime.KeepAlive(l)
		}
		b.ReportMetric(float64(held)/lines, "retained-B/line")
	})
	b.Run("online", func(b *testing.B) {
		var held int64
		for b.Loop() {
			before := heapInUse()
			zw := gzip.NewWriter(io.Discard)
			o, _, err := MergeOnline(context.Background(), shards(), MergeOptions{History: zw})
			if err != nil {
				b.Fatal(err)
			}
			zw.Close()
			if r := o.Result(); !r.Valid() || r.Attempted != 2*msgs {
				b.Fatal(r.Summary())
			}
			held = heapInUse() - before
			runtime.KeepAlive(o)
		}
		b.ReportMetric(float64(held)/lines, "retained-B/line")
	})
}
