package ledger

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"
)

// MergeOptions configure MergeOnline.
type MergeOptions struct {
	// Horizon is the online check's (see Online); 0 means DefaultHorizon.
	Horizon time.Duration
	// History, if set, receives the merged history as JSON lines as they are
	// checked: the shards' invokes, completions and deliveries in the order
	// checked, numbered 0, 1, ... in that order, then every shard's
	// subscription windows and drops (WriteJSONL's layout, which ReadJSONL,
	// ReadOnline and Merge read). Wrap a file in a gzip.Writer for a
	// compressed history; buffer it.
	History io.Writer
	// Observe, if set, is called with every merged line once checked, for
	// figures kept as the lines go by (a report's plot), and for a
	// subscriber's first delivery of a message the check still held, the
	// latency since its first invoke; -1 otherwise.
	Observe func(ev Event, latency time.Duration)
}

// MergeStats are what MergeOnline counted on the way.
type MergeStats struct {
	Lines  int // ledger lines merged, windows and drops included
	Events int // invokes, completions and deliveries among them
	// Repeats are completions of an attempt already completed: Check and
	// Online count only an attempt's first completion, so they change no
	// verdict, and the merge, which keeps nothing of an attempt once it is
	// completed, leaves them out of the merged history. A soak never writes
	// them.
	Repeats int
	// MaxHeld is the most messages the check held at once (Online.Held,
	// looked at every few thousand lines): what the merge's memory grew with.
	MaxHeld int
}

// MergeOnline checks the histories of the shards of one run as one, as Merge
// followed by Check does, in memory bounded by what is in flight and by the
// number of streams and subscribers, not by the number of messages (see
// Online). Each shard's History must be an io.ReadSeeker (a file): it is read
// twice, first for its subscription windows and drops, then, every shard
// concurrently, for its lines in index order, which are merged by time
// (after each shard's Offset) into one Online check and, if o.History is set,
// written out as they go.
//
// The verdict is Merge's (its counters and findings; latency quantiles within
// SketchAccuracy), with Lost, Unexpected and Reordered in the merged order
// rather than shard after shard. Shards that share a stream or a subscriber
// are refused with an error wrapping ErrOverlap; a history that cannot be
// read with one wrapping ErrHistory that names the shard and the line.
func MergeOnline(ctx context.Context, shards []Shard, o MergeOptions) (*Online, MergeStats, error) {
	m := &merger{
		shards:  shards,
		o:       o,
		online:  NewOnline(o.Horizon),
		pending: make(map[shardOp]pendingOp),
		streams: make(map[ID]int),
		subs:    make(map[string]int),
	}
	if o.History != nil {
		m.w = bufio.NewWriterSize(o.History, 1<<16)
	}
	if err := m.run(ctx); err != nil {
		return nil, m.stats, err
	}
	return m.online, m.stats, nil
}

// merger is one MergeOnline.
type merger struct {
	shards []Shard
	o      MergeOptions
	online *Online
	w      *bufio.Writer
	buf    []byte
	stats  MergeStats

	early   [][]shardLine  // per shard: windows and drops, by index, then numbered
	earlyAt []map[int]bool // per shard: the indices of those lines in the shard
	next    int            // the next merged event's index
	pending map[shardOp]pendingOp
	streams map[ID]int     // stream → shard
	subs    map[string]int // subscriber → shard
}

// shardLine is a ledger line of a shard and where it is in the shard's file.
type shardLine struct {
	ev   Event
	line int // 1-based, in the uncompressed text
}

type shardOp struct{ shard, op int }

type pendingOp struct {
	index int
	id    ID
}

func (m *merger) name(k int) string { return m.shards[k].Name }

// errAt is a bad history error naming shard k's line.
func (m *merger) errAt(k, line int, format string, args ...any) error {
	return fmt.Errorf("%w: %sline %d: %s", ErrHistory, m.prefix(k), line, fmt.Sprintf(format, args...))
}

func (m *merger) prefix(k int) string {
	if m.name(k) == "" {
		return ""
	}
	return m.name(k) + ": "
}

// shardErr names shard k in an error that does not yet.
func (m *merger) shardErr(k int, err error) error {
	if m.name(k) == "" {
		return err
	}
	return fmt.Errorf("shard %s: %w", m.name(k), err)
}

