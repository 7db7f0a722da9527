package ledger

import "slices"

// seqSet is a set of sequence numbers kept as sorted, disjoint, non-adjacent
// inclusive ranges, so a stream delivered in order costs one range however
// long it runs, and each gap (a loss, an outage) one more.
type seqSet struct {
	r []seqRange
}

type seqRange struct{ lo, hi uint64 }

// find returns the index of the first range with hi >= x.
func (s *seqSet) find(x uint64) int {
	i, _ := slices.BinarySearchFunc(s.r, x, func(r seqRange, x uint64) int {
		switch {
		case r.hi < x:
			return -1
		case r.hi > x:
			return 1
		}
		return 0
	})
	return i
}

func (s *seqSet) has(x uint64) bool {
	i := s.find(x)
	return i < len(s.r) && s.r[i].lo <= x
}

// add adds x and reports whether it was new.
func (s *seqSet) add(x uint64) bool {
	if n := len(s.r); n > 0 && x > s.r[n-1].hi { // the common case: at or past the end
		if x-1 == s.r[n-1].hi {
			s.r[n-1].hi = x
		} else {
			s.r = append(s.r, seqRange{x, x})
		}
		return true
	}
	i := s.find(x)
	if i < len(s.r) && s.r[i].lo <= x {
		return false
	}
	joinsLeft := i > 0 && s.r[i-1].hi == x-1
	joinsRight := i < len(s.r) && s.r[i].lo == x+1
	switch {
	case joinsLeft && joinsRight:
		s.r[i-1].hi = s.r[i].hi
		s.r = slices.Delete(s.r, i, i+1)
	case joinsLeft:
		s.r[i-1].hi = x
	case joinsRight:
		s.r[i].lo = x
	default:
		s.r = slices.Insert(s.r, i, seqRange{x, x})
	}
	return true
}

// ranges is the number of ranges, the set's memory.
func (s *seqSet) ranges() int { return len(s.r) }
