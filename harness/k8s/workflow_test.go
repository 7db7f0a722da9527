package k8s

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/schedule"
)

// With Workflow, every shipped trace renders as one Workflow that decodes strictly and starts each
// Chaos Mesh fault at the trace's time, for the trace's duration, every repetition included.
func TestWorkflowKeepsTheTraceTimes(t *testing.T) {
	for _, path := range shippedTraces(t) {
		s, err := schedule.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		occ, err := s.Occurrences()
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, o := range occ {
			if p := Placement(o.Fault); p.Where == ChaosMesh {
				want = append(want, fmt.Sprintf("%v+%v %s", o.At, o.Duration, p.Action))
			}
		}
		for _, o := range []Options{{Workflow: true}, {Workflow: true, ExternalBrokers: []string{"10.0.0.9"}}} {
			r, err := Render(s, o)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if len(want) == 0 {
				if len(r.Chaos) != 0 {
					t.Errorf("%s: %d Chaos Mesh objects for no Chaos Mesh fault", path, len(r.Chaos))
				}
				continue
			}
			_, objs := renderedFiles(t, path, r)
			if len(objs) != 1 || objs[0].Kind != KindWorkflow {
				t.Fatalf("%s: %d objects, want one Workflow", path, len(objs))
			}
			tl, err := objs[0].Value.(*Workflow).Timeline()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, x := range tl {
				got = append(got, fmt.Sprintf("%v+%v %s", x.At, x.Duration, x.Spec.Action))
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s: the workflow runs\n%s\nthe trace has\n%s", path, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	}
}

func TestWorkflowTooLarge(t *testing.T) {
	s := &schedule.Schedule{Name: "many", Faults: []schedule.Entry{{At: time.Second, Fault: faults.Latency{Latency: time.Second},
		Duration: time.Second, Repeat: &schedule.Repeat{Every: 2 * time.Second, Count: schedule.MaxCount}}}}
	if _, err := Render(s, Options{Workflow: true}); !errors.Is(err, ErrTrace) || !strings.Contains(err.Error(), "templates") {
		t.Errorf("a workflow of 20,000 templates: %v", err)
	}
	// The same trace renders as a Schedule.
	if _, err := Render(s, Options{}); err != nil {
		t.Error(err)
	}
}

const goodWorkflow = `apiVersion: chaos-mesh.org/v1alpha1
kind: Workflow
metadata: {name: t, namespace: mqttas}
spec:
  entry: t
  templates:
  - {name: t, templateType: Parallel, children: [t-0]}
  - {name: t-0, templateType: Serial, children: [t-0-wait, t-0-0]}
  - {name: t-0-wait, templateType: Suspend, deadline: 5s}
  - name: t-0-0
    templateType: NetworkChaos
    deadline: 3s
    networkChaos:
      action: partition
      mode: all
      selector: {labelSelectors: {app.kubernetes.io/name: mqttas-soak}}
      direction: both
      target: {mode: all, selector: {labelSelectors: {app.kubernetes.io/name: mosquitto}}}
`

func TestWorkflowRefuses(t *testing.T) {
	objs, err := Decode(strings.NewReader(goodWorkflow))
	if err != nil {
		t.Fatal(err)
	}
	if tl, _ := objs[0].Value.(*Workflow).Timeline(); len(tl) != 1 || tl[0].At != 5*time.Second || tl[0].Duration != 3*time.Second {
		t.Errorf("timeline %+v", tl)
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"no entry", strings.Replace(goodWorkflow, "entry: t\n", "entry: x\n", 1), `"x" names no template`},
		{"unknown child", strings.Replace(goodWorkflow, "children: [t-0]", "children: [t-0, t-9]", 1), `child "t-9"`},
		{"reached twice", strings.Replace(goodWorkflow, "children: [t-0]", "children: [t-0, t-0-0]", 1), "t-0-0 is reached twice"},
		{"a cycle", strings.Replace(goodWorkflow, "children: [t-0-wait, t-0-0]", "children: [t-0-wait, t-0-0, t]", 1), "t is reached twice"},
		{"left out", strings.Replace(goodWorkflow, "children: [t-0-wait, t-0-0]", "children: [t-0-0]", 1), "not reached from the entry: t-0-wait"},
		{"name twice", strings.Replace(goodWorkflow, "name: t-0-wait,", "name: t-0,", 1), `"t-0" given twice`},
		{"suspend without deadline", strings.Replace(goodWorkflow, ", deadline: 5s}", "}", 1), "deadline: missing"},
		{"bad deadline", strings.Replace(goodWorkflow, "deadline: 5s", "deadline: \"5\"", 1), `"5" is not a duration`},
		{"duration in a workflow", strings.Replace(goodWorkflow, "action: partition", "action: partition\n      duration: 3s", 1), "where the deadline says it"},
		{"other type", strings.Replace(goodWorkflow, "templateType: Parallel", "templateType: Task", 1), `"Task" is not one of`},
		{"serial without children", strings.Replace(goodWorkflow, "templateType: Parallel, children: [t-0]", "templateType: Parallel", 1), "none for a Parallel template"},
		{"old field names", strings.Replace(goodWorkflow, "children: [t-0]", "tasks: [t-0]", 1), `unknown field "spec.templates[0].tasks"`},
		{"bad chaos", strings.Replace(goodWorkflow, "direction: both", "direction: sideways", 1), `"sideways" is not one of`},
	} {
		if _, err := Decode(strings.NewReader(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
