package ledger

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestSeqSetMatchesAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 200 {
		var s seqSet
		m := map[uint64]bool{}
		base := []uint64{0, 1000, math.MaxUint64 - 40}[round%3]
		for range rng.IntN(200) {
			x := base + uint64(rng.IntN(40))
			if got, want := s.add(x), !m[x]; got != want {
				t.Fatalf("add(%d) = %t, want %t", x, got, want)
			}
			m[x] = true
		}
		for x := base; x < base+40; x++ {
			if s.has(x) != m[x] {
				t.Fatalf("has(%d) = %t, want %t (%v)", x, s.has(x), m[x], s.r)
			}
		}
		for i := 1; i < len(s.r); i++ {
			if s.r[i].lo <= s.r[i-1].hi+1 || s.r[i].lo > s.r[i].hi {
				t.Fatalf("ranges overlap or touch: %v", s.r)
			}
		}
	}
	var s seqSet
	for x := range uint64(1_000_000) {
		s.add(x)
	}
	if s.ranges() != 1 {
		t.Fatalf("a million in order take %d ranges", s.ranges())
	}
}
