package bench

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// Summary is a sample summarised as median and range. Values are in the unit the measurement states.
type Summary struct {
	N      int       `json:"n"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Values []float64 `json:"values,omitempty"` // in the order measured, NaN for a failed measurement
}

// Summarize summarises xs, ignoring NaN and ±Inf (failed measurements). The median of an even count is
// the mean of the two middle values. An empty sample gives N 0 and NaN statistics.
func Summarize(xs []float64) Summary {
	s := Summary{Values: slices.Clone(xs)}
	var ok []float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			ok = append(ok, x)
		}
	}
	s.N = len(ok)
	if s.N == 0 {
		s.Median, s.Min, s.Max = math.NaN(), math.NaN(), math.NaN()
		return s
	}
	slices.Sort(ok)
	s.Min, s.Max = ok[0], ok[len(ok)-1]
	if m := len(ok) / 2; len(ok)%2 == 1 {
		s.Median = ok[m]
	} else {
		s.Median = (ok[m-1] + ok[m]) / 2
	}
	return s
}

// Valid reports whether the summary holds at least one measurement.
func (s Summary) Valid() bool { return s.N > 0 }

// Ratios divides a by b element by element (round by round) and summarises the quotients. A pair with a
// failed value or a zero divisor is skipped.
func Ratios(a, b []float64) Summary {
	n := min(len(a), len(b))
	q := make([]float64, n)
	for i := range n {
		q[i] = math.NaN()
		if b[i] != 0 {
			q[i] = a[i] / b[i]
		}
	}
	return Summarize(q)
}

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of ds, which it sorts in place.
// It returns 0 for an empty slice.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.SortFunc(ds, cmp.Compare)
	rank := int(math.Ceil(p / 100 * float64(len(ds))))
	return ds[min(max(rank, 1), len(ds))-1]
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// us converts a duration to float microseconds.
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// Format renders a summary as "median [min–max]" with a number formatter, "n/a" when empty, and just the
// median when there is one value or all are equal.
func (s Summary) Format(f func(float64) string) string {
	if !s.Valid() {
		return "n/a"
	}
	if s.N == 1 || s.Min == s.Max {
		return f(s.Median)
	}
	return fmt.Sprintf("%s [%s–%s]", f(s.Median), f(s.Min), f(s.Max))
}

// Number formatters for tables.

// fmtRate renders messages per second: 91.3k, 950.
func fmtRate(x float64) string {
	if x >= 1000 {
		return fmt.Sprintf("%.1fk", x/1000)
	}
	return fmt.Sprintf("%.0f", x)
}

// fmtRatio renders a ratio: 1.23×.
func fmtRatio(x float64) string { return fmt.Sprintf("%.2f×", x) }

// fmtMS renders milliseconds with sensible precision.
func fmtMS(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f ms", x)
	case x >= 10:
		return fmt.Sprintf("%.1f ms", x)
	default:
		return fmt.Sprintf("%.2f ms", x)
	}
}

// fmtSec renders milliseconds as seconds: 2.01 s.
func fmtSec(x float64) string { return fmt.Sprintf("%.2f s", x/1000) }

// fmtUS renders microseconds: 82 µs.
func fmtUS(x float64) string {
	if x >= 1000 {
		return fmt.Sprintf("%.2f ms", x/1000)
	}
	return fmt.Sprintf("%.0f µs", x)
}

// fmtKB renders bytes as kilobytes (1024): 12.5 KB.
func fmtKB(x float64) string { return fmt.Sprintf("%.1f KB", x/1024) }

// fmtFloat renders a plain number with one decimal, or none when whole.
func fmtFloat(x float64) string {
	if x == math.Trunc(x) {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.1f", x)
}
