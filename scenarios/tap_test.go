package scenarios

// Queries of the link's packet tap.

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
)

// tapPublishes returns the PUBLISH packets the client sent on topic, oldest first.
func tapPublishes(tap *link.Tap, topic string) []link.Packet {
	return tap.Packets(link.InDir(link.Upstream), link.OfType(mqttframe.PUBLISH), link.OnTopic(topic))
}

// tapGaps returns the time between consecutive packets.
func tapGaps(ps []link.Packet) []time.Duration {
	var gaps []time.Duration
	for i := 1; i < len(ps); i++ {
		gaps = append(gaps, ps[i].Time.Sub(ps[i-1].Time))
	}
	return gaps
}

// tapWaitWithin waits up to within for the first tap record matching filters.
func tapWaitWithin(ctx context.Context, tap *link.Tap, within time.Duration, filters ...link.Filter) link.Packet {
	GinkgoHelper()
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	p, err := tap.WaitFor(ctx, filters...)
	Expect(err).NotTo(HaveOccurred(), "tap:\n%s", tap)
	return p
}

// lastTapBefore returns the latest tap record matching filters recorded at or before t; the zero Packet
// (Seq 0) when there is none.
func lastTapBefore(tap *link.Tap, t time.Time, filters ...link.Filter) link.Packet {
	ps := tap.Packets(append(filters, func(p link.Packet) bool { return !p.Time.After(t) })...)
	if len(ps) == 0 {
		return link.Packet{}
	}
	return ps[len(ps)-1]
}

// tapConnects returns the CONNECT packets of client id seen on the link (and matching filters), oldest first.
func tapConnects(l *link.Link, id string, filters ...link.Filter) []link.Packet {
	var out []link.Packet
	filters = append(filters, link.OfType(mqttframe.CONNECT), link.InDir(link.Upstream))
	for _, p := range l.Tap().Packets(filters...) {
		if p.ClientID == id {
			out = append(out, p)
		}
	}
	return out
}

// tapConnack returns the CONNACK answering connection conn, if the tap saw one.
func tapConnack(l *link.Link, conn int) (link.Packet, bool) {
	ps := l.Tap().Packets(link.OfType(mqttframe.CONNACK), link.OnConn(conn))
	if len(ps) == 0 {
		return link.Packet{}, false
	}
	return ps[0], true
}

// tapOpens counts the TCP connections opened through the link.
func tapOpens(l *link.Link) int { return l.Tap().Count(link.IsEvent(link.EventOpen)) }
