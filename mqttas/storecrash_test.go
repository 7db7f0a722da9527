package mqttas

// Crash-consistency tests of FileStore: for every write and sync point of a run of a few hundred
// publications, lose power there (memFS), reboot, open the store again and check that every Append that
// had returned is recovered unless it was acknowledged, that nothing else appears but an Append the power
// cut interrupted, that the order holds, and that the store works afterwards.

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

const crashDir = "/data/outbox"

type crashRun struct {
	mu        sync.Mutex
	returned  map[uint64]Message // Append returned nil
	acked     map[uint64]bool    // Ack was called (it may or may not have reached the disk)
	attempted map[string]bool    // payloads of Appends that did not return nil: they may or may not be stored
}

func crashMsg(i int) Message {
	return Message{Topic: fmt.Sprintf("crash/%d", i%5), Payload: fmt.Appendf(nil, "msg-%04d-%s", i, bytes.Repeat([]byte("x"), i%37)), Retain: i%4 == 0, QoS: 1}
}

// crashWorkload appends n publications from writers goroutines, each acknowledging its publication of
// three before (so most are acknowledged and the log compacts), then closes the store.
func crashWorkload(t *testing.T, fsys *memFS, n, writers int) *crashRun {
	t.Helper()
	run := &crashRun{returned: map[uint64]Message{}, acked: map[uint64]bool{}, attempted: map[string]bool{}}
	st, err := openFileStore(fsys, crashDir, 1024)
	if err != nil {
		if errors.Is(err, errPowerCut) {
			return run
		}
		t.Fatalf("opening the first store: %v", err)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			var mine []uint64
			for i := w; i < n; i += writers {
				m := crashMsg(i)
				seq, err := st.Append(m)
				run.mu.Lock()
				if err != nil {
					run.attempted[string(m.Payload)] = true
					run.mu.Unlock()
					if !errors.Is(err, errPowerCut) {
						t.Errorf("Append: %v, want a power cut", err)
					}
					return
				}
				run.returned[seq] = m
				run.mu.Unlock()
				mine = append(mine, seq)
				if len(mine) > 3 && i%5 != 0 {
					s := mine[len(mine)-4]
					run.mu.Lock()
					run.acked[s] = true
					run.mu.Unlock()
					_ = st.Ack(s) // after a power cut it fails, or is lost: both only cost a duplicate
				}
			}
		})
	}
	wg.Wait()
	_ = st.Close()
	return run
}

// crashCheck reopens the store on img and checks it against run.
func crashCheck(t *testing.T, img *memFS, run *crashRun, torn bool, point string) {
	t.Helper()
	var size int64
	if ino := img.names[filepath.Join(crashDir, logName)]; ino != nil {
		size = int64(len(ino.data))
	}
	st, err := openFileStore(img, crashDir, 1024)
	var rerr *RecoveryError
	switch {
	case err == nil:
	case errors.As(err, &rerr) && torn:
		for _, d := range rerr.Damage {
			if d.Offset+d.Bytes != size || d.Bytes < 0 {
				t.Fatalf("%s: damage %+v not at the end of the %d-byte log: a power cut tears only the last record", point, d, size)
			}
		}
	default:
		t.Fatalf("%s: reopening after the power cut: %v", point, err)
	}
	got, err := st.Pending()
	if err != nil {
		t.Fatalf("%s: Pending: %v", point, err)
	}
	seen := map[uint64]bool{}
	for i, g := range got {
		if i > 0 && got[i-1].Seq >= g.Seq {
			t.Fatalf("%s: recovered out of order: seq %d after %d", point, g.Seq, got[i-1].Seq)
		}
		seen[g.Seq] = true
		if w, ok := run.returned[g.Seq]; ok {
			if g.Topic != w.Topic || !bytes.Equal(g.Payload, w.Payload) || g.Retain != w.Retain {
				t.Fatalf("%s: seq %d recovered as %q %q, stored as %q %q", point, g.Seq, g.Topic, g.Payload, w.Topic, w.Payload)
			}
			continue
		}
		if !run.attempted[string(g.Payload)] {
			t.Fatalf("%s: recovered seq %d %q, which no Append stored", point, g.Seq, g.Payload)
		}
	}
	for seq, m := range run.returned {
		if !run.acked[seq] && !seen[seq] {
			t.Fatalf("%s: seq %d (%q) was durable (Append returned) and not acknowledged, and is lost", point, seq, m.Payload)
		}
	}
	// The store works on: one more publication survives a clean close and another open.
	extra := Message{Topic: "after", Payload: []byte("the crash"), QoS: 1}
	seq, err := st.Append(extra)
	if err != nil {
		t.Fatalf("%s: Append after recovery: %v", point, err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("%s: Close after recovery: %v", point, err)
	}
	st, err = openFileStore(img, crashDir, 1024)
	if err != nil {
		t.Fatalf("%s: a second open after recovery: %v (damage must be repaired by the first)", point, err)
	}
	defer st.Close()
	again, err := st.Pending()
	if err != nil || len(again) != len(got)+1 || again[len(again)-1].Seq != seq || again[len(again)-1].Topic != "after" {
		t.Fatalf("%s: after recovery and one more Append, Pending = %d publications (err %v), want %d ending with seq %d", point, len(again), err, len(got)+1, seq)
	}
}

func testStoreCrashPoints(t *testing.T, n, writers, step int) {
	full := newMemFS(1)
	run := crashWorkload(t, full, n, writers)
	if len(run.returned) != n {
		t.Fatalf("the run without a power cut stored %d of %d", len(run.returned), n)
	}
	total := full.ops
	crashCheck(t, full.crashImage(1), run, false, "after a clean close")
	points := 0
	for k := 1; k <= total+1; k += step {
		for _, torn := range []bool{false, true} {
			fsys := newMemFS(uint64(k))
			fsys.crashAt, fsys.torn = k, torn
			run := crashWorkload(t, fsys, n, writers)
			crashCheck(t, fsys.crashImage(uint64(k)), run, torn, fmt.Sprintf("power cut at operation %d of %d (torn %t)", k, total, torn))
			if t.Failed() {
				return
			}
			points++
		}
	}
	t.Logf("%d publications, %d writers: %d write and sync points, %d power cuts checked", n, writers, total, points)
}

// Every write and sync point of a run of 300 publications from one writer.
func TestStoreCrashEveryPoint(t *testing.T) { testStoreCrashPoints(t, 300, 1, 1) }

// Concurrent writers (group commit), a power cut at every third point.
func TestStoreCrashConcurrent(t *testing.T) { testStoreCrashPoints(t, 200, 4, 3) }
