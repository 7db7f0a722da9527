package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/mqttas/mqttas-go/harness/link"
)

// The link faults act on the TCP link between client and broker, in both directions.

func init() {
	register(Latency{Latency: 200 * time.Millisecond})
	register(Reset{})
	register(Blackhole{})
	register(Down{})
	register(Slicer{Average: 8, Variation: 4, Delay: 100 * time.Microsecond})
	register(Bandwidth{Rate: 16})
}

// linkFault is what the lasting link faults share: healing one heals the whole link.
type linkFault struct{}

func (linkFault) Family() Family                           { return FamilyLink }
func (linkFault) OneShot() bool                            { return false }
func (linkFault) Heal(ctx context.Context, t Target) error { return t.Link.Heal(ctx) }

// Latency delays every chunk in both directions by Latency ± Jitter.
type Latency struct {
	linkFault
	Latency time.Duration `param:"latency"`
	Jitter  time.Duration `param:"jitter"`
}

func (Latency) Name() string     { return "latency" }
func (f Latency) String() string { return Format(f) }
func (f Latency) Validate() error {
	switch {
	case f.Latency < 0:
		return &ParamError{f.Name(), "latency", fmt.Sprintf("%v is negative", f.Latency)}
	case f.Jitter < 0:
		return &ParamError{f.Name(), "jitter", fmt.Sprintf("%v is negative", f.Jitter)}
	case f.Jitter > f.Latency:
		return &ParamError{f.Name(), "jitter", fmt.Sprintf("%v is more than the latency (%v)", f.Jitter, f.Latency)}
	}
	return nil
}
func (f Latency) Inject(ctx context.Context, t Target) error {
	return t.Link.Latency(ctx, f.Latency, f.Jitter, link.Both)
}
func (Latency) Draw(r *rand.Rand) Fault {
	l := between(r, 10, 200) * 10 // 100 ms – 2 s in steps of 10 ms
	j := r.IntN(l/4 + 1)
	return Latency{Latency: time.Duration(l) * time.Millisecond, Jitter: time.Duration(j) * time.Millisecond}
}
func (Latency) Mix() Mix {
	return Mix{Weight: 18, Min: 2 * time.Second, Max: 10 * time.Second,
		Why: "an RTT spike of 100 ms – 2 s (± up to a quarter of it)"}
}
func (Latency) Trial() Trial {
	return Trial{What: "through latency of 150 ± 100 ms for 3 s",
		Fault: Latency{Latency: 150 * time.Millisecond, Jitter: 100 * time.Millisecond}, Hold: 3 * time.Second,
		NoOutage: true}
}

// Reset closes the connections through the link at once, as a dropped WiFi association does. It is
// one-shot: new connections are accepted straight away.
type Reset struct{ plain[Reset] }

func (Reset) Name() string                               { return "reset" }
func (f Reset) String() string                           { return Format(f) }
func (Reset) Family() Family                             { return FamilyLink }
func (Reset) OneShot() bool                              { return true }
func (Reset) Inject(ctx context.Context, t Target) error { return t.Link.Reset(ctx) }
func (Reset) Heal(context.Context, Target) error         { return nil }
func (Reset) Mix() Mix {
	return Mix{Weight: 15, Why: "the connection dropped at once (a lost association)"}
}
func (Reset) Trial() Trial {
	return Trial{What: "through three resets 400 ms apart", Fault: Reset{}, Times: 3, Pause: 400 * time.Millisecond,
		Outage: true}
}

// Blackhole stops every byte in both directions while the TCP connection stays open, with no FIN: the
// silent, half-open link that only keepalive detects. Healing it closes the blackholed connections.
type Blackhole struct {
	linkFault
	plain[Blackhole]
}

func (Blackhole) Name() string                               { return "blackhole" }
func (f Blackhole) String() string                           { return Format(f) }
func (Blackhole) Inject(ctx context.Context, t Target) error { return t.Link.Silent(ctx) }
func (Blackhole) Mix() Mix {
	return Mix{Weight: 20, Min: time.Second, Max: 6 * time.Second,
		Why: "a silent link (no FIN): the client must notice it through keepalive"}
}
func (Blackhole) Trial() Trial {
	return Trial{What: "through a silent 4 s blackhole, longer than the 2-2.5 s keepalive rule", Fault: Blackhole{},
		Hold: 4 * time.Second, Outage: true}
}

