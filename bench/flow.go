package bench

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// seqDigits is the width of the sequence number that starts every benchmark payload.
const seqDigits = 10

// makePayloads returns n payloads of size bytes (at least seqDigits), all slices of one backing array and
// never written again, so a client may keep them after Publish returns. Each starts with its index in
// decimal and is padded with printable text, so mosquitto_sub prints one per line.
func makePayloads(n, size int) [][]byte {
	size = max(size, seqDigits)
	backing := make([]byte, n*size)
	out := make([][]byte, n)
	for i := range n {
		p := backing[i*size : (i+1)*size : (i+1)*size]
		copy(p, fmt.Sprintf("%0*d", seqDigits, i))
		for j := seqDigits; j < size; j++ {
			p[j] = 'a' + byte(j%26)
		}
		out[i] = p
	}
	return out
}

// parseSeq reads the sequence number at the start of a benchmark payload.
func parseSeq(p []byte) (int, bool) {
	if len(p) < seqDigits {
		return 0, false
	}
	n := 0
	for _, c := range p[:seqDigits] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// receiver counts the messages of one flow: unique, duplicated, out of order, foreign.
type receiver struct {
	mu        sync.Mutex
	want      int
	seen      []bool
	unique    int
	dups      int
	reordered int // first deliveries that came after a higher sequence number
	foreign   int
	highest   int
	last      time.Time // when the latest unique message arrived
	done      chan struct{}
}

func newReceiver(want int) *receiver {
	return &receiver{want: want, seen: make([]bool, want), highest: -1, done: make(chan struct{})}
}

func (r *receiver) onMessage(p []byte) {
	seq, ok := parseSeq(p)
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !ok || seq >= r.want:
		r.foreign++
	case r.seen[seq]:
		r.dups++
	default:
		r.seen[seq] = true
		r.unique++
		r.last = now
		if seq < r.highest {
			r.reordered++
		}
		r.highest = max(r.highest, seq)
		if r.unique == r.want {
			close(r.done)
		}
	}
}

// wait returns once every message arrived, or nothing new arrived for quiet, or ctx ended.
func (r *receiver) wait(ctx context.Context, quiet time.Duration) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	lastCount, lastChange := -1, time.Now()
	for {
		select {
		case <-r.done:
			return
		case <-ctx.Done():
			return
		case now := <-tick.C:
			r.mu.Lock()
			n := r.unique + r.dups + r.foreign
			r.mu.Unlock()
			if n != lastCount {
				lastCount, lastChange = n, now
			} else if now.Sub(lastChange) >= quiet {
				return
			}
		}
	}
}

// flowResult is what one publisher→subscriber run measured.
type flowResult struct {
	Sent       int           `json:"sent"`
	Received   int           `json:"received"` // unique
	Duplicates int           `json:"duplicates"`
	Reordered  int           `json:"reordered"`
	Foreign    int           `json:"foreign"`
	PublishDur time.Duration `json:"publish_ns"`  // the publish loop (qos 0: handed over; qos 1: all acknowledged)
	Dur        time.Duration `json:"duration_ns"` // first publish → last unique receive
	// SysRead and SysWrite count the process's read and write system calls during the run (publisher and
	// subscriber together), from /proc/self/io; -1 when unknown.
	SysRead, SysWrite int64 `json:"-"`
	// ClientCPU is the CPU the clients used (this process, or the mosquitto tools), BrokerCPU the broker's;
	// -1 when unknown.
	ClientCPU, BrokerCPU time.Duration `json:"-"`
	// BrokerWait is how long the broker waited, runnable, for a CPU (the machine's load), ClientWait the
	// same for this process's threads (the clients and, through the link, the link); Metered is the wall
	// time over which these and the CPU times were measured. -1 when unknown.
	BrokerWait, ClientWait, Metered time.Duration   `json:"-"`
	Latencies                       []time.Duration `json:"-"` // qos 1 sequential: Publish call → return
}

// Lost is what was sent and never arrived.
func (f flowResult) Lost() int { return f.Sent - f.Received }

// Rate is unique messages received per second, first publish → last receive.
func (f flowResult) Rate() float64 {
	if f.Dur <= 0 {
		return 0
	}
	return float64(f.Received) / f.Dur.Seconds()
}

// PublishRate is messages per second through the publish loop.
func (f flowResult) PublishRate() float64 {
	if f.PublishDur <= 0 {
		return 0
	}
	return float64(f.Sent) / f.PublishDur.Seconds()
}

func (r *receiver) result(sent int, start time.Time, publishDur time.Duration) flowResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := flowResult{Sent: sent, Received: r.unique, Duplicates: r.dups, Reordered: r.reordered,
		Foreign: r.foreign, PublishDur: publishDur, SysRead: -1, SysWrite: -1, ClientCPU: -1, BrokerCPU: -1,
		BrokerWait: -1, ClientWait: -1, Metered: -1}
	if r.unique > 0 {
		f.Dur = r.last.Sub(start)
	}
	return f
}

// sysCalls returns this process's read and write system call counts so far (/proc/self/io), or -1, -1.
func sysCalls() (reads, writes int64) {
	reads, writes = -1, -1
	for line := range strings.Lines(readFile("/proc/self/io")) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

// countSyscalls sets f's system call counts from the counts taken before the run.
func (f *flowResult) countSyscalls(r0, w0 int64) {
	r1, w1 := sysCalls()
	if r0 >= 0 && r1 >= 0 {
		f.SysRead = r1 - r0
	}
	if w0 >= 0 && w1 >= 0 {
		f.SysWrite = w1 - w0
	}
}

// perMessage divides a count by the messages received, NaN when unknown.
func (f flowResult) perMessage(n int64) float64 {
	if n < 0 || f.Received == 0 {
		return math.NaN()
	}
	return float64(n) / float64(f.Received)
}

// cpuPerMessage returns CPU time per message received in µs, NaN when unknown.
func (f flowResult) cpuPerMessage(d time.Duration) float64 {
	if d < 0 || f.Received == 0 {
		return math.NaN()
	}
	return us(d) / float64(f.Received)
}

// brokerBusy is the broker's CPU over the run as a percentage of one core, NaN when unknown.
func (f flowResult) brokerBusy() float64 {
	if f.BrokerCPU < 0 || f.Dur <= 0 {
		return math.NaN()
	}
	return 100 * float64(f.BrokerCPU) / float64(f.Dur)
}

// setCPU records what a cpuMeter measured over the run.
func (f *flowResult) setCPU(u cpuUse) {
	f.ClientCPU, f.BrokerCPU, f.BrokerWait, f.ClientWait, f.Metered = u.Self, u.Broker, u.BrokerWait, u.SelfWait, u.Wall
}

// share is d as a percentage of the metered wall time, NaN when unknown.
func (f flowResult) share(d time.Duration) float64 {
	if d < 0 || f.Metered <= 0 {
		return math.NaN()
	}
	return 100 * float64(d) / float64(f.Metered)
}

// brokerIdle is the percentage of the metered time in which the broker neither ran nor waited for a CPU:
// it had nothing to do, waiting for the clients. NaN when unknown.
func (f flowResult) brokerIdle() float64 {
	if f.BrokerCPU < 0 || f.BrokerWait < 0 {
		return math.NaN()
	}
	return max(100-f.share(f.BrokerCPU+f.BrokerWait), 0)
}
