package k8s

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// The Chaos Mesh objects this package writes. Chaos Mesh's Go types are not in k8s.io/api, and its module
// pulls in a controller; these structs mirror the fields of its CRD schema (chaos-mesh.org/v1alpha1) that
// the renderer emits, with the same JSON names, so that a strict decode of a rendered object fails on
// any field the schema does not have here. Validate checks what the CRD's enums and formats require.

// ChaosAPIVersion is the group and version of Chaos Mesh's resources.
const ChaosAPIVersion = "chaos-mesh.org/v1alpha1"

// Kinds of the Chaos Mesh objects written.
const (
	KindNetworkChaos = "NetworkChaos"
	KindSchedule     = "Schedule"
)

// NetworkChaos is a Chaos Mesh network fault on the pods its selector picks.
type NetworkChaos struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              NetworkChaosSpec `json:"spec"`
}

// PodSelector picks pods: by Selector, then Mode (one, all, fixed, fixed-percent, random-max-percent)
// with Value for the modes that take one.
type PodSelector struct {
	Selector SelectorSpec `json:"selector"`
	Mode     string       `json:"mode"`
	Value    string       `json:"value,omitempty"`
}

// SelectorSpec is the part of Chaos Mesh's selector the renderer uses.
type SelectorSpec struct {
	Namespaces     []string          `json:"namespaces,omitempty"`
	LabelSelectors map[string]string `json:"labelSelectors,omitempty"`
}

// NetworkChaosSpec is a NetworkChaos's spec: the action on the selected pods, towards Target (other pods)
// or ExternalTargets (addresses outside the cluster), for Duration.
type NetworkChaosSpec struct {
	PodSelector     `json:",inline"`
	Action          string         `json:"action"`
	Duration        string         `json:"duration,omitempty"`
	Direction       string         `json:"direction,omitempty"`
	Target          *PodSelector   `json:"target,omitempty"`
	ExternalTargets []string       `json:"externalTargets,omitempty"`
	Delay           *DelaySpec     `json:"delay,omitempty"`
	Loss            *LossSpec      `json:"loss,omitempty"`
	Bandwidth       *BandwidthSpec `json:"bandwidth,omitempty"`
}

// DelaySpec is the delay action's netem settings: durations and a percentage, all as strings.
type DelaySpec struct {
	Latency     string `json:"latency"`
	Jitter      string `json:"jitter,omitempty"`
	Correlation string `json:"correlation,omitempty"`
}

// LossSpec is the loss action's netem settings: percentages as strings.
type LossSpec struct {
	Loss        string `json:"loss"`
	Correlation string `json:"correlation,omitempty"`
}

// BandwidthSpec is the bandwidth action's token bucket: Rate with its unit (bps is bytes per second, kbps
// kilobytes), Limit bytes queued and Buffer bytes sent at once, both required and positive.
type BandwidthSpec struct {
	Rate   string `json:"rate"`
	Limit  uint32 `json:"limit"`
	Buffer uint32 `json:"buffer"`
}

// Schedule is a Chaos Mesh schedule: a NetworkChaos made again on a cron schedule.
type Schedule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ScheduleSpec `json:"spec"`
}

// ScheduleSpec is a Schedule's spec: Schedule is a cron expression or "@every <duration>", Type the kind
// of chaos made, and NetworkChaos its spec.
type ScheduleSpec struct {
	Schedule          string            `json:"schedule"`
	ConcurrencyPolicy string            `json:"concurrencyPolicy,omitempty"`
	HistoryLimit      int               `json:"historyLimit,omitempty"`
	Type              string            `json:"type"`
	NetworkChaos      *NetworkChaosSpec `json:"networkChaos,omitempty"`
}

// The enums of the CRD schema for the fields written.
var (
	networkActions     = []string{"netem", "delay", "loss", "duplicate", "corrupt", "partition", "bandwidth"}
	podModes           = []string{"one", "all", "fixed", "fixed-percent", "random-max-percent"}
	directions         = []string{"to", "from", "both"}
	concurrencyPolices = []string{"Forbid", "Allow"}
	// rateUnit is the rate syntax of Chaos Mesh's bandwidth: bytes per second (bps) and its multiples.
	rateUnit = regexp.MustCompile(`^[1-9][0-9]*(bps|kbps|mbps|gbps|tbps)$`)
	// cronEvery is the "@every <duration>" form of a schedule.
	cronEvery = regexp.MustCompile(`^@every (\S+)$`)
	// cronFields is a five-field cron expression, or six with seconds, or a predefined one.
	cronField = regexp.MustCompile(`^[0-9*/,\-A-Za-z?]+$`)
)

