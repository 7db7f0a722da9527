package broker

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// goroutines returns the stacks of all goroutines except idle HTTP
// keep-alive connections to the Docker socket: testcontainers closes its
// client's idle connections right after each call, racing with a connection's
// return to the pool, and the moby transport reaps such stragglers after 30 s
// idle. They are not ours to fix, and not a leak.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	var out []string
	for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "net/http.(*persistConn)") {
			out = append(out, g)
		}
	}
	return out
}

// A full lifecycle leaves no goroutine behind.
func TestNoGoroutineLeak(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		before := len(goroutines())
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		b, err := New(ctx, Options{Backend: kind, Labels: map[string]string{labelRun: runID()}})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		for _, step := range []struct {
			name string
			op   func(context.Context) error
		}{
			{"Pause", b.Pause}, {"Unpause", b.Unpause}, {"Restart", b.Restart}, {"Kill", b.Kill}, {"Start", b.Start},
		} {
			if err := step.op(ctx); err != nil {
				t.Errorf("%s: %v", step.name, err)
			}
		}
		if _, err := b.Logs(ctx); err != nil {
			t.Errorf("Logs: %v", err)
		}
		closeAndCheckGone(t, b)

		// Goroutines may take a moment to observe their end.
		after := goroutines()
		for deadline := time.Now().Add(5 * time.Second); len(after) > before && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			after = goroutines()
		}
		if len(after) > before {
			t.Errorf("%d goroutines before, %d after Close:\n%s", before, len(after), strings.Join(after, "\n\n"))
		}
	})
}