func (m *merger) run(ctx context.Context) error {
	files := make([]io.ReadSeeker, len(m.shards))
	for k, sh := range m.shards {
		rs, ok := sh.History.(io.ReadSeeker)
		if !ok {
			return fmt.Errorf("ledger: shard %s: MergeOnline reads a history twice: its History must be an io.ReadSeeker", sh.Name)
		}
		files[k] = rs
	}
	if err := m.readEarly(ctx, files); err != nil {
		return err
	}
	if err := m.feedEarly(); err != nil {
		return err
	}
	// The windows' times are not the check's clock, which ages messages: a
	// window closed late in the run would make every message look old.
	m.online.last = 0
	if err := m.mergeEvents(ctx, files); err != nil {
		return err
	}
	// The windows' subscribers, after the messages', as Merge meets them.
	for k, early := range m.early {
		for _, l := range early {
			if err := m.subscriber(k, l.ev.Subscriber); err != nil {
				return err
			}
		}
	}
	if err := m.writeEarly(); err != nil {
		return err
	}
	m.stats.MaxHeld = max(m.stats.MaxHeld, m.online.Held())
	if m.w != nil {
		if err := m.w.Flush(); err != nil {
			return fmt.Errorf("ledger: write merged history: %w", err)
		}
	}
	return nil
}

// earlyKind reports whether lines of kind k are read in the first pass.
func earlyKind(k string) bool {
	return k == KindSubscribe || k == KindUnsubscribe || k == KindDrops
}

// mayBeEarly is a quick look at a raw line: false if it cannot be a
// subscribe, unsubscribe or drops line, so the first pass decodes only the
// few that may. The second pass refuses an early line the first missed.
func mayBeEarly(b []byte) bool {
	return bytes.Contains(b, []byte(`"subscribe"`)) || bytes.Contains(b, []byte(`"unsubscribe"`)) ||
		bytes.Contains(b, []byte(`"drops"`)) || bytes.Contains(b, []byte(`\u`))
}

