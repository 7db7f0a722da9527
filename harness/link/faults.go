package link

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
)

// Verb names what the link does to traffic: each fault verb of Link (Latency, Blackhole, ...) has one.
// The harness's faults (harness/faults) are made of these.
type Verb string

const (
	VerbLatency   Verb = "latency"
	VerbBandwidth Verb = "bandwidth"
	VerbBlackhole Verb = "blackhole"
	VerbSlicer    Verb = "slicer"
	VerbSlowClose Verb = "slow_close"
	VerbLimitData Verb = "limit_data"
	VerbResetPeer Verb = "reset_peer"
	VerbDown      Verb = "down"
	VerbDrop      Verb = "drop"  // DropPackets rule
	VerbDelay     Verb = "delay" // DelayPackets rule
)

// Effect is one verb in force on the link (a toxic in one direction, a packet rule, or down), for
// timelines and failure dumps.
type Effect struct {
	Verb   Verb
	Dir    Direction // a single direction; Both for down
	Detail string
	Since  time.Time
}

func (f Effect) String() string {
	s := fmt.Sprintf("%s %s", f.Verb, f.Dir.short())
	if f.Detail != "" {
		s += " " + f.Detail
	}
	return s + " since " + f.Since.Format("15:04:05.000")
}

// blackholeHold is how long a blackholed direction withholds a FIN:
// longer than any test, short enough not to overflow toxiproxy's ms maths.
const blackholeHold = 24 * time.Hour

// toxicSpec is one toxiproxy toxic of a fault.
type toxicSpec struct {
	typ   string
	attrs map[string]any
}

// toxicFault is an effect made of toxics in one direction.
type toxicFault struct {
	fault Effect
	seq   int      // order of addition, for removal in reverse
	names []string // toxics, in order of addition
}

// Latency delays every chunk in dir by d ± jitter (uniform), measured from
// its arrival, so back-to-back data is not delayed cumulatively. Toxiproxy
// works in whole milliseconds; d and jitter are rounded up. Removing it
// releases held data at once. Calling it again replaces the fault.
func (l *Link) Latency(ctx context.Context, d, jitter time.Duration, dir Direction) error {
	if d < 0 || jitter < 0 || jitter > d {
		return fmt.Errorf("%w: latency %v jitter %v", ErrInvalid, d, jitter)
	}
	return l.addFault(ctx, VerbLatency, dir, fmt.Sprintf("%v±%v", d, jitter),
		toxicSpec{"latency", map[string]any{"latency": ceilMS(d), "jitter": ceilMS(jitter)}})
}

// Bandwidth limits dir to kbPerSec kilobytes (1000 bytes) per second. Zero or
// less is rejected: toxiproxy's rate 0 stalls the stream forever.
func (l *Link) Bandwidth(ctx context.Context, kbPerSec int, dir Direction) error {
	if kbPerSec <= 0 {
		return fmt.Errorf("%w: bandwidth %d KB/s (use Blackhole to stop traffic)", ErrInvalid, kbPerSec)
	}
	return l.addFault(ctx, VerbBandwidth, dir, fmt.Sprintf("%dKB/s", kbPerSec),
		toxicSpec{"bandwidth", map[string]any{"rate": kbPerSec}})
}

// Blackhole silently discards every byte in dir while the TCP connection
// stays open: no data, no FIN, no RST (toxiproxy timeout 0 plus a slow_close
// that holds the FIN for a day). The bytes are lost, so the MQTT stream is
// broken: removing the fault (Clear, Heal, Close) closes the affected
// connections, as toxiproxy does when a timeout toxic goes. Calling it again
// while active does nothing.
func (l *Link) Blackhole(ctx context.Context, dir Direction) error {
	return l.addFault(ctx, VerbBlackhole, dir, "",
		toxicSpec{"timeout", map[string]any{"timeout": 0}},
		toxicSpec{"slow_close", map[string]any{"delay": blackholeHold.Milliseconds()}})
}

