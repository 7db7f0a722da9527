package k8s

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/mqttas/mqttas-go/harness/schedule"
)

// KindWorkflow is Chaos Mesh's sequence of experiments in time.
const KindWorkflow = "Workflow"

// Workflow is a Chaos Mesh workflow: templates run from Entry, Serial ones one child after the other,
// Parallel ones all children at once, a Suspend waiting its Deadline, a NetworkChaos in force for its
// Deadline. Unlike a NetworkChaos (which starts when created) or a Schedule (which repeats until deleted),
// it keeps a trace's times, from its own creation.
type Workflow struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              WorkflowSpec `json:"spec"`
}

// WorkflowSpec is a Workflow's spec.
type WorkflowSpec struct {
	Entry     string     `json:"entry"`
	Templates []Template `json:"templates"`
}

// Template is one step of a Workflow, of the types written here: Serial, Parallel, Suspend, NetworkChaos.
type Template struct {
	Name         string            `json:"name"`
	Type         string            `json:"templateType"`
	Deadline     string            `json:"deadline,omitempty"`
	Children     []string          `json:"children,omitempty"`
	NetworkChaos *NetworkChaosSpec `json:"networkChaos,omitempty"`
}

// Template types written.
const (
	TemplateSerial   = "Serial"
	TemplateParallel = "Parallel"
	TemplateSuspend  = "Suspend"
)

// MaxTemplates bounds the templates of one rendered Workflow (each repetition of a fault is one, and one
// more for the pause after it): an object must stay well under etcd's limit.
const MaxTemplates = 2000

// Validate checks w against the CRD schema's enums and formats, and that its templates make a tree from
// the entry: every child named, none reached twice, none left out.
func (w *Workflow) Validate() error {
	c := &checker{what: "Workflow " + w.Name}
	c.meta(w.TypeMeta, w.ObjectMeta, KindWorkflow)
	if len(w.Spec.Templates) > MaxTemplates {
		c.addf("spec.templates", "%d templates, more than %d", len(w.Spec.Templates), MaxTemplates)
		return errors.Join(c.errs...)
	}
	byName := map[string]Template{}
	for i, t := range w.Spec.Templates {
		field := fmt.Sprintf("spec.templates[%d]", i)
		for _, msg := range validation.IsDNS1123Label(t.Name) {
			c.addf(field+".name", "%q: %s", t.Name, msg)
		}
		if _, dup := byName[t.Name]; dup {
			c.addf(field+".name", "%q given twice", t.Name)
		}
		byName[t.Name] = t
		if t.Deadline != "" {
			c.duration(field+".deadline", t.Deadline, false)
		}
		switch t.Type {
		case TemplateSerial, TemplateParallel:
			if len(t.Children) == 0 {
				c.addf(field+".children", "none for a %s template", t.Type)
			}
			if t.NetworkChaos != nil {
				c.addf(field+".networkChaos", "given for a %s template", t.Type)
			}
		case TemplateSuspend:
			c.duration(field+".deadline", t.Deadline, true)
			if len(t.Children) > 0 || t.NetworkChaos != nil {
				c.addf(field, "a Suspend template with children or chaos")
			}
		case KindNetworkChaos:
			c.duration(field+".deadline", t.Deadline, true)
			if t.NetworkChaos == nil {
				c.addf(field+".networkChaos", "missing for a NetworkChaos template")
			} else {
				// In a workflow the template's deadline is the fault's duration.
				c.spec(field+".networkChaos", *t.NetworkChaos, false)
				if t.NetworkChaos.Duration != "" {
					c.addf(field+".networkChaos.duration", "given in a workflow, where the deadline says it")
				}
			}
			if len(t.Children) > 0 {
				c.addf(field+".children", "given for a NetworkChaos template")
			}
		default:
			c.addf(field+".templateType", "%q is not one of %s (the types written here)", t.Type,
				strings.Join([]string{TemplateSerial, TemplateParallel, TemplateSuspend, KindNetworkChaos}, ", "))
		}
	}
	if len(c.errs) > 0 {
		return errors.Join(c.errs...)
	}
	if _, ok := byName[w.Spec.Entry]; !ok {
		c.addf("spec.entry", "%q names no template", w.Spec.Entry)
		return errors.Join(c.errs...)
	}
	// A tree from the entry: bounded by the number of templates, since none may be reached twice.
	seen := map[string]bool{w.Spec.Entry: true}
	queue := []string{w.Spec.Entry}
	for len(queue) > 0 && len(seen) <= len(byName) {
		t := byName[queue[0]]
		queue = queue[1:]
		for _, ch := range t.Children {
			switch {
			case byName[ch].Name == "":
				c.addf("spec.templates", "%s names child %q, which is no template", t.Name, ch)
			case seen[ch]:
				c.addf("spec.templates", "%s is reached twice (from %s)", ch, t.Name)
			default:
				seen[ch] = true
				queue = append(queue, ch)
			}
		}
	}
	if len(c.errs) == 0 && len(seen) != len(byName) {
		var unused []string
		for name := range byName {
			if !seen[name] {
				unused = append(unused, name)
			}
		}
		slices.Sort(unused)
		c.addf("spec.templates", "not reached from the entry: %s", strings.Join(unused, ", "))
	}
	return errors.Join(c.errs...)
}

