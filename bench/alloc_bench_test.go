package bench

import (
	"context"
	"testing"

	"github.com/mqttas/mqttas-go/harness/broker/brokertest"
)

// BenchmarkPublish measures the publish paths of both clients against a private mosquitto, with
// allocations: go test -run '^$' -bench Publish -benchmem ./bench
func BenchmarkPublish(b *testing.B) {
	m := brokertest.Start(b, brokertest.Config("max_queued_messages 0", "persistence false"))
	ctx := context.Background()
	for _, c := range AllocCases() {
		for _, lib := range Libs() {
			b.Run(c.Name+"/"+lib, func(b *testing.B) {
				op, cleanup, err := c.setup(ctx, lib, m.Addr)
				if err != nil {
					b.Fatal(err)
				}
				defer cleanup()
				if err := op(100); err != nil { // warm-up
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				if err := op(b.N); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
			})
		}
	}
}
