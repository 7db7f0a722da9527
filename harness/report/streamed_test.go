package report

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/timeline"
)

// A streamed run's report: the verdict from the streaming ledger, the history left as it was
// streamed (and checking to the same verdict), the plot drawn from the Series.
func TestStreamedRun(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	bw := bufio.NewWriter(zw)
	series := NewSeries()
	l := ledger.NewStreaming(fixtureStart, ledger.StreamOptions{History: bw,
		Observe: func(ev ledger.Event, lat time.Duration) { series.Add(ev.At, ev.Kind, lat) }})
	tl := timeline.New(fixtureStart)
	l.Subscribe("obs", "t/#", at(0))
	for i := range 1200 { // two minutes: past 800 slices of 100ms, so the series coarsens
		x := ledger.ID{Publisher: "p", Topic: "t/a", Seq: uint64(i + 1)}
		l.Complete(l.Invoke(x, at(100*i)), ledger.OK, at(100*i+5), nil)
		if i != 700 {
			l.Deliver(ledger.Delivery{Subscriber: "obs", Topic: x.Topic, Payload: ledger.Encode(x, at(0)), QoS: 1, At: at(100*i + 20)})
		}
	}
	id := tl.BeginFault(at(60_000), "link", "down", nil)
	if err := tl.EndFault(at(65_000), id, ""); err != nil {
		t.Fatal(err)
	}
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, filepath.Join(dir, HistoryFile))
	res := l.Check()
	s, err := Write(dir, Run{Name: "streamed", Started: fixtureStart, Duration: 2 * time.Minute, Timeline: tl, Result: &res,
		Streamed: &Streamed{File: HistoryFile, Series: series}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, HistoryFile)), before) {
		t.Fatal("Write rewrote the streamed history")
	}
	again, err := ledger.CheckJSONL(bytes.NewReader(before))
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Lost) != 1 || again.Lost[0].ID.Seq != 701 || again.Acknowledged != 1200 {
		t.Fatalf("the streamed history checks to %s", again.Summary())
	}
	if s.Verdict != Fail || s.Lost != 1 || s.Acknowledged != 1200 || s.Delivered != 1199 || s.Span < ms(119_900) {
		t.Fatalf("summary: %s lost %d acknowledged %d delivered %d span %v", s.Verdict, s.Lost, s.Acknowledged, s.Delivered, s.Span)
	}
	if len(s.Faults) != 1 || len(s.LostExamples) != 1 || !strings.Contains(s.LostExamples[0].What, "t/a#701") {
		t.Fatalf("faults %v, lost examples %v", s.Faults, s.LostExamples)
	}
	// The context comes from the streamed history: the message's invoke and ok, marked, and its neighbours.
	ctx := strings.Join(s.LostExamples[0].Context, "\n")
	if marks := strings.Count(ctx, "\n> ") + strings.Count(ctx[:2], "> "); marks != 2 || !strings.Contains(ctx, "p t/a#700") ||
		!strings.Contains(ctx, "ok         p t/a#701") {
		t.Fatalf("context of the lost message:\n%s", ctx)
	}
	page := string(readFile(t, filepath.Join(dir, IndexFile)))
	if !strings.Contains(page, "<svg") || !strings.Contains(page, `href="`+HistoryFile+`"`) || !strings.Contains(page, "per 400ms bucket") {
		t.Fatalf("page: svg %t, link %t, bucket %t", strings.Contains(page, "<svg"), strings.Contains(page, HistoryFile), strings.Contains(page, "per 400ms bucket"))
	}
	if _, err := Write(dir, Run{Streamed: &Streamed{File: HistoryFile}}); err == nil {
		t.Fatal("a streamed run without a result was written")
	}
}

// A Series gives the buckets the indexed history gives, but for latency quantiles within the
// sketch's accuracy.
func TestSeriesMatchesIndexedHistory(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s, h := NewSeries(), &history{}
	kinds := []string{ledger.KindInvoke, ledger.KindOK, ledger.KindFail, ledger.KindInfo, ledger.KindDeliver, ledger.KindUnexpected, ledger.KindSubscribe}
	for i := range 20000 {
		at := time.Duration(i) * 9 * time.Millisecond
		k := kinds[rng.IntN(len(kinds))]
		lat := time.Duration(-1)
		if k == ledger.KindDeliver && rng.IntN(5) > 0 {
			lat = time.Duration(rng.ExpFloat64() * float64(20*time.Millisecond))
		}
		s.Add(at, k, lat)
		h.lines = append(h.lines, line{at: at, kind: kindOf(k), lat: lat})
	}
	span := s.Last()
	width, got := s.buckets(span)
	want := series(h, span, width)
	if len(got) != len(want) || len(got) >= maxBuckets || width != 800*time.Millisecond {
		t.Fatalf("%d buckets of %v, want %d", len(got), width, len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		gq, wq := fmt.Sprint(g.p50, g.p99), fmt.Sprint(w.p50, w.p99)
		g.p50, g.p99, w.p50, w.p99 = 0, 0, 0, 0
		if g != w || !withinSketch(got[i].p50, want[i].p50) || !withinSketch(got[i].p99, want[i].p99) {
			t.Fatalf("bucket %d: %+v (%s), want %+v (%s)", i, g, gq, w, wq)
		}
	}
}

func withinSketch(got, want time.Duration) bool {
	d := float64(got - want)
	return d*d <= (ledger.SketchAccuracy*float64(want)+1)*(ledger.SketchAccuracy*float64(want)+1)
}