// Timed is a NetworkChaos template of a Workflow with the time it starts, from the Workflow's start.
type Timed struct {
	Template string
	At       time.Duration
	Duration time.Duration
	Spec     NetworkChaosSpec
}

// Timeline works out when each NetworkChaos template of a valid Workflow starts: a Serial template's
// children one after the other, a Parallel one's all at its start; a template takes its deadline, a
// Serial one the sum of its children's, a Parallel one the longest.
func (w *Workflow) Timeline() ([]Timed, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	byName := map[string]Template{}
	for _, t := range w.Spec.Templates {
		byName[t.Name] = t
	}
	var out []Timed
	var walk func(name string, at time.Duration) time.Duration
	walk = func(name string, at time.Duration) time.Duration {
		t := byName[name]
		d, _ := time.ParseDuration(t.Deadline) // validated
		switch t.Type {
		case TemplateSerial:
			end := at
			for _, ch := range t.Children {
				end = walk(ch, end)
			}
			return end
		case TemplateParallel:
			end := at
			for _, ch := range t.Children {
				end = max(end, walk(ch, at))
			}
			return end
		case KindNetworkChaos:
			out = append(out, Timed{Template: name, At: at, Duration: d, Spec: *t.NetworkChaos})
		}
		return at + d
	}
	walk(w.Spec.Entry, 0)
	slices.SortStableFunc(out, func(a, b Timed) int { return cmp.Compare(a.At, b.At) })
	return out, nil
}

// workflow renders the Chaos Mesh entries of s as one Workflow: a Parallel entry of one Serial per
// entry, each a Suspend until the entry's time, then each repetition (a NetworkChaos for the fault's
// duration) with a Suspend for the rest of the period between them.
func workflow(name string, s *schedule.Schedule, entries []int, specs map[int]NetworkChaosSpec, o Options) (*Workflow, error) {
	w := &Workflow{TypeMeta: metav1.TypeMeta{APIVersion: ChaosAPIVersion, Kind: KindWorkflow},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace,
			Labels:      map[string]string{"app.kubernetes.io/name": "mqttas-soak", "app.kubernetes.io/component": "chaos"},
			Annotations: map[string]string{AnnotationTrace: s.Name}},
		Spec: WorkflowSpec{Entry: name}}
	root := Template{Name: name, Type: TemplateParallel}
	add := func(t Template) error {
		if len(w.Spec.Templates) >= MaxTemplates-1 {
			return fmt.Errorf("%w: the workflow would have more than %d templates (a repetition is one or two); render without -workflow", ErrTrace, MaxTemplates)
		}
		w.Spec.Templates = append(w.Spec.Templates, t)
		return nil
	}
	for _, i := range entries {
		e := s.Faults[i]
		prefix := fmt.Sprintf("%s-%d-%s", name, i, e.Fault.Name())
		serial := Template{Name: prefix, Type: TemplateSerial}
		if e.At > 0 {
			if err := add(Template{Name: prefix + "-wait", Type: TemplateSuspend, Deadline: e.At.String()}); err != nil {
				return nil, err
			}
			serial.Children = append(serial.Children, prefix+"-wait")
		}
		count, every := 1, time.Duration(0)
		if e.Repeat != nil {
			count, every = e.Repeat.Count, e.Repeat.Every
		}
		for k := range count {
			if k > 0 && every > e.Duration {
				gap := fmt.Sprintf("%s-%d-gap", prefix, k)
				if err := add(Template{Name: gap, Type: TemplateSuspend, Deadline: (every - e.Duration).String()}); err != nil {
					return nil, err
				}
				serial.Children = append(serial.Children, gap)
			}
			spec := specs[i]
			spec.Duration = ""
			fault := fmt.Sprintf("%s-%d", prefix, k)
			if err := add(Template{Name: fault, Type: KindNetworkChaos, Deadline: e.Duration.String(), NetworkChaos: &spec}); err != nil {
				return nil, err
			}
			serial.Children = append(serial.Children, fault)
		}
		if err := add(serial); err != nil {
			return nil, err
		}
		root.Children = append(root.Children, serial.Name)
	}
	w.Spec.Templates = append([]Template{root}, w.Spec.Templates...)
	return w, w.Validate()
}
