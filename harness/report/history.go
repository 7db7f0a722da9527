package report

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
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
// as they are written, so a run of millions of events costs a few dozen bytes
// of memory per event, not a copy of its text. It returns the index for the
// plots. The file is gzip compressed unless run.PlainHistory.
// ledger.ReadJSONL reads it back either way.
func writeHistory(path string, run Run, an *analysis) (*history, error) {
	h := &history{}
	out, err := os.Create(path)
	if err != nil {
		return h, fmt.Errorf("report: %w", err)
	}
	defer out.Close()
	var dst io.Writer = out
	var zw *gzip.Writer
	if !run.PlainHistory {
		zw = gzip.NewWriter(out)
		dst = zw
	}
	bw := bufio.NewWriterSize(dst, 1<<16)

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
		sw := bufio.NewWriterSize(spool, 1<<16)
		if err := spoolLedger(sw, run.Ledger, h); err != nil {
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
	if zw != nil {
		if err := zw.Close(); err != nil {
			return h, fmt.Errorf("report: %w", err)
		}
	}
	if err := out.Close(); err != nil {
		return h, fmt.Errorf("report: %w", err)
	}
	return h, nil
}

// spoolLedger writes l's history to w as ledger.WriteJSONL does, one line per
// ledger.Event, and indexes each line into h: offset, time, kind and, for
// deliveries, latency since the message's first invoke (invokes always
// precede their deliveries in record order).
func spoolLedger(w io.Writer, l *ledger.Ledger, h *history) error {
	cw := &countingWriter{w: w}
	enc := json.NewEncoder(cw)
	streams := map[string]map[string]*stream{} // publisher → topic → stream
	for ev := range l.Events() {
		ln := line{at: ev.At, off: cw.n, lat: -1, kind: kindOf(ev.Kind)}
		if err := enc.Encode(ev); err != nil {
			return fmt.Errorf("report: spool history: %w", err)
		}
		h.last = max(h.last, ev.At)
		switch ln.kind {
		case lineInvoke:
			streamOf(streams, ev.ID).invoked(ev.ID.Seq, ev.At)
		case lineDeliver:
			if inv, ok := streamOf(streams, ev.ID).firstInvoke(ev.ID.Seq); ok {
				ln.lat = ev.At - inv
			}
		}
		h.lines = append(h.lines, ln)
	}
	return cw.err
}

// countingWriter counts the bytes written through it, so each encoded line's
// offset is known; json.Encoder writes a line in one call.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
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

func streamOf(streams map[string]map[string]*stream, id ledger.ID) *stream {
	byTopic, ok := streams[id.Publisher]
	if !ok {
		byTopic = map[string]*stream{}
		streams[id.Publisher] = byTopic
	}
	s, ok := byTopic[id.Topic]
	if !ok {
		s = &stream{}
		byTopic[id.Topic] = s
	}
	return s
}

func kindOf(k string) lineKind {
	switch k {
	case ledger.KindInvoke:
		return lineInvoke
	case ledger.KindOK:
		return lineOK
	case ledger.KindFail:
		return lineFail
	case ledger.KindInfo:
		return lineInfo
	case ledger.KindDeliver:
		return lineDeliver
	case ledger.KindUnexpected:
		return lineUnexpected
	}
	return lineOther
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