// readEarly reads every shard's windows and drops, a few shards at a time.
func (m *merger) readEarly(ctx context.Context, files []io.ReadSeeker) error {
	m.early = make([][]shardLine, len(files))
	m.earlyAt = make([]map[int]bool, len(files))
	errs := make([]error, len(files))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for k, f := range files {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[k] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			errs[k] = m.readEarlyOf(ctx, k, f)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (m *merger) readEarlyOf(ctx context.Context, k int, f io.ReadSeeker) error {
	var early []shardLine
	err := eachRawLine(f, func(b []byte, line int) error {
		if line%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if !mayBeEarly(b) {
			return nil
		}
		ev, ok, err := decodeLine(b)
		if err != nil {
			return m.errAt(k, line, "%v", err)
		}
		if ok && earlyKind(ev.Kind) {
			early = append(early, shardLine{ev, line})
		}
		return nil
	})
	if err != nil {
		return m.shardErr(k, err)
	}
	slices.SortStableFunc(early, func(a, b shardLine) int { return cmp.Compare(a.ev.Index, b.ev.Index) })
	for i, l := range early {
		if i > 0 && early[i-1].ev.Index == l.ev.Index {
			return m.errAt(k, l.line, "two lines with index %d", l.ev.Index)
		}
	}
	m.early[k] = early
	m.earlyAt[k] = make(map[int]bool, len(early))
	for _, l := range early {
		m.earlyAt[k][l.ev.Index] = true
	}
	return nil
}

// feedEarly numbers every shard's windows and drops, shard after shard, and
// gives them to the check before any message.
func (m *merger) feedEarly() error {
	j := 0
	for k, early := range m.early {
		subscribe := map[int]int{} // the shard's subscribe line → its number
		closed := map[int]bool{}
		for i := range early {
			l := &early[i]
			ev := &l.ev
			switch ev.Kind {
			case KindSubscribe:
				subscribe[ev.Index] = j
			case KindUnsubscribe:
				s, ok := subscribe[ev.Op]
				if !ok {
					return m.errAt(k, l.line, "unsubscribe of line %d, which is no earlier subscribe", ev.Op)
				}
				if closed[s] {
					return m.errAt(k, l.line, "subscription %d closed twice", ev.Op)
				}
				closed[s] = true
				ev.Op = s
			case KindDrops:
				if ev.N < 0 {
					return m.errAt(k, l.line, "%d drops", ev.N)
				}
			}
			ev.Index = j
			ev.At += m.shards[k].Offset
			j++
			if err := m.online.Add(*ev); err != nil {
				return m.shardErr(k, fmt.Errorf("line %d: %w", l.line, err))
			}
		}
	}
	return nil
}

// writeEarly writes the windows and drops after the messages, numbered on
// from them.
func (m *merger) writeEarly() error {
	base := m.next
	for _, early := range m.early {
		for _, l := range early {
			ev := l.ev
			ev.Index += base
			if ev.Kind == KindUnsubscribe {
				ev.Op += base
			}
			if err := m.emit(ev, -1); err != nil {
				return err
			}
		}
	}
	return nil
}

// emit writes a merged line and shows it to the observer.
func (m *merger) emit(ev Event, latency time.Duration) error {
	m.stats.Lines++
	if m.w != nil {
		m.buf = appendEventJSON(m.buf[:0], &ev)
		if _, err := m.w.Write(m.buf); err != nil {
			return fmt.Errorf("ledger: write merged history: %w", err)
		}
	}
	if m.o.Observe != nil {
		m.o.Observe(ev, latency)
	}
	return nil
}

// batchSize is how many lines a shard's reader hands over at once.
const batchSize = 512

// mergeEvents reads every shard's messages concurrently, each in index
// order, and checks them merged by time.
func (m *merger) mergeEvents(ctx context.Context, files []io.ReadSeeker) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	feeds := make([]chan []shardLine, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: no reader outlives the merge
	defer cancel()
	for k, f := range files {
		feeds[k] = make(chan []shardLine, 2)
		wg.Go(func() {
			defer close(feeds[k])
			errs[k] = m.readEvents(ctx, k, f, feeds[k])
		})
	}
	hs := &heads{offsets: make([]time.Duration, len(files))}
	for k := range files {
		hs.offsets[k] = m.shards[k].Offset
	}
	for k := range feeds {
		if b, ok := <-feeds[k]; ok {
			hs.h = append(hs.h, head{k, b})
		} else if errs[k] != nil {
			return errs[k]
		}
	}
	heap.Init(hs)
	for len(hs.h) > 0 {
		h := &hs.h[0] // the shard whose next line is earliest
		if err := m.event(h.k, h.batch[0]); err != nil {
			return err
		}
		if h.batch = h.batch[1:]; len(h.batch) > 0 {
			heap.Fix(hs, 0)
			continue
		}
		if b, ok := <-feeds[h.k]; ok {
			h.batch = b
			heap.Fix(hs, 0)
			continue
		}
		if err := errs[h.k]; err != nil {
			return err
		}
		heap.Pop(hs)
	}
	return ctx.Err()
}

// heads are the shards' next batches, a min-heap by the time of each
// batch's first line (after its shard's offset), ties by shard.
type heads struct {
	h       []head
	offsets []time.Duration
}

type head struct {
	k     int
	batch []shardLine
}

func (hs *heads) Len() int { return len(hs.h) }
func (hs *heads) Less(i, j int) bool {
	a, b := hs.h[i], hs.h[j]
	ta, tb := a.batch[0].ev.At+hs.offsets[a.k], b.batch[0].ev.At+hs.offsets[b.k]
	return ta < tb || ta == tb && a.k < b.k
}
func (hs *heads) Swap(i, j int) { hs.h[i], hs.h[j] = hs.h[j], hs.h[i] }
func (hs *heads) Push(x any)    { hs.h = append(hs.h, x.(head)) }
func (hs *heads) Pop() any {
	x := hs.h[len(hs.h)-1]
	hs.h = hs.h[:len(hs.h)-1]
	return x
}

// readEvents sends shard k's invokes, completions and deliveries to feed in
// index order, in batches, through a buffer as large as the lines are out of
// that order (a report's history is sorted by time, nearly index order), the
// windows and drops the first pass read skipped over.
func (m *merger) readEvents(ctx context.Context, k int, f io.ReadSeeker, feed chan<- []shardLine) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return m.shardErr(k, fmt.Errorf("ledger: read history: %w", err))
	}
	early := m.earlyAt[k]
	var buf lineHeap
	batch := make([]shardLine, 0, batchSize)
	next := 0
	send := func() error {
		select {
		case feed <- batch:
			batch = make([]shardLine, 0, batchSize)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	flush := func(all bool) error {
		for len(buf) > 0 {
			for early[next] {
				next++
			}
			if !all && buf[0].ev.Index > next {
				return nil
			}
			l := heap.Pop(&buf).(shardLine)
			if l.ev.Index < next {
				return m.errAt(k, l.line, "two lines with index %d", l.ev.Index)
			}
			next = l.ev.Index + 1
			if batch = append(batch, l); len(batch) == batchSize {
				if err := send(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := eachRawLine(f, func(b []byte, line int) error {
		ev, ok, err := decodeLine(b)
		if err != nil {
			return m.errAt(k, line, "%v", err)
		}
		if !ok {
			return nil
		}
		if earlyKind(ev.Kind) {
			if !early[ev.Index] {
				return m.errAt(k, line, "a %s line the first reading did not find", ev.Kind)
			}
			return nil
		}
		if early[ev.Index] {
			return m.errAt(k, line, "two lines with index %d", ev.Index)
		}
		heap.Push(&buf, shardLine{ev, line})
		return flush(false)
	})
	if err == nil {
		err = flush(true)
	}
	if err == nil && len(batch) > 0 {
		err = send()
	}
	if err != nil && !errors.Is(err, ErrHistory) && ctx.Err() == nil {
		err = m.shardErr(k, err)
	}
	return err
}

// lineHeap is a min-heap of lines by index.
type lineHeap []shardLine

func (h lineHeap) Len() int           { return len(h) }
func (h lineHeap) Less(i, j int) bool { return h[i].ev.Index < h[j].ev.Index }
func (h lineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *lineHeap) Push(x any)        { *h = append(*h, x.(shardLine)) }
func (h *lineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// event numbers, checks and writes shard k's line l.
func (m *merger) event(k int, l shardLine) error {
	ev := l.ev
	switch ev.Kind {
	case KindInvoke:
		s := ID{Publisher: ev.ID.Publisher, Topic: ev.ID.Topic}
		if other, ok := m.streams[s]; ok && other != k {
			return fmt.Errorf("%w: stream %s on %s is in %s and %s", ErrOverlap, s.Publisher, s.Topic, m.name(other), m.name(k))
		}
		m.streams[s] = k
		m.pending[shardOp{k, ev.Index}] = pendingOp{m.next, ev.ID}
	case KindOK, KindFail, KindInfo:
		p, ok := m.pending[shardOp{k, ev.Op}]
		switch {
		case !ok && (ev.Op < 0 || ev.Op >= ev.Index):
			return m.errAt(k, l.line, "%s of op %d, which is no earlier invoke", ev.Kind, ev.Op)
		case !ok:
			m.stats.Repeats++
			return nil
		case ev.ID != (ID{}) && ev.ID != p.id:
			return m.errAt(k, l.line, "%s of %v names op %d, an invoke of %v", ev.Kind, ev.ID, ev.Op, p.id)
		}
		delete(m.pending, shardOp{k, ev.Op})
		ev.Op = p.index
	case KindDeliver, KindUnexpected:
		if ev.QoS > 2 {
			return m.errAt(k, l.line, "qos %d", ev.QoS)
		}
	}
	if err := m.subscriber(k, ev.Subscriber); err != nil {
		return err
	}
	ev.Index = m.next
	ev.At += m.shards[k].Offset
	m.next++
	m.stats.Events++
	if err := m.online.Add(ev); err != nil {
		return m.shardErr(k, fmt.Errorf("line %d: %w", l.line, err))
	}
	if m.stats.Events%sweepEvery == 0 {
		m.stats.MaxHeld = max(m.stats.MaxHeld, m.online.Held())
	}
	return m.emit(ev, m.online.lastLat)
}

// subscriber refuses a subscriber of shard k met in another shard before.
func (m *merger) subscriber(k int, sub string) error {
	if sub == "" {
		return nil
	}
	if other, ok := m.subs[sub]; ok && other != k {
		return fmt.Errorf("%w: subscriber %q is in %s and %s", ErrOverlap, sub, m.name(other), m.name(k))
	}
	m.subs[sub] = k
	return nil
}

// eachRawLine calls f with every non-blank line of r, plain or compressed,
// and its 1-based number.
func eachRawLine(r io.Reader, f func(b []byte, line int) error) error {
	hr, err := OpenHistory(r)
	if err != nil {
		return err
	}
	br := bufio.NewReaderSize(hr, 1<<16)
	for n := 1; ; n++ {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) { // a line longer than the buffer
			long := slices.Clone(b)
			for errors.Is(err, bufio.ErrBufferFull) {
				b, err = br.ReadSlice('\n')
				long = append(long, b...)
			}
			b = long
		}
		switch {
		case errors.Is(err, ErrHistory): // a compressed history damaged or cut short
			return fmt.Errorf("%w, after line %d", err, n-1)
		case err != nil && !errors.Is(err, io.EOF):
			return fmt.Errorf("ledger: read history: %w", err)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			if ferr := f(b, n); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			return nil
		}
	}
}