// Silent makes the broker a half-open peer: both directions are blackholed,
// neither side ever sees a FIN. It is Blackhole(ctx, Both).
func (l *Link) Silent(ctx context.Context) error { return l.Blackhole(ctx, Both) }

// Slicer cuts every chunk in dir into pieces of about avg bytes (±variation,
// which must be below avg) sent delay apart, to exercise partial reads.
func (l *Link) Slicer(ctx context.Context, avg, variation int, delay time.Duration, dir Direction) error {
	if avg <= 0 || variation < 0 || variation >= avg || delay < 0 {
		return fmt.Errorf("%w: slicer avg %d variation %d delay %v", ErrInvalid, avg, variation, delay)
	}
	return l.addFault(ctx, VerbSlicer, dir, fmt.Sprintf("%d±%dB every %v", avg, variation, delay),
		toxicSpec{"slicer", map[string]any{"average_size": avg, "size_variation": variation, "delay": delay.Microseconds()}})
}

// SlowClose holds the end of the stream (FIN) in dir for d after it arrives.
func (l *Link) SlowClose(ctx context.Context, d time.Duration, dir Direction) error {
	if d < 0 {
		return fmt.Errorf("%w: slow close %v", ErrInvalid, d)
	}
	return l.addFault(ctx, VerbSlowClose, dir, d.String(),
		toxicSpec{"slow_close", map[string]any{"delay": ceilMS(d)}})
}

// LimitData closes each connection (FIN) once n more bytes have passed in
// dir, counting per connection from when the fault is added.
func (l *Link) LimitData(ctx context.Context, n int64, dir Direction) error {
	if n < 0 {
		return fmt.Errorf("%w: limit %d bytes", ErrInvalid, n)
	}
	return l.addFault(ctx, VerbLimitData, dir, fmt.Sprintf("%dB", n),
		toxicSpec{"limit_data", map[string]any{"bytes": n}})
}

// ResetPeer closes a connection after the first data that arrives in dir
// once the fault is active, waiting after first. Toxiproxy sends an RST only
// on connections opened while a reset_peer toxic exists (it sets SO_LINGER 0
// when the connection starts); connections that were already open get a FIN,
// and idle ones are untouched until they send.
func (l *Link) ResetPeer(ctx context.Context, after time.Duration, dir Direction) error {
	if after < 0 {
		return fmt.Errorf("%w: reset after %v", ErrInvalid, after)
	}
	return l.addFault(ctx, VerbResetPeer, dir, "after "+after.String(),
		toxicSpec{"reset_peer", map[string]any{"timeout": ceilMS(after)}})
}

func ceilMS(d time.Duration) int64 { return int64((d + time.Millisecond - 1) / time.Millisecond) }

// addFault installs the toxics of a fault in each direction of dir,
// replacing the same fault there (remove, then add: updating toxics in
// place races with traffic in toxiproxy 2.12).
func (l *Link) addFault(ctx context.Context, kind Verb, dir Direction, detail string, specs ...toxicSpec) error {
	if !dir.valid() {
		return fmt.Errorf("%w: direction %v", ErrInvalid, dir)
	}
	return l.do(ctx, string(kind), func() error {
		for _, d := range dir.each() {
			if kind == VerbBlackhole && l.find(kind, d) != nil {
				continue // already silent; replacing would close connections
			}
			if err := l.removeFault(ctx, kind, d); err != nil {
				return err
			}
			tf := &toxicFault{fault: Effect{Verb: kind, Dir: d, Detail: detail, Since: time.Now()}}
			for _, s := range specs {
				name := fmt.Sprintf("%s-%s-%s", kind, s.typ, d.stream())
				body, err := json.Marshal(map[string]any{
					"name": name, "type": s.typ, "stream": d.stream(), "toxicity": 1, "attributes": s.attrs,
				})
				if err == nil {
					_, err = l.proxy.Toxics.AddToxicJson(bytes.NewReader(body))
				}
				if err != nil {
					l.removeToxics(ctx, tf.names)
					return err
				}
				tf.names = append(tf.names, name)
			}
			l.mu.Lock()
			l.faultSeq++
			tf.seq = l.faultSeq
			l.faults = append(l.faults, tf)
			l.mu.Unlock()
			l.log.Debug("link fault added", "addr", l.addr, "fault", tf.fault.String())
		}
		return nil
	})
}

