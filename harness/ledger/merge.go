package ledger

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// ErrOverlap is wrapped by Merge's error when two shards share a
// (publisher, topic) stream or a subscriber, so their verdicts cannot simply
// add up.
var ErrOverlap = errors.New("ledger: shards overlap")

// Shard is one part of a run for Merge: its history (as WriteJSONL,
// WriteJSONLGzip or a report wrote it) and where its times start relative to
// the merged run's start (the difference of the shards' start times).
type Shard struct {
	Name    string
	Offset  time.Duration
	History io.Reader
}

// Merge reads the histories of the shards of one run into one ledger, whose
// Check is the verdict of the whole run: each shard's lines in its own
// record order, shard after shard, times moved by the shard's Offset. The
// shards must be disjoint, no stream or subscriber in two of them (the soak
// gives each shard its own clients, topics and observer); a message lost in
// one is lost in the merge.
func Merge(shards ...Shard) (*Ledger, error) {
	var all []Event
	streams := map[ID]int{}  // stream → shard
	subs := map[string]int{} // subscriber → shard
	base := 0
	for k, sh := range shards {
		var evs []Event
		if err := eachLine(sh.History, func(ev Event) error { evs = append(evs, ev); return nil }); err != nil {
			return nil, fmt.Errorf("shard %s: %w", sh.Name, err)
		}
		slices.SortStableFunc(evs, func(a, b Event) int { return cmp.Compare(a.Index, b.Index) })
		next := base
		for i := range evs {
			ev := &evs[i]
			if ev.Kind == KindInvoke {
				s := ID{Publisher: ev.ID.Publisher, Topic: ev.ID.Topic}
				if other, ok := streams[s]; ok && other != k {
					return nil, fmt.Errorf("%w: stream %s on %s is in %s and %s", ErrOverlap, s.Publisher, s.Topic, shards[other].Name, sh.Name)
				}
				streams[s] = k
			}
			if ev.Subscriber != "" {
				if other, ok := subs[ev.Subscriber]; ok && other != k {
					return nil, fmt.Errorf("%w: subscriber %q is in %s and %s", ErrOverlap, ev.Subscriber, shards[other].Name, sh.Name)
				}
				subs[ev.Subscriber] = k
			}
			if ev.Index < 0 {
				return nil, fmt.Errorf("%w: shard %s: line index %d", ErrHistory, sh.Name, ev.Index)
			}
			switch ev.Kind {
			case KindOK, KindFail, KindInfo, KindUnsubscribe:
				ev.Op += base
			}
			ev.Index += base
			ev.At += sh.Offset
			next = max(next, ev.Index+1)
		}
		all = append(all, evs...)
		base = next
	}
	l := New(historyEpoch)
	if err := l.replay(all); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHistory, err)
	}
	return l, nil
}
