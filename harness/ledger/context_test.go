package ledger

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// Read from a written history, the context of each lost message and unexpected delivery is the one
// the ledger that kept the history renders; from a streaming ledger's history, for its own verdict,
// it marks the lines about them.
func TestHistoryContext(t *testing.T) {
	var lost, unexpected int
	for seed := range uint64(150) {
		l := randomHistory(rand.New(rand.NewPCG(seed, 11)))
		res := l.Check()
		var buf bytes.Buffer
		if err := l.WriteJSONLGzip(&buf); err != nil {
			t.Fatal(err)
		}
		gotLost, gotUnexp, err := HistoryContext(bytes.NewReader(buf.Bytes()), &res, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range res.Lost {
			if want := res.Context(x.ID, 3); !slices.Equal(gotLost[i], want) {
				t.Fatalf("seed %d: context of %v:\n%s\nwant\n%s", seed, x, strings.Join(gotLost[i], "\n"), strings.Join(want, "\n"))
			}
		}
		for i, u := range res.Unexpected {
			if want := res.UnexpectedContext(u, 3); !slices.Equal(gotUnexp[i], want) {
				t.Fatalf("seed %d: context of %v:\n%s\nwant\n%s", seed, u, strings.Join(gotUnexp[i], "\n"), strings.Join(want, "\n"))
			}
		}
		lost += len(res.Lost)
		unexpected += len(res.Unexpected)

		var hist bytes.Buffer
		s := NewStreaming(t0, StreamOptions{History: &hist, Horizon: time.Duration(math.MaxInt64)})
		randomHistoryInto(rand.New(rand.NewPCG(seed, 11)), s)
		sres := s.Check()
		sLost, sUnexp, err := HistoryContext(bytes.NewReader(hist.Bytes()), &sres, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i := range sres.Lost {
			// As many marks but for the completions after an attempt's first, which a streaming ledger
			// does not write.
			if m := marks(sLost[i]); m == 0 || m > marks(res.Context(sres.Lost[i].ID, 3)) {
				t.Fatalf("seed %d: streamed context of %v:\n%s\nkept:\n%s", seed, sres.Lost[i], strings.Join(sLost[i], "\n"), strings.Join(res.Context(sres.Lost[i].ID, 3), "\n"))
			}
		}
		for i := range sres.Unexpected {
			if marks(sUnexp[i]) != 1 {
				t.Fatalf("seed %d: streamed context of %v:\n%s", seed, sres.Unexpected[i], strings.Join(sUnexp[i], "\n"))
			}
		}
	}
	if lost < 20 || unexpected < 20 {
		t.Fatalf("weak histories: %d lost, %d unexpected", lost, unexpected)
	}
}

func marks(lines []string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "> ") {
			n++
		}
	}
	return n
}
