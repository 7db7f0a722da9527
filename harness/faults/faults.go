// Package faults is the one place a fault of the harness is defined, on the model of Toxiproxy's toxics:
// each fault is a small type in this package (one file per family: link.go, packets.go, broker.go,
// client.go) with its name, its parameters as typed fields, their validation, how to inject and heal it,
// and how a random schedule draws it. Each file registers its faults once, and everything else comes from that registry:
// the trace format (Parse, Params), the random schedules (Mix, Draw), the scenarios' fault tables and the
// client comparison (Trial). Adding a fault is one new file with its test.
//
// Durations stay time.Duration here; they become text only at the edge, in Params and Parse.
package faults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
)

// Fault is one fault with its parameters. The types of this package are its values; each is a plain
// comparable struct, so two faults are equal when they are the same fault with the same parameters.
type Fault interface {
	// Name is the fault's name in traces, timelines and reports ("latency", "broker-restart").
	Name() string
	// Family is what the fault acts on.
	Family() Family
	// Validate checks the parameters; a problem is a *ParamError naming the parameter.
	Validate() error
	// Inject starts the fault.
	Inject(ctx context.Context, t Target) error
	// Heal ends it; a one-shot fault has nothing to heal and Heal does nothing.
	Heal(ctx context.Context, t Target) error
	// OneShot reports whether the fault happens at once and has nothing to heal (it takes no duration).
	OneShot() bool
	// Draw returns a fault of the same kind with its parameters drawn from r (the fault itself when it
	// has none). The same generator state gives the same fault.
	Draw(r *rand.Rand) Fault
	// Mix is the fault's share of a random schedule.
	Mix() Mix
	// Trial is how the scenarios and the client comparison exercise the fault on its own; a Trial with no
	// Fault means they do not.
	Trial() Trial
	// String renders the fault as name(k=v, ...), keys sorted, as Format does.
	String() string
}

// Family says what a fault acts on.
type Family string

const (
	FamilyLink    Family = "link"    // the TCP link between client and broker (toxics, down, reset)
	FamilyPackets Family = "packets" // MQTT packets on the link, by type
	FamilyBroker  Family = "broker"  // the broker's process
	FamilyClient  Family = "client"  // the client's process (crash-capable clients only)
)

// Link is what link and packet faults act on; *link.Link is one.
type Link interface {
	Latency(ctx context.Context, d, jitter time.Duration, dir link.Direction) error
	Bandwidth(ctx context.Context, kbPerSec int, dir link.Direction) error
	Blackhole(ctx context.Context, dir link.Direction) error
	Silent(ctx context.Context) error
	Slicer(ctx context.Context, avg, variation int, delay time.Duration, dir link.Direction) error
	SlowClose(ctx context.Context, d time.Duration, dir link.Direction) error
	LimitData(ctx context.Context, n int64, dir link.Direction) error
	ResetPeer(ctx context.Context, after time.Duration, dir link.Direction) error
	Down(ctx context.Context) error
	Up(ctx context.Context) error
	Reset(ctx context.Context) error
	DropPackets(dir link.Direction, t mqttframe.Type, n int) error
	DelayPackets(dir link.Direction, t mqttframe.Type, d time.Duration) error
	StopDropping()
	StopDelaying()
	// Heal removes every fault on the link: toxics, packet rules and down.
	Heal(ctx context.Context) error
}

// Broker is what broker faults act on; every harness/broker backend is one.
type Broker interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Kill(ctx context.Context) error
	Pause(ctx context.Context) error
	Unpause(ctx context.Context) error
}

// Clients is what client faults act on: the clients of the run that can crash.
type Clients interface {
	// Crash kills share percent of the crash-capable clients (at least one) with SIGKILL; with powerCut,
	// what they wrote and did not fsync is lost too. It fails when no client of the run can crash.
	Crash(ctx context.Context, share int, powerCut bool) error
	// Restart starts again every client Crash killed; each connects on its own, as a device that boots.
	Restart(ctx context.Context) error
}

// Target is what faults act on: the link between client and broker, the broker, and the clients.
type Target struct {
	Link    Link
	Broker  Broker
	Clients Clients
}

