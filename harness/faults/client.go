package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// The client faults crash the clients under test: those that run in a child process with a store on disk
// (harness/clients/crashclient). Injecting one kills a share of them with SIGKILL; healing it starts them
// again on the same store, so the fault's duration is the restart delay (drawn from the Mix's Min to Max
// in a random schedule, the trace's duration in a trace). They are opt-in: weight 0 in the default random
// schedule, so soaks that do not ask for them do not change (soak -crash), and no trial, since only
// crash-capable clients can take them (compare runs them for those).

func init() {
	register(ClientKill{Share: 100})
	register(ClientPowerCut{Share: 100})
}

// shares are the shares of the clients a random schedule kills at once, in percent.
var shares = []int{10, 25, 50, 100}

// clientFault is what the client faults share: healing one restarts the clients it killed.
type clientFault struct{}

func (clientFault) Family() Family { return FamilyClient }
func (clientFault) OneShot() bool  { return false }
func (clientFault) Trial() Trial   { return Trial{} }
func (clientFault) Heal(ctx context.Context, t Target) error {
	if t.Clients == nil {
		return ErrNoClients
	}
	return t.Clients.Restart(ctx)
}

// ErrNoClients is returned by a client fault on a target without clients to crash (the proxy's: it fronts
// real devices).
var ErrNoClients = errors.New("faults: no clients to crash here (client faults need the harness's own crash-capable clients)")

func crash(t Target, share int, powerCut bool) error {
	if t.Clients == nil {
		return ErrNoClients
	}
	return t.Clients.Crash(context.Background(), share, powerCut)
}

func validShare(fault string, share int) error {
	if share < 1 || share > 100 {
		return &ParamError{fault, "share", fmt.Sprintf("%d is not a percentage of the clients from 1 to 100", share)}
	}
	return nil
}

func drawShare(r *rand.Rand) int { return shares[r.IntN(len(shares))] }

// ClientKill kills Share percent of the crash-capable clients (at least one, taken in turn, so every
// client is killed in a long run) with SIGKILL, as a crash of the process: what they wrote stays, as the
// page cache keeps it. Healed, they start again on their stores and must send what they reported durable.
type ClientKill struct {
	clientFault
	Share int `param:"share"`
}

func (ClientKill) Name() string     { return "client-kill" }
func (f ClientKill) String() string { return Format(f) }
func (f ClientKill) Validate() error {
	return validShare(f.Name(), f.Share)
}
func (f ClientKill) Draw(r *rand.Rand) Fault                  { f.Share = drawShare(r); return f }
func (f ClientKill) Inject(_ context.Context, t Target) error { return crash(t, f.Share, false) }
func (ClientKill) Mix() Mix {
	return Mix{Weight: 0, OptIn: 30, Min: 500 * time.Millisecond, Max: 5 * time.Second,
		Why: "the client's process killed (SIGKILL) and restarted 0.5–5 s later; opt-in (soak -crash)"}
}

// ClientPowerCut is ClientKill plus the loss of everything the killed clients wrote and did not fsync,
// as a power cut of the device drops it: their next start first undoes those writes.
type ClientPowerCut struct {
	clientFault
	Share int `param:"share"`
}

func (ClientPowerCut) Name() string     { return "client-power-cut" }
func (f ClientPowerCut) String() string { return Format(f) }
func (f ClientPowerCut) Validate() error {
	return validShare(f.Name(), f.Share)
}
func (f ClientPowerCut) Draw(r *rand.Rand) Fault                  { f.Share = drawShare(r); return f }
func (f ClientPowerCut) Inject(_ context.Context, t Target) error { return crash(t, f.Share, true) }
func (ClientPowerCut) Mix() Mix {
	return Mix{Weight: 0, OptIn: 20, Min: 500 * time.Millisecond, Max: 5 * time.Second,
		Why: "the client's power cut (SIGKILL, its unsynced writes dropped) and back 0.5–5 s later; opt-in (soak -crash)"}
}

// CrashNames lists the client faults, for a run that opts in to them all (soak -crash).
func CrashNames() []string {
	var out []string
	for _, f := range All() {
		if f.Family() == FamilyClient {
			out = append(out, f.Name())
		}
	}
	return slices.Clip(out)
}
