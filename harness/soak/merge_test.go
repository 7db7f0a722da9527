package soak

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/report"
)

// shardReport writes the report of shard k of a run started at start: two clients and an observer
// of its own; with lose, one message never reaches the observer.
func shardReport(t *testing.T, k int, start time.Time, lose bool) string {
	t.Helper()
	l := ledger.New(start)
	obs := fmt.Sprintf("soak-run-s%d-observer", k)
	l.Subscribe(obs, fmt.Sprintf("soak/run/s%d/#", k), start)
	for i := range 30 {
		at := start.Add(time.Duration(10*i) * time.Millisecond)
		for c := range 2 {
			x := ledger.ID{Publisher: fmt.Sprintf("soak-run-s%d-c%d", k, c), Topic: fmt.Sprintf("soak/run/s%d/c%d", k, c), Seq: uint64(i + 1)}
			l.Complete(l.Invoke(x, at), ledger.OK, at.Add(time.Millisecond), nil)
			if lose && i == 11 && c == 0 {
				continue
			}
			l.Deliver(ledger.Delivery{Subscriber: obs, Topic: x.Topic, Payload: ledger.Encode(x, at), QoS: 1, At: at.Add(2 * time.Millisecond)})
		}
	}
	dir := filepath.Join(t.TempDir(), fmt.Sprintf("shard-%d", k))
	if _, err := report.Write(dir, report.Run{Name: filepath.Base(dir), Started: start, Duration: time.Second, Client: "mqttas",
		Ledger: l, PlainHistory: k%2 == 1}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestMergeShards(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := shardReport(t, 0, t0.Add(40*time.Millisecond), false)
	b := shardReport(t, 1, t0, true)
	out := filepath.Join(t.TempDir(), "merged")
	m, err := Merge(t.Context(), out, a, b)
	if err != nil {
		t.Fatal(err)
	}
	res, sum := m.Result, m.Summary
	want := ledger.ID{Publisher: "soak-run-s1-c0", Topic: "soak/run/s1/c0", Seq: 12}
	if res.Valid() || len(res.Lost) != 1 || res.Lost[0].ID != want || res.Attempted != 120 || res.Delivered != 119 {
		t.Fatalf("merged verdict %s, lost %v", res.Summary(), res.Lost)
	}
	// Shard b started first: its times stand, a's move 40ms on.
	if res.Lost[0].Invoked != 110*time.Millisecond || sum.Verdict != "FAIL" || sum.Lost != 1 || sum.Attempted != 120 {
		t.Fatalf("lost %v, summary %s lost %d attempted %d", res.Lost, sum.Verdict, sum.Lost, sum.Attempted)
	}
	if !sum.Started.Equal(t0) || sum.Config["check"] != mergeCheck || m.Stats.Events != 120*3-1 || m.Untimed != 0 {
		t.Fatalf("merged start %v, want the earliest shard's %v; config %v; stats %+v", sum.Started, t0, sum.Config, m.Stats)
	}
	// The lost message's example shows the merged history's lines about it.
	if len(sum.LostExamples) != 1 || !slices.ContainsFunc(sum.LostExamples[0].Context, func(l string) bool {
		return strings.HasPrefix(l, "> ") && strings.Contains(l, want.String())
	}) {
		t.Fatalf("lost examples %+v", sum.LostExamples)
	}
	// The merged report's history checks to the merged verdict (exactly: the merge's latency
	// quantiles are within 1% of it).
	again, err := Check(filepath.Join(out, report.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	exact, online := again.Latency, res.Latency
	again.Latency, res.Latency = ledger.Quantiles{}, ledger.Quantiles{}
	if again.Summary() != res.Summary() || exact.N != online.N || exact.Max != online.Max ||
		math.Abs(float64(exact.P50-online.P50)) > 0.01*float64(exact.P50)+1 {
		t.Fatalf("the merged history checks to %s %v, the merge to %s %v", again.Summary(), exact, res.Summary(), online)
	}
	for _, f := range []string{report.SummaryFile, report.IndexFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Fatal(err)
		}
	}
	// The same shard twice overlaps; a directory with no report is bad input.
	if _, err := Merge(t.Context(), filepath.Join(t.TempDir(), "m"), a, a); !errors.Is(err, ErrInput) || !errors.Is(err, ledger.ErrOverlap) {
		t.Fatalf("a shard twice: %v", err)
	}
	if _, err := Merge(t.Context(), filepath.Join(t.TempDir(), "m"), t.TempDir()); !errors.Is(err, ErrInput) {
		t.Fatalf("no report: %v", err)
	}
	// A damaged history is bad input naming the file and the line, and leaves no merged history.
	hist := filepath.Join(b, report.PlainHistoryFile)
	text, err := os.ReadFile(hist)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(text), "\n")
	if err := os.WriteFile(hist, []byte(strings.Join(lines[:9], "")+"{\"i\":\n"+strings.Join(lines[9:], "")), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "m")
	if _, err := Merge(t.Context(), bad, a, b); !errors.Is(err, ErrInput) || !errors.Is(err, ledger.ErrHistory) ||
		!strings.Contains(err.Error(), hist+": line 10:") {
		t.Fatalf("a damaged shard: %v", err)
	}
	if _, err := os.Stat(filepath.Join(bad, report.HistoryFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed merge left its history: %v", err)
	}
	os.Remove(hist)
	if _, err := Merge(t.Context(), bad, a, b); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), filepath.Join(b, report.HistoryFile)) {
		t.Fatalf("a shard without its history: %v", err)
	}
}
