// Package faults is the catalogue of faults the harness can inject: each one a name, its parameters,
// and how to inject and heal it on a link and a broker. Scenarios, soak schedules and replayed traces all
// draw from it, so a fault means the same thing everywhere.
package faults

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
)

// Target is what faults act on: the link between client and broker, and the broker.
type Target struct {
	Link   *link.Link
	Broker broker.Broker
}

// Fault is one fault: Inject starts it, Heal ends it. A one-shot fault (a reset) has nothing to heal.
type Fault struct {
	Name   string
	Params map[string]string // as a trace file writes them
	inject func(context.Context, Target) error
	heal   func(context.Context, Target) error
}

// Inject starts the fault.
func (f Fault) Inject(ctx context.Context, t Target) error {
	if err := f.inject(ctx, t); err != nil {
		return fmt.Errorf("inject %s: %w", f, err)
	}
	return nil
}

// Heal ends the fault; a no-op for one-shot faults.
func (f Fault) Heal(ctx context.Context, t Target) error {
	if f.heal == nil {
		return nil
	}
	if err := f.heal(ctx, t); err != nil {
		return fmt.Errorf("heal %s: %w", f, err)
	}
	return nil
}

// OneShot reports whether the fault happens at once and has nothing to heal.
func (f Fault) OneShot() bool { return f.heal == nil }

// String renders the fault as name(k=v, ...), keys sorted.
func (f Fault) String() string {
	if len(f.Params) == 0 {
		return f.Name
	}
	keys := make([]string, 0, len(f.Params))
	for k := range f.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + f.Params[k]
	}
	return f.Name + "(" + strings.Join(parts, ", ") + ")"
}

// ParamsAny returns the parameters for JSON reports and timelines.
func (f Fault) ParamsAny() map[string]any {
	m := make(map[string]any, len(f.Params))
	for k, v := range f.Params {
		m[k] = v
	}
	return m
}

func heal(ctx context.Context, t Target) error { return t.Link.Heal(ctx) }

// Latency delays every chunk in both directions by d ± jitter.
func Latency(d, jitter time.Duration) Fault {
	return Fault{Name: "latency", Params: map[string]string{"latency": d.String(), "jitter": jitter.String()},
		inject: func(ctx context.Context, t Target) error { return t.Link.Latency(ctx, d, jitter, link.Both) },
		heal:   heal}
}

// Reset closes the connections through the link at once, as a dropped WiFi association does.
func Reset() Fault {
	return Fault{Name: "reset", inject: func(ctx context.Context, t Target) error { return t.Link.Reset(ctx) }}
}

// Blackhole stops every byte in both directions while the TCP connection stays open, with no FIN: the
// silent, half-open link that only keepalive detects. Healing closes the blackholed connections.
func Blackhole() Fault {
	return Fault{Name: "blackhole",
		inject: func(ctx context.Context, t Target) error { return t.Link.Silent(ctx) },
		heal:   heal}
}

// Down refuses new connections and closes open ones: the broker's host is unreachable.
func Down() Fault {
	return Fault{Name: "down",
		inject: func(ctx context.Context, t Target) error { return t.Link.Down(ctx) },
		heal:   func(ctx context.Context, t Target) error { return t.Link.Up(ctx) }}
}

// Slicer cuts the stream into small pieces (average avg bytes, ± variation, delay apart), in both
// directions: every packet arrives in fragments.
func Slicer(avg, variation int, delay time.Duration) Fault {
	return Fault{Name: "slicer", Params: map[string]string{"average": strconv.Itoa(avg),
		"variation": strconv.Itoa(variation), "delay": delay.String()},
		inject: func(ctx context.Context, t Target) error { return t.Link.Slicer(ctx, avg, variation, delay, link.Both) },
		heal:   heal}
}

// Bandwidth caps the link at kbPerSec KB/s in both directions.
func Bandwidth(kbPerSec int) Fault {
	return Fault{Name: "bandwidth", Params: map[string]string{"rate": strconv.Itoa(kbPerSec)},
		inject: func(ctx context.Context, t Target) error { return t.Link.Bandwidth(ctx, kbPerSec, link.Both) },
		heal:   heal}
}

// DropPubacks drops every PUBACK on its way to the client, the others pass: the client re-sends with DUP
// and, past MaxRepubs, declares the link dead.
func DropPubacks() Fault {
	return Fault{Name: "drop-pubacks",
		inject: func(_ context.Context, t Target) error {
			return t.Link.DropPackets(link.Downstream, mqttframe.PUBACK, -1)
		},
		heal: func(_ context.Context, t Target) error {
			t.Link.StopDropping()
			return nil
		}}
}

