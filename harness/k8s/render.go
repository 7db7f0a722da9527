// Package k8s renders a soak trace for a fleet run on Kubernetes: the faults Chaos Mesh can make on the
// shard pods' network become NetworkChaos objects (a Schedule for a repeated one), and the rest stay with
// the soak in each pod, which runs them through its own Toxiproxy link from a trace in a ConfigMap. Where
// each fault of the registry goes is Placement's answer, from the fault's type and family: nothing here
// lists the faults a second time.
//
// The fleet's manifests are in deploy/ (Kustomize); Write puts a rendering beside them as an overlay.
// Decode reads rendered objects back strictly, into k8s.io/api's types and this package's Chaos Mesh types.
package k8s

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/schedule"
)

// Labels of the fleet's pods, as deploy/ sets them; the rendered selectors pick pods by them.
var (
	ShardLabels  = map[string]string{"app.kubernetes.io/name": "mqttas-soak", "app.kubernetes.io/component": "shard"}
	BrokerLabels = map[string]string{"app.kubernetes.io/name": "mosquitto", "app.kubernetes.io/component": "broker"}
)

// Annotations on the rendered Chaos Mesh objects: the trace's times, which Chaos Mesh does not keep (a
// NetworkChaos starts when it is created; a Schedule makes one every period from its creation until it
// is deleted), so whoever applies them applies each At after the soak's start and deletes a Schedule at
// Until.
const (
	AnnotationTrace = "mqttas-go/trace"
	AnnotationFault = "mqttas-go/fault"
	AnnotationAt    = "mqttas-go/at"
	AnnotationCount = "mqttas-go/count"
	AnnotationUntil = "mqttas-go/until"
)

// Where says where a fault of a fleet run is made.
type Where string

const (
	// ChaosMesh: a Chaos Mesh NetworkChaos on the shard pods' network.
	ChaosMesh Where = "chaos-mesh"
	// InPod: the soak in each shard pod, through its own Toxiproxy link between its clients and the broker.
	InPod Where = "in-pod"
	// NotRendered: nowhere; the fault acts on the broker's process, which a fleet's shards share.
	NotRendered Where = "not-rendered"
)

// Placed is where one fault goes and why; Action is the Chaos Mesh action for ChaosMesh.
type Placed struct {
	Where  Where
	Action string
	Why    string
}

// Placement says where f is made in a fleet run. Faults with a Chaos Mesh equivalent on the network are
// rendered as Chaos Mesh; every other link and packet fault, and the client faults, stay in the pod (so a
// new fault of the registry is in the pod until it is given a Chaos Mesh action here); broker faults are
// not rendered.
func Placement(f faults.Fault) Placed {
	switch f.(type) {
	case faults.Latency:
		return Placed{ChaosMesh, "delay", "netem delay, latency ± jitter on the shard pods' traffic with the broker"}
	case faults.Blackhole:
		return Placed{ChaosMesh, "partition", "a partition drops every packet and sends no FIN, as the silent link does; " +
			"Chaos Mesh does not close the connections when it heals, the harness's blackhole does"}
	case faults.Bandwidth:
		return Placed{ChaosMesh, "bandwidth", "a token bucket on the shard pods' egress: upstream only (the harness caps both directions)"}
	}
	switch f.Family() {
	case faults.FamilyLink:
		return Placed{Where: InPod, Why: "no Chaos Mesh action does this (it needs the TCP connection: a reset, a refused " +
			"connect, a stream cut into pieces): the soak's Toxiproxy link makes it"}
	case faults.FamilyPackets:
		return Placed{Where: InPod, Why: "it picks MQTT packets by type, which Chaos Mesh cannot see: the soak's link makes it"}
	case faults.FamilyClient:
		return Placed{Where: InPod, Why: "it kills the clients' own processes, which only the soak in the shard pod runs, so that soak " +
			"makes it; it needs a crash-capable client (-client mqttas-durable or paho-durable), whose driver (drivers/durable) " +
			"the harness image carries"}
	}
	return Placed{Where: NotRendered, Why: "it acts on the broker's process, which every shard shares (the Mosquitto " +
		"Deployment or an external cluster), so no shard may; a Chaos Mesh PodChaos on the broker would (not rendered)"}
}

