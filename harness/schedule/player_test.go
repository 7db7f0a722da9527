package schedule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqttas/mqttas-go/harness/faults"
)

// fakeInjector logs what it is asked to do, with the (fake) time since it was made.
type fakeInjector struct {
	start time.Time
	mu    sync.Mutex
	log   []string
	fail  string // inject of this fault fails
}

func (f *fakeInjector) add(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf("%v %s", time.Since(f.start), s))
}

func (f *fakeInjector) Inject(_ context.Context, ft faults.Fault) (Healer, error) {
	if ft.Name() == f.fail {
		return nil, errors.New("boom")
	}
	f.add("inject " + ft.Name())
	return fakeHealer{f, ft.Name()}, nil
}

type fakeHealer struct {
	f    *fakeInjector
	name string
}

func (h fakeHealer) Heal(context.Context) error {
	h.f.add("heal " + h.name)
	return nil
}

func TestPlayerRunsOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := Parse([]byte(`version: 1
faults:
  - {at: 1s, fault: latency, duration: 2s}
  - {at: 3s, fault: blackhole, duration: 1s}
  - {at: 2s, fault: reset, repeat: {every: 3s, count: 2}}
  - {at: 2500ms, fault: broker-pause, duration: 4s}
`))
		if err != nil {
			t.Fatal(err)
		}
		inj := &fakeInjector{start: time.Now()}
		p, err := NewPlayer(s, inj, nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- p.Run(t.Context()) }()
		time.Sleep(2600 * time.Millisecond)
		synctest.Wait()
		var active []string
		for _, o := range p.Active() {
			active = append(active, o.Fault.Name())
		}
		if !slices.Equal(active, []string{"latency", "broker-pause"}) {
			t.Errorf("active at 2.6s: %v", active)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		want := []string{
			"1s inject latency",
			"2s inject reset",
			"2.5s inject broker-pause",
			"3s heal latency", // heals come first at the same instant
			"3s inject blackhole",
			"4s heal blackhole",
			"5s inject reset",
			"6.5s heal broker-pause",
		}
		if !slices.Equal(inj.log, want) {
			t.Fatalf("played\n%s\nwant\n%s", strings.Join(inj.log, "\n"), strings.Join(want, "\n"))
		}
		if p.Injected() != 5 || len(p.Active()) != 0 {
			t.Fatalf("injected %d, active %v", p.Injected(), p.Active())
		}
		if err := p.Run(t.Context()); err == nil {
			t.Fatal("second Run accepted")
		}
	})
}

// Cancelling the context stops the schedule and heals whatever is in force.
func TestPlayerStopsCleanly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &Schedule{Faults: []Entry{
			{At: time.Second, Fault: faults.Down{}, Duration: 10 * time.Second},
			{At: 20 * time.Second, Fault: faults.Reset{}},
		}}
		inj := &fakeInjector{start: time.Now()}
		p, err := NewPlayer(s, inj, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
		defer cancel()
		err = p.Run(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v", err)
		}
		want := []string{"1s inject down", "4s heal down"}
		if !slices.Equal(inj.log, want) {
			t.Fatalf("played %v, want %v", inj.log, want)
		}
	})
}

func TestPlayerInjectFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &Schedule{Faults: []Entry{
			{At: time.Second, Fault: faults.BrokerRestart{}, Duration: 10 * time.Second},
			{At: 2 * time.Second, Fault: faults.Latency{}, Duration: time.Second},
			{At: 5 * time.Second, Fault: faults.Reset{}},
		}}
		inj := &fakeInjector{start: time.Now(), fail: "latency"}
		p, err := NewPlayer(s, inj, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = p.Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), "faults[1] latency") || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("got %v", err)
		}
		want := []string{"1s inject broker-restart", "2s heal broker-restart"}
		if !slices.Equal(inj.log, want) {
			t.Fatalf("played %v, want %v", inj.log, want)
		}
	})
}

func TestNewPlayerValidates(t *testing.T) {
	s := &Schedule{Faults: []Entry{{At: -time.Second, Fault: faults.Reset{}}}}
	if _, err := NewPlayer(s, &fakeInjector{}, nil); err == nil {
		t.Fatal("invalid schedule accepted")
	}
}
