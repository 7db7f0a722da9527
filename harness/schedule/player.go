package schedule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mqttas/mqttas-go/harness/faults"
)

// Injector starts faults for a Player. A rig is one (rig.Rig.Injector), recording every fault on its
// timeline; tests may use their own.
type Injector interface {
	Inject(ctx context.Context, f faults.Fault) (Healer, error)
}

// Healer ends a fault in force.
type Healer interface {
	Heal(ctx context.Context) error
}

// HealTimeout bounds the heals a Player makes after its context ended (restarting a broker takes a while).
const HealTimeout = 60 * time.Second

// Player runs a schedule: it injects each fault at its time and heals it when its duration is over.
type Player struct {
	inj     Injector
	occ     []Occurrence
	actions []action
	log     *slog.Logger

	mu       sync.Mutex
	active   map[int]*activeFault // by occurrence index
	injected int
	started  bool
}

type activeFault struct {
	occ Occurrence
	h   Healer
}

type action struct {
	at   time.Duration
	heal bool
	occ  int
}

// NewPlayer validates s and prepares to play it through inj. A nil logger discards.
func NewPlayer(s *Schedule, inj Injector, log *slog.Logger) (*Player, error) {
	occ, err := s.Occurrences()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Player{inj: inj, occ: occ, log: log, active: map[int]*activeFault{}}
	for i, o := range occ {
		p.actions = append(p.actions, action{at: o.At, occ: i})
		if !o.Fault.OneShot() {
			p.actions = append(p.actions, action{at: o.End(), heal: true, occ: i})
		}
	}
	// By time; at the same time heals first, so a fault may start the instant another one ends.
	slices.SortStableFunc(p.actions, func(a, b action) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		if a.heal != b.heal {
			if a.heal {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.occ, b.occ)
	})
	return p, nil
}

// Occurrences returns what the player will inject, in order.
func (p *Player) Occurrences() []Occurrence { return slices.Clone(p.occ) }

// Active returns the faults in force now, oldest first.
func (p *Player) Active() []Occurrence {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Occurrence, 0, len(p.active))
	for _, a := range p.active {
		out = append(out, a.occ)
	}
	slices.SortFunc(out, func(a, b Occurrence) int { return cmp.Compare(a.At, b.At) })
	return out
}

// Injected returns how many faults have been injected so far.
func (p *Player) Injected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected
}

// Run plays the schedule from now: each action waits for its time after Run began (a late action runs at
// once, and the order is always kept, so faults that must not overlap never do). It returns nil once the
// last fault is healed. If ctx ends first, or a fault fails to inject or heal, it heals whatever is in
// force (each heal bounded by HealTimeout) and returns ctx's error or the failure. Run may be called
// only once.
func (p *Player) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return errors.New("schedule: Player.Run called twice")
	}
	p.started = true
	p.mu.Unlock()

	start := time.Now()
	timer := time.NewTimer(time.Hour)
	timer.Stop() // Reset below arms it; since Go 1.23 a stopped timer never delivers a stale tick
	defer timer.Stop()
	for _, a := range p.actions {
		if wait := time.Until(start.Add(a.at)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return errors.Join(ctx.Err(), p.healAll(ctx))
			}
		} else if ctx.Err() != nil {
			return errors.Join(ctx.Err(), p.healAll(ctx))
		}
		o := p.occ[a.occ]
		if late := time.Since(start) - a.at; late > time.Second {
			p.log.Warn("fault schedule running late", "fault", o.String(), "late", late.Round(time.Millisecond))
		}
		var err error
		if a.heal {
			err = p.heal(ctx, a.occ)
		} else {
			err = p.inject(ctx, a.occ)
		}
		if err != nil {
			return errors.Join(err, p.healAll(ctx))
		}
	}
	return nil
}

func (p *Player) inject(ctx context.Context, i int) error {
	o := p.occ[i]
	p.log.Debug("inject", "fault", o.String())
	h, err := p.inj.Inject(ctx, o.Fault)
	if err != nil {
		return fmt.Errorf("schedule: %s: %w", o, err)
	}
	p.mu.Lock()
	p.injected++
	if !o.Fault.OneShot() {
		p.active[i] = &activeFault{occ: o, h: h}
	}
	p.mu.Unlock()
	return nil
}

func (p *Player) heal(ctx context.Context, i int) error {
	p.mu.Lock()
	a := p.active[i]
	p.mu.Unlock()
	if a == nil {
		return nil
	}
	p.log.Debug("heal", "fault", a.occ.String())
	err := a.h.Heal(ctx)
	p.mu.Lock()
	delete(p.active, i)
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("schedule: heal %s: %w", a.occ, err)
	}
	return nil
}

// healAll heals every fault in force, newest first, even after ctx ended.
func (p *Player) healAll(ctx context.Context) error {
	p.mu.Lock()
	idx := make([]int, 0, len(p.active))
	for i := range p.active {
		idx = append(idx, i)
	}
	p.mu.Unlock()
	slices.Sort(idx)
	slices.Reverse(idx)
	var errs []error
	for _, i := range idx {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), HealTimeout)
		errs = append(errs, p.heal(hctx, i))
		cancel()
	}
	return errors.Join(errs...)
}
