package bench

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
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
	if sub == "" {
		out = append(out, e.unacknowledged(&res)...)
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

// unacknowledged is the evidence of the messages lost without a false success: attempted, never
// acknowledged and never delivered. They count as lost all the same, and the first of them (by publisher,
// topic and sequence) is shown with the history around it and the tap's packets from just before its
// publication to a second after it. A publication without an outcome (Publish never returned, or was
// abandoned when the scenario ended) is what stalls a publisher that waits for each before the next.
func (e *env) unacknowledged(res *ledger.Result) []string {
	type fate struct {
		invoked            time.Duration
		acked, delivered   bool
		failed, unfinished int // attempts that failed as not sent; that never returned or were abandoned
		other              int // attempts that failed with another error
	}
	fates := map[ledger.ID]*fate{}
	for ev := range e.r.Ledger.Events() {
		switch ev.Kind {
		case ledger.KindInvoke:
			if fates[ev.ID] == nil {
				fates[ev.ID] = &fate{invoked: ev.At}
			}
			f := fates[ev.ID]
			f.unfinished++ // until its outcome comes
		case ledger.KindOK, ledger.KindFail, ledger.KindInfo:
			f := fates[ev.ID]
			if f == nil {
				continue
			}
			f.unfinished--
			switch {
			case ev.Kind == ledger.KindOK:
				f.acked = true
			case ev.Kind == ledger.KindFail:
				f.failed++
			case abandoned(ev.Err):
				f.unfinished++
			default:
				f.other++
			}
		case ledger.KindDeliver:
			if f := fates[ev.ID]; f != nil {
				f.delivered = true
			}
		}
	}
	var ids []ledger.ID
	var failed, unfinished, other int
	for id, f := range fates {
		if f.acked || f.delivered {
			continue
		}
		ids = append(ids, id)
		switch {
		case f.unfinished > 0:
			unfinished++
		case f.other > 0:
			other++
		default:
			failed++
		}
	}
	if len(ids) == 0 {
		return nil
	}
	first := slices.MinFunc(ids, compareID)
	f := fates[first]
	outcome := "its Publish failed as not sent"
	switch {
	case f.unfinished > 0:
		outcome = "its Publish never returned, or was abandoned when the scenario ended"
	case f.other > 0:
		outcome = "its Publish failed with an error that does not say whether it was sent"
	}
	out := []string{fmt.Sprintf("lost without an acknowledgement (%d in all: %d failed as not sent, %d without an outcome, "+
		"%d with an indeterminate error), the first: %v, invoked %v: %s", len(ids), failed, unfinished, other, first,
		f.invoked.Round(time.Microsecond), outcome)}
	out = append(out, indent(res.Context(first, evidenceRadius))...)
	return append(out, e.packets(f.invoked-evidenceSlack, f.invoked+time.Second)...)
}

// abandoned reports whether a publication's error says the harness stopped waiting for it.
func abandoned(err string) bool {
	return strings.Contains(err, context.Canceled.Error()) || strings.Contains(err, context.DeadlineExceeded.Error())
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

// packets renders the tap's records between two offsets from the rig's start (from is evidenceSlack
// before the message's publication), without keepalive traffic, at most evidencePackets of them around
// the publication; nothing when the tap no longer holds that time.
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
		// Those around the message's publication, half of them before it.
		at := e.r.Start.Add(from + evidenceSlack)
		i := slices.IndexFunc(ps, func(p link.Packet) bool { return !p.Time.Before(at) })
		if i < 0 {
			i = len(ps)
		}
		lo := min(max(i-evidencePackets/2, 0), len(ps)-evidencePackets)
		ps = ps[lo : lo+evidencePackets]
		out[0] += fmt.Sprintf(" the %d around the publication", evidencePackets)
	}
	for _, p := range ps {
		out = append(out, "    "+p.Format(e.r.Start))
	}
	return out
}