// Options are a rendering's settings.
type Options struct {
	// Namespace of the fleet (deploy/'s, "mqttas" by default).
	Namespace string
	// ExternalBrokers are the addresses (host names or IPs, no ports) of an external broker cluster; empty
	// means the in-cluster Mosquitto, picked by BrokerLabels.
	ExternalBrokers []string
	// Tail is the fault-free time after the trace's end that the soak's duration adds.
	Tail time.Duration
	// Workflow renders the Chaos Mesh faults as one Workflow, which keeps the trace's times from its
	// creation, instead of a NetworkChaos or Schedule each, which start when created.
	Workflow bool
}

// DefaultNamespace is deploy/'s namespace.
const DefaultNamespace = "mqttas"

// Skipped is a fault of the trace that was not rendered, with the reason.
type Skipped struct {
	Occurrence string
	Why        string
}

// Rendering is a trace made ready for a fleet run.
type Rendering struct {
	// Chaos are the Chaos Mesh objects (*NetworkChaos and *Schedule, in the trace's order, or one
	// *Workflow).
	Chaos []any
	// InPod is the trace of the faults the soak makes in each pod (it may have none).
	InPod *schedule.Schedule
	// Duration is the soak's duration: the whole trace's end plus the tail.
	Duration time.Duration
	// Skipped are the faults rendered nowhere.
	Skipped []Skipped
	// Namespace is the fleet's.
	Namespace string
}

// ErrTrace is wrapped by Render's errors about the trace or the options.
var ErrTrace = errors.New("cannot render the trace")

// Render renders s for a fleet run.
func Render(s *schedule.Schedule, o Options) (*Rendering, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: no trace", ErrTrace)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTrace, err)
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Tail < 0 {
		return nil, fmt.Errorf("%w: the tail %v is negative", ErrTrace, o.Tail)
	}
	name := objectName(s.Name)
	if name == "" {
		return nil, fmt.Errorf("%w: the trace's name %q has no letter or digit to name its objects by", ErrTrace, s.Name)
	}
	r := &Rendering{Duration: s.End() + o.Tail, Namespace: o.Namespace,
		InPod: &schedule.Schedule{Name: s.Name + "-in-pod", Description: inPodDescription(s.Name)}}
	var entries []int // with Workflow: the entries on Chaos Mesh, and their specs
	specs := map[int]NetworkChaosSpec{}
	for i, e := range s.Faults {
		p := Placement(e.Fault)
		switch p.Where {
		case InPod:
			e.Line = 0
			r.InPod.Faults = append(r.InPod.Faults, e)
		case NotRendered:
			r.Skipped = append(r.Skipped, Skipped{Occurrence: fmt.Sprintf("faults[%d] %s at %v", i, e.Fault, e.At), Why: p.Why})
		case ChaosMesh:
			spec, err := networkSpec(e.Fault, p.Action, e.Duration, o)
			if err != nil {
				return nil, err
			}
			if o.Workflow {
				entries, specs[i] = append(entries, i), spec
				continue
			}
			obj, err := chaosObject(name, i, e, spec, s.Name, o)
			if err != nil {
				return nil, err
			}
			r.Chaos = append(r.Chaos, obj)
		}
	}
	if len(entries) > 0 {
		w, err := workflow(name, s, entries, specs, o)
		if err != nil {
			return nil, err
		}
		r.Chaos = append(r.Chaos, w)
	}
	// The in-pod trace is a subset of a valid trace, so it is valid; checked all the same, since the soak
	// in every pod would refuse it.
	if err := r.InPod.Validate(); err != nil {
		return nil, fmt.Errorf("%w: the in-pod part: %w", ErrTrace, err)
	}
	return r, nil
}

func inPodDescription(trace string) string {
	return "The faults of " + trace + " that Chaos Mesh cannot make, for the soak in each shard pod to make through " +
		"its own link (soak render-k8s wrote this; the rest of the trace is Chaos Mesh objects)."
}

