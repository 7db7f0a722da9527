package bench

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/crashclient"
	"github.com/mqttas/mqttas-go/harness/clients/mqttasclient"
	"github.com/mqttas/mqttas-go/harness/clients/pahoclient"
	"github.com/mqttas/mqttas-go/harness/clients/procclient"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
	"github.com/mqttas/mqttas-go/harness/rig"
	"github.com/mqttas/mqttas-go/harness/validate"
)

// Settings are the keepalive, timeout and backoff settings both clients get wherever outages are
// measured, chosen to be equivalent:
//   - mqttas: KeepAlive 2 s → a PINGREQ every 0.5 s, the broker is dead after 4 silent intervals (2 s);
//     ResponseTime 2 s bounds each connection attempt (and each wait for a PUBACK before a DUP re-send);
//     reconnection backoff 100 ms doubling to 1 s, jittered.
//   - paho: KeepAlive 2 s + PingTimeout 1 s; ConnectTimeout 2 s; MaxReconnectInterval 1 s (paho's backoff
//     starts at 1 s, so every retry waits 1 s).
type Settings struct {
	KeepAlive, PingTimeout, ConnectTimeout, ResponseTimeout time.Duration
	ReconnectMin, ReconnectMax                              time.Duration
}

// DefaultSettings returns the settings described on Settings.
func DefaultSettings() Settings {
	return Settings{KeepAlive: 2 * time.Second, PingTimeout: time.Second, ConnectTimeout: 2 * time.Second,
		ResponseTimeout: 2 * time.Second, ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second}
}

// Registry returns the adapters of both Go clients configured with s, and the out-of-process drivers
// (python, node, c), which keep their libraries' own settings (see drivers/) and get s through Options.
func (s Settings) Registry() clients.Registry {
	mc := mqttasclient.Config{ReconnectMin: s.ReconnectMin, ReconnectMax: s.ReconnectMax}
	pc := pahoclient.DefaultConfig()
	pc.MaxReconnectInterval = s.ReconnectMax
	reg := procclient.DefaultRegistry()
	maps.Copy(reg, crashclient.DefaultRegistry())
	reg[mqttasclient.Name], reg[pahoclient.Name] = mqttasclient.Factory(mc), pahoclient.Factory(pc)
	return reg
}

// Options returns the clients.Options for a client with id.
func (s Settings) Options(id string, clean bool) clients.Options {
	return clients.Options{ClientID: id, CleanSession: clean, KeepAlive: s.KeepAlive, PingTimeout: s.PingTimeout,
		ConnectTimeout: s.ConnectTimeout, ResponseTimeout: s.ResponseTimeout}
}

// String renders the settings for a report.
func (s Settings) String() string {
	return fmt.Sprintf("KeepAlive %v (mqttas: ping every %v, dead after 4 silent intervals; paho: PingTimeout %v), "+
		"connection attempt bound %v (mqttas ResponseTime, paho ConnectTimeout), reconnect backoff capped at %v "+
		"(mqttas from %v, jittered; paho's starts at 1 s)",
		s.KeepAlive, s.KeepAlive/4, s.PingTimeout, s.ConnectTimeout, s.ReconnectMax, s.ReconnectMin)
}

// RigOptions are the rig options for outage measurements: a private process broker that never drops
// (max_queued_messages 0) and keeps sessions across a restart.
func (s Settings) RigOptions() rig.Options {
	return rig.Options{
		Broker:  broker.Options{Backend: broker.KindProcess, Config: []string{"max_queued_messages 0"}},
		Clients: s.Registry(),
	}
}

// OutageTrial is one outage measured on one client.
type OutageTrial struct {
	Detection time.Duration `json:"detection_ns"` // fault → the client reports the connection lost
	Reconnect time.Duration `json:"reconnect_ns"` // heal → the client reports it is connected
	Recovery  time.Duration `json:"recovery_ns"`  // heal → a qos 1 publish issued then is acknowledged
	// PendingAtHeal: a connection attempt was in progress (CONNECT sent, no answer, connection open) when
	// the link was healed.
	PendingAtHeal bool          `json:"pending_at_heal"`
	HealTook      time.Duration `json:"heal_took_ns"` // how long the link took to heal
}

// newTracked makes a rig client whose events go to an eventLog as well as to the rig's timeline.
func newTracked(r *rig.Rig, lib string, o clients.Options) (clients.Client, *eventLog, error) {
	log := &eventLog{}
	o.OnEvent = log.on
	c, err := r.NewClient(lib, o)
	return c, log, err
}

