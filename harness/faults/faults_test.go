package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
)

func TestParseKnownFaults(t *testing.T) {
	for _, name := range Names() {
		f, err := Parse(name, nil)
		if err != nil {
			t.Fatalf("%s with defaults: %v", name, err)
		}
		if f.Name() != name {
			t.Fatalf("Parse(%q) made %q", name, f.Name())
		}
	}
	f, err := Parse("latency", map[string]string{"latency": "150ms", "jitter": "20ms"})
	if err != nil || f.String() != "latency(jitter=20ms, latency=150ms)" {
		t.Fatalf("got %v, %v", f, err)
	}
	if f != (Latency{Latency: 150 * time.Millisecond, Jitter: 20 * time.Millisecond}) {
		t.Fatalf("parsed %#v", f)
	}
	if !(Reset{}).OneShot() || (Blackhole{}).OneShot() {
		t.Fatal("reset is one-shot, blackhole is not")
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	_, err := Parse("latency", map[string]string{"latency": "soon"})
	var pe *ParamError
	if !errors.As(err, &pe) || pe.Param != "latency" || !strings.Contains(err.Error(), `"soon"`) {
		t.Fatalf("got %v", err)
	}
	_, err = Parse("reset", map[string]string{"delay": "1s"})
	if !errors.As(err, &pe) || pe.Param != "delay" {
		t.Fatalf("unknown parameter: got %v", err)
	}
	_, err = Parse("bandwidth", map[string]string{"rate": "0"})
	if !errors.As(err, &pe) || pe.Param != "rate" {
		t.Fatalf("rate 0 stalls toxiproxy forever and must be refused: got %v", err)
	}
	if _, err = Parse("earthquake", nil); !errors.Is(err, ErrUnknown) {
		t.Fatalf("got %v", err)
	}
	// What the link would refuse at injection is refused when the fault is made.
	for _, c := range []struct {
		name, param string
		m           map[string]string
	}{
		{"slicer", "variation", map[string]string{"average": "4", "variation": "4"}},
		{"slicer", "average", map[string]string{"average": "0", "variation": "0"}},
		{"latency", "jitter", map[string]string{"latency": "10ms", "jitter": "20ms"}},
		{"latency", "jitter", map[string]string{"jitter": "-1ms"}},
		{"bandwidth", "rate", map[string]string{"rate": "fast"}},
		{"bandwidth", "burst", map[string]string{"burst": "2"}},
	} {
		_, err := Parse(c.name, c.m)
		if !errors.As(err, &pe) || pe.Fault != c.name || pe.Param != c.param {
			t.Errorf("%s %v: got %v, want a problem with %s", c.name, c.m, err, c.param)
		}
	}
	if err := (Slicer{Average: 4, Variation: 4}).Validate(); !errors.As(err, &pe) || pe.Param != "variation" {
		t.Errorf("a typed slicer is validated the same way: %v", err)
	}
}

// Every fault's drawn parameters are valid and survive the trace format: Params then Parse give the same
// fault back, and the same seed draws the same fault.
func TestDrawRoundTrip(t *testing.T) {
	for _, proto := range All() {
		r := rand.New(rand.NewPCG(1, 2))
		again := rand.New(rand.NewPCG(1, 2))
		for range 200 {
			f := proto.Draw(r)
			if f != proto.Draw(again) {
				t.Fatalf("%s: the same seed drew two faults", proto.Name())
			}
			if f.Name() != proto.Name() {
				t.Fatalf("%s drew a %s", proto.Name(), f.Name())
			}
			if err := f.Validate(); err != nil {
				t.Fatalf("%s drew an invalid fault: %v", proto.Name(), err)
			}
			back, err := Parse(f.Name(), Params(f))
			if err != nil || back != f {
				t.Fatalf("%v: Params %v parse back to %v, %v", f, Params(f), back, err)
			}
		}
	}
	if Params(Reset{}) != nil || Format(Reset{}) != "reset" {
		t.Fatalf("reset: %v %q", Params(Reset{}), Format(Reset{}))
	}
}

// The random mix and the trials agree with each fault: one-shot faults take no duration, lasting ones do.
func TestMixAndTrials(t *testing.T) {
	for _, f := range All() {
		m := f.Mix()
		if m.Weight < 0 || m.Min < 0 || m.Max < m.Min || m.Why == "" {
			t.Errorf("%s: bad mix %+v", f.Name(), m)
		}
		if f.OneShot() != (m.Max == 0) {
			t.Errorf("%s: one-shot %v, mix durations %v–%v", f.Name(), f.OneShot(), m.Min, m.Max)
		}
		tr := f.Trial()
		if tr.Fault == nil {
			continue
		}
		if tr.Fault.Name() != f.Name() || tr.Fault.Validate() != nil || tr.What == "" {
			t.Errorf("%s: bad trial %+v", f.Name(), tr)
		}
		if f.OneShot() != (tr.Hold == 0) {
			t.Errorf("%s: one-shot %v, trial hold %v", f.Name(), f.OneShot(), tr.Hold)
		}
		if tr.Count() > 1 && tr.Pause <= 0 {
			t.Errorf("%s: %d injections with no pause between them", f.Name(), tr.Count())
		}
	}
	var names []string
	for _, tr := range Trials() {
		names = append(names, tr.Fault.Name())
	}
	if slices.Contains(names, "broker-kill") || !slices.Contains(names, "blackhole") || !slices.IsSorted(names) {
		t.Fatalf("trials %v: broker-kill has none (it tests the broker's durability), blackhole has one", names)
	}
	if (BrokerKill{}).Mix().Weight != 0 {
		t.Fatal("broker-kill is off in random schedules by default")
	}
	// A slow or fragmented link is no outage; the scenarios hold every client to that.
	for _, f := range []Fault{Latency{}, Slicer{}, Bandwidth{}} {
		if tr := f.Trial(); !tr.NoOutage || tr.Outage {
			t.Errorf("%s: trial expects outage %t, none %t; want none", f.Name(), tr.Outage, tr.NoOutage)
		}
	}
}

func TestLanes(t *testing.T) {
	for _, c := range []struct {
		f    Fault
		lane Lane
	}{
		{Reset{}, ""}, {Blackhole{}, LaneLink}, {DropPubacks{}, LaneLink}, {BrokerPause{}, LaneBroker},
	} {
		if got := LaneOf(c.f); got != c.lane {
			t.Errorf("%s: lane %q, want %q", c.f, got, c.lane)
		}
	}
	if !strings.Contains(LaneLink.Why(), "healing one heals the whole link") || LaneBroker.Why() == "" {
		t.Fatal("lanes say why")
	}
}

// fakeTarget records the calls faults make on the link and the broker.
type fakeTarget struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeTarget) add(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return nil
}

