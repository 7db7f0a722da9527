package faults

import (
	"slices"
	"testing"
)

func TestDropPingresps(t *testing.T) {
	f, err := Parse("drop-pingresps", nil)
	if err != nil || f != (DropPingresps{}) || f.OneShot() || f.Family() != FamilyPackets || LaneOf(f) != LaneLink {
		t.Fatalf("got %#v, %v", f, err)
	}
	if _, err := Parse("drop-pingresps", map[string]string{"n": "1"}); err == nil {
		t.Fatal("it takes no parameters")
	}
	ft := &fakeTarget{}
	tg := Target{Link: ft, Broker: ft}
	if err := f.Inject(t.Context(), tg); err != nil {
		t.Fatal(err)
	}
	if got := ft.take(); got != "drop broker→client PINGRESP -1" {
		t.Fatalf("inject: %q", got)
	}
	if err := f.Heal(t.Context(), tg); err != nil {
		t.Fatal(err)
	}
	if got := ft.take(); got != "stop-dropping" {
		t.Fatalf("heal: %q", got)
	}
	// Registered once, it is in the registry's lists: traces, random schedules, the scenarios and compare.
	if !slices.Contains(Names(), "drop-pingresps") || f.Mix().Weight == 0 {
		t.Fatalf("names %v, mix %+v", Names(), f.Mix())
	}
	if !slices.ContainsFunc(Trials(), func(tr Trial) bool { return tr.Fault == f }) {
		t.Fatal("no trial")
	}
}
