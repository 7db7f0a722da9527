package k8s

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/schedule"
)

// root is the repository's root, from this package's directory.
const root = "../.."

func shippedTraces(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, "traces", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no shipped traces (%v)", err)
	}
	return paths
}

// Every fault of the registry has a place, and each one placed on Chaos Mesh has a spec that validates,
// against the in-cluster broker and an external one.
func TestPlacementCoversTheRegistry(t *testing.T) {
	seen := map[Where]int{}
	for _, f := range faults.All() {
		p := Placement(f)
		seen[p.Where]++
		if p.Why == "" {
			t.Errorf("%s: placed %s with no reason", f.Name(), p.Where)
		}
		switch p.Where {
		case ChaosMesh:
			for _, o := range []Options{{Namespace: "mqttas"}, {Namespace: "mqttas", ExternalBrokers: []string{"10.0.0.7", "mqtt.example.org"}}} {
				s, err := networkSpec(f, p.Action, 3*time.Second, o)
				if err != nil {
					t.Fatalf("%s: %v", f.Name(), err)
				}
				n := &NetworkChaos{Spec: s}
				n.APIVersion, n.Kind, n.Name, n.Namespace = ChaosAPIVersion, KindNetworkChaos, "x", "mqttas"
				if err := n.Validate(); err != nil {
					t.Errorf("%s %+v: %v", f.Name(), o, err)
				}
			}
		case InPod:
			if f.Family() == faults.FamilyBroker {
				t.Errorf("%s: a broker fault cannot be made by the pod's link", f.Name())
			}
		case NotRendered:
			if f.Family() != faults.FamilyBroker {
				t.Errorf("%s: only broker faults are left out", f.Name())
			}
		default:
			t.Errorf("%s: placed at %q", f.Name(), p.Where)
		}
	}
	if seen[ChaosMesh] == 0 || seen[InPod] == 0 {
		t.Errorf("placements %v: want faults both on Chaos Mesh and in the pod", seen)
	}
}

// deploy/README.md's table says where each registered fault goes, as Placement does.
func TestDeployReadmeListsEveryPlacement(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "deploy", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The table that starts with "| fault | where |", to its first line that is not a row.
	rows := map[string]string{}
	in := false
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "| fault | where |"):
			in = true
			continue
		case !in:
			continue
		case !strings.HasPrefix(line, "|"):
			in = false
			continue
		}
		if cells := strings.Split(line, "|"); len(cells) > 3 && strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			rows[strings.Trim(strings.TrimSpace(cells[1]), "`")] = strings.TrimSpace(cells[2])
		}
	}
	if len(rows) == 0 {
		t.Fatal("deploy/README.md: no table starting with | fault | where |")
	}
	for _, f := range faults.All() {
		p := Placement(f)
		want := string(p.Where)
		if p.Action != "" {
			want += " " + p.Action
		}
		if got, ok := rows[f.Name()]; !ok {
			t.Errorf("deploy/README.md: no row for %s (want %q)", f.Name(), want)
		} else if got != want {
			t.Errorf("deploy/README.md: %s is %q, Placement says %q", f.Name(), got, want)
		}
		delete(rows, f.Name())
	}
	for name := range rows {
		t.Errorf("deploy/README.md: a row for %s, which is not a registered fault", name)
	}
}

// Every shipped trace renders, against either broker; every Chaos Mesh object decodes strictly and
// validates; the in-pod trace reads back as a trace of in-pod faults only; and nothing of the trace is
// lost on the way.
func TestShippedTracesRender(t *testing.T) {
	for _, path := range shippedTraces(t) {
		s, err := schedule.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range []Options{{Tail: 10 * time.Second}, {ExternalBrokers: []string{"mqtt.example.org"}, Tail: 10 * time.Second}} {
			r, err := Render(s, o)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if got := len(r.Chaos) + len(r.InPod.Faults) + len(r.Skipped); got != len(s.Faults) {
				t.Errorf("%s: %d chaos + %d in-pod + %d skipped for %d entries", path, len(r.Chaos), len(r.InPod.Faults), len(r.Skipped), len(s.Faults))
			}
			if r.Duration != s.End()+o.Tail {
				t.Errorf("%s: duration %v, want the trace's end %v + %v", path, r.Duration, s.End(), o.Tail)
			}
			files, objs := renderedFiles(t, path, r)
			if len(objs) != len(r.Chaos) {
				t.Errorf("%s: %d objects decoded from %d", path, len(objs), len(r.Chaos))
			}
			for _, obj := range objs {
				checkChaos(t, path, obj, s, o)
			}
			back, err := schedule.Parse(files[TraceFile])
			if err != nil {
				t.Fatalf("%s: the in-pod trace: %v", path, err)
			}
			for _, e := range back.Faults {
				if Placement(e.Fault).Where != InPod {
					t.Errorf("%s: %s in the pod's trace", path, e.Fault)
				}
			}
			if len(back.Faults) != len(r.InPod.Faults) {
				t.Errorf("%s: the in-pod trace has %d faults, want %d", path, len(back.Faults), len(r.InPod.Faults))
			}
		}
	}
}

