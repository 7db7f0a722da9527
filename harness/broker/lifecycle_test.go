package broker

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLifecycleSerialisesOperations(t *testing.T) {
	l := &lifecycle{addr: "127.0.0.1:1"}
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				_ = l.do("start", func() error {
					if inside.Add(1) > 1 {
						overlaps.Add(1)
					}
					time.Sleep(10 * time.Microsecond)
					inside.Add(-1)
					return nil
				})
			}
		})
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d operations ran while another was running", n)
	}
}

func TestLifecycleAfterCloseEveryOperationFails(t *testing.T) {
	l := &lifecycle{addr: "127.0.0.1:1"}
	torn := 0
	if err := l.close(func() error { torn++; return nil }); err != nil {
		t.Fatal(err)
	}
	ran := false
	for _, op := range []string{"start", "stop", "kill", "pause", "unpause"} {
		err := l.do(op, func() error { ran = true; return nil })
		if !errors.Is(err, ErrClosed) || err.Error() != op+" 127.0.0.1:1: broker: closed" {
			t.Errorf("%s after close: %v", op, err)
		}
	}
	if err := l.restart(func() error { ran = true; return nil }, func() error { ran = true; return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("restart after close: %v", err)
	}
	if err := l.check("logs"); !errors.Is(err, ErrClosed) || err.Error() != "logs 127.0.0.1:1: broker: closed" {
		t.Errorf("logs after close: %v", err)
	}
	if ran {
		t.Error("an operation ran after close")
	}
	if err := l.close(func() error { torn++; return errors.New("second teardown") }); err != nil || torn != 1 {
		t.Errorf("second close: %v, teardown ran %d times", err, torn)
	}
}

func TestLifecycleCloseOnceWaitsForARunningOperation(t *testing.T) {
	l := &lifecycle{addr: "127.0.0.1:1"}
	if err := l.check("logs"); err != nil {
		t.Fatalf("check before close: %v", err)
	}
	inOp, release := make(chan struct{}), make(chan struct{})
	opDone := make(chan error, 1)
	go func() {
		opDone <- l.do("stop", func() error { close(inOp); <-release; return nil })
	}()
	<-inOp
	var torn atomic.Int32
	var opFinished atomic.Bool
	boom := errors.New("teardown failed")
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			errs <- l.close(func() error {
				if !opFinished.Load() {
					t.Error("teardown ran while an operation was running")
				}
				torn.Add(1)
				return boom
			})
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if torn.Load() != 0 {
		t.Fatal("close did not wait for the running operation")
	}
	opFinished.Store(true)
	close(release)
	if err := <-opDone; err != nil {
		t.Fatal(err)
	}
	failed := 0
	for range 4 {
		if err := <-errs; errors.Is(err, boom) {
			failed++
		} else if err != nil {
			t.Errorf("close: %v", err)
		}
	}
	if torn.Load() != 1 || failed != 1 {
		t.Fatalf("teardown ran %d times, its error returned %d times; want once each", torn.Load(), failed)
	}
}

func TestLifecycleRestartStopsThenStarts(t *testing.T) {
	l := &lifecycle{addr: "127.0.0.1:1"}
	var steps []string
	stop := func() error { steps = append(steps, "stop"); return nil }
	start := func() error { steps = append(steps, "start"); return nil }
	if err := l.restart(stop, start); err != nil || len(steps) != 2 || steps[0] != "stop" || steps[1] != "start" {
		t.Fatalf("restart: %v, steps %v", err, steps)
	}
	steps = nil
	failed := errors.New("stop failed")
	if err := l.restart(func() error { steps = append(steps, "stop"); return failed }, start); !errors.Is(err, failed) || len(steps) != 1 {
		t.Fatalf("restart with a failing stop: %v, steps %v", err, steps)
	}
	if err := l.notRunning("pause"); !errors.Is(err, ErrNotRunning) || err.Error() != "pause 127.0.0.1:1: broker: not running" {
		t.Fatalf("notRunning: %v", err)
	}
}
