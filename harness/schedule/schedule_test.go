package schedule

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/timeline"
)

func TestRandomIsDeterministic(t *testing.T) {
	for _, seed := range []int64{1, 42, -7, 1 << 40} {
		a, err := Random(seed, 10*time.Minute, RandomOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Random(seed, 10*time.Minute, RandomOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ya, _ := Marshal(a)
		yb, _ := Marshal(b)
		if !reflect.DeepEqual(a, b) || string(ya) != string(yb) {
			t.Fatalf("seed %d: two draws differ:\n%s\n---\n%s", seed, ya, yb)
		}
		if len(a.Faults) < 20 {
			t.Errorf("seed %d: only %d faults in 10 minutes", seed, len(a.Faults))
		}
	}
	a, _ := Random(1, 10*time.Minute, RandomOptions{})
	b, _ := Random(2, 10*time.Minute, RandomOptions{})
	if reflect.DeepEqual(a.Faults, b.Faults) {
		t.Fatal("seeds 1 and 2 drew the same schedule")
	}
}

func TestRandomShape(t *testing.T) {
	total := 30 * time.Minute
	kinds := map[string]faults.Mix{}
	for _, f := range faults.All() {
		kinds[f.Name()] = f.Mix()
	}
	seen := map[string]int{}
	for seed := range int64(20) {
		s, err := Random(seed, total, RandomOptions{})
		if err != nil {
			t.Fatal(err)
		}
		occ, err := s.Occurrences()
		if err != nil {
			t.Fatal(err)
		}
		quiet := min(max(total/6, 2*time.Second), 20*time.Second)
		var prevEnd time.Duration
		for _, o := range occ {
			seen[o.Fault.Name()]++
			if o.At < prevEnd {
				t.Fatalf("seed %d: %s starts before the previous fault ended (%v)", seed, o, prevEnd)
			}
			prevEnd = o.End()
			k := kinds[o.Fault.Name()]
			if o.Duration < k.Min || o.Duration > k.Max {
				t.Errorf("seed %d: %s lasts outside %v–%v", seed, o, k.Min, k.Max)
			}
		}
		if end := s.End(); end > total-quiet {
			t.Errorf("seed %d: last fault ends at %v, inside the final quiet period (after %v)", seed, end, total-quiet)
		}
	}
	for _, name := range faults.Names() {
		if kinds[name].Weight > 0 && seen[name] == 0 {
			t.Errorf("%s never drawn in 20 runs of 30 minutes", name)
		}
	}
	if seen["broker-kill"] != 0 {
		t.Errorf("broker-kill drawn with weight 0")
	}
}

// Every registered fault with a weight is drawn by default (TestRandomShape); a Mix option replaces the
// registry's mixes, so only the broker-kill opt-in may draw it, and it names registered faults only.
func TestRandomMixOption(t *testing.T) {
	k := map[string]faults.Mix{"broker-kill": {Weight: 1, Min: time.Second, Max: time.Second}}
	s, err := Random(3, time.Minute, RandomOptions{Mix: k})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Faults) == 0 || s.Faults[0].Fault != (faults.BrokerKill{}) {
		t.Fatalf("got %+v", s.Faults)
	}
	for _, e := range s.Faults {
		if e.Fault.Name() != "broker-kill" {
			t.Fatalf("the mix option drew %s", e.Fault)
		}
	}
	if _, err := Random(3, time.Minute, RandomOptions{Mix: map[string]faults.Mix{"meteor": {Weight: 1}}}); !errors.Is(err, faults.ErrUnknown) {
		t.Fatalf("an unknown fault in the mix: %v", err)
	}
}

// The client faults stay out of the default schedule and join it when a run opts in, with their opt-in
// weights, beside every default fault; a fault without an opt-in weight cannot be opted in.
func TestRandomOptIn(t *testing.T) {
	def, err := Random(5, 10*time.Minute, RandomOptions{})
	if err != nil {
		t.Fatal(err)
	}
	crash, err := Random(5, 10*time.Minute, RandomOptions{OptIn: faults.CrashNames()})
	if err != nil {
		t.Fatal(err)
	}
	count := func(s *Schedule) (client, other int) {
		for _, e := range s.Faults {
			if e.Fault.Family() == faults.FamilyClient {
				client++
				if e.Duration < 500*time.Millisecond || e.Duration > 5*time.Second {
					t.Errorf("%s held %v, outside its mix", e.Fault, e.Duration)
				}
			} else {
				other++
			}
		}
		return client, other
	}
	if c, _ := count(def); c != 0 {
		t.Fatalf("the default schedule has %d client faults", c)
	}
	seen := map[string]bool{}
	for _, e := range crash.Faults {
		seen[e.Fault.Name()] = true
	}
	if c, o := count(crash); c < 10 || o < 10 || !seen["client-kill"] || !seen["client-power-cut"] {
		t.Fatalf("opted in: %d client faults, %d others, kinds %v", c, o, seen)
	}
	mix := map[string]faults.Mix{"reset": {Weight: 1}}
	if _, err := Random(5, time.Minute, RandomOptions{Mix: mix, OptIn: []string{"client-kill"}}); err != nil || len(mix) != 1 {
		t.Fatalf("%v; the caller's mix became %v", err, mix)
	}
	if _, err := Random(5, time.Minute, RandomOptions{OptIn: []string{"broker-kill"}}); err == nil {
		t.Fatal("opted in a fault without an opt-in weight")
	}
	if _, err := Random(5, time.Minute, RandomOptions{OptIn: []string{"meteor"}}); !errors.Is(err, faults.ErrUnknown) {
		t.Fatalf("an unknown opt-in: %v", err)
	}
}

func TestRandomShortRun(t *testing.T) {
	s, err := Random(7, 10*time.Second, RandomOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.End() > 8*time.Second {
		t.Fatalf("a 10 s run's schedule ends at %v", s.End())
	}
	if _, err := Random(7, 0, RandomOptions{}); err == nil {
		t.Fatal("zero total accepted")
	}
}

const good = `version: 1
name: sample
description: two faults
faults:
  - at: 1s
    fault: latency
    duration: 2s
    params: {latency: 300ms, jitter: 50ms}
  - {at: 4s, fault: reset, repeat: {every: 1s, count: 3}}
  - {at: 4s, fault: broker-pause, duration: 1500ms}
`

func TestParse(t *testing.T) {
	s, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "sample" || s.Description != "two faults" || len(s.Faults) != 3 {
		t.Fatalf("parsed %+v", s)
	}
	occ, err := s.Occurrences()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range occ {
		got = append(got, o.String())
	}
	want := []string{
		"faults[0] latency(jitter=50ms, latency=300ms) at 1s for 2s",
		"faults[1] reset at 4s",
		"faults[2] broker-pause at 4s for 1.5s",
		"faults[1]#1 reset at 5s",
		"faults[1]#2 reset at 6s",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("occurrences\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s.End() != 6*time.Second {
		t.Fatalf("end %v", s.End())
	}
}

// Each bad trace must be refused before anything starts, with the line and the field of the problem.
func TestParseErrorsNameLineAndField(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // each must appear in the error
	}{
		{"unknown top-level field", "version: 1\nfaults: []\nfautls: []\n", []string{"line 3: fautls: unknown field"}},
		{"missing version", "faults: []\n", []string{"line 1: version: missing"}},
		{"wrong version", "version: 2\nfaults: []\n", []string{`line 1: version: "2" is not supported`}},
		{"unknown fault field", "version: 1\nfaults:\n  - at: 1s\n    fault: reset\n    durration: 2s\n",
			[]string{"line 5: faults[0].durration: unknown field"}},
		{"bad duration", "version: 1\nfaults:\n  - at: 1s\n    fault: blackhole\n    duration: 3x\n",
			[]string{`line 5: faults[0].duration: "3x" is not a duration`}},
		{"unitless duration", "version: 1\nfaults:\n  - {at: 5, fault: reset}\n",
			[]string{`line 3: faults[0].at: "5" is not a duration`, "write 5s"}},
		{"unknown fault", "version: 1\nfaults:\n  - at: 1s\n    fault: meteor\n    duration: 2s\n",
			[]string{`line 4: faults[0].fault: unknown fault "meteor"`}},
		{"negative time", "version: 1\nfaults:\n  - {at: -2s, fault: reset}\n",
			[]string{"line 3: faults[0].at: -2s is negative"}},
		{"bad parameter", "version: 1\nfaults:\n  - at: 1s\n    fault: latency\n    duration: 2s\n    params:\n      latency: fast\n",
			[]string{`line 7: faults[0].params.latency: "fast" is not a duration`}},
		{"unknown parameter", "version: 1\nfaults:\n  - at: 1s\n    fault: bandwidth\n    duration: 2s\n    params: {rate: 8, burst: 2}\n",
			[]string{`line 6: faults[0].params.burst: not a parameter of this fault`}},
		{"slicer variation", "version: 1\nfaults:\n  - {at: 1s, fault: slicer, duration: 2s, params: {average: 4, variation: 4}}\n",
			[]string{"line 3: faults[0].params.variation: 4 must be smaller than average"}},
		{"missing duration", "version: 1\nfaults:\n  - {at: 1s, fault: down}\n",
			[]string{"line 3: faults[0].duration: missing: down needs a duration"}},
		{"duration on a one-shot", "version: 1\nfaults:\n  - {at: 1s, fault: reset, duration: 2s}\n",
			[]string{"line 3: faults[0].duration: reset happens at once"}},
		{"missing at and fault", "version: 1\nfaults:\n  - {duration: 2s}\n",
			[]string{"line 3: faults[0].at: missing", "line 3: faults[0].fault: missing"}},
		{"overlapping link faults", "version: 1\nfaults:\n  - {at: 1s, fault: latency, duration: 5s}\n  - {at: 3s, fault: blackhole, duration: 1s}\n",
			[]string{"line 4: faults[1].at: blackhole (faults[1]) (3s–4s) overlaps latency (faults[0]) (1s–6s)", "healing one heals the whole link"}},
		{"overlapping broker faults", "version: 1\nfaults:\n  - {at: 1s, fault: broker-restart, duration: 5s}\n  - {at: 2s, fault: broker-pause, duration: 1s}\n",
			[]string{"line 4: faults[1].at:", "broker faults cannot overlap"}},
		{"repeat overlapping itself", "version: 1\nfaults:\n  - {at: 1s, fault: down, duration: 5s, repeat: {every: 2s, count: 3}}\n",
			[]string{"line 3: faults[0].repeat.every: 2s is shorter than the duration 5s"}},
		{"repeat count", "version: 1\nfaults:\n  - at: 1s\n    fault: reset\n    repeat: {every: 2s, count: 0}\n",
			[]string{"line 5: faults[0].repeat.count: 0 is not between 1 and"}},
		{"repeat unknown field", "version: 1\nfaults:\n  - at: 1s\n    fault: reset\n    repeat:\n      every: 2s\n      times: 3\n",
			[]string{"line 7: faults[0].repeat.times: unknown field", "faults[0].repeat.count: missing"}},
		{"duplicate key", "version: 1\nfaults:\n  - at: 1s\n    fault: reset\n    at: 2s\n", []string{"line 5: faults[0].at: given twice (first on line 3)"}},
		{"faults not a list", "version: 1\nfaults: {at: 1s}\n", []string{"line 2: faults: want a list"}},
		{"entry not a mapping", "version: 1\nfaults:\n  - reset\n  - {at: 1s, fault: meteor}\n",
			[]string{`line 3: faults[0]: want a mapping`, `line 4: faults[1].fault: unknown fault`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil {
				t.Fatalf("accepted:\n%s", c.yaml)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("not a *ValidationError: %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseSyntaxError(t *testing.T) {
	_, err := Parse([]byte("version: 1\nfaults:\n  - {at: 1s\n"))
	if err == nil || !strings.Contains(err.Error(), "line") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(p, []byte("version: 1\nfaults:\n  - {at: 1s, fault: down}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), p+":3: faults[0].duration") {
		t.Fatalf("got %v", err)
	}
	p = filepath.Join(dir, "unnamed.yaml")
	if err := os.WriteFile(p, []byte("version: 1\nfaults: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(p)
	if err != nil || s.Name != "unnamed" {
		t.Fatalf("got %+v, %v", s, err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing file loaded")
	}
}

// Every shipped trace loads, stays within two minutes, and survives a Marshal/Parse round trip.
func TestShippedTraces(t *testing.T) {
	paths, err := filepath.Glob("../../traces/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ap-reboot", "broker-restart", "client-crash", "edge-of-wifi", "flapping-link", "long-outage-backlog"}
	var names []string
	for _, p := range paths {
		s, err := Load(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		names = append(names, s.Name)
		if base := strings.TrimSuffix(filepath.Base(p), ".yaml"); s.Name != base {
			t.Errorf("%s: name %q differs from the file name", p, s.Name)
		}
		if s.Description == "" || len(s.Faults) == 0 {
			t.Errorf("%s: no description or no faults", p)
		}
		if end := s.End(); end > 110*time.Second {
			t.Errorf("%s: ends at %v: it must replay (with a quiet tail) in 2 minutes", p, end)
		}
		roundTrip(t, s)
	}
	if !slices.Equal(names, want) {
		t.Errorf("shipped traces %v, want %v", names, want)
	}
}

func roundTrip(t *testing.T, s *Schedule) {
	t.Helper()
	b, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !sameSchedule(s, back) {
		t.Fatalf("round trip changed the schedule:\n%+v\n%s\n%+v", s, b, back)
	}
}

// sameSchedule compares two schedules, ignoring where their entries were read from.
func sameSchedule(a, b *Schedule) bool {
	a, b = a.Clone(), b.Clone()
	for _, s := range []*Schedule{a, b} {
		for i := range s.Faults {
			s.Faults[i].Line = 0
		}
	}
	return reflect.DeepEqual(a, b)
}

func TestRandomRoundTrip(t *testing.T) {
	for seed := range int64(10) {
		s, err := Random(seed, 5*time.Minute, RandomOptions{})
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, s)
	}
}

func TestMarshalRefusesInvalid(t *testing.T) {
	s := &Schedule{Faults: []Entry{{At: time.Second, Fault: faults.Down{}}}}
	if _, err := Marshal(s); err == nil || !strings.Contains(err.Error(), "faults[0].duration: missing") {
		t.Fatalf("got %v", err)
	}
}

func ev(at time.Duration, src string, k timeline.Kind) timeline.Entry {
	return timeline.Entry{At: at, Source: src, Kind: k}
}

// A field log (client up/down events) becomes a trace that replays the same outages, and survives Marshal
// and Parse unchanged.
func TestRecordRoundTrip(t *testing.T) {
	ms := time.Millisecond
	s := time.Second
	entries := []timeline.Entry{
		ev(0, "c1", timeline.Up), ev(0, "c2", timeline.Up), ev(0, "observer", timeline.Up),
		// One outage seen by both clients, slightly apart: merged.
		ev(2*s, "c1", timeline.Down), ev(2*s+120*ms, "c2", timeline.Down),
		ev(4*s+300*ms, "c1", timeline.Up), ev(4*s+910*ms, "c2", timeline.Up),
		// The observer's own outage does not count.
		ev(6*s, "observer", timeline.Down), ev(7*s, "observer", timeline.Up),
		// A blip and a long outage of c1 only.
		ev(10*s, "c1", timeline.Down), ev(10*s+20*ms, "c1", timeline.Up),
		ev(20*s, "c1", timeline.Down), ev(50*s, "c1", timeline.Up),
		// The link's fault entries are not outages.
		{At: 30 * s, Source: "link", Kind: timeline.FaultStart, Fault: 1, Name: "down"},
	}
	rec, err := Record(entries, RecordOptions{Name: "field"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{At: 2 * s, Fault: faults.Down{}, Duration: 2*s + 910*ms},
		{At: 10 * s, Fault: faults.Down{}, Duration: 100 * ms},
		{At: 20 * s, Fault: faults.Down{}, Duration: 30 * s},
	}
	if !reflect.DeepEqual(rec.Clone().Faults, want) {
		t.Fatalf("recorded %+v\nwant %+v", rec.Faults, want)
	}
	roundTrip(t, rec)

	bh, err := Record(entries, RecordOptions{Sources: []string{"c2"}, Fault: faults.Blackhole{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(bh.Faults) != 1 || bh.Faults[0].Fault != (faults.Blackhole{}) || bh.Faults[0].Duration != 2*s+790*ms {
		t.Fatalf("c2 alone: %+v", bh.Faults)
	}
	// One-shot, broker and invalid faults cannot replay an outage.
	for _, f := range []faults.Fault{faults.Reset{}, faults.BrokerRestart{}, faults.Slicer{}} {
		if _, err := Record(entries, RecordOptions{Fault: f}); err == nil {
			t.Errorf("record as %s accepted", f)
		}
	}
}

// Every registered fault can be written in a trace and read back, with its default parameters and with
// drawn ones: a new fault's file is all a trace needs.
func TestEveryFaultInATrace(t *testing.T) {
	s := &Schedule{Name: "all"}
	at := time.Second
	r := rand.New(rand.NewPCG(5, 6))
	for _, proto := range faults.All() {
		for _, f := range []faults.Fault{proto, proto.Draw(r)} {
			e := Entry{At: at, Fault: f}
			if !f.OneShot() {
				e.Duration = time.Second
			}
			s.Faults = append(s.Faults, e)
			at += 2 * time.Second
		}
	}
	roundTrip(t, s)
	b, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range faults.Names() {
		if !strings.Contains(string(b), "fault: "+name+"\n") && !strings.Contains(string(b), "fault: "+name+",") {
			t.Errorf("the trace does not name %s:\n%s", name, b)
		}
	}
}

// traces/README.md's table of faults lists every registered fault, each with its default parameters.
func TestTracesReadmeListsEveryFault(t *testing.T) {
	b, err := os.ReadFile("../../traces/README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // fault → its params cell
	for line := range strings.Lines(string(b)) {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if !strings.HasSuffix(name, ".yaml") {
			rows[name] = cells[2]
		}
	}
	var names []string
	for n := range rows {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, faults.Names()) {
		t.Fatalf("the README lists %v, the registry holds %v", names, faults.Names())
	}
	for _, f := range faults.All() {
		for k, v := range faults.Params(f) {
			if !strings.Contains(rows[f.Name()], "`"+k+": "+v+"`") {
				t.Errorf("the README's %s row does not give `%s: %s`: %s", f.Name(), k, v, rows[f.Name()])
			}
		}
	}
}