// renderedFiles returns the overlay's files of r and its Chaos Mesh objects, decoded strictly.
func renderedFiles(t *testing.T, path string, r *Rendering) (map[string][]byte, []Object) {
	t.Helper()
	files, err := r.Files("../base")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(bytes.NewReader(files[ChaosFile]))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return files, objs
}

// checkChaos checks a decoded Chaos Mesh object against the trace entry it came from.
func checkChaos(t *testing.T, path string, obj Object, s *schedule.Schedule, o Options) {
	t.Helper()
	var meta map[string]string
	var spec NetworkChaosSpec
	switch v := obj.Value.(type) {
	case *NetworkChaos:
		meta, spec = v.Annotations, v.Spec
	case *Schedule:
		meta, spec = v.Annotations, *v.Spec.NetworkChaos
		if v.Spec.Schedule == "" || meta[AnnotationCount] == "" || meta[AnnotationUntil] == "" {
			t.Errorf("%s: %s: a schedule without its period, count or end", path, obj.Name)
		}
	default:
		t.Fatalf("%s: %T in chaos.yaml", path, obj.Value)
	}
	i := slices.IndexFunc(s.Faults, func(e schedule.Entry) bool {
		return e.Fault.String() == meta[AnnotationFault] && e.At.String() == meta[AnnotationAt]
	})
	if i < 0 {
		t.Fatalf("%s: %s: no entry %s at %s", path, obj.Name, meta[AnnotationFault], meta[AnnotationAt])
	}
	e := s.Faults[i]
	if (e.Repeat != nil) != (obj.Kind == KindSchedule) {
		t.Errorf("%s: %s is a %s for repeat %v", path, obj.Name, obj.Kind, e.Repeat)
	}
	if spec.Action != Placement(e.Fault).Action || spec.Duration != e.Duration.String() {
		t.Errorf("%s: %s: action %s for %s, want %s for %v", path, obj.Name, spec.Action, spec.Duration, Placement(e.Fault).Action, e.Duration)
	}
	if !maps.Equal(spec.Selector.LabelSelectors, ShardLabels) {
		t.Errorf("%s: %s picks %v, not the shards", path, obj.Name, spec.Selector.LabelSelectors)
	}
	if len(o.ExternalBrokers) > 0 {
		if !slices.Equal(spec.ExternalTargets, o.ExternalBrokers) || spec.Target != nil {
			t.Errorf("%s: %s: targets %v %v, want the external brokers", path, obj.Name, spec.ExternalTargets, spec.Target)
		}
	} else if spec.Target == nil || !maps.Equal(spec.Target.Selector.LabelSelectors, BrokerLabels) {
		t.Errorf("%s: %s: target %+v, want the broker's pods", path, obj.Name, spec.Target)
	}
	if l, ok := e.Fault.(faults.Latency); ok {
		want := l.Latency
		if len(o.ExternalBrokers) > 0 {
			want *= 2 // one direction carries the round trip's delay
		}
		if spec.Delay.Latency != want.String() {
			t.Errorf("%s: %s: latency %s, want %v", path, obj.Name, spec.Delay.Latency, want)
		}
	}
}

func TestRenderRefusesBadInput(t *testing.T) {
	if _, err := Render(nil, Options{}); !errors.Is(err, ErrTrace) {
		t.Errorf("nil trace: %v", err)
	}
	s, err := schedule.Parse([]byte("version: 1\nname: '***'\nfaults: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Render(s, Options{}); !errors.Is(err, ErrTrace) || !strings.Contains(err.Error(), "name") {
		t.Errorf("a name with nothing to name objects by: %v", err)
	}
	s.Name = "ok"
	if _, err := Render(s, Options{Tail: -time.Second}); !errors.Is(err, ErrTrace) {
		t.Errorf("negative tail: %v", err)
	}
	// A schedule built in Go that overlaps itself is refused as the trace reader would.
	bad := &schedule.Schedule{Name: "x", Faults: []schedule.Entry{
		{At: 0, Fault: faults.Blackhole{}, Duration: 5 * time.Second},
		{At: time.Second, Fault: faults.Latency{Latency: time.Second}, Duration: time.Second},
	}}
	if _, err := Render(bad, Options{}); !errors.Is(err, ErrTrace) || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("overlapping faults: %v", err)
	}
	for _, bad := range []string{"10.0.0.1:1883", "not a host", ""} {
		r, err := Render(&schedule.Schedule{Name: "x", Faults: []schedule.Entry{{Fault: faults.Blackhole{}, Duration: time.Second}}},
			Options{ExternalBrokers: []string{bad}})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("external broker %q: %v, %v", bad, r, err)
		}
	}
}

func TestWriteNeedsABase(t *testing.T) {
	s, _ := schedule.Parse([]byte("version: 1\nname: x\nfaults: []\n"))
	r, err := Render(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := r.Write(filepath.Join(dir, "o"), filepath.Join(dir, "missing")); !errors.Is(err, ErrTrace) {
		t.Errorf("a base with no kustomization: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "o")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the overlay was written all the same: %v", err)
	}
}
