package faults

import (
	"context"
	"time"
)

// The broker faults act on the broker's process; the link stays as it is.

func init() {
	register(BrokerRestart{})
	register(BrokerKill{})
	register(BrokerPause{})
}

// brokerFault is what the broker faults share: healing one starts the broker again.
type brokerFault struct{}

func (brokerFault) Family() Family                           { return FamilyBroker }
func (brokerFault) OneShot() bool                            { return false }
func (brokerFault) Heal(ctx context.Context, t Target) error { return t.Broker.Start(ctx) }

// BrokerRestart stops the broker gracefully (it saves its persistence) until healed: a broker restart.
type BrokerRestart struct {
	brokerFault
	plain[BrokerRestart]
}

func (BrokerRestart) Name() string                               { return "broker-restart" }
func (f BrokerRestart) String() string                           { return Format(f) }
func (BrokerRestart) Inject(ctx context.Context, t Target) error { return t.Broker.Stop(ctx) }
func (BrokerRestart) Mix() Mix {
	return Mix{Weight: 6, Min: time.Second, Max: 6 * time.Second,
		Why: "the broker stopped gracefully (it saves its sessions) and started again"}
}
func (BrokerRestart) Trial() Trial {
	return Trial{What: "across a broker restart (graceful stop, 1 s down, start)", Fault: BrokerRestart{},
		Hold: time.Second, Outage: true}
}

// BrokerKill kills the broker (SIGKILL: what autosave did not write is lost) until healed.
//
// It has weight 0 in random schedules and no trial: SIGKILL loses whatever mosquitto had not autosaved
// (autosave_interval 1), so acknowledged messages may go with it and a verdict would blame the client for
// the broker's durability contract. Give it a weight to study exactly that.
type BrokerKill struct {
	brokerFault
	plain[BrokerKill]
}

func (BrokerKill) Name() string                               { return "broker-kill" }
func (f BrokerKill) String() string                           { return Format(f) }
func (BrokerKill) Inject(ctx context.Context, t Target) error { return t.Broker.Kill(ctx) }
func (BrokerKill) Mix() Mix {
	return Mix{Weight: 0, Min: time.Second, Max: 6 * time.Second,
		Why: "the broker crashed (SIGKILL); off by default: it may lose acknowledged messages"}
}
func (BrokerKill) Trial() Trial { return Trial{} }

// BrokerPause freezes the broker: TCP still connects, nothing is answered.
type BrokerPause struct {
	brokerFault
	plain[BrokerPause]
}

func (BrokerPause) Name() string                               { return "broker-pause" }
func (f BrokerPause) String() string                           { return Format(f) }
func (BrokerPause) Inject(ctx context.Context, t Target) error { return t.Broker.Pause(ctx) }
func (BrokerPause) Heal(ctx context.Context, t Target) error   { return t.Broker.Unpause(ctx) }
func (BrokerPause) Mix() Mix {
	return Mix{Weight: 5, Min: time.Second, Max: 6 * time.Second, Why: "a hung broker: TCP connects, nothing answers"}
}
func (BrokerPause) Trial() Trial {
	return Trial{What: "while the broker is paused for 3.5 s", Fault: BrokerPause{}, Hold: 3500 * time.Millisecond,
		Outage: true}
}