// Mix says how a random schedule draws a fault: how often (Weight, relative to the other faults' weights;
// 0 never), for how long (Min to Max; both 0 for a one-shot fault), and Why these figures, for the
// documentation. The parameters come from Fault.Draw.
type Mix struct {
	Weight int
	// OptIn is the weight of a fault that is off by default (Weight 0) in a run that asks for it
	// (schedule.RandomOptions.OptIn).
	OptIn    int
	Min, Max time.Duration
	Why      string
}

// Trial is one fault exercised on its own, the same way by the scenarios' fault table and the client
// comparison: Fault injected Times times (0 means once), each held for Hold (0 for a one-shot fault) and
// followed by Pause of calm before the next.
type Trial struct {
	// What the trial does, as a spec's name reads it: "through a silent 4 s blackhole, ...".
	What  string
	Fault Fault
	Hold  time.Duration
	Times int
	Pause time.Duration
	// Outage: the fault cuts every client off, so each one must notice an outage.
	Outage bool
	// NoOutage: the fault slows or fragments the link but leaves it working, so a client that declares an
	// outage took a live broker for a dead one. Never set together with Outage.
	NoOutage bool
}

// Count is how many times the trial injects its fault.
func (t Trial) Count() int { return max(t.Times, 1) }

// Lane is what a lasting fault holds while it is in force: two faults of one lane cannot overlap.
type Lane string

const (
	// LaneLink: every link and packet fault is healed by healing the whole link, so healing one would
	// end another early.
	LaneLink Lane = "link"
	// LaneBroker: the broker is stopped, killed or paused, one at a time.
	LaneBroker Lane = "broker"
	// LaneClient: healing a client fault restarts every crashed client, so two cannot overlap.
	LaneClient Lane = "client"
)

// LaneOf returns the lane f holds, or "" for a one-shot fault (it may happen at any time).
func LaneOf(f Fault) Lane {
	switch {
	case f.OneShot():
		return ""
	case f.Family() == FamilyBroker:
		return LaneBroker
	case f.Family() == FamilyClient:
		return LaneClient
	default:
		return LaneLink
	}
}

// Why says why two faults of the lane cannot overlap.
func (l Lane) Why() string {
	switch l {
	case LaneLink:
		return "link faults cannot overlap: healing one heals the whole link"
	case LaneBroker:
		return "broker faults cannot overlap: the broker is stopped, killed or paused, one at a time"
	case LaneClient:
		return "client faults cannot overlap: healing one restarts every crashed client"
	}
	return ""
}

// registry maps each fault's name to its prototype, the fault with its default parameters. It is filled
// by the init functions of this package's files, one register call per fault, and never changed after.
var registry = map[string]Fault{}

// register adds a fault type by its prototype. A name given twice, parameters of a type the trace format
// cannot write, or invalid defaults are programming errors of this package and panic at init.
func register(proto Fault) {
	name := proto.Name()
	if _, dup := registry[name]; dup {
		panic("faults: " + name + " registered twice")
	}
	if reflect.TypeOf(proto).Kind() != reflect.Struct {
		panic("faults: " + name + " is not a struct type")
	}
	for _, p := range paramsOf(reflect.TypeOf(proto)) {
		if p.typ != durationType && p.typ.Kind() != reflect.Int {
			panic(fmt.Sprintf("faults: %s: parameter %s is a %v (want time.Duration or int)", name, p.name, p.typ))
		}
	}
	if err := proto.Validate(); err != nil {
		panic(fmt.Sprintf("faults: %s: defaults: %v", name, err))
	}
	if tr := proto.Trial(); tr.Outage && tr.NoOutage {
		panic("faults: " + name + ": its trial expects an outage and none")
	}
	registry[name] = proto
}

// Names lists the registered faults, sorted.
func Names() []string { return slices.Sorted(maps.Keys(registry)) }

// All returns every registered fault with its default parameters, sorted by name.
func All() []Fault {
	out := make([]Fault, 0, len(registry))
	for _, n := range Names() {
		out = append(out, registry[n])
	}
	return out
}

// Trials returns the trials of the registered faults that have one, sorted by name.
func Trials() []Trial {
	var out []Trial
	for _, f := range All() {
		if t := f.Trial(); t.Fault != nil {
			out = append(out, t)
		}
	}
	return out
}

