package report

import (
	"fmt"
	"os"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
)

// Streamed is a run whose ledger streamed its history to a file as it went (ledger.NewStreaming)
// instead of keeping it: Write takes the verdict from Run.Result, neither checks nor writes the
// history again, and draws the plot from the Series taken as the lines were recorded. The timeline
// is not merged into such a history: it stays in the runner's own file (a soak's timeline.jsonl).
type Streamed struct {
	// File is the history's name in the report's directory, as written (HistoryFile or
	// PlainHistoryFile).
	File string
	// Series holds the plot's figures; nil leaves the rate and latency panels empty.
	Series *Series
}

// seriesBase is the narrowest time slice a Series keeps; maxSeriesSlices is how many it keeps before
// it doubles their width.
const (
	seriesBase      = 100 * time.Millisecond
	maxSeriesSlices = 2 * maxBuckets
)

// Series accumulates a run's rates and delivery latencies per time slice, line by line, for a history
// that is streamed rather than kept: counts and a latency sketch (within ledger.SketchAccuracy) per
// slice, the slices doubling in width as the run grows past 2×400 of them, so its memory stays a few
// megabytes however long the run. The zero value is not usable; call NewSeries. It is not safe for
// concurrent use: feed it from the ledger's Observe hook, which runs under the ledger's lock.
type Series struct {
	width  time.Duration
	slices []seriesSlice
	last   time.Duration
}

type seriesSlice struct {
	invokes, oks, failed, deliveries int
	lat                              *ledger.Sketch
}

// NewSeries returns an empty series.
func NewSeries() *Series { return &Series{width: seriesBase} }

// Add counts one history line of kind (a ledger.Kind constant) at at (since the run's start); latency,
// if ≥ 0, is a delivery's since its message's first invoke. Lines before the start count in the first
// slice.
func (s *Series) Add(at time.Duration, kind string, latency time.Duration) {
	s.last = max(s.last, at)
	at = max(at, 0)
	for at/s.width >= maxSeriesSlices {
		s.coarsen()
	}
	i := int(at / s.width)
	for len(s.slices) <= i {
		s.slices = append(s.slices, seriesSlice{})
	}
	sl := &s.slices[i]
	switch kind {
	case ledger.KindInvoke:
		sl.invokes++
	case ledger.KindOK:
		sl.oks++
	case ledger.KindFail, ledger.KindInfo:
		sl.failed++
	case ledger.KindDeliver, ledger.KindUnexpected:
		sl.deliveries++
		if latency >= 0 && kind == ledger.KindDeliver {
			if sl.lat == nil {
				sl.lat = ledger.NewSketch()
			}
			sl.lat.Add(latency)
		}
	}
}

// Last is the time of the latest line added.
func (s *Series) Last() time.Duration { return s.last }

// coarsen doubles the slices' width, merging them in pairs.
func (s *Series) coarsen() {
	out := s.slices[:0]
	for i := 0; i < len(s.slices); i += 2 {
		m := s.slices[i]
		if i+1 < len(s.slices) {
			m = merged(m, s.slices[i+1])
		}
		out = append(out, m)
	}
	clear(s.slices[len(out):])
	s.slices = out
	s.width *= 2
}

func merged(a, b seriesSlice) seriesSlice {
	a.invokes += b.invokes
	a.oks += b.oks
	a.failed += b.failed
	a.deliveries += b.deliveries
	if b.lat != nil {
		lat := ledger.NewSketch() // a's is not changed: it may be a slice's own
		if a.lat != nil {
			lat.Merge(a.lat)
		}
		lat.Merge(b.lat)
		a.lat = lat
	}
	return a
}

// buckets returns the plot's buckets over [0, span): the series' slices merged to the narrowest
// width, a power-of-two multiple of theirs, that gives fewer than maxBuckets.
func (s *Series) buckets(span time.Duration) (time.Duration, []bucket) {
	width := s.width
	for span/width >= maxBuckets {
		width *= 2
	}
	per := int(width / s.width)
	out := emptyBuckets(span, width)
	n := len(out)
	for i := range out {
		var m seriesSlice
		for j := i * per; j < min((i+1)*per, len(s.slices)); j++ {
			m = merged(m, s.slices[j])
		}
		if i == n-1 { // the last bucket takes what lies beyond it
			for j := (i + 1) * per; j < len(s.slices); j++ {
				m = merged(m, s.slices[j])
			}
		}
		b := &out[i]
		b.invokes, b.oks, b.failed, b.deliveries = m.invokes, m.oks, m.failed, m.deliveries
		if m.lat != nil {
			q := m.lat.Quantiles()
			b.latencies, b.p50, b.p99, b.max = q.N, q.P50, q.P99, q.Max
		}
	}
	return width, out
}

// streamedContext fills the counterexamples' context from a streamed history (a pass over it, only
// when there is something to show), as a kept ledger's Result would.
func (an *analysis) streamedContext(path string) error {
	s, r := &an.summary, an.result
	if len(s.LostExamples) == 0 && len(s.UnexpectedExamples) == 0 {
		return nil
	}
	r.Lost, r.Unexpected = r.Lost[:len(s.LostExamples)], r.Unexpected[:len(s.UnexpectedExamples)]
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	lost, unexpected, err := ledger.HistoryContext(f, &r, contextRadius)
	if err != nil {
		return fmt.Errorf("report: the counterexamples' context: %w", err)
	}
	for i := range s.LostExamples {
		s.LostExamples[i].Context = lost[i]
	}
	for i := range s.UnexpectedExamples {
		s.UnexpectedExamples[i].Context = unexpected[i]
	}
	return nil
}
