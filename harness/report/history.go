package report

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// line is one ledger history line as the report keeps it: where it is in the
// spooled history, when it happened and, for the plots, what it was.
type line struct {
	at   time.Duration
	off  int64
	lat  time.Duration // deliveries: since the message's first invoke; -1 if unknown
	kind lineKind
}

type lineKind uint8

const (
	lineOther lineKind = iota
	lineInvoke
	lineOK
	lineFail
	lineInfo
	lineDeliver
	lineUnexpected
)

// history is the ledger's history, spooled to a file and indexed.
type history struct {
	lines []line // in time order once sorted
	last  time.Duration
}

// writeHistory writes path: the ledger's history and the timeline's entries
// merged in time order (ties: timeline entries first, then record order).
// The ledger's lines are spooled to a temporary file next to path and indexed
// there, so a run of millions of events costs a few dozen bytes of memory per
// event, not a copy of its text. It returns the index for the plots.
func writeHistory(path string, run Run, an *analysis) (*history, error) {
	h := &history{}
	out, err := os.Create(path)
	if err != nil {
		return h, fmt.Errorf("report: %w", err)
	}
	defer out.Close()
	bw := bufio.NewWriterSize(out, 1<<16)

	var spool *os.File
	if run.Ledger != nil {
		spool, err = os.CreateTemp(filepath.Dir(path), ".ledger-*.jsonl")
		if err != nil {
			return h, fmt.Errorf("report: %w", err)
		}
		defer func() {
			spool.Close()
			os.Remove(spool.Name())
		}()
		ix := newIndexer(h)
		sw := bufio.NewWriterSize(spool, 1<<16)
		if err := run.Ledger.WriteJSONL(io.MultiWriter(sw, ix)); err != nil {
			return h, fmt.Errorf("report: %w", err)
		}
		if err := ix.close(); err != nil {
			return h, err
		}
		if err := sw.Flush(); err != nil {
			return h, fmt.Errorf("report: spool history: %w", err)
		}
		slices.SortStableFunc(h.lines, func(a, b line) int { return cmp.Compare(a.at, b.at) })
	}

	var src *blockReader
	if spool != nil {
		src = &blockReader{f: spool}
	}
	entries := an.entries
	enc := json.NewEncoder(bw)
	for i := range h.lines {
		l := h.lines[i]
		for len(entries) > 0 && entries[0].At <= l.at {
			if err := enc.Encode(entries[0]); err != nil {
				return h, fmt.Errorf("report: history: %w", err)
			}
			entries = entries[1:]
		}
		b, err := src.line(l.off)
		if err != nil {
			return h, fmt.Errorf("report: read spooled history: %w", err)
		}
		bw.Write(b)
	}
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return h, fmt.Errorf("report: history: %w", err)
		}
	}
	if n := len(an.entries); n > 0 {
		h.last = max(h.last, an.entries[n-1].At)
	}
	if err := bw.Flush(); err != nil {
		return h, fmt.Errorf("report: %w", err)
	}
	if err := out.Close(); err != nil {
		return h, fmt.Errorf("report: %w", err)
	}
	return h, nil
}

// indexer is an io.Writer that receives the ledger's JSON lines and indexes
// them: offset, time, kind and, for deliveries, latency since the message's
// first invoke (invokes always precede their deliveries in record order).
type indexer struct {
	h       *history
	off     int64                         // offset of the start of partial
	partial []byte                        // an incomplete last line
	streams map[string]map[string]*stream // publisher → topic → stream
	err     error
}

// stream holds the first-invoke times of one (publisher, topic), by seq:
// in a table indexed by seq while seqs are dense (publishers number from 0
// or 1), in a map for seqs far beyond the count seen.
type stream struct {
	dense  []time.Duration // seq → first invoke, or noInvoke
	sparse map[uint64]time.Duration
	n      uint64 // seqs recorded
}

const noInvoke = time.Duration(math.MinInt64)

// denseSlack is how far beyond twice the count a seq may be and still go
// in the table.
const denseSlack = 1 << 16