// ErrUnknown is returned by New and Parse for a fault name not in the registry.
var ErrUnknown = errors.New("unknown fault")

// New returns the fault called name with its default parameters.
func New(name string) (Fault, error) {
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknown, name, strings.Join(Names(), ", "))
	}
	return f, nil
}

// ParamError names the parameter a fault could not use.
type ParamError struct {
	Fault, Param, Reason string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("fault %s: parameter %q: %s", e.Fault, e.Param, e.Reason)
}

// Parse makes a fault from its name and its parameters as a trace file writes them; parameters left
// out keep their defaults. Errors name the fault and the parameter (*ParamError), or wrap ErrUnknown.
func Parse(name string, m map[string]string) (Fault, error) {
	proto, err := New(name)
	if err != nil {
		return nil, err
	}
	v := reflect.New(reflect.TypeOf(proto)).Elem()
	v.Set(reflect.ValueOf(proto))
	ps := paramsOf(v.Type())
	for _, key := range slices.Sorted(maps.Keys(m)) {
		i := slices.IndexFunc(ps, func(p param) bool { return p.name == key })
		if i < 0 {
			return nil, &ParamError{name, key, "not a parameter of this fault" + takes(ps)}
		}
		if err := ps[i].set(v, m[key]); err != nil {
			return nil, &ParamError{name, key, err.Error()}
		}
	}
	f := v.Interface().(Fault)
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

func takes(ps []param) string {
	if len(ps) == 0 {
		return " (it takes none)"
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.name
	}
	return " (it takes " + strings.Join(names, ", ") + ")"
}

// Params returns f's parameters as a trace file writes them (durations as 200ms, numbers in decimal);
// nil for a fault without parameters. Parse(f.Name(), Params(f)) gives f back.
func Params(f Fault) map[string]string {
	v := reflect.ValueOf(f)
	ps := paramsOf(v.Type())
	if len(ps) == 0 {
		return nil
	}
	m := make(map[string]string, len(ps))
	for _, p := range ps {
		m[p.name] = p.get(v)
	}
	return m
}

// Format renders f as name(k=v, ...) with the keys sorted, or just its name when it has no parameters.
func Format(f Fault) string {
	m := Params(f)
	if len(m) == 0 {
		return f.Name()
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return f.Name() + "(" + strings.Join(parts, ", ") + ")"
}

// param is a field of a fault type tagged `param:"name"`.
type param struct {
	name  string
	index int
	typ   reflect.Type
}

var durationType = reflect.TypeFor[time.Duration]()

func paramsOf(t reflect.Type) []param {
	var ps []param
	for i := range t.NumField() {
		if name, ok := t.Field(i).Tag.Lookup("param"); ok {
			ps = append(ps, param{name: name, index: i, typ: t.Field(i).Type})
		}
	}
	return ps
}

func (p param) get(v reflect.Value) string {
	fv := v.Field(p.index)
	if p.typ == durationType {
		return time.Duration(fv.Int()).String()
	}
	return strconv.FormatInt(fv.Int(), 10)
}

func (p param) set(v reflect.Value, s string) error {
	fv := v.Field(p.index)
	if p.typ == durationType {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return fmt.Errorf("%q is not a duration like 200ms", s)
		}
		fv.SetInt(int64(d))
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	fv.SetInt(int64(n))
	return nil
}

// atLeast is the check of a whole-number parameter with a lower bound.
func atLeast(fault, param string, n, minimum int, why string) error {
	if n < minimum {
		return &ParamError{fault, param, fmt.Sprintf("%d is not a whole number ≥ %d%s", n, minimum, why)}
	}
	return nil
}

// plain is embedded by the faults without parameters, F being the fault itself: there is nothing to
// validate or draw, and the fault renders as its name.
type plain[F Fault] struct{}

func (plain[F]) Validate() error       { return nil }
func (plain[F]) Draw(*rand.Rand) Fault { var f F; return f }
func (plain[F]) String() string        { var f F; return f.Name() }

// between draws a whole number from lo to hi, both included.
func between(r *rand.Rand, lo, hi int) int { return lo + r.IntN(hi-lo+1) }