// BrokerStop stops the broker gracefully (it saves its persistence) until healed: a broker restart.
func BrokerStop() Fault {
	return Fault{Name: "broker-restart",
		inject: func(ctx context.Context, t Target) error { return t.Broker.Stop(ctx) },
		heal:   func(ctx context.Context, t Target) error { return t.Broker.Start(ctx) }}
}

// BrokerKill kills the broker (SIGKILL: what autosave did not write is lost) until healed.
func BrokerKill() Fault {
	return Fault{Name: "broker-kill",
		inject: func(ctx context.Context, t Target) error { return t.Broker.Kill(ctx) },
		heal:   func(ctx context.Context, t Target) error { return t.Broker.Start(ctx) }}
}

// BrokerPause freezes the broker: TCP still connects, nothing is answered.
func BrokerPause() Fault {
	return Fault{Name: "broker-pause",
		inject: func(ctx context.Context, t Target) error { return t.Broker.Pause(ctx) },
		heal:   func(ctx context.Context, t Target) error { return t.Broker.Unpause(ctx) }}
}

// Names lists the faults Parse knows, sorted.
func Names() []string {
	names := make([]string, 0, len(parsers))
	for n := range parsers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ErrUnknown is returned by Parse for a fault name not in the catalogue.
var ErrUnknown = errors.New("unknown fault")

// ParamError names the parameter Parse could not use.
type ParamError struct {
	Fault, Param, Reason string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("fault %s: parameter %q: %s", e.Fault, e.Param, e.Reason)
}

type params struct {
	fault string
	m     map[string]string
	used  map[string]bool
}

func (p *params) duration(key string, def time.Duration) (time.Duration, error) {
	p.used[key] = true
	v, ok := p.m[key]
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, &ParamError{p.fault, key, fmt.Sprintf("%q is not a duration like 200ms", v)}
	}
	return d, nil
}

func (p *params) integer(key string, def, minimum int) (int, error) {
	p.used[key] = true
	v, ok := p.m[key]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < minimum {
		return 0, &ParamError{p.fault, key, fmt.Sprintf("%q is not a whole number ≥ %d", v, minimum)}
	}
	return n, nil
}

func (p *params) unknown() error {
	for k := range p.m {
		if !p.used[k] {
			return &ParamError{p.fault, k, "not a parameter of this fault"}
		}
	}
	return nil
}

var parsers = map[string]func(*params) (Fault, error){
	"latency": func(p *params) (Fault, error) {
		d, err := p.duration("latency", 200*time.Millisecond)
		if err != nil {
			return Fault{}, err
		}
		j, err := p.duration("jitter", 0)
		return Latency(d, j), err
	},
	"reset":     func(*params) (Fault, error) { return Reset(), nil },
	"blackhole": func(*params) (Fault, error) { return Blackhole(), nil },
	"down":      func(*params) (Fault, error) { return Down(), nil },
	"slicer": func(p *params) (Fault, error) {
		avg, err := p.integer("average", 8, 1)
		if err != nil {
			return Fault{}, err
		}
		v, err := p.integer("variation", 4, 0)
		if err != nil {
			return Fault{}, err
		}
		d, err := p.duration("delay", 100*time.Microsecond)
		return Slicer(avg, v, d), err
	},
	"bandwidth": func(p *params) (Fault, error) {
		r, err := p.integer("rate", 16, 1)
		return Bandwidth(r), err
	},
	"drop-pubacks":   func(*params) (Fault, error) { return DropPubacks(), nil },
	"broker-restart": func(*params) (Fault, error) { return BrokerStop(), nil },
	"broker-kill":    func(*params) (Fault, error) { return BrokerKill(), nil },
	"broker-pause":   func(*params) (Fault, error) { return BrokerPause(), nil },
}

// Parse makes a fault from its name and parameters as a trace file gives them. Errors name the fault and
// the parameter.
func Parse(name string, m map[string]string) (Fault, error) {
	mk, ok := parsers[name]
	if !ok {
		return Fault{}, fmt.Errorf("%w %q (known: %s)", ErrUnknown, name, strings.Join(Names(), ", "))
	}
	p := &params{fault: name, m: m, used: map[string]bool{}}
	f, err := mk(p)
	if err != nil {
		return Fault{}, err
	}
	if err := p.unknown(); err != nil {
		return Fault{}, err
	}
	return f, nil
}
