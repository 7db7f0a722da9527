package bench

import (
	"context"
	"sync"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/rig"
	"github.com/mqttas/mqttas-go/harness/timeline"
	"github.com/mqttas/mqttas-go/harness/validate"
)

// eventLog records a client's connection events and lets a measurement wait for one.
type eventLog struct {
	mu  sync.Mutex
	evs []clients.Event
}

func (l *eventLog) on(e clients.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
}

// first returns the time of the first event of kind at or after since.
func (l *eventLog) first(kind clients.EventKind, since time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.evs {
		if e.Kind == kind && !e.At.Before(since) {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// count returns how many events of kind happened at or after since.
func (l *eventLog) count(kind clients.EventKind, since time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.evs {
		if e.Kind == kind && !e.At.Before(since) {
			n++
		}
	}
	return n
}

// wait waits for the first event of kind at or after since, polling (the event carries its own time, so
// polling costs no precision).
func (l *eventLog) wait(ctx context.Context, kind clients.EventKind, since time.Time) (time.Time, error) {
	for {
		if at, ok := l.first(kind, since); ok {
			return at, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// judged is a client's outages measured against one fault, as harness/validate defines the figures.
type judged struct {
	fault       validate.Fault
	outages     []validate.Outage // all of the client's, on the rig's timeline
	began       int               // outages that began at or after the fault's start
	detection   time.Duration
	detected    bool
	reconnect   time.Duration // of the last outage that began no later than slack after the heal
	reconnected bool
}

// judge measures the outages client id recorded on r's timeline against the fault from start to healed.
func judge(r *rig.Rig, id string, start, healed time.Time, slack time.Duration) judged {
	j := judged{fault: validate.Fault{Start: start.Sub(r.Start), End: healed.Sub(r.Start)}}
	j.outages = validate.Outages(r.Timeline.Entries(), id)
	j.began = validate.Began(j.outages, j.fault.Start)
	j.detection, j.detected = validate.Detection(j.fault, j.outages)
	att := validate.Attribute(j.outages, []timeline.Window{{Start: j.fault.Start, End: j.fault.End}}, slack)
	if o := att[0].Outages; len(o) > 0 {
		j.reconnect, j.reconnected = validate.Reconnect(j.fault, o[len(o)-1])
	}
	return j
}