// Down refuses new connections and closes open ones: the broker's host is unreachable.
type Down struct {
	linkFault
	plain[Down]
}

func (Down) Name() string                               { return "down" }
func (f Down) String() string                           { return Format(f) }
func (Down) Inject(ctx context.Context, t Target) error { return t.Link.Down(ctx) }
func (Down) Heal(ctx context.Context, t Target) error   { return t.Link.Up(ctx) }
func (Down) Mix() Mix {
	return Mix{Weight: 12, Min: time.Second, Max: 10 * time.Second,
		Why: "the broker's host unreachable: connections closed and refused"}
}
func (Down) Trial() Trial {
	return Trial{What: "while the link is down (connection refused) for 2.5 s", Fault: Down{},
		Hold: 2500 * time.Millisecond, Outage: true}
}

// Slicer cuts the stream into small pieces (Average bytes ± Variation, Delay apart), in both directions:
// every packet arrives in fragments.
type Slicer struct {
	linkFault
	Average   int           `param:"average"`
	Variation int           `param:"variation"`
	Delay     time.Duration `param:"delay"`
}

func (Slicer) Name() string     { return "slicer" }
func (f Slicer) String() string { return Format(f) }
func (f Slicer) Validate() error {
	if err := atLeast(f.Name(), "average", f.Average, 1, ""); err != nil {
		return err
	}
	if err := atLeast(f.Name(), "variation", f.Variation, 0, ""); err != nil {
		return err
	}
	if f.Variation >= f.Average {
		return &ParamError{f.Name(), "variation", fmt.Sprintf("%d must be smaller than average (%d)", f.Variation, f.Average)}
	}
	if f.Delay < 0 {
		return &ParamError{f.Name(), "delay", fmt.Sprintf("%v is negative", f.Delay)}
	}
	return nil
}
func (f Slicer) Inject(ctx context.Context, t Target) error {
	return t.Link.Slicer(ctx, f.Average, f.Variation, f.Delay, link.Both)
}
func (Slicer) Draw(r *rand.Rand) Fault {
	avg := between(r, 2, 32)
	variation := r.IntN(avg / 2)
	return Slicer{Average: avg, Variation: variation, Delay: time.Duration(between(r, 10, 500)) * time.Microsecond}
}
func (Slicer) Mix() Mix {
	return Mix{Weight: 8, Min: 3 * time.Second, Max: 10 * time.Second, Why: "packets arrive in fragments of 2–32 bytes"}
}
func (Slicer) Trial() Trial {
	return Trial{What: "through a slicer cutting every packet into ~8-byte pieces for 2 s",
		Fault: Slicer{Average: 8, Variation: 4, Delay: 100 * time.Microsecond}, Hold: 2 * time.Second,
		NoOutage: true}
}

// Bandwidth caps the link at Rate KB/s in both directions.
type Bandwidth struct {
	linkFault
	Rate int `param:"rate"` // KB/s
}

func (Bandwidth) Name() string     { return "bandwidth" }
func (f Bandwidth) String() string { return Format(f) }
func (f Bandwidth) Validate() error {
	return atLeast(f.Name(), "rate", f.Rate, 1, " (toxiproxy's rate 0 stalls the stream forever; blackhole stops traffic)")
}
func (f Bandwidth) Inject(ctx context.Context, t Target) error {
	return t.Link.Bandwidth(ctx, f.Rate, link.Both)
}
func (Bandwidth) Draw(r *rand.Rand) Fault { return Bandwidth{Rate: between(r, 1, 32)} }
func (Bandwidth) Mix() Mix {
	return Mix{Weight: 8, Min: 3 * time.Second, Max: 10 * time.Second, Why: "throughput collapses to 1–32 KB/s"}
}
func (Bandwidth) Trial() Trial {
	return Trial{What: "through a bandwidth cap of 8 KB/s for 3 s", Fault: Bandwidth{Rate: 8}, Hold: 3 * time.Second,
		NoOutage: true}
}
