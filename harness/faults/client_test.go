package faults

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func (f *fakeTarget) Crash(_ context.Context, share int, powerCut bool) error {
	return f.add("crash %d%% power-cut=%t", share, powerCut)
}
func (f *fakeTarget) Restart(context.Context) error { return f.add("restart") }

func TestClientFaults(t *testing.T) {
	ft := &fakeTarget{}
	tg := Target{Link: ft, Broker: ft, Clients: ft}
	for _, tc := range []struct {
		name   string
		inject string
	}{
		{"client-kill", "crash 25% power-cut=false"},
		{"client-power-cut", "crash 25% power-cut=true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(tc.name, map[string]string{"share": "25"})
			if err != nil {
				t.Fatal(err)
			}
			if f.OneShot() || f.Family() != FamilyClient || LaneOf(f) != LaneClient || LaneClient.Why() == "" {
				t.Fatalf("%#v: one-shot %t, family %s, lane %s", f, f.OneShot(), f.Family(), LaneOf(f))
			}
			if got := Format(f); got != tc.name+"(share=25)" {
				t.Fatalf("format %q", got)
			}
			if err := f.Inject(t.Context(), tg); err != nil {
				t.Fatal(err)
			}
			if got := ft.take(); got != tc.inject {
				t.Fatalf("inject: %q", got)
			}
			if err := f.Heal(t.Context(), tg); err != nil {
				t.Fatal(err)
			}
			if got := ft.take(); got != "restart" {
				t.Fatalf("heal: %q", got)
			}
			// Defaults: every client; bad shares named.
			if d, _ := New(tc.name); Params(d)["share"] != "100" {
				t.Fatalf("default %v", Params(d))
			}
			for _, bad := range []string{"0", "101", "-5", "half"} {
				var pe *ParamError
				if _, err := Parse(tc.name, map[string]string{"share": bad}); !errors.As(err, &pe) || pe.Param != "share" {
					t.Fatalf("share %s: %v", bad, err)
				}
			}
			// Opt-in: off in the default random schedule, with a weight for runs that ask; no trial (only
			// crash-capable clients take it).
			if m := f.Mix(); m.Weight != 0 || m.OptIn <= 0 || m.Min <= 0 || m.Max < m.Min {
				t.Fatalf("mix %+v", m)
			}
			if f.Trial().Fault != nil {
				t.Fatal("a trial: every client of the scenarios would have to crash")
			}
			r := rand.New(rand.NewPCG(1, 2))
			seen := map[string]bool{}
			for range 50 {
				d := f.Draw(r)
				if err := d.Validate(); err != nil {
					t.Fatal(err)
				}
				seen[Params(d)["share"]] = true
			}
			if len(seen) != len(shares) {
				t.Fatalf("drawn shares %v, want each of %v", seen, shares)
			}
		})
	}
	for _, f := range []Fault{ClientKill{Share: 10}, ClientPowerCut{Share: 10}} {
		if err := f.Inject(t.Context(), Target{Link: ft, Broker: ft}); !errors.Is(err, ErrNoClients) {
			t.Fatalf("%s without clients: %v", f, err)
		}
		if err := f.Heal(t.Context(), Target{Link: ft, Broker: ft}); !errors.Is(err, ErrNoClients) {
			t.Fatalf("%s heal without clients: %v", f, err)
		}
	}
	if got := CrashNames(); !slices.Equal(got, []string{"client-kill", "client-power-cut"}) {
		t.Fatalf("crash names %v", got)
	}
}
