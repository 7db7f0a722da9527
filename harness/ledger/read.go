package ledger

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// ErrHistory is wrapped by every error ReadJSONL returns for a history it
// cannot make sense of (as opposed to an error reading it).
var ErrHistory = errors.New("ledger: bad history")

// historyEpoch is the start of a ledger read back: only times relative to the
// start are written, and only those matter to Check.
var historyEpoch = time.Unix(0, 0)

// ReadJSONL reads a history written by WriteJSONL into a new ledger, so that
// Check gives the verdict of the run that wrote it. Lines may come in any
// order (a report sorts them by time); they are replayed in index order.
// Lines of kinds the ledger does not write, such as a report's timeline
// entries, are skipped; blank lines too. The history may be gzip compressed
// (see OpenHistory).
func ReadJSONL(r io.Reader) (*Ledger, error) {
	var evs []Event
	hr, err := OpenHistory(r)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(hr, 1<<16)
	for n := 1; ; n++ {
		b, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("ledger: read history: %w", err)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			ev, ok, derr := decodeLine(b)
			if derr != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrHistory, n, derr)
			}
			if ok {
				evs = append(evs, ev)
			}
		}
		if err != nil {
			break
		}
	}
	slices.SortStableFunc(evs, func(a, b Event) int { return cmp.Compare(a.Index, b.Index) })
	l := New(historyEpoch)
	if err := l.replay(evs); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHistory, err)
	}
	return l, nil
}

// CheckJSONL reads a history (see ReadJSONL) and checks it.
func CheckJSONL(r io.Reader) (Result, error) {
	l, err := ReadJSONL(r)
	if err != nil {
		return Result{}, err
	}
	return l.Check(), nil
}

// ledgerKind reports whether the ledger writes lines of kind k.
func ledgerKind(k string) bool {
	switch k {
	case KindInvoke, KindOK, KindFail, KindInfo, KindDeliver, KindUnexpected, KindSubscribe, KindUnsubscribe, KindDrops:
		return true
	}
	return false
}

// decodeLine decodes one line; ok is false for a line of another kind.
func decodeLine(b []byte) (ev Event, ok bool, err error) {
	// The outer fields shadow Event's, so a missing index or time is told
	// from a zero one.
	var w struct {
		Index *int           `json:"i"`
		At    *time.Duration `json:"at_ns"`
		Event
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return ev, false, err
	}
	if !ledgerKind(w.Kind) {
		return ev, false, nil
	}
	if w.Index == nil || w.At == nil {
		return ev, false, fmt.Errorf("%s line without \"i\" or \"at_ns\"", w.Kind)
	}
	ev = w.Event
	ev.Index, ev.At = *w.Index, *w.At
	return ev, true, nil
}

// replay records evs, sorted by index, into l, which must be new.
func (l *Ledger) replay(evs []Event) error {
	ops := make(map[int]Op)      // invoke line → its op
	windows := make(map[int]int) // subscribe line → index into l.windows
	at := func(ev Event) time.Time { return historyEpoch.Add(ev.At) }
	for i, ev := range evs {
		if i > 0 && evs[i-1].Index == ev.Index {
			return fmt.Errorf("two lines with index %d", ev.Index)
		}
		switch ev.Kind {
		case KindInvoke:
			ops[ev.Index] = l.Invoke(ev.ID, at(ev))
		case KindOK, KindFail, KindInfo:
			op, ok := ops[ev.Op]
			if !ok {
				return fmt.Errorf("line %d: %s of op %d, which is no earlier invoke", ev.Index, ev.Kind, ev.Op)
			}
			if ev.ID != (ID{}) && ev.ID != l.id(op) {
				return fmt.Errorf("line %d: %s of %v names op %d, an invoke of %v", ev.Index, ev.Kind, ev.ID, ev.Op, l.id(op))
			}
			var err error
			if ev.Err != "" {
				err = errors.New(ev.Err)
			}
			l.Complete(op, outcomeNamed(ev.Kind), at(ev), err)
		case KindDeliver, KindUnexpected:
			if ev.QoS > 2 {
				return fmt.Errorf("line %d: qos %d", ev.Index, ev.QoS)
			}
			l.replayDelivery(ev, at(ev))
		case KindSubscribe:
			windows[ev.Index] = len(l.windows)
			l.Subscribe(ev.Subscriber, ev.Filter, at(ev))
		case KindUnsubscribe:
			w, ok := windows[ev.Op]
			if !ok {
				return fmt.Errorf("line %d: unsubscribe of line %d, which is no earlier subscribe", ev.Index, ev.Op)
			}
			if l.windows[w].until != math.MaxInt64 {
				return fmt.Errorf("line %d: subscription %d closed twice", ev.Index, ev.Op)
			}
			l.windows[w].until = at(ev).UnixNano()
		case KindDrops:
			if ev.N < 0 {
				return fmt.Errorf("line %d: %d drops", ev.Index, ev.N)
			}
			l.ExpectDrops(ev.Subscriber, ev.N)
		}
	}
	return nil
}

// replayDelivery records a delivery line as Deliver recorded it, without the
// payload Deliver decoded it from.
func (l *Ledger) replayDelivery(ev Event, at time.Time) {
	flags := (ev.QoS & 3) << flagQoSShift
	if ev.Dup {
		flags |= flagDup
	}
	if ev.Retain {
		flags |= flagRetain
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	sub := l.subLocked(ev.Subscriber)
	if ev.Kind == KindUnexpected {
		l.strays = append(l.strays, stray{topic: ev.Topic, prefix: clonePrefix(ev.Payload), reason: ev.Reason,
			id: ev.ID, decoded: ev.ID != ID{}})
		l.appendLocked(event{at: at.UnixNano(), ref: int32(len(l.strays) - 1), sub: sub, kind: kStray, flags: flags})
		return
	}
	s := l.streamLocked(ev.ID.Publisher, ev.ID.Topic)
	l.appendLocked(event{at: at.UnixNano(), seq: ev.ID.Seq, stream: s, sub: sub, kind: kDeliver, flags: flags})
}

// id is the message op is an attempt of.
func (l *Ledger) id(op Op) ID {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.events.at(int(op))
	id := l.streams[e.stream]
	id.Seq = e.seq
	return id
}

func outcomeNamed(kind string) Outcome {
	switch kind {
	case KindOK:
		return OK
	case KindFail:
		return Fail
	}
	return Info
}
