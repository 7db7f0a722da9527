package mqttas

// Benchmarks of durable publication on the disk under the test's temporary directory (set TMPDIR to
// measure another disk):
//
//	cd mqttas && go test -run '^$' -bench 'Durable' -benchtime 2000x .
//
// Each reports msgs/s (PublishDurable calls that returned: stored and fsynced) and fsyncs/msg; with
// several publishers concurrent appends share an fsync (group commit). BenchmarkDurablePublish goes through
// a client to the fake broker and waits, at the end, until the broker has acknowledged everything.

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func BenchmarkDurableAppend(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			st, err := OpenFileStore(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			m := Message{Topic: "bench/durable", Payload: make([]byte, 64), QoS: 1}
			base := st.Syncs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := w; i < b.N; i += writers {
						seq, err := st.Append(m)
						if err != nil {
							b.Error(err)
							return
						}
						if err := st.Ack(seq); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
			b.ReportMetric(float64(st.Syncs()-base)/float64(b.N), "fsyncs/msg")
		})
	}
}

func BenchmarkDurablePublish(b *testing.B) {
	for _, publishers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("publishers=%d", publishers), func(b *testing.B) {
			broker := newFakeBroker(b)
			st, err := OpenFileStore(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			cfg := fbConfig(broker)
			cfg.ResponseTime = 5 * time.Second
			cfg.Store = st
			c, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := b.Context()
			if err := c.Connect(ctx); err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, 64)
			base := st.Syncs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for p := range publishers {
				wg.Go(func() {
					for i := p; i < b.N; i += publishers {
						if err := c.PublishDurable(ctx, "bench/durable", payload, false); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			stored := time.Since(start)
			for c.Stats().Published < uint64(b.N) {
				time.Sleep(time.Millisecond)
			}
			acked := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/stored.Seconds(), "msgs/s")
			b.ReportMetric(float64(b.N)/acked.Seconds(), "acked-msgs/s")
			b.ReportMetric(float64(st.Syncs()-base)/float64(b.N), "fsyncs/msg")
		})
	}
}