// find returns the fault of kind in the single direction d, or nil.
func (l *Link) find(kind Verb, d Direction) *toxicFault {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tf := range l.faults {
		if tf.fault.Verb == kind && tf.fault.Dir == d {
			return tf
		}
	}
	return nil
}

// removeFault removes the fault of kind in the single direction d, if any.
// Called from an operation goroutine.
func (l *Link) removeFault(ctx context.Context, kind Verb, d Direction) error {
	tf := l.find(kind, d)
	if tf == nil {
		return nil
	}
	if err := l.removeToxics(ctx, tf.names); err != nil {
		return err
	}
	l.mu.Lock()
	l.faults = slices.DeleteFunc(l.faults, func(x *toxicFault) bool { return x == tf })
	l.mu.Unlock()
	l.log.Debug("link fault removed", "addr", l.addr, "fault", tf.fault.String())
	return nil
}

// removeToxics removes toxics newest first. The order matters: removing a
// timeout toxic closes its stubs, and toxiproxy 2.12 then no longer reaches
// the toxics after it on those connections, so they must go first.
func (l *Link) removeToxics(ctx context.Context, names []string) error {
	for _, name := range slices.Backward(names) {
		if err := l.proxy.Toxics.RemoveToxic(ctx, name); err != nil {
			return fmt.Errorf("remove toxic %s: %w", name, err)
		}
	}
	return nil
}

// removeAll removes every toxic fault, newest first. Called from an
// operation goroutine.
func (l *Link) removeAll() error {
	l.mu.Lock()
	all := slices.Clone(l.faults)
	l.mu.Unlock()
	slices.SortFunc(all, func(a, b *toxicFault) int { return b.seq - a.seq })
	for _, tf := range all {
		if err := l.removeFault(context.Background(), tf.fault.Verb, tf.fault.Dir); err != nil {
			return err
		}
	}
	return nil
}

// Clear removes one verb's effect in dir. Clearing VerbDown brings the link
// Up; VerbDrop and VerbDelay remove packet rules. Clearing a blackhole closes
// the connections it affected.
func (l *Link) Clear(ctx context.Context, verb Verb, dir Direction) error {
	if !dir.valid() {
		return fmt.Errorf("%w: direction %v", ErrInvalid, dir)
	}
	switch verb {
	case VerbDown:
		return l.Up(ctx)
	case VerbDrop, VerbDelay:
		if err := l.checkOpen(); err != nil {
			return err
		}
		action := mqttframe.Drop
		if verb == VerbDelay {
			action = mqttframe.Delay
		}
		l.eng.clearRules(dir, action)
		return nil
	}
	return l.do(ctx, "clear "+string(verb), func() error {
		for _, d := range dir.each() {
			if err := l.removeFault(ctx, verb, d); err != nil {
				return err
			}
		}
		return nil
	})
}

// Heal removes every fault: toxics (newest first), packet rules, and Down.
// The tap keeps its records. Healing a blackhole closes the connections it
// affected (their byte streams lost data).
func (l *Link) Heal(ctx context.Context) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	l.eng.clearRules(Both, mqttframe.Forward)
	return l.do(ctx, "heal", func() error {
		if err := l.removeAll(); err != nil {
			return err
		}
		return l.up()
	})
}

// Active lists the effects in force, oldest first.
func (l *Link) Active() []Effect {
	l.mu.Lock()
	var out []Effect
	for _, tf := range l.faults {
		out = append(out, tf.fault)
	}
	if !l.down.IsZero() {
		out = append(out, Effect{Verb: VerbDown, Dir: Both, Since: l.down})
	}
	l.mu.Unlock()
	out = append(out, l.eng.activeRules()...)
	slices.SortStableFunc(out, func(a, b Effect) int { return a.Since.Compare(b.Since) })
	return out
}
