package ledger

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// within reports whether got is within the sketch's relative error of want
// (and of a nanosecond, for the rounding to whole durations).
func within(got, want time.Duration) bool {
	return math.Abs(float64(got-want)) <= SketchAccuracy*math.Abs(float64(want))*(1+1e-9)+1
}

func TestSketchQuantilesWithinAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform":     func() time.Duration { return time.Duration(rng.Int64N(int64(time.Second))) },
		"lognormal":   func() time.Duration { return time.Duration(math.Exp(rng.NormFloat64()*2 + 14)) },
		"with-zeroes": func() time.Duration { return time.Duration(rng.IntN(3)) * time.Millisecond },
		"negative":    func() time.Duration { return time.Duration(rng.Int64N(2e9) - 1e9) },
		"constant":    func() time.Duration { return 1234567 },
	}
	for name, draw := range dists {
		for _, n := range []int{1, 2, 7, 100, 10_000} {
			s := newSketch(SketchAccuracy)
			xs := make([]time.Duration, n)
			for i := range xs {
				xs[i] = draw()
				s.add(xs[i])
			}
			want, got := quantiles(xs), s.quantiles()
			if got.N != want.N || got.Max != want.Max {
				t.Fatalf("%s n=%d: got %v, want %v", name, n, got, want)
			}
			for _, q := range [][2]time.Duration{{got.P50, want.P50}, {got.P90, want.P90}, {got.P99, want.P99}} {
				if !within(q[0], q[1]) {
					t.Fatalf("%s n=%d: got %v, want %v (±%v)", name, n, got, want, SketchAccuracy)
				}
			}
		}
	}
}

func TestSketchEmptyAndMemory(t *testing.T) {
	s := newSketch(SketchAccuracy)
	if q := s.quantiles(); q != (Quantiles{}) {
		t.Fatalf("empty sketch: %v", q)
	}
	for d := time.Nanosecond; d < time.Hour; d = d*11/10 + 1 {
		s.add(d)
	}
	if n := len(s.pos.counts); n > 1500 {
		t.Fatalf("1ns..1h takes %d buckets", n)
	}
}

// Merged sketches answer as one sketch of all the values does.
func TestSketchMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	all, parts := NewSketch(), []*Sketch{NewSketch(), NewSketch(), NewSketch()}
	for i := range 5000 {
		d := time.Duration(rng.ExpFloat64() * float64(time.Duration(1+i%3)*time.Millisecond))
		if i%97 == 0 {
			d = -d
		}
		if i%89 == 0 {
			d = 0
		}
		all.Add(d)
		parts[i%3].Add(d)
	}
	merged := NewSketch()
	for _, p := range parts {
		merged.Merge(p)
	}
	merged.Merge(NewSketch())
	if g, w := merged.Quantiles(), all.Quantiles(); g != w || g.N != 5000 {
		t.Fatalf("merged %v, want %v", g, w)
	}
}