func (s *stream) invoked(seq uint64, at time.Duration) {
	if seq < uint64(len(s.dense)) {
		if s.dense[seq] == noInvoke {
			s.dense[seq] = at
			s.n++
		}
		return
	}
	if seq < 2*s.n+denseSlack {
		for uint64(len(s.dense)) <= seq {
			s.dense = append(s.dense, noInvoke)
		}
		s.dense[seq] = at
		s.n++
		return
	}
	if s.sparse == nil {
		s.sparse = map[uint64]time.Duration{}
	}
	if _, ok := s.sparse[seq]; !ok {
		s.sparse[seq] = at
		s.n++
	}
}

func (s *stream) firstInvoke(seq uint64) (time.Duration, bool) {
	if seq < uint64(len(s.dense)) && s.dense[seq] != noInvoke {
		return s.dense[seq], true
	}
	at, ok := s.sparse[seq]
	return at, ok
}

func newIndexer(h *history) *indexer {
	return &indexer{h: h, streams: map[string]map[string]*stream{}}
}

func (x *indexer) Write(p []byte) (int, error) {
	n := len(p)
	if x.err != nil {
		return 0, x.err
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			x.partial = append(x.partial, p...)
			break
		}
		b := p[:i+1]
		if len(x.partial) > 0 {
			x.partial = append(x.partial, b...)
			b = x.partial
		}
		if err := x.add(b); err != nil {
			x.err = err
			return 0, err
		}
		x.off += int64(len(b))
		x.partial = x.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (x *indexer) close() error {
	if x.err == nil && len(x.partial) > 0 {
		x.err = fmt.Errorf("report: ledger history ends in a partial line")
	}
	return x.err
}

func (x *indexer) add(b []byte) error {
	ev, err := parseEvent(b)
	if err != nil {
		return fmt.Errorf("report: ledger history line at offset %d: %w", x.off, err)
	}
	l := line{at: ev.at, off: x.off, lat: -1, kind: ev.kind}
	x.h.last = max(x.h.last, ev.at)
	switch ev.kind {
	case lineInvoke:
		x.stream(ev).invoked(ev.seq, ev.at)
	case lineDeliver:
		if inv, ok := x.stream(ev).firstInvoke(ev.seq); ok {
			l.lat = ev.at - inv
		}
	}
	x.h.lines = append(x.h.lines, l)
	return nil
}

// stream finds the (publisher, topic) of ev; the map lookups with
// string(bytes) do not allocate.
func (x *indexer) stream(ev parsed) *stream {
	byTopic, ok := x.streams[string(ev.publisher)]
	if !ok {
		byTopic = map[string]*stream{}
		x.streams[string(ev.publisher)] = byTopic
	}
	s, ok := byTopic[string(ev.topic)]
	if !ok {
		s = &stream{}
		byTopic[string(ev.topic)] = s
	}
	return s
}

// parsed is what the report needs of one ledger history line. The byte
// slices may alias the line.
type parsed struct {
	at               time.Duration
	kind             lineKind
	publisher, topic []byte
	seq              uint64
}

func kindOf(b []byte) lineKind {
	switch string(b) {
	case "invoke":
		return lineInvoke
	case "ok":
		return lineOK
	case "fail":
		return lineFail
	case "info":
		return lineInfo
	case "deliver":
		return lineDeliver
	case "unexpected":
		return lineUnexpected
	}
	return lineOther
}

// parseEvent reads a ledger history line. Lines in the layout the ledger's
// encoder writes today, without escapes, take a fast path that does not
// allocate; anything else goes through encoding/json, so a change of layout
// costs speed, never correctness.
func parseEvent(b []byte) (parsed, error) {
	if ev, ok := parseFast(b); ok {
		return ev, nil
	}
	var ev struct {
		At   *time.Duration `json:"at_ns"`
		Kind string         `json:"kind"`
		ID   struct {
			Publisher string `json:"publisher"`
			Topic     string `json:"topic"`
			Seq       uint64 `json:"seq"`
		} `json:"id"`
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		return parsed{}, err
	}
	if ev.Kind == "" || ev.At == nil {
		return parsed{}, errors.New("no kind or time")
	}
	return parsed{at: *ev.At, kind: kindOf([]byte(ev.Kind)), publisher: []byte(ev.ID.Publisher), topic: []byte(ev.ID.Topic), seq: ev.ID.Seq}, nil
}

// parseFast parses the line layout
//
//	{"i":N,"at_ns":N,"kind":"K","id":{"publisher":"P","topic":"T","seq":N}...
//
// where only invokes and deliveries need the id. It reports false for
// anything else, escaped strings included.
func parseFast(b []byte) (parsed, bool) {
	var ev parsed
	p := b
	expect := func(s string) bool {
		if len(p) < len(s) || string(p[:len(s)]) != s {
			return false
		}
		p = p[len(s):]
		return true
	}
	number := func() (int64, bool) {
		neg, i, n := false, 0, int64(0)
		if len(p) > 0 && p[0] == '-' {
			neg, i = true, 1
		}
		start := i
		for ; i < len(p) && p[i] >= '0' && p[i] <= '9'; i++ {
			if i-start >= 18 { // may overflow: leave it to encoding/json
				return 0, false
			}
			n = n*10 + int64(p[i]-'0')
		}
		if i == start {
			return 0, false
		}
		p = p[i:]
		if neg {
			n = -n
		}
		return n, true
	}
	str := func() ([]byte, bool) {
		i := bytes.IndexByte(p, '"')
		if i < 0 || bytes.IndexByte(p[:i], '\\') >= 0 {
			return nil, false
		}
		s := p[:i]
		p = p[i+1:]
		return s, true
	}
	if !expect(`{"i":`) {
		return ev, false
	}
	if _, ok := number(); !ok || !expect(`,"at_ns":`) {
		return ev, false
	}
	at, ok := number()
	if !ok || !expect(`,"kind":"`) {
		return ev, false
	}
	ev.at = time.Duration(at)
	k, ok := str()
	if !ok {
		return ev, false
	}
	ev.kind = kindOf(k)
	if !expect(`,"id":{"publisher":"`) {
		return ev, ev.kind != lineInvoke && ev.kind != lineDeliver && ev.kind != lineOther
	}
	if ev.publisher, ok = str(); !ok || !expect(`,"topic":"`) {
		return ev, false
	}
	if ev.topic, ok = str(); !ok || !expect(`,"seq":`) {
		return ev, false
	}
	seq, ok := number()
	if !ok || seq < 0 || !expect(`}`) {
		return ev, false
	}
	ev.seq = uint64(seq)
	return ev, true
}

// blockReader serves lines of the spooled history by offset. Lines are read
// in time order, which is nearly record order, so a block that starts a
// little before the requested line serves most of the following requests.
type blockReader struct {
	f     *os.File
	buf   []byte
	start int64 // file offset of buf[0]
}

const (
	blockSize   = 256 << 10
	blockMargin = 32 << 10
)

func (r *blockReader) line(off int64) ([]byte, error) {
	if b, ok := r.cached(off); ok {
		return b, nil
	}
	start := max(off-blockMargin, 0)
	size := blockSize
	for {
		if cap(r.buf) < size {
			r.buf = make([]byte, size)
		}
		n, err := r.f.ReadAt(r.buf[:size], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		r.buf, r.start = r.buf[:n], start
		if b, ok := r.cached(off); ok {
			return b, nil
		}
		if n < size { // at the end of the file and still no newline
			return nil, fmt.Errorf("no line at offset %d", off)
		}
		size *= 2 // a line longer than a block
	}
}

func (r *blockReader) cached(off int64) ([]byte, bool) {
	if off < r.start || off >= r.start+int64(len(r.buf)) {
		return nil, false
	}
	b := r.buf[off-r.start:]
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, false
	}
	return b[:i+1], true
}
