package syncbuf

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBoundedKeepsWholeTrailingLines(t *testing.T) {
	b := &Buffer{Max: 64}
	for i := range 20 {
		fmt.Fprintf(b, "line %02d\n", i)
	}
	got := b.String()
	if !strings.HasPrefix(got, DroppedMarker) {
		t.Fatalf("output %q lacks the drop marker", got)
	}
	body := strings.TrimPrefix(got, DroppedMarker)
	if len(body) > 64 || !strings.HasPrefix(body, "line ") || !strings.HasSuffix(body, "line 19\n") {
		t.Fatalf("kept %q: want at most 64 bytes of whole lines ending with line 19", body)
	}
}

func TestBoundedSmallOutputUntouched(t *testing.T) {
	b := &Buffer{Max: 64}
	fmt.Fprint(b, "a\nb\n")
	if got := b.String(); got != "a\nb\n" {
		t.Fatalf("String() = %q", got)
	}
}

func TestUnboundedKeepsEverything(t *testing.T) {
	var b Buffer
	want := strings.Repeat("0123456789\n", 10_000)
	fmt.Fprint(&b, want)
	if got := b.String(); got != want {
		t.Fatalf("kept %d bytes, want %d", len(got), len(want))
	}
}

func TestConcurrentWritesAllArrive(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 100 {
				fmt.Fprintf(&b, "w%d-%d\n", w, i)
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 800 {
		t.Fatalf("%d lines, want 800", n)
	}
}

func TestWaitSeesALaterWrite(t *testing.T) {
	var b Buffer
	go func() {
		time.Sleep(20 * time.Millisecond)
		fmt.Fprint(&b, "not yet\n")
		fmt.Fprint(&b, "ready\n")
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if !b.Wait(ctx, func(s string) bool { return strings.Contains(s, "ready") }) {
		t.Fatalf("Wait gave up; buffer %q", b.String())
	}
}

func TestWaitEndsWithItsContext(t *testing.T) {
	var b Buffer
	fmt.Fprint(&b, "something else")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	calls := 0
	if b.Wait(ctx, func(string) bool { calls++; return false }) {
		t.Fatal("Wait reported success for a condition that never held")
	}
	if calls < 2 {
		t.Fatalf("ok called %d times, want the first look and the last", calls)
	}
}
