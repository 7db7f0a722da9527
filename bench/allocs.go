package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// AllocCase is one path whose allocations per message are measured.
type AllocCase struct {
	Name string
	Desc string
	// setup connects what the case needs and returns the operation to measure: op(n) handles n messages
	// and returns once they are done (written, acknowledged or received, as the case says).
	setup func(ctx context.Context, lib, addr string) (op func(n int) error, cleanup func(), err error)
}

// AllocCases returns the measured paths:
//   - publish-qos0: Publish at qos 0 in a loop, then one qos 1 publish as a barrier (every earlier message
//     has been written when it is acknowledged); the publisher's allocations only.
//   - publish-qos1: Publish at qos 1, each waiting for its PUBACK; includes reading the PUBACK.
//   - qos0-pub+sub: one qos 0 message from a publisher to a subscriber in the same process, both sides'
//     allocations (the subscriber's includes the received payload, which the application owns).
func AllocCases() []AllocCase {
	return []AllocCase{
		{Name: "publish-qos0", Desc: "Publish qos 0 (publisher only)", setup: setupPublish(0)},
		{Name: "publish-qos1", Desc: "Publish qos 1, waiting for PUBACK", setup: setupPublish(1)},
		{Name: "qos0-pub+sub", Desc: "qos 0 publisher → subscriber, both in the process", setup: setupPubSub},
	}
}

// payloadRing is a set of 64-byte payloads reused round-robin (never written after creation).
const payloadRing = 1024

func setupPublish(qos byte) func(ctx context.Context, lib, addr string) (func(int) error, func(), error) {
	return func(ctx context.Context, lib, addr string) (func(int) error, func(), error) {
		tag := fmt.Sprintf("alloc-q%d-%s-%d", qos, lib, time.Now().UnixNano())
		c, err := dialNative(ctx, lib, nativeOptions{addr: addr, id: tag})
		if err != nil {
			return nil, nil, err
		}
		payloads := makePayloads(payloadRing, 64)
		topic := "bench/alloc/" + tag
		op := func(n int) error {
			for i := range n {
				var err error
				if qos == 0 {
					err = c.publish0(ctx, topic, payloads[i%payloadRing])
				} else {
					err = c.publish1(ctx, topic, payloads[i%payloadRing])
				}
				if err != nil {
					return err
				}
			}
			if qos == 0 {
				return c.publish1(ctx, topic+"/barrier", payloads[0])
			}
			return nil
		}
		return op, c.close, nil
	}
}

func setupPubSub(ctx context.Context, lib, addr string) (func(int) error, func(), error) {
	tag := fmt.Sprintf("alloc-ps-%s-%d", lib, time.Now().UnixNano())
	topic := "bench/alloc/" + tag
	var got atomic.Int64
	sub, err := dialNative(ctx, lib, nativeOptions{addr: addr, id: "sub-" + tag,
		onMessage: func([]byte) { got.Add(1) }})
	if err != nil {
		return nil, nil, err
	}
	if err := sub.subscribe(ctx, topic, 0); err != nil {
		sub.close()
		return nil, nil, err
	}
	pub, err := dialNative(ctx, lib, nativeOptions{addr: addr, id: "pub-" + tag})
	if err != nil {
		sub.close()
		return nil, nil, err
	}
	payloads := makePayloads(payloadRing, 64)
	op := func(n int) error {
		want := got.Load() + int64(n)
		for i := range n {
			if err := pub.publish0(ctx, topic, payloads[i%payloadRing]); err != nil {
				return err
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for got.Load() < want {
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: %d of %d qos 0 messages arrived", errTimeout, got.Load()-(want-int64(n)), n)
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	return op, func() { pub.close(); sub.close() }, nil
}

// AllocResult is the allocation cost of one case, per message.
type AllocResult struct {
	Case        string  `json:"case"`
	Lib         string  `json:"lib"`
	Messages    int     `json:"messages"`
	AllocsPerOp float64 `json:"allocs_per_msg"`
	BytesPerOp  float64 `json:"bytes_per_msg"`
	NsPerOp     float64 `json:"ns_per_msg"`
}

// measureAllocs runs a case's operation for n messages after a warm-up and counts the process's heap
// allocations meanwhile (runtime.MemStats Mallocs and TotalAlloc), as testing's -benchmem does. Nothing
// else of the benchmark's may run in the process meanwhile.
func measureAllocs(ctx context.Context, c AllocCase, lib, addr string, n int) (AllocResult, error) {
	op, cleanup, err := c.setup(ctx, lib, addr)
	if err != nil {
		return AllocResult{}, err
	}
	defer cleanup()
	if err := op(max(n/10, 100)); err != nil { // warm-up: pools, buffers, maps
		return AllocResult{}, err
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	start := time.Now()
	if err := op(n); err != nil {
		return AllocResult{}, err
	}
	d := time.Since(start)
	runtime.ReadMemStats(&m1)
	return AllocResult{Case: c.Name, Lib: lib, Messages: n,
		AllocsPerOp: float64(m1.Mallocs-m0.Mallocs) / float64(n),
		BytesPerOp:  float64(m1.TotalAlloc-m0.TotalAlloc) / float64(n),
		NsPerOp:     float64(d.Nanoseconds()) / float64(n)}, nil
}
