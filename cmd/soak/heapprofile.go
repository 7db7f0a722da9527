package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"
)

// heapProfiles writes the soak's heap profile into dir every interval and once more when stopped, each
// named by the time since start (heap-0001m00.000s.pprof ...), so that what grows over a long run shows in
// `go tool pprof -base <first> <last>`. The returned stop waits for the last profile and returns the first
// error met.
func heapProfiles(dir string, every time.Duration, start time.Time) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var first error
		write := func(now time.Time) {
			if err := writeHeapProfile(dir, now.Sub(start)); err != nil && first == nil {
				first = err
			}
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				write(now)
			case <-ctx.Done():
				write(time.Now())
				done <- first
				return
			}
		}
	}()
	return func() error {
		cancel()
		return <-done
	}
}

// writeHeapProfile writes the heap profile after a fresh GC, so it counts what is live at elapsed.
func writeHeapProfile(dir string, elapsed time.Duration) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	m := int(elapsed / time.Minute)
	s := (elapsed % time.Minute).Seconds()
	path := filepath.Join(dir, fmt.Sprintf("heap-%04dm%06.3fs.pprof", m, s))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