var notName = regexp.MustCompile(`[^a-z0-9]+`)

// objectName makes a DNS-1123 label prefix of a trace's name.
func objectName(s string) string {
	n := strings.Trim(notName.ReplaceAllString(strings.ToLower(s), "-"), "-")
	// Short enough for the longest name made of it (a workflow's "<name>-<entry>-<fault>-<rep>-gap")
	// to be a DNS-1123 label.
	if len(n) > 32 {
		n = strings.TrimRight(n[:32], "-")
	}
	return n
}

func chaosObject(name string, i int, e schedule.Entry, spec NetworkChaosSpec, trace string, o Options) (any, error) {
	meta := metav1.ObjectMeta{
		Name:      fmt.Sprintf("%s-%d-%s", name, i, e.Fault.Name()),
		Namespace: o.Namespace,
		Labels:    map[string]string{"app.kubernetes.io/name": "mqttas-soak", "app.kubernetes.io/component": "chaos"},
		Annotations: map[string]string{
			AnnotationTrace: trace, AnnotationFault: e.Fault.String(), AnnotationAt: e.At.String(),
		},
	}
	if e.Repeat == nil {
		n := &NetworkChaos{TypeMeta: metav1.TypeMeta{APIVersion: ChaosAPIVersion, Kind: KindNetworkChaos}, ObjectMeta: meta, Spec: spec}
		return n, n.Validate()
	}
	meta.Annotations[AnnotationCount] = strconv.Itoa(e.Repeat.Count)
	meta.Annotations[AnnotationUntil] = (e.At + time.Duration(e.Repeat.Count-1)*e.Repeat.Every + e.Duration).String()
	sc := &Schedule{TypeMeta: metav1.TypeMeta{APIVersion: ChaosAPIVersion, Kind: KindSchedule}, ObjectMeta: meta,
		Spec: ScheduleSpec{Schedule: "@every " + e.Repeat.Every.String(), ConcurrencyPolicy: "Forbid",
			HistoryLimit: min(e.Repeat.Count, 10), Type: KindNetworkChaos, NetworkChaos: &spec}}
	return sc, sc.Validate()
}

// networkSpec is the NetworkChaos spec of a fault placed on Chaos Mesh. Against the in-cluster broker the
// action applies in both directions between the shard pods and the broker's; against an external cluster
// Chaos Mesh acts on the shard pods' egress only (direction to), so a delay is doubled to keep the
// harness's round trip (it delays each direction).
func networkSpec(f faults.Fault, action string, d time.Duration, o Options) (NetworkChaosSpec, error) {
	s := NetworkChaosSpec{
		PodSelector: PodSelector{Mode: "all", Selector: SelectorSpec{Namespaces: []string{o.Namespace}, LabelSelectors: maps.Clone(ShardLabels)}},
		Action:      action, Duration: d.String(), Direction: "both",
	}
	factor := time.Duration(1)
	if len(o.ExternalBrokers) > 0 {
		s.Direction, s.ExternalTargets, factor = "to", slices.Clone(o.ExternalBrokers), 2
	} else {
		s.Target = &PodSelector{Mode: "all", Selector: SelectorSpec{Namespaces: []string{o.Namespace}, LabelSelectors: maps.Clone(BrokerLabels)}}
	}
	switch f := f.(type) {
	case faults.Latency:
		s.Delay = &DelaySpec{Latency: (factor * f.Latency).String()}
		if f.Jitter > 0 {
			s.Delay.Jitter = (factor * f.Jitter).String()
		}
	case faults.Blackhole:
	case faults.Bandwidth:
		// Chaos Mesh's kbps is kilobytes per second, the fault's unit. The queue holds a second of traffic, the
		// bucket at least a full frame.
		s.Direction = "to"
		s.Bandwidth = &BandwidthSpec{Rate: strconv.Itoa(f.Rate) + "kbps", Limit: uint32(max(f.Rate*1024, 10000)), Buffer: 10000}
	default:
		return s, fmt.Errorf("%w: %s has no Chaos Mesh spec here", ErrTrace, f.Name())
	}
	return s, nil
}
