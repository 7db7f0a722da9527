package bench

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
)

// Bounds on a verdict's evidence, so the report stays readable.
const (
	evidenceRadius  = 2                      // history events either side of the counter-example's
	evidencePackets = 12                     // tap records around it
	evidenceSlack   = 250 * time.Millisecond // before its publication and after its acknowledgement
)

// evidence returns the smallest counter-example of each defect the ledger found (with sub set, only those
// of that subscriber): the first lost, duplicated and unexpected message by publisher, topic and sequence,
// each with the history around it, and for a lost one the tap's packets from just before it was published
// to just after it was acknowledged. Nil when the ledger found nothing.
func (e *env) evidence(res ledger.Result, sub string) []string {
	var out []string
	mine := func(s string) bool { return sub == "" || s == sub }
	var lost []ledger.Lost
	for _, l := range res.Lost {
		if mine(l.Subscriber) {
			lost = append(lost, l)
		}
	}
	if len(lost) > 0 {
		l := slices.MinFunc(lost, func(a, b ledger.Lost) int { return compareID(a.ID, b.ID) })
		out = append(out, fmt.Sprintf("lost (%d in all), the first: %v", len(lost), l))
		out = append(out, indent(res.Context(l.ID, evidenceRadius))...)
		out = append(out, e.packets(l.Invoked-evidenceSlack, l.Acked+evidenceSlack)...)
	}
	var dups []ledger.Duplicate
	for _, d := range res.Duplicated {
		if mine(d.Subscriber) {
			dups = append(dups, d)
		}
	}
	if len(dups) > 0 {
		d := slices.MinFunc(dups, func(a, b ledger.Duplicate) int { return compareID(a.ID, b.ID) })
		out = append(out, fmt.Sprintf("duplicated (%d messages), the first: %v", len(dups), d))
		out = append(out, indent(res.Context(d.ID, evidenceRadius))...)
	}
	var unex []ledger.Unexpected
	for _, u := range res.Unexpected {
		if mine(u.Subscriber) {
			unex = append(unex, u)
		}
	}
	if len(unex) > 0 {
		out = append(out, fmt.Sprintf("unexpected (%d deliveries), the first: %v", len(unex), unex[0]))
		out = append(out, indent(res.UnexpectedContext(unex[0], evidenceRadius))...)
	}
	return out
}

func compareID(a, b ledger.ID) int {
	return cmp.Or(cmp.Compare(a.Publisher, b.Publisher), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Seq, b.Seq))
}

func indent(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = "  " + l
	}
	return out
}

// packets renders the tap's records between two offsets from the rig's start, without keepalive traffic,
// at most evidencePackets of them; nothing when the tap no longer holds that time.
func (e *env) packets(from, to time.Duration) []string {
	tap := e.r.Link.Tap()
	lo, hi := e.r.Start.Add(from), e.r.Start.Add(to)
	ps := tap.Packets(func(p link.Packet) bool {
		return !p.Time.Before(lo) && !p.Time.After(hi) && p.Type != mqttframe.PINGREQ && p.Type != mqttframe.PINGRESP
	})
	if len(ps) == 0 {
		return nil
	}
	out := []string{fmt.Sprintf("  tap, %v to %v (%d records):", from.Round(time.Millisecond), to.Round(time.Millisecond), len(ps))}
	if len(ps) > evidencePackets {
		ps = ps[:evidencePackets]
		out[0] += fmt.Sprintf(" the first %d", evidencePackets)
	}
	for _, p := range ps {
		out = append(out, "    "+p.Format(e.r.Start))
	}
	return out
}
