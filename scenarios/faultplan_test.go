package scenarios

// Fault plans: steps of inject, hold and heal, fixed or drawn from a seed.

import (
	"context"
	"fmt"
	"math/rand/v2"
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

// trialSteps is a fault's trial as a plan: its fault Count() times, each held for Hold, Pause apart.
func trialSteps(tr faults.Trial) []qos1Step {
	steps := make([]qos1Step, tr.Count())
	for i := range steps {
		steps[i] = qos1Step{Fault: tr.Fault, Hold: tr.Hold, Pause: tr.Pause}
	}
	steps[len(steps)-1].Pause = 0 // the plan ends at the last heal
	return steps
}

// seededQoS1Mix draws n steps from the faults of the registry that have a trial, with a generator seeded by
// seed: the same seed gives the same plan, each fault's parameters drawn as a random schedule draws them.
func seededQoS1Mix(seed uint64, n int) []qos1Step {
	GinkgoHelper()
	trials := faults.Trials()
	rnd := rand.New(rand.NewPCG(seed, 0x71a5))
	steps := make([]qos1Step, 0, n)
	for range n {
		f := trials[rnd.IntN(len(trials))].Fault.Draw(rnd)
		Expect(f.Validate()).To(Succeed())
		s := qos1Step{Fault: f, Pause: time.Duration(300+rnd.IntN(700)) * time.Millisecond}
		if !f.OneShot() {
			s.Hold = time.Duration(500+rnd.IntN(2500)) * time.Millisecond
		}
		steps = append(steps, s)
	}
	steps[len(steps)-1].Pause = 0 // the plan ends at the last heal
	return steps
}
