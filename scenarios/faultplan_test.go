package scenarios

// Fault plans: steps of inject, hold and heal, fixed or drawn from a seed.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/rig"
)

// qos1Step is one step of a fault plan: inject Fault, keep it for Hold (nothing for a one-shot fault),
// heal it, then let traffic flow for Pause before the next step.
type qos1Step struct {
	Fault faults.Fault
	Hold  time.Duration
	Pause time.Duration
}

func (s qos1Step) String() string {
	str := s.Fault.String()
	if !s.Fault.OneShot() {
		str += fmt.Sprintf(" for %v", s.Hold)
	}
	if s.Pause > 0 {
		str += fmt.Sprintf(", then %v of calm", s.Pause)
	}
	return str
}

// runQoS1Plan plays the steps through the rig and returns when the last fault was healed (for a one-shot
// fault: injected).
func runQoS1Plan(ctx context.Context, r *rig.Rig, steps []qos1Step) time.Time {
	GinkgoHelper()
	var healed time.Time
	for i, s := range steps {
		in, err := r.Inject(ctx, s.Fault)
		Expect(err).NotTo(HaveOccurred(), "step %d: %s", i, s)
		Expect(sleepQoS1(ctx, s.Hold)).To(Succeed())
		Expect(in.Heal(ctx)).To(Succeed(), "step %d: %s", i, s)
		healed = time.Now()
		if i < len(steps)-1 {
			Expect(sleepQoS1(ctx, s.Pause)).To(Succeed())
		}
	}
	return healed
}

// sleepQoS1 waits for d or until ctx ends.
func sleepQoS1(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// holdFault lets a fault last d (or until ctx ends).
func holdFault(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// qos1MixFaults are the faults the random mix draws from, as a trace file names them, with the parameters
// each draw may take.
var qos1MixFaults = []struct {
	name   string
	params func(*rand.Rand) map[string]string
}{
	{"latency", func(rnd *rand.Rand) map[string]string {
		return map[string]string{"latency": strconv.Itoa(50+rnd.IntN(200)) + "ms", "jitter": strconv.Itoa(rnd.IntN(50)) + "ms"}
	}},
	{"reset", nil},
	{"blackhole", nil},
	{"down", nil},
	{"slicer", func(rnd *rand.Rand) map[string]string {
		return map[string]string{"average": strconv.Itoa(4 + rnd.IntN(12)), "variation": "3", "delay": "100us"}
	}},
	{"bandwidth", func(rnd *rand.Rand) map[string]string {
		return map[string]string{"rate": strconv.Itoa(4 + rnd.IntN(28))}
	}},
	{"broker-restart", nil},
	{"broker-pause", nil},
}

// seededQoS1Mix draws n steps from qos1MixFaults with a generator seeded by seed: the same seed gives the
// same plan, built through faults.Parse exactly as a replayed trace would be.
func seededQoS1Mix(seed uint64, n int) []qos1Step {
	GinkgoHelper()
	rnd := rand.New(rand.NewPCG(seed, 0x71a5))
	steps := make([]qos1Step, 0, n)
	for range n {
		pick := qos1MixFaults[rnd.IntN(len(qos1MixFaults))]
		var params map[string]string
		if pick.params != nil {
			params = pick.params(rnd)
		}
		f, err := faults.Parse(pick.name, params)
		Expect(err).NotTo(HaveOccurred())
		s := qos1Step{Fault: f, Pause: time.Duration(300+rnd.IntN(700)) * time.Millisecond}
		if !f.OneShot() {
			s.Hold = time.Duration(500+rnd.IntN(2500)) * time.Millisecond
		}
		steps = append(steps, s)
	}
	steps[len(steps)-1].Pause = 0 // the plan ends at the last heal
	return steps
}
