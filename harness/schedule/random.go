package schedule

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// Kind says how Random draws one fault: how often (Weight, relative to the others), how long it lasts,
// and its parameters.
type Kind struct {
	Weight      int
	Min, Max    time.Duration                        // duration range; both 0 for one-shot faults
	DrawParams  func(r *rand.Rand) map[string]string // nil: the fault's defaults
	Description string                               // why these figures, for the documentation
}

// DefaultKinds returns the mix Random draws from: every fault of the harness catalogue, weighted
// towards what a device in the field meets most (short blackholes, latency spikes, resets), with broker
// restarts and pauses now and then.
//
// broker-kill has weight 0: SIGKILL loses whatever mosquitto had not autosaved (autosave_interval 1), so
// acknowledged messages may go with it and the verdict would blame the client for the broker's durability
// contract. Give it a weight to study exactly that.
func DefaultKinds() map[string]Kind {
	ms := func(r *rand.Rand, lo, hi int) int { return lo + r.IntN(hi-lo+1) }
	return map[string]Kind{
		"blackhole": {Weight: 20, Min: time.Second, Max: 6 * time.Second,
			Description: "a silent link (no FIN): the client must notice it through keepalive"},
		"latency": {Weight: 18, Min: 2 * time.Second, Max: 10 * time.Second,
			DrawParams: func(r *rand.Rand) map[string]string {
				l := ms(r, 10, 200) * 10 // 100 ms – 2 s in steps of 10 ms
				j := r.IntN(l/4 + 1)
				return map[string]string{"latency": (time.Duration(l) * time.Millisecond).String(),
					"jitter": (time.Duration(j) * time.Millisecond).String()}
			},
			Description: "an RTT spike of 100 ms – 2 s (± up to a quarter of it)"},
		"reset": {Weight: 15,
			Description: "the connection dropped at once (a lost association)"},
		"down": {Weight: 12, Min: time.Second, Max: 10 * time.Second,
			Description: "the broker's host unreachable: connections closed and refused"},
		"slicer": {Weight: 8, Min: 3 * time.Second, Max: 10 * time.Second,
			DrawParams: func(r *rand.Rand) map[string]string {
				avg := ms(r, 2, 32)
				return map[string]string{"average": strconv.Itoa(avg), "variation": strconv.Itoa(r.IntN(avg / 2)),
					"delay": (time.Duration(ms(r, 10, 500)) * time.Microsecond).String()}
			},
			Description: "packets arrive in fragments of 2–32 bytes"},
		"bandwidth": {Weight: 8, Min: 3 * time.Second, Max: 10 * time.Second,
			DrawParams: func(r *rand.Rand) map[string]string {
				return map[string]string{"rate": strconv.Itoa(ms(r, 1, 32))}
			},
			Description: "throughput collapses to 1–32 KB/s"},
		"drop-pubacks": {Weight: 6, Min: time.Second, Max: 5 * time.Second,
			Description: "PUBACKs lost on the way back: the client re-sends with DUP"},
		"broker-restart": {Weight: 6, Min: time.Second, Max: 6 * time.Second,
			Description: "the broker stopped gracefully (it saves its sessions) and started again"},
		"broker-pause": {Weight: 5, Min: time.Second, Max: 6 * time.Second,
			Description: "a hung broker: TCP connects, nothing answers"},
		"broker-kill": {Weight: 0, Min: time.Second, Max: 6 * time.Second,
			Description: "the broker crashed (SIGKILL); off by default, see DefaultKinds"},
	}
}

// RandomOptions tune Random. Zero values take the defaults.
type RandomOptions struct {
	// Name of the schedule; default "random-<seed>".
	Name string
	// Lead is the quiet time before the first fault; default total/10, between 500 ms and 3 s.
	Lead time.Duration
	// Quiet is the fault-free time at the end, for the clients to recover before the run ends; default
	// total/6, between 2 s and 20 s.
	Quiet time.Duration
	// MinGap and MaxGap bound the pause between one fault's heal and the next fault; default 1 s – 6 s.
	MinGap, MaxGap time.Duration
	// Kinds replaces DefaultKinds (names must be in the faults catalogue).
	Kinds map[string]Kind
}

// Random draws a schedule of faults for a run of total length from seed: the same seed, total and
// options give the same schedule. Faults follow one another, never overlapping, each drawn by weight with
// its duration and parameters drawn from its Kind; a final quiet period is left for recovery.
func Random(seed int64, total time.Duration, o RandomOptions) (*Schedule, error) {
	if total <= 0 {
		return nil, fmt.Errorf("schedule: random schedule needs a total duration > 0, got %v", total)
	}
	if o.Name == "" {
		o.Name = fmt.Sprintf("random-%d", seed)
	}
	if o.Lead == 0 {
		o.Lead = min(max(total/10, 500*time.Millisecond), 3*time.Second)
	}
	if o.Quiet == 0 {
		o.Quiet = min(max(total/6, 2*time.Second), 20*time.Second)
	}
	if o.MinGap == 0 {
		o.MinGap = time.Second
	}
	if o.MaxGap == 0 {
		o.MaxGap = 6 * time.Second
	}
	if o.Kinds == nil {
		o.Kinds = DefaultKinds()
	}
	if o.Lead < 0 || o.Quiet < 0 || o.MinGap < 0 || o.MaxGap < o.MinGap {
		return nil, fmt.Errorf("schedule: bad random options: lead %v, quiet %v, gap %v–%v", o.Lead, o.Quiet, o.MinGap, o.MaxGap)
	}
	// Map order is random: draw from the names in sorted order, so the seed alone decides.
	names := make([]string, 0, len(o.Kinds))
	sum := 0
	for n, k := range o.Kinds {
		if k.Weight < 0 || k.Min < 0 || k.Max < k.Min {
			return nil, fmt.Errorf("schedule: kind %s: weight %d, duration %v–%v", n, k.Weight, k.Min, k.Max)
		}
		if k.Weight > 0 {
			names = append(names, n)
			sum += k.Weight
		}
	}
	slices.Sort(names)
	s := &Schedule{Name: o.Name,
		Description: fmt.Sprintf("Drawn by schedule.Random with seed %d for a %v run.", seed, total)}
	if sum == 0 {
		return s, nil
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x6d717474_61732d67)) // "mqttas-g"
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		// Whole milliseconds, so the schedule reads well as a trace.
		return lo + time.Duration(r.Int64N(int64((hi-lo)/time.Millisecond)+1))*time.Millisecond
	}
	end := total - o.Quiet
	at := o.Lead
	for len(s.Faults) < MaxOccurrences && at < end {
		pick := r.IntN(sum)
		var name string
		for _, n := range names {
			if pick -= o.Kinds[n].Weight; pick < 0 {
				name = n
				break
			}
		}
		k := o.Kinds[name]
		d := between(k.Min, k.Max)
		if at+d > end {
			if end-at < max(k.Min, time.Millisecond) {
				break // the shortest such fault would run into the quiet period
			}
			d = (end - at).Truncate(time.Millisecond)
		}
		var params map[string]string
		if k.DrawParams != nil {
			params = k.DrawParams(r)
		}
		s.Faults = append(s.Faults, Entry{At: at, Fault: name, Duration: d, Params: params})
		at += d + between(o.MinGap, o.MaxGap)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("schedule: random schedule is invalid (a bad Kind?): %w", err)
	}
	return s, nil
}
