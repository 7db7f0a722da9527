package schedule

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mqttas/mqttas-go/harness/faults"
)

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
	// Mix replaces the registered faults' own mixes (faults.Fault.Mix): only the faults named here are
	// drawn, with these weights and durations (names must be registered faults).
	Mix map[string]faults.Mix
	// OptIn names faults that are off by default (weight 0, such as the client faults) to draw too, with
	// their Mix's OptIn weight (names must be registered faults).
	OptIn []string
}

// Random draws a schedule of faults for a run of total length from seed: the same seed, total and
// options give the same schedule. Faults follow one another, never overlapping, each drawn by the weight
// of its Mix, with its duration from its Mix and its parameters from its Draw; a final quiet period is
// left for recovery.
//
// By default every registered fault takes part with its own Mix: weighted towards what a device in the
// field meets most (short blackholes, latency spikes, resets), with broker restarts and pauses now and
// then, and broker-kill off (see faults.BrokerKill).
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
	if o.Mix == nil {
		o.Mix = map[string]faults.Mix{}
		for _, f := range faults.All() {
			o.Mix[f.Name()] = f.Mix()
		}
	}
	if len(o.OptIn) > 0 {
		o.Mix = maps.Clone(o.Mix) // the caller's stays as it was
	}
	for _, n := range o.OptIn {
		proto, err := faults.New(n)
		if err != nil {
			return nil, fmt.Errorf("schedule: random opt-in: %w", err)
		}
		k, ok := o.Mix[n]
		if !ok {
			k = proto.Mix()
		}
		if k.Weight == 0 {
			if k.OptIn <= 0 {
				return nil, fmt.Errorf("schedule: random opt-in: %s has no opt-in weight", n)
			}
			k.Weight = k.OptIn
		}
		o.Mix[n] = k
	}
	if o.Lead < 0 || o.Quiet < 0 || o.MinGap < 0 || o.MaxGap < o.MinGap {
		return nil, fmt.Errorf("schedule: bad random options: lead %v, quiet %v, gap %v–%v", o.Lead, o.Quiet, o.MinGap, o.MaxGap)
	}
	// Map order is random: draw from the names in sorted order, so the seed alone decides.
	names := make([]string, 0, len(o.Mix))
	protos := map[string]faults.Fault{}
	sum := 0
	for n, k := range o.Mix {
		proto, err := faults.New(n)
		if err != nil {
			return nil, fmt.Errorf("schedule: random mix: %w", err)
		}
		protos[n] = proto
		if k.Weight < 0 || k.Min < 0 || k.Max < k.Min {
			return nil, fmt.Errorf("schedule: mix of %s: weight %d, duration %v–%v", n, k.Weight, k.Min, k.Max)
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
			if pick -= o.Mix[n].Weight; pick < 0 {
				name = n
				break
			}
		}
		k := o.Mix[name]
		d := between(k.Min, k.Max)
		if at+d > end {
			if end-at < max(k.Min, time.Millisecond) {
				break // the shortest such fault would run into the quiet period
			}
			d = (end - at).Truncate(time.Millisecond)
		}
		s.Faults = append(s.Faults, Entry{At: at, Fault: protos[name].Draw(r), Duration: d})
		at += d + between(o.MinGap, o.MaxGap)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("schedule: random schedule is invalid (a bad Mix?): %w", err)
	}
	return s, nil
}
