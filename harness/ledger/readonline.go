package ledger

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// ReadOnline checks a history written by WriteJSONL or WriteJSONLGzip (or a
// report's, lines in any nearly sorted order) with an Online check, in two passes over r: the
// first reads the subscription windows and drops, the second the events, in
// index order through a buffer as large as the lines are out of it. Memory is
// that of the Online check and that buffer, not of the history. A zero
// horizon means DefaultHorizon.
func ReadOnline(r io.ReadSeeker, horizon time.Duration) (*Online, error) {
	o := NewOnline(horizon)
	var early []Event
	if err := eachLine(r, func(ev Event) error {
		switch ev.Kind {
		case KindSubscribe, KindUnsubscribe, KindDrops:
			early = append(early, ev)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	slices.SortStableFunc(early, func(a, b Event) int { return cmp.Compare(a.Index, b.Index) })
	for i, ev := range early {
		if i > 0 && early[i-1].Index == ev.Index {
			return nil, fmt.Errorf("%w: two lines with index %d", ErrHistory, ev.Index)
		}
		if err := o.Add(ev); err != nil {
			return nil, err
		}
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("ledger: read history: %w", err)
	}
	var buf evHeap
	next := 0
	flush := func(all bool) error {
		for len(buf) > 0 && (all || buf[0].Index <= next) {
			ev := heap.Pop(&buf).(Event)
			if ev.Index < next {
				return fmt.Errorf("%w: two lines with index %d", ErrHistory, ev.Index)
			}
			next = ev.Index + 1
			if err := o.Add(ev); err != nil {
				return err
			}
		}
		return nil
	}
	if err := eachLine(r, func(ev Event) error {
		switch ev.Kind {
		case KindSubscribe, KindUnsubscribe, KindDrops:
			return nil
		}
		heap.Push(&buf, ev)
		return flush(false)
	}); err != nil {
		return nil, err
	}
	if err := flush(true); err != nil {
		return nil, err
	}
	return o, nil
}

// eachLine calls f with every ledger line of r, plain or compressed.
func eachLine(r io.Reader, f func(Event) error) error {
	hr, err := OpenHistory(r)
	if err != nil {
		return err
	}
	br := bufio.NewReaderSize(hr, 1<<16)
	for n := 1; ; n++ {
		b, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("ledger: read history: %w", err)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			ev, ok, derr := decodeLine(b)
			if derr != nil {
				return fmt.Errorf("%w: line %d: %v", ErrHistory, n, derr)
			}
			if ok {
				if ferr := f(ev); ferr != nil {
					return ferr
				}
			}
		}
		if err != nil {
			return nil
		}
	}
}

// evHeap is a min-heap of events by index.
type evHeap []Event

func (h evHeap) Len() int           { return len(h) }
func (h evHeap) Less(i, j int) bool { return h[i].Index < h[j].Index }
func (h evHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *evHeap) Push(x any)        { *h = append(*h, x.(Event)) }
func (h *evHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
