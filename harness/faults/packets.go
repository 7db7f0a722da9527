package faults

import (
	"context"
	"time"

	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
)

// The packet faults act on MQTT packets on the link, by type; the stream itself stays valid.

func init() {
	register(DropPubacks{})
}

// packetFault is what the packet faults that drop share: healing one stops every drop rule.
type packetFault struct{}

func (packetFault) Family() Family { return FamilyPackets }
func (packetFault) OneShot() bool  { return false }
func (packetFault) Heal(_ context.Context, t Target) error {
	t.Link.StopDropping()
	return nil
}

// DropPubacks drops every PUBACK on its way to the client, the others pass: the client re-sends with DUP
// and, past MaxRepubs, declares the link dead.
type DropPubacks struct {
	packetFault
	plain[DropPubacks]
}

func (DropPubacks) Name() string { return "drop-pubacks" }
func (DropPubacks) Inject(_ context.Context, t Target) error {
	return t.Link.DropPackets(link.Downstream, mqttframe.PUBACK, -1)
}
func (DropPubacks) Mix() Mix {
	return Mix{Weight: 6, Min: time.Second, Max: 5 * time.Second,
		Why: "PUBACKs lost on the way back: the client re-sends with DUP"}
}
func (DropPubacks) Trial() Trial {
	return Trial{What: "while every PUBACK to the client is dropped for 2.5 s", Fault: DropPubacks{},
		Hold: 2500 * time.Millisecond}
}