// recoverAfterHeal publishes one qos 1 message right after the heal, waits for the client's up event, and
// measures the outage as harness/validate defines it: fault (from t0) → down, heal → reconnected and heal →
// the publication acknowledged.
func recoverAfterHeal(ctx context.Context, r *rig.Rig, c clients.Client, log *eventLog, id string, t0, healed time.Time,
	topic string) (OutageTrial, error) {
	var t OutageTrial
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Publish(pctx, clients.Message{Topic: topic, Payload: []byte("recovery"), QoS: 1}); err != nil {
		return t, fmt.Errorf("publish after heal: %w", err)
	}
	acked := time.Since(r.Start)
	if _, err := log.wait(pctx, clients.EventUp, healed); err != nil {
		return t, fmt.Errorf("no up event after heal: %w", err)
	}
	j := judge(r, id, t0, healed, time.Minute)
	if !j.detected || !j.reconnected {
		return t, fmt.Errorf("the timeline holds no outage of %s from the fault to the reconnection", id)
	}
	t.Detection, t.Reconnect = j.detection, j.reconnect
	t.Recovery, _ = validate.Recovery(j.fault.End, []time.Duration{acked})
	return t, nil
}

// connectTracked connects a tracked client of lib through r for one trial. stop heals the link and closes
// the client.
func connectTracked(ctx context.Context, r *rig.Rig, lib string, o clients.Options) (clients.Client, *eventLog, func(), error) {
	c, log, err := newTracked(r, lib, o)
	if err != nil {
		return nil, nil, nil, err
	}
	stop := func() {
		_ = r.Heal(context.WithoutCancel(ctx))
		_ = c.Close()
	}
	if err := c.Connect(ctx); err != nil {
		stop()
		return nil, nil, nil, err
	}
	return c, log, stop, nil
}

// silentTrial blackholes the link both ways (no FIN, no RST), measures how long the client takes to
// notice, waits until a reconnection attempt is pending in the blackhole, heals, and measures the
// recovery.
func silentTrial(ctx context.Context, r *rig.Rig, s Settings, lib, id string) (OutageTrial, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, log, stop, err := connectTracked(ctx, r, lib, s.Options(id, true))
	if err != nil {
		return OutageTrial{}, err
	}
	defer stop()
	// A random phase against both clients' keepalive schedules (paho pings at most every KeepAlive plus
	// a check interval of KeepAlive/4; mqttas every KeepAlive/4).
	sleep(ctx, time.Second+rand.N(s.KeepAlive+s.KeepAlive/4))
	tap := r.Link.Tap()
	mark := tap.Seq()
	t0 := time.Now()
	if err := r.Link.Silent(ctx); err != nil {
		return OutageTrial{}, err
	}
	down, err := log.wait(ctx, clients.EventDown, t0)
	if err != nil {
		return OutageTrial{}, fmt.Errorf("silent link never detected: %w", err)
	}
	// Wait for the next connection attempt to send its CONNECT into the blackhole, then let it hang.
	p, err := tap.WaitFor(ctx, link.AfterSeq(mark), link.OfType(mqttframe.CONNECT), link.InDir(link.Upstream),
		func(p link.Packet) bool { return !p.Time.Before(down) })
	if err != nil {
		return OutageTrial{}, fmt.Errorf("no reconnection attempt after detection: %w", err)
	}
	sleep(ctx, s.ConnectTimeout/5)
	pending := tap.Count(link.OnConn(p.Conn), link.IsEvent(link.EventEOF)) == 0 && log.count(clients.EventUp, down) == 0 &&
		time.Since(p.Time) < s.ConnectTimeout
	healed := time.Now()
	if err := r.Heal(ctx); err != nil {
		return OutageTrial{}, err
	}
	took := time.Since(healed)
	t, err := recoverAfterHeal(ctx, r, c, log, id, t0, healed, "bench/outage/"+id)
	t.PendingAtHeal, t.HealTook = pending, took
	return t, err
}

// downTrial makes the link refuse connections (closing the open one) for about hold, a random phase
// against the client's retry schedule, so the heal usually finds the client waiting between attempts.
func downTrial(ctx context.Context, r *rig.Rig, s Settings, lib, id string, hold time.Duration) (OutageTrial, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, log, stop, err := connectTracked(ctx, r, lib, s.Options(id, true))
	if err != nil {
		return OutageTrial{}, err
	}
	defer stop()
	sleep(ctx, 500*time.Millisecond)
	t0 := time.Now()
	if err := r.Link.Down(ctx); err != nil {
		return OutageTrial{}, err
	}
	if _, err := log.wait(ctx, clients.EventDown, t0); err != nil {
		return OutageTrial{}, fmt.Errorf("link down never detected: %w", err)
	}
	sleep(ctx, time.Until(t0.Add(hold+rand.N(time.Second))))
	healed := time.Now()
	if err := r.Heal(ctx); err != nil {
		return OutageTrial{}, err
	}
	took := time.Since(healed)
	t, err := recoverAfterHeal(ctx, r, c, log, id, t0, healed, "bench/outage/"+id)
	t.HealTook = took
	return t, err
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
