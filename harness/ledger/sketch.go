package ledger

import (
	"math"
	"time"
)

// SketchAccuracy is the relative error of the latency quantiles an Online
// check reports: each is within 1% of the exact nearest-rank quantile Check
// reports (N and Max are exact).
const SketchAccuracy = 0.01

// sketch is a DDSketch-style quantile sketch of durations (Masson, Rim and
// Lee, VLDB 2019): a value x > 0 is counted in bucket ceil(log_γ x) with
// γ = (1+α)/(1-α), and a bucket answers for its values with 2γ^i/(γ+1), which
// is within α of each of them. Negative values are counted the same way by
// magnitude, zero on its own. Memory is one counter per bucket touched:
// about 1,500 for everything from 1ns to an hour at α = 1%.
type sketch struct {
	gamma, logGamma float64
	pos, neg        buckets
	zero            int
	n               int
	min, max        time.Duration
}

// buckets are dense counters for indices off, off+1, ...
type buckets struct {
	off    int
	counts []int
}

func newSketch(alpha float64) sketch {
	g := (1 + alpha) / (1 - alpha)
	return sketch{gamma: g, logGamma: math.Log(g)}
}

func (s *sketch) add(d time.Duration) {
	if s.n == 0 || d < s.min {
		s.min = d
	}
	if s.n == 0 || d > s.max {
		s.max = d
	}
	s.n++
	switch {
	case d > 0:
		s.pos.inc(s.index(float64(d)))
	case d < 0:
		s.neg.inc(s.index(-float64(d)))
	default:
		s.zero++
	}
}

func (s *sketch) index(x float64) int { return int(math.Ceil(math.Log(x) / s.logGamma)) }

func (s *sketch) value(i int) float64 { return 2 * math.Pow(s.gamma, float64(i)) / (s.gamma + 1) }

func (b *buckets) inc(i int) {
	switch {
	case len(b.counts) == 0:
		b.off, b.counts = i, []int{1}
		return
	case i < b.off:
		grown := make([]int, b.off-i+len(b.counts))
		copy(grown[b.off-i:], b.counts)
		b.off, b.counts = i, grown
	case i >= b.off+len(b.counts):
		b.counts = append(b.counts, make([]int, i-b.off-len(b.counts)+1)...)
	}
	b.counts[i-b.off]++
}

// quantile returns the estimate of the value of nearest rank ceil(p·n), as
// Check's quantiles do.
func (s *sketch) quantile(p float64) time.Duration {
	rank := max(int(math.Ceil(p*float64(s.n))), 1) // 1-based
	est := func() float64 {
		for j := len(s.neg.counts) - 1; j >= 0; j-- { // most negative first
			if rank -= s.neg.counts[j]; rank <= 0 {
				return -s.value(s.neg.off + j)
			}
		}
		if rank -= s.zero; rank <= 0 {
			return 0
		}
		for j, c := range s.pos.counts {
			if rank -= c; rank <= 0 {
				return s.value(s.pos.off + j)
			}
		}
		return float64(s.max)
	}()
	return min(max(time.Duration(math.Round(est)), s.min), s.max)
}

func (s *sketch) quantiles() Quantiles {
	if s.n == 0 {
		return Quantiles{}
	}
	return Quantiles{N: s.n, P50: s.quantile(0.50), P90: s.quantile(0.90), P99: s.quantile(0.99), Max: s.max}
}

// merge adds o's counts to s (both of the same accuracy).
func (s *sketch) merge(o *sketch) {
	if o.n == 0 {
		return
	}
	if s.n == 0 || o.min < s.min {
		s.min = o.min
	}
	if s.n == 0 || o.max > s.max {
		s.max = o.max
	}
	s.n += o.n
	s.zero += o.zero
	s.pos.add(&o.pos)
	s.neg.add(&o.neg)
}

func (b *buckets) add(o *buckets) {
	for j, c := range o.counts {
		if c == 0 {
			continue
		}
		b.inc(o.off + j)
		b.counts[o.off+j-b.off] += c - 1
	}
}

// Sketch is a quantile sketch of durations within SketchAccuracy (the one Online's latency quantiles
// come from), for figures kept per time slice of a run: memory is one counter per bucket of values
// seen, not one per value. The zero value is not usable; call NewSketch.
type Sketch struct{ s sketch }

// NewSketch returns an empty sketch.
func NewSketch() *Sketch { return &Sketch{s: newSketch(SketchAccuracy)} }

// Add counts d.
func (s *Sketch) Add(d time.Duration) { s.s.add(d) }

// Merge adds what o counted.
func (s *Sketch) Merge(o *Sketch) { s.s.merge(&o.s) }

// Quantiles returns N, P50, P90, P99 (each within SketchAccuracy of the nearest-rank quantile) and
// the exact Max.
func (s *Sketch) Quantiles() Quantiles { return s.s.quantiles() }
