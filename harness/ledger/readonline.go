package ledger

import (
	"context"
	"fmt"
	"io"
	"time"
)

// ReadOnline checks a history written by WriteJSONL or WriteJSONLGzip (or a
// report's, lines in any nearly sorted order) with an Online check, in two
// passes over r: the first reads the subscription windows and drops, the
// second the events, in index order through a buffer as large as the lines
// are out of it. Memory is that of the Online check and that buffer, not of
// the history. A zero horizon means DefaultHorizon. It is MergeOnline of one
// shard.
func ReadOnline(r io.ReadSeeker, horizon time.Duration) (*Online, error) {
	o, _, err := MergeOnline(context.Background(), []Shard{{History: r}}, MergeOptions{Horizon: horizon})
	return o, err
}

// eachLine calls f with every ledger line of r, plain or compressed.
func eachLine(r io.Reader, f func(Event) error) error {
	return eachRawLine(r, func(b []byte, n int) error {
		ev, ok, err := decodeLine(b)
		if err != nil {
			return fmt.Errorf("%w: line %d: %v", ErrHistory, n, err)
		}
		if !ok {
			return nil
		}
		return f(ev)
	})
}
