package validate

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/timeline"
)

const (
	ms = time.Millisecond
	s  = time.Second
)

func ev(at time.Duration, src string, k timeline.Kind) timeline.Entry {
	return timeline.Entry{At: at, Source: src, Kind: k}
}

func TestOutages(t *testing.T) {
	entries := []timeline.Entry{
		ev(0, "a", timeline.Up),
		ev(2*s, "a", timeline.Outage),
		ev(2*s+100*ms, "a", timeline.Down),
		ev(3*s, "a", timeline.Reconnect),
		ev(3*s, "a", timeline.ConnectFailed),
		ev(5*s, "a", timeline.Up),
		ev(6*s, "b", timeline.Up),
		ev(8*s, "a", timeline.Down),
		ev(9*s, "b", timeline.Note),
	}
	got := Outages(entries, "a")
	want := []Outage{{Source: "a", Start: 2 * s, End: 5 * s}, {Source: "a", Start: 8 * s, End: 9 * s, Open: true}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// The soak's per-client figures: each kind of fault a run meets, with a hand-made timeline.
func TestMeasure(t *testing.T) {
	windows := []timeline.Window{
		{Fault: 1, Name: "blackhole", Start: 10 * s, End: 13 * s}, // noticed by keepalive after 2 s, back after the heal
		{Fault: 2, Name: "reset", Start: 20 * s, End: 20 * s},     // one-shot
		{Fault: 3, Name: "blackhole", Start: 30 * s, End: 31 * s}, // too short to notice: the heal closes the connection
		{Fault: 4, Name: "latency", Start: 40 * s, End: 50 * s},   // reconnects within the fault
		{Fault: 5, Name: "down", Start: 60 * s, End: 65 * s},      // never back
	}
	entries := []timeline.Entry{
		ev(0, "c", timeline.Up),
		ev(12*s, "c", timeline.Down), ev(13*s+400*ms, "c", timeline.Up),
		ev(20*s+5*ms, "c", timeline.Down), ev(20*s+300*ms, "c", timeline.Up),
		ev(31*s+10*ms, "c", timeline.Down), ev(31*s+210*ms, "c", timeline.Up),
		ev(44*s, "c", timeline.Down), ev(45*s, "c", timeline.Up),
		ev(55*s, "c", timeline.Down), ev(55*s+100*ms, "c", timeline.Up), // explained by nothing
		ev(60*s+1*ms, "c", timeline.Down),
		ev(70*s, "other", timeline.Note),
	}
	fig := Measure(entries, windows, "c", 3*s)
	wantDet := []time.Duration{2 * s, 5 * ms, 1*s + 10*ms, 4 * s, 1 * ms}
	wantRec := []time.Duration{400 * ms, 295 * ms, 200 * ms, 1 * s}
	if fig.Outages != 6 || !slices.Equal(fig.Detection, wantDet) || !slices.Equal(fig.Reconnect, wantRec) {
		t.Fatalf("got %d outages, detection %v, reconnect %v\nwant 6, %v, %v", fig.Outages, fig.Detection, fig.Reconnect, wantDet, wantRec)
	}
	// Windows need not come sorted; the figures do not change.
	rev := slices.Clone(windows)
	slices.Reverse(rev)
	if got := Measure(entries, rev, "c", 3*s); !reflect.DeepEqual(got, fig) {
		t.Fatalf("reversed windows: %+v, want %+v", got, fig)
	}
}

// Several outages under one fault: detection is of the first, reconnect of the last; a late outage past
// the slack is nobody's.
func TestAttribute(t *testing.T) {
	windows := []timeline.Window{{Fault: 2, Start: 20 * s, End: 22 * s}, {Fault: 1, Start: 10 * s, End: 12 * s}}
	outs := []Outage{
		{Start: 5 * s, End: 6 * s},                 // before every fault
		{Start: 11 * s, End: 11*s + 500*ms},        // fault 1, back during it
		{Start: 11*s + 800*ms, End: 12*s + 300*ms}, // fault 1 again, back after the heal
		{Start: 16 * s, End: 17 * s},               // 4 s after fault 1's heal: past the slack
		{Start: 21 * s, End: 30 * s, Open: true},   // fault 2, never back
	}
	got := Attribute(outs, windows, 3*s)
	if len(got) != 2 || got[0].Window.Fault != 1 || got[1].Window.Fault != 2 {
		t.Fatalf("faults %+v", got)
	}
	if !slices.Equal(got[0].Outages, outs[1:3]) || !slices.Equal(got[1].Outages, outs[4:5]) {
		t.Fatalf("attributed %+v", got)
	}
	f1 := FaultOf(got[0].Window)
	if d, ok := Detection(f1, got[0].Outages); !ok || d != s {
		t.Fatalf("detection %v %t", d, ok)
	}
	if d, ok := Reconnect(f1, got[0].Outages[1]); !ok || d != 300*ms {
		t.Fatalf("reconnect after the heal %v %t", d, ok)
	}
	if d, ok := Reconnect(f1, got[0].Outages[0]); !ok || d != 500*ms {
		t.Fatalf("reconnect during the fault %v %t", d, ok)
	}
	if _, ok := Reconnect(FaultOf(got[1].Window), got[1].Outages[0]); ok {
		t.Fatal("an open outage has a reconnect time")
	}
}

func TestDetectionReconnectRecovery(t *testing.T) {
	f := Fault{Start: 10 * s, End: 14 * s}
	outs := []Outage{{Start: 2 * s, End: 3 * s}, {Start: 12 * s, End: 14*s + 700*ms}}
	if d, ok := Detection(f, outs); !ok || d != 2*s {
		t.Fatalf("detection %v %t", d, ok)
	}
	if _, ok := Detection(Fault{Start: 20 * s, End: 21 * s}, outs); ok {
		t.Fatal("a fault nobody noticed has a detection time")
	}
	// The outage began after the heal (the heal closed a blackholed connection): reconnect from its start.
	if d, ok := Reconnect(f, Outage{Start: 14*s + 100*ms, End: 14*s + 350*ms}); !ok || d != 250*ms {
		t.Fatalf("reconnect %v %t", d, ok)
	}
	// Connected again 700 ms after the heal, first acknowledgement 1.2 s after it: two figures.
	if d, ok := Reconnect(f, outs[1]); !ok || d != 700*ms {
		t.Fatalf("reconnect %v %t", d, ok)
	}
	acks := []time.Duration{16 * s, 9 * s, 15*s + 200*ms, 14 * s} // unsorted; one exactly at the heal
	if d, ok := Recovery(14*s+1, acks); !ok || d != 1200*ms-1 {
		t.Fatalf("recovery %v %t", d, ok)
	}
	if d, ok := Recovery(14*s, acks); !ok || d != 0 {
		t.Fatalf("an acknowledgement at the heal: recovery %v %t", d, ok)
	}
	if _, ok := Recovery(17*s, acks); ok {
		t.Fatal("nothing acknowledged after the heal, yet a recovery time")
	}
}

func TestBeganAndDownAt(t *testing.T) {
	outs := []Outage{{Start: 2 * s, End: 3 * s}, {Start: 5 * s, End: 6 * s}, {Start: 9 * s, End: 9 * s, Open: true}}
	if n := Began(outs, 3*s); n != 2 {
		t.Fatalf("began %d", n)
	}
	for at, want := range map[time.Duration]bool{1 * s: false, 2 * s: true, 3 * s: false, 5*s + 1: true, 8 * s: false, 9 * s: true, 99 * s: true} {
		if DownAt(outs, at) != want {
			t.Errorf("DownAt(%v) = %t", at, !want)
		}
	}
}

// Acks reads a publisher's acknowledgements from a ledger history: the "ok" completions, not the failed
// or indeterminate ones, nor other publishers'.
func TestAcks(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	l := ledger.New(t0)
	id := func(pub string, seq uint64) ledger.ID { return ledger.ID{Publisher: pub, Topic: "t/" + pub, Seq: seq} }
	l.Complete(l.Invoke(id("a", 1), t0), ledger.OK, t0.Add(300*ms), nil)
	l.Complete(l.Invoke(id("b", 1), t0), ledger.OK, t0.Add(100*ms), nil)
	l.Complete(l.Invoke(id("a", 2), t0), ledger.Fail, t0.Add(400*ms), nil)
	l.Complete(l.Invoke(id("a", 3), t0), ledger.OK, t0.Add(200*ms), nil)
	l.Invoke(id("a", 4), t0)
	if got := Acks(l.Events(), "a"); !slices.Equal(got, []time.Duration{200 * ms, 300 * ms}) {
		t.Fatalf("acks of a: %v", got)
	}
	if got := Acks(l.Events(), "a", "b"); !slices.Equal(got, []time.Duration{100 * ms, 200 * ms, 300 * ms}) {
		t.Fatalf("acks of a and b: %v", got)
	}
	if d, ok := Recovery(150*ms, Acks(l.Events(), "a")); !ok || d != 50*ms {
		t.Fatalf("recovery %v %t", d, ok)
	}
}