// ErrInvalid is wrapped by every Validate error of this package's objects.
var ErrInvalid = errors.New("invalid object")

type checker struct {
	what string
	errs []error
}

func (c *checker) addf(field, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: %s: %s: %s", ErrInvalid, c.what, field, fmt.Sprintf(format, args...)))
}

func (c *checker) oneOf(field, v string, allowed []string) {
	if !slices.Contains(allowed, v) {
		c.addf(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

func (c *checker) duration(field, v string, required bool) {
	if v == "" {
		if required {
			c.addf(field, "missing (a duration like 30s)")
		}
		return
	}
	if d, err := time.ParseDuration(v); err != nil || d < 0 {
		c.addf(field, "%q is not a duration like 30s", v)
	}
}

func (c *checker) percent(field, v string, required bool) {
	if v == "" {
		if required {
			c.addf(field, "missing (a percentage from 0 to 100, as a string)")
		}
		return
	}
	if p, err := strconv.ParseFloat(v, 64); err != nil || p < 0 || p > 100 {
		c.addf(field, "%q is not a percentage from 0 to 100", v)
	}
}

func (c *checker) meta(m metav1.TypeMeta, o metav1.ObjectMeta, kind string) {
	if m.APIVersion != ChaosAPIVersion {
		c.addf("apiVersion", "%q is not %s", m.APIVersion, ChaosAPIVersion)
	}
	if m.Kind != kind {
		c.addf("kind", "%q is not %s", m.Kind, kind)
	}
	for _, msg := range validation.IsDNS1123Subdomain(o.Name) {
		c.addf("metadata.name", "%q: %s", o.Name, msg)
	}
	for _, msg := range validation.IsDNS1123Label(o.Namespace) {
		c.addf("metadata.namespace", "%q: %s", o.Namespace, msg)
	}
}

func (c *checker) selector(field string, s PodSelector) {
	c.oneOf(field+".mode", s.Mode, podModes)
	switch s.Mode {
	case "fixed":
		if n, err := strconv.Atoi(s.Value); err != nil || n < 1 {
			c.addf(field+".value", "%q is not a whole number ≥ 1 (mode fixed)", s.Value)
		}
	case "fixed-percent", "random-max-percent":
		c.percent(field+".value", s.Value, true)
	default:
		if s.Value != "" {
			c.addf(field+".value", "%q given for mode %q, which takes none", s.Value, s.Mode)
		}
	}
	if len(s.Selector.LabelSelectors) == 0 && len(s.Selector.Namespaces) == 0 {
		c.addf(field+".selector", "empty: it would pick every pod of the cluster")
	}
	for k, v := range s.Selector.LabelSelectors {
		for _, msg := range validation.IsQualifiedName(k) {
			c.addf(field+".selector.labelSelectors", "key %q: %s", k, msg)
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			c.addf(field+".selector.labelSelectors", "value %q: %s", v, msg)
		}
	}
	for _, ns := range s.Selector.Namespaces {
		for _, msg := range validation.IsDNS1123Label(ns) {
			c.addf(field+".selector.namespaces", "%q: %s", ns, msg)
		}
	}
}

func (c *checker) spec(field string, s NetworkChaosSpec, durationRequired bool) {
	c.selector(field, s.PodSelector)
	c.oneOf(field+".action", s.Action, networkActions)
	c.duration(field+".duration", s.Duration, durationRequired)
	if s.Direction != "" {
		c.oneOf(field+".direction", s.Direction, directions)
	}
	if s.Target != nil {
		c.selector(field+".target", *s.Target)
	}
	if len(s.ExternalTargets) > 0 {
		if s.Target != nil {
			c.addf(field+".externalTargets", "given together with target")
		}
		if s.Direction != "to" {
			c.addf(field+".direction", "%q with externalTargets, which work only in direction to", s.Direction)
		}
		for _, t := range s.ExternalTargets {
			if len(validation.IsDNS1123Subdomain(t)) > 0 && len(validation.IsValidIP(nil, t)) > 0 {
				c.addf(field+".externalTargets", "%q is neither a host name nor an IP address", t)
			}
		}
	}
	if s.Action == "partition" && s.Target == nil && len(s.ExternalTargets) == 0 {
		c.addf(field+".target", "a partition needs a target or externalTargets")
	}
	// Each action's settings are given for that action only.
	given := map[string]bool{"delay": s.Delay != nil, "loss": s.Loss != nil, "bandwidth": s.Bandwidth != nil}
	for action, ok := range given {
		if ok && action != s.Action {
			c.addf(field+"."+action, "given for action %q", s.Action)
		}
	}
	if ok, has := given[s.Action]; has && !ok {
		c.addf(field+"."+s.Action, "missing for action %s", s.Action)
	}
	switch {
	case s.Action == "delay" && s.Delay != nil:
		c.duration(field+".delay.latency", s.Delay.Latency, true)
		c.duration(field+".delay.jitter", s.Delay.Jitter, false)
		c.percent(field+".delay.correlation", s.Delay.Correlation, false)
	case s.Action == "loss" && s.Loss != nil:
		c.percent(field+".loss.loss", s.Loss.Loss, true)
		c.percent(field+".loss.correlation", s.Loss.Correlation, false)
	case s.Action == "bandwidth" && s.Bandwidth != nil:
		if !rateUnit.MatchString(s.Bandwidth.Rate) {
			c.addf(field+".bandwidth.rate", "%q is not a rate like 16kbps (units: bps, kbps, mbps, gbps, tbps: bytes per second)", s.Bandwidth.Rate)
		}
		if s.Bandwidth.Limit == 0 {
			c.addf(field+".bandwidth.limit", "missing or 0 (bytes that may be queued, required)")
		}
		if s.Bandwidth.Buffer == 0 {
			c.addf(field+".bandwidth.buffer", "missing or 0 (bytes sent at once, required)")
		}
	}
}

// Validate checks n against the CRD schema's enums and formats.
func (n *NetworkChaos) Validate() error {
	c := &checker{what: "NetworkChaos " + n.Name}
	c.meta(n.TypeMeta, n.ObjectMeta, KindNetworkChaos)
	c.spec("spec", n.Spec, true)
	return errors.Join(c.errs...)
}

// Validate checks s against the CRD schema's enums and formats.
func (s *Schedule) Validate() error {
	c := &checker{what: "Schedule " + s.Name}
	c.meta(s.TypeMeta, s.ObjectMeta, KindSchedule)
	validCron(c, "spec.schedule", s.Spec.Schedule)
	if s.Spec.ConcurrencyPolicy != "" {
		c.oneOf("spec.concurrencyPolicy", s.Spec.ConcurrencyPolicy, concurrencyPolices)
	}
	if s.Spec.HistoryLimit < 0 {
		c.addf("spec.historyLimit", "%d is not ≥ 1", s.Spec.HistoryLimit)
	}
	if s.Spec.Type != KindNetworkChaos {
		c.addf("spec.type", "%q is not %s (the only kind written here)", s.Spec.Type, KindNetworkChaos)
	}
	if s.Spec.NetworkChaos == nil {
		c.addf("spec.networkChaos", "missing for type NetworkChaos")
	} else {
		c.spec("spec.networkChaos", *s.Spec.NetworkChaos, true)
	}
	return errors.Join(c.errs...)
}

func validCron(c *checker, field, v string) {
	if m := cronEvery.FindStringSubmatch(v); m != nil {
		if d, err := time.ParseDuration(m[1]); err != nil || d <= 0 {
			c.addf(field, "%q: %q is not a positive duration", v, m[1])
		}
		return
	}
	switch v {
	case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
		return
	}
	f := strings.Fields(v)
	if len(f) != 5 && len(f) != 6 {
		c.addf(field, "%q is neither \"@every <duration>\" nor a cron expression of 5 or 6 fields", v)
		return
	}
	for _, x := range f {
		if !cronField.MatchString(x) {
			c.addf(field, "%q: field %q is not a cron field", v, x)
		}
	}
}