func (f *fakeTarget) take() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := strings.Join(f.calls, "; ")
	f.calls = nil
	return s
}

func (f *fakeTarget) Latency(_ context.Context, d, j time.Duration, dir link.Direction) error {
	return f.add("latency %v %v %v", d, j, dir)
}
func (f *fakeTarget) Bandwidth(_ context.Context, kb int, dir link.Direction) error {
	return f.add("bandwidth %d %v", kb, dir)
}
func (f *fakeTarget) Blackhole(_ context.Context, dir link.Direction) error {
	return f.add("blackhole %v", dir)
}
func (f *fakeTarget) Silent(context.Context) error { return f.add("silent") }
func (f *fakeTarget) Slicer(_ context.Context, avg, v int, d time.Duration, dir link.Direction) error {
	return f.add("slicer %d %d %v %v", avg, v, d, dir)
}
func (f *fakeTarget) SlowClose(_ context.Context, d time.Duration, dir link.Direction) error {
	return f.add("slow-close %v %v", d, dir)
}
func (f *fakeTarget) LimitData(_ context.Context, n int64, dir link.Direction) error {
	return f.add("limit-data %d %v", n, dir)
}
func (f *fakeTarget) ResetPeer(_ context.Context, d time.Duration, dir link.Direction) error {
	return f.add("reset-peer %v %v", d, dir)
}
func (f *fakeTarget) Down(context.Context) error  { return f.add("down") }
func (f *fakeTarget) Up(context.Context) error    { return f.add("up") }
func (f *fakeTarget) Reset(context.Context) error { return f.add("reset") }
func (f *fakeTarget) DropPackets(dir link.Direction, t mqttframe.Type, n int) error {
	return f.add("drop %v %v %d", dir, t, n)
}
func (f *fakeTarget) DelayPackets(dir link.Direction, t mqttframe.Type, d time.Duration) error {
	return f.add("delay %v %v %v", dir, t, d)
}
func (f *fakeTarget) StopDropping()                 { _ = f.add("stop-dropping") }
func (f *fakeTarget) StopDelaying()                 { _ = f.add("stop-delaying") }
func (f *fakeTarget) Heal(context.Context) error    { return f.add("heal") }
func (f *fakeTarget) Start(context.Context) error   { return f.add("broker start") }
func (f *fakeTarget) Stop(context.Context) error    { return f.add("broker stop") }
func (f *fakeTarget) Kill(context.Context) error    { return f.add("broker kill") }
func (f *fakeTarget) Pause(context.Context) error   { return f.add("broker pause") }
func (f *fakeTarget) Unpause(context.Context) error { return f.add("broker unpause") }

// What each fault does to the link and the broker, injected and healed.
func TestInjectAndHeal(t *testing.T) {
	want := map[string][2]string{
		"latency":        {"latency 200ms 0s both", "heal"},
		"reset":          {"reset", ""},
		"blackhole":      {"silent", "heal"},
		"down":           {"down", "up"},
		"slicer":         {"slicer 8 4 100µs both", "heal"},
		"bandwidth":      {"bandwidth 16 both", "heal"},
		"drop-pubacks":   {"drop broker→client PUBACK -1", "stop-dropping"},
		"broker-restart": {"broker stop", "broker start"},
		"broker-kill":    {"broker kill", "broker start"},
		"broker-pause":   {"broker pause", "broker unpause"},
	}
	ft := &fakeTarget{}
	tg := Target{Link: ft, Broker: ft}
	for _, f := range All() {
		w, ok := want[f.Name()]
		if !ok {
			continue // a fault with a file and a test of its own
		}
		if err := f.Inject(t.Context(), tg); err != nil {
			t.Fatal(err)
		}
		if got := ft.take(); got != w[0] {
			t.Errorf("%s inject: %q, want %q", f.Name(), got, w[0])
		}
		if err := f.Heal(t.Context(), tg); err != nil {
			t.Fatal(err)
		}
		if got := ft.take(); got != w[1] {
			t.Errorf("%s heal: %q, want %q", f.Name(), got, w[1])
		}
		delete(want, f.Name())
	}
	if len(want) != 0 {
		t.Fatalf("not registered: %v", want)
	}
}

// *link.Link is a Link; the broker backends are checked where they are assembled (the rig).
var _ Link = (*link.Link)(nil)

// Every broker backend is a Broker.
var _ Broker = broker.Broker(nil)
