package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Profiles come every interval and once at the stop, named by the time since the start so that they
// sort in order, each a gzipped pprof profile.
func TestHeapProfiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "report")
	start := time.Now().Add(-90 * time.Second)
	stop := heapProfiles(dir, 100*time.Millisecond, start)
	// The first interval's profile, then the stop's: at least two.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if names, _ := filepath.Glob(filepath.Join(dir, "heap-*.pprof")); len(names) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "heap-*.pprof"))
	if err != nil || len(names) < 2 {
		t.Fatalf("profiles %v (%v), want several", names, err)
	}
	if !slices.IsSorted(names) || filepath.Base(names[0]) < "heap-0001m30.0" || filepath.Base(names[0]) > "heap-0001m31.0" {
		t.Errorf("profiles %v, want names from heap-0001m30.1s on, in order", names)
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Errorf("%s: not a gzipped profile (%v)", n, err)
		}
	}
	// A directory that cannot be made is reported by stop, not lost.
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := heapProfiles(filepath.Join(file, "report"), time.Hour, start)(); err == nil {
		t.Error("profiles into a path under a file: no error")
	}
}
