package ledger

import "math"

// chunkSize events (512 KiB) per chunk: appends never copy old events, and a
// snapshot can read the filled prefix while recording goes on.
const chunkSize = 1 << 14

type chunk [chunkSize]event

// eventLog is an append-only sequence of events in fixed-size chunks.
type eventLog struct {
	chunks []*chunk
	n      int
}

func (g *eventLog) len() int { return g.n }

func (g *eventLog) at(i int) event { return g.chunks[i/chunkSize][i%chunkSize] }

func (g *eventLog) append(e event) int32 {
	if g.n == math.MaxInt32 {
		panic("ledger: more than 2^31 events")
	}
	if g.n%chunkSize == 0 && g.n/chunkSize == len(g.chunks) {
		g.chunks = append(g.chunks, new(chunk))
	}
	g.chunks[g.n/chunkSize][g.n%chunkSize] = e
	g.n++
	return int32(g.n - 1)
}

// snapshot returns a view of the events so far. Later appends write only at
// indices beyond it, so the view can be read without the ledger's lock.
func (g *eventLog) snapshot() eventLog {
	return eventLog{chunks: append([]*chunk(nil), g.chunks...), n: g.n}
}

// all yields every event in record order.
func (g *eventLog) all(yield func(int, event) bool) {
	for ci, c := range g.chunks {
		base := ci * chunkSize
		for j := range min(chunkSize, g.n-base) {
			if !yield(base+j, c[j]) {
				return
			}
		}
	}
}
