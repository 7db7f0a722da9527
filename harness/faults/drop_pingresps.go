package faults

import (
	"context"
	"time"

	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
)

func init() {
	register(DropPingresps{})
}

// DropPingresps drops every PINGRESP on its way to the client, the others pass: the broker looks alive to
// whatever traffic flows, but a keepalive that waits for PINGRESP itself never gets one. A client that
// counts any byte received as a sign of life rides it out while it has traffic; an idle one must notice.
type DropPingresps struct {
	packetFault
	plain[DropPingresps]
}

func (DropPingresps) Name() string { return "drop-pingresps" }
func (DropPingresps) Inject(_ context.Context, t Target) error {
	return t.Link.DropPackets(link.Downstream, mqttframe.PINGRESP, -1)
}
func (DropPingresps) Mix() Mix {
	return Mix{Weight: 4, Min: 2 * time.Second, Max: 8 * time.Second,
		Why: "PINGRESPs lost on the way back while everything else passes: keepalive without a reply"}
}
func (DropPingresps) Trial() Trial {
	return Trial{What: "while every PINGRESP to the client is dropped for 3 s", Fault: DropPingresps{},
		Hold: 3 * time.Second}
}
