package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/timeline"
)

// writeRun writes run's report into a fresh directory and returns the
// directory and the summary.
func writeRun(t *testing.T, run Run) (string, Summary) {
	t.Helper()
	dir := t.TempDir()
	s, err := Write(dir, run)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	for _, f := range []string{SummaryFile, HistoryFile, IndexFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("Write did not create %s: %v", f, err)
		}
	}
	left, err := filepath.Glob(filepath.Join(dir, ".ledger-*"))
	if err != nil || len(left) > 0 {
		t.Fatalf("spool files left behind: %v %v", left, err)
	}
	return dir, s
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func q(n int, p50, p90, p99, maxv time.Duration) ledger.Quantiles {
	return ledger.Quantiles{N: n, P50: p50, P90: p90, P99: p99, Max: maxv}
}

func TestSummaryFigures(t *testing.T) {
	dir, ret := writeRun(t, fixtureRun(t))
	var s Summary
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, SummaryFile)), &s); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	type figures struct {
		Verdict                                                              string
		Valid                                                                bool
		Attempts, Attempted, Acknowledged, Failed, Indeterminate             int
		Delivered, Deliveries, Lost, Dropped, Unexpected                     int
		Duplicates, DuplicateDeliveries, Reordered, Recovered, FalseFailures int
		Outages                                                              int
		Latency, AckLatency, Detection, Reconnect                            ledger.Quantiles
		Seed                                                                 int64
		Span, Duration                                                       time.Duration
	}
	of := func(s Summary) figures {
		return figures{s.Verdict, s.Valid, s.Attempts, s.Attempted, s.Acknowledged, s.Failed, s.Indeterminate,
			s.Delivered, s.Deliveries, s.Lost, s.Dropped, s.Unexpected,
			s.Duplicates, s.DuplicateDeliveries, s.Reordered, s.Recovered, s.FalseFailures, s.Outages,
			s.Latency, s.AckLatency, s.Detection, s.Reconnect, s.Seed, s.Span, s.Duration}
	}
	want := figures{
		Verdict: Fail, Valid: false,
		Attempts: 10, Attempted: 10, Acknowledged: 8, Failed: 1, Indeterminate: 1,
		Delivered: 8, Deliveries: 10, Lost: 1, Dropped: 0, Unexpected: 1,
		Duplicates: 1, DuplicateDeliveries: 1, Reordered: 1, Recovered: 1, FalseFailures: 0,
		Outages: 2,
		// First deliveries: seven at 20ms, #6 at 400ms.
		Latency:    q(8, ms(20), ms(400), ms(400), ms(400)),
		AckLatency: q(8, ms(5), ms(5), ms(5), ms(5)),
		Detection:  q(2, ms(10), ms(30), ms(30), ms(30)),
		Reconnect:  q(2, ms(200), ms(205), ms(205), ms(205)),
		Seed:       42, Span: ms(1000), Duration: time.Second,
	}
	if got := of(s); got != want {
		t.Errorf("summary.json figures:\n got %+v\nwant %+v", got, want)
	}
	if got := of(ret); got != want {
		t.Errorf("returned figures:\n got %+v\nwant %+v", got, want)
	}

	if len(s.Clients) != 2 {
		t.Fatalf("clients: %+v", s.Clients)
	}
	p1, sub := s.Clients[0], s.Clients[1]
	if p1.Name != "p1" || p1.Outages != 1 || p1.Detection != q(1, ms(10), ms(10), ms(10), ms(10)) || p1.Reconnect != q(1, ms(200), ms(200), ms(200), ms(200)) ||
		p1.Stats["published"] != 10 {
		t.Errorf("client p1: %+v", p1)
	}
	wantEvents := map[string]int{"down": 1, "outage": 1, "reconnect": 1, "connect-failed": 1, "up": 1}
	if !maps.Equal(p1.Events, wantEvents) {
		t.Errorf("p1 events %v, want %v", p1.Events, wantEvents)
	}
	if sub.Name != "sub" || sub.Detection.P50 != ms(30) || sub.Reconnect.Max != ms(205) || !maps.Equal(sub.Events, map[string]int{"down": 1, "up": 1}) {
		t.Errorf("client sub: %+v", sub)
	}

	if len(s.Schedule) != 2 || s.Schedule[0].Fault != "partition" || s.Schedule[0].At != ms(250) || s.Schedule[1].Params["latency_ms"] != "200" {
		t.Errorf("schedule: %+v", s.Schedule)
	}
	if len(s.Faults) != 2 || s.Faults[0].Name != "partition" || s.Faults[0].Start != ms(250) || s.Faults[0].End != ms(450) ||
		s.Faults[1].Name != "latency" || s.Faults[1].End != ms(800) {
		t.Errorf("faults: %+v", s.Faults)
	}
	if s.Versions["mosquitto"] != "2.0.11" || s.Config["clients"] != float64(2) || s.Config["keepalive"] != float64(2*time.Second) {
		t.Errorf("versions %v config %v", s.Versions, s.Config)
	}
	if len(s.Problems) != 2 || !strings.Contains(s.Problems[0], "1 message lost") || !strings.Contains(s.Problems[1], "1 unexpected delivery") {
		t.Errorf("problems: %q", s.Problems)
	}

	if len(s.LostExamples) != 1 || s.LostExamples[0].ID != "p1 t/a#3" {
		t.Fatalf("lost examples: %+v", s.LostExamples)
	}
	if ctx := s.LostExamples[0].Context; !slices.ContainsFunc(ctx, func(l string) bool {
		return strings.HasPrefix(l, "> ") && strings.Contains(l, "invoke") && strings.Contains(l, "p1 t/a#3")
	}) {
		t.Errorf("lost context does not mark the invoke of #3:\n%s", strings.Join(ctx, "\n"))
	}
	if len(s.UnexpectedExamples) != 1 || !strings.Contains(s.UnexpectedExamples[0].What, "garbage") ||
		!slices.ContainsFunc(s.UnexpectedExamples[0].Context, func(l string) bool { return strings.HasPrefix(l, "> ") && strings.Contains(l, "unexpected") }) {
		t.Errorf("unexpected examples: %+v", s.UnexpectedExamples)
	}
	if len(s.ReorderedExamples) != 1 || !strings.Contains(s.ReorderedExamples[0], "t/a#6") ||
		len(s.DuplicateExamples) != 1 || !strings.Contains(s.DuplicateExamples[0], "t/a#5") {
		t.Errorf("reordered %q duplicates %q", s.ReorderedExamples, s.DuplicateExamples)
	}
}

// The JSON names are an interface of their own (CI scripts read them).
func TestSummaryJSONNames(t *testing.T) {
	dir, _ := writeRun(t, fixtureRun(t))
	var m map[string]any
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, SummaryFile)), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "started", "duration_ns", "seed", "client", "versions", "config", "schedule", "faults",
		"verdict", "valid", "attempted", "acknowledged", "delivered", "lost", "unexpected", "duplicates", "reordered",
		"recovered", "latency", "ack_latency", "outages", "detection", "reconnect", "clients", "lost_examples"} {
		if _, ok := m[k]; !ok {
			t.Errorf("summary.json has no %q", k)
		}
	}
	lat := m["latency"].(map[string]any)
	if lat["p50_ns"] != float64(ms(20)) || lat["max_ns"] != float64(ms(400)) {
		t.Errorf("latency %v", lat)
	}
	sched := m["schedule"].([]any)[0].(map[string]any)
	if sched["at_ns"] != float64(ms(250)) || sched["duration_ns"] != float64(ms(200)) || sched["fault"] != "partition" {
		t.Errorf("schedule entry %v", sched)
	}
	c := m["clients"].([]any)[0].(map[string]any)
	if c["name"] != "p1" || c["detection"].(map[string]any)["p50_ns"] != float64(ms(10)) {
		t.Errorf("client entry %v", c)
	}
}

func TestVerdicts(t *testing.T) {
	t.Run("pass", func(t *testing.T) {
		_, s := writeRun(t, cleanRun(t, 2000, 200))
		if s.Verdict != Pass || !s.Valid || s.Lost != 0 || s.Acknowledged != 2000 || s.Delivered != 2000 || len(s.Problems) != 0 {
			t.Errorf("clean run: %s valid=%v lost=%d acked=%d delivered=%d problems=%q", s.Verdict, s.Valid, s.Lost, s.Acknowledged, s.Delivered, s.Problems)
		}
	})
	t.Run("no ledger", func(t *testing.T) {
		run := fixtureRun(t)
		run.Ledger = nil
		dir, s := writeRun(t, run)
		if s.Verdict != Unknown || s.Valid || s.Attempted != 0 || len(s.Problems) != 1 {
			t.Errorf("no ledger: %s valid=%v problems=%q", s.Verdict, s.Valid, s.Problems)
		}
		// The history still holds the timeline.
		if n := len(readHistory(t, dir)); n != len(run.Timeline.Entries()) {
			t.Errorf("history has %d lines, want the %d timeline entries", n, len(run.Timeline.Entries()))
		}
	})
	t.Run("nothing acknowledged", func(t *testing.T) {
		l := ledger.New(fixtureStart)
		op := l.Invoke(ledger.ID{Publisher: "p", Topic: "t", Seq: 1}, at(0))
		l.Complete(op, ledger.Info, at(10), nil)
		_, s := writeRun(t, Run{Name: "idle", Started: fixtureStart, Ledger: l})
		if s.Verdict != Unknown || s.Valid {
			t.Errorf("nothing acknowledged: %s valid=%v", s.Verdict, s.Valid)
		}
	})
	t.Run("empty run", func(t *testing.T) {
		dir, s := writeRun(t, Run{})
		if s.Verdict != Unknown {
			t.Errorf("empty run: %s", s.Verdict)
		}
		if !bytes.Contains(readFile(t, filepath.Join(dir, IndexFile)), []byte("UNKNOWN")) {
			t.Error("empty run page has no verdict")
		}
	})
	t.Run("reuses result", func(t *testing.T) {
		run := fixtureRun(t)
		r := run.Ledger.Check()
		r.Lost = nil // a result that says otherwise shows it was used
		run.Result = &r
		_, s := writeRun(t, run)
		if s.Lost != 0 || s.Unexpected != 1 {
			t.Errorf("Run.Result not used: lost %d unexpected %d", s.Lost, s.Unexpected)
		}
	})
}

func TestConfigThatJSONCannotWrite(t *testing.T) {
	run := fixtureRun(t)
	run.Config["callback"] = func() {}
	dir, s := writeRun(t, run)
	if v, ok := s.Config["callback"].(string); !ok || v == "" {
		t.Errorf("func config value = %#v, want its fmt rendering", s.Config["callback"])
	}
	if !json.Valid(readFile(t, filepath.Join(dir, SummaryFile))) {
		t.Error("summary.json is not valid JSON")
	}
}

func TestDroppedWithinQueueLimits(t *testing.T) {
	run := fixtureRun(t)
	run.Ledger.ExpectDrops("sub", 1)
	_, s := writeRun(t, run)
	if s.Lost != 0 || s.Dropped != 1 || s.DroppedBy["sub"] != 1 || s.Verdict != Fail /* still unexpected */ {
		t.Errorf("lost %d dropped %d %v verdict %s", s.Lost, s.Dropped, s.DroppedBy, s.Verdict)
	}
}

// historyLine is what every history line must have.
type historyLine struct {
	At   *time.Duration `json:"at_ns"`
	Kind string         `json:"kind"`
	Raw  string         `json:"-"`
}

func readHistory(t *testing.T, dir string) []historyLine {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := ledger.OpenHistory(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []historyLine
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var h historyLine
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			t.Fatalf("history line %d %q: %v", len(out)+1, sc.Text(), err)
		}
		if h.At == nil || h.Kind == "" {
			t.Fatalf("history line %d %q has no at_ns or kind", len(out)+1, sc.Text())
		}
		h.Raw = sc.Text()
		out = append(out, h)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHistoryMergesInTimeOrder(t *testing.T) {
	run := fixtureRun(t)
	// A delivery recorded late with an early time, as concurrent
	// subscribers do, and a client event at the same instant as an invoke.
	id := ledger.ID{Publisher: "p1", Topic: "t/a", Seq: 0}
	run.Ledger.Deliver(ledger.Delivery{Subscriber: "late", Topic: "t/a", Payload: ledger.Encode(id, at(0)), QoS: 1, At: at(50)})
	run.Timeline.Record(at(200), "p1", timeline.Note, "same time as invoke #2")

	dir, _ := writeRun(t, run)
	lines := readHistory(t, dir)

	var ledgerJSONL bytes.Buffer
	if err := run.Ledger.WriteJSONL(&ledgerJSONL); err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSuffix(ledgerJSONL.String(), "\n"), "\n")
	entries := run.Timeline.Entries()
	if len(lines) != len(want)+len(entries) {
		t.Fatalf("history has %d lines, want %d ledger + %d timeline", len(lines), len(want), len(entries))
	}
	var fromLedger []string
	kinds := map[string]int{}
	for i, l := range lines {
		kinds[l.Kind]++
		if i > 0 && *l.At < *lines[i-1].At {
			t.Errorf("line %d at %v after line %d at %v", i+1, *l.At, i, *lines[i-1].At)
		}
		if strings.HasPrefix(l.Raw, `{"i":`) {
			fromLedger = append(fromLedger, l.Raw)
		}
	}
	// The ledger's lines are copied verbatim, each once, stably sorted.
	slices.SortStableFunc(want, func(a, b string) int {
		var x, y historyLine
		json.Unmarshal([]byte(a), &x)
		json.Unmarshal([]byte(b), &y)
		return int(*x.At - *y.At)
	})
	if !slices.Equal(fromLedger, want) {
		t.Errorf("ledger lines in history differ from the ledger's own, stably sorted:\n got %q\nwant %q", fromLedger, want)
	}
	wantKinds := map[string]int{"invoke": 10, "ok": 8, "info": 1, "fail": 1, "deliver": 10, "unexpected": 1, "subscribe": 1,
		"fault-start": 2, "fault-end": 2, "down": 2, "up": 2, "outage": 1, "reconnect": 1, "connect-failed": 1, "note": 1}
	if !maps.Equal(kinds, wantKinds) {
		t.Errorf("kinds %v, want %v", kinds, wantKinds)
	}
	// Ties: the timeline entry comes before the ledger's line.
	for i, l := range lines {
		if l.Kind == "note" {
			if next := lines[i+1]; next.Kind != "invoke" || *next.At != ms(200) {
				t.Errorf("after the note at 200ms comes %s", next.Raw)
			}
		}
	}
	// The late delivery sits at 50ms, not at the end.
	if l := lines[len(lines)-1]; *l.At != ms(1000) {
		t.Errorf("last line %s, want the delivery at 1000ms", l.Raw)
	}
}

// The history a report writes is the ledger's own: read back with
// ledger.ReadJSONL, timeline lines and all, it checks to the same result,
// escapes and odd names included.
func TestHistoryChecksAgain(t *testing.T) {
	run := fixtureRun(t)
	l := run.Ledger
	for i, id := range []ledger.ID{
		{Publisher: `q"uote`, Topic: `back\slash`, Seq: 7},
		{Publisher: "ünï<>&", Topic: "t/%41", Seq: 1 << 40},
	} {
		op := l.Invoke(id, at(i))
		l.Complete(op, ledger.Outcome(1+i%3), at(i+1), nil)
		l.Deliver(ledger.Delivery{Subscriber: "s\"1", Topic: id.Topic, Payload: ledger.Encode(id, at(i)), QoS: 1, Dup: true, At: at(i + 2)})
	}
	l.Deliver(ledger.Delivery{Subscriber: "s", Topic: "x", Payload: []byte("junk\xff"), At: at(-5)})
	l.ExpectDrops("sub", 1)
	dir, s := writeRun(t, run)
	f, err := os.Open(filepath.Join(dir, HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ledger.CheckJSONL(f)
	if err != nil {
		t.Fatal(err)
	}
	want := l.Check()
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("history.jsonl checks to\n%s\nthe run's ledger to\n%s", gb, wb)
	}
	if s.Lost != len(got.Lost) || s.Unexpected != len(got.Unexpected) || s.Dropped != got.Dropped["sub"] || s.Valid != (got.Valid() && got.Acknowledged > 0) {
		t.Fatalf("summary %+v, history's verdict %s", s, got.Summary())
	}
}

// The history is compressed unless asked otherwise; both check the same, and
// the page links the one written.
func TestPlainHistoryOption(t *testing.T) {
	size := map[bool]int64{}
	for _, plain := range []bool{false, true} {
		run := fixtureRun(t)
		run.PlainHistory = plain
		dir := t.TempDir()
		if _, err := Write(dir, run); err != nil {
			t.Fatal(err)
		}
		name, other := HistoryFile, PlainHistoryFile
		if plain {
			name, other = other, name
		}
		if _, err := os.Stat(filepath.Join(dir, other)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("plain=%t wrote %s too (%v)", plain, other, err)
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		size[plain] = int64(len(b))
		if gz := bytes.HasPrefix(b, []byte{0x1f, 0x8b}); gz == plain {
			t.Fatalf("plain=%t: %s compressed %t", plain, name, gz)
		}
		got, err := ledger.CheckJSONL(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		want := run.Ledger.Check()
		if gb, wb := resultJSON(t, got), resultJSON(t, want); gb != wb {
			t.Fatalf("plain=%t: %s checks to\n%s\nwant\n%s", plain, name, gb, wb)
		}
		page, err := os.ReadFile(filepath.Join(dir, IndexFile))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(page, []byte(`href="`+name+`"`)) || bytes.Contains(page, []byte(`href="`+other+`"`)) {
			t.Fatalf("plain=%t: the page does not link %s alone", plain, name)
		}
	}
	if size[false]*3 > size[true] {
		t.Fatalf("compressed %d bytes, plain %d", size[false], size[true])
	}
}

func resultJSON(t *testing.T, r ledger.Result) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSeries(t *testing.T) {
	h := &history{lines: []line{
		{at: 0, kind: lineInvoke},
		{at: ms(10), kind: lineOK},
		{at: ms(20), kind: lineDeliver, lat: ms(20)},
		{at: ms(500), kind: lineInvoke},
		{at: ms(600), kind: lineInfo},
		{at: ms(1100), kind: lineDeliver, lat: ms(600)},
		{at: ms(1200), kind: lineDeliver, lat: ms(100)},
		{at: ms(1300), kind: lineDeliver, lat: ms(300)},
		{at: ms(1400), kind: lineUnexpected},
		{at: ms(2050), kind: lineDeliver, lat: ms(50)}, // in a sliver folded into the second bucket
	}}
	b := series(h, ms(2050), time.Second)
	if len(b) != 2 {
		t.Fatalf("%d buckets, want 2 (the 50ms sliver folded in)", len(b))
	}
	if b[0].from != 0 || b[0].to != time.Second || b[1].from != time.Second || b[1].to != ms(2050) {
		t.Errorf("bucket bounds %v-%v, %v-%v", b[0].from, b[0].to, b[1].from, b[1].to)
	}
	if b[0].invokes != 2 || b[0].oks != 1 || b[0].failed != 1 || b[0].deliveries != 1 || b[0].latencies != 1 || b[0].p50 != ms(20) || b[0].max != ms(20) {
		t.Errorf("bucket 0: %+v", b[0])
	}
	if b[1].deliveries != 5 || b[1].latencies != 4 || b[1].p50 != ms(100) || b[1].p99 != ms(600) || b[1].max != ms(600) {
		t.Errorf("bucket 1: %+v", b[1])
	}
	if got := b[1].rate(b[1].deliveries); got != 5/1.05 {
		t.Errorf("bucket 1 rate %v, want %v", got, 5/1.05)
	}

	// A longer tail gets a bucket of its own.
	if b := series(h, ms(2500), time.Second); len(b) != 3 || b[2].to != ms(2500) || b[2].deliveries != 1 {
		t.Errorf("with a 500ms tail: %d buckets, last %+v", len(b), b[len(b)-1])
	}
}

func TestBucketWidth(t *testing.T) {
	for _, c := range []struct {
		span, want time.Duration
	}{
		{time.Second, 100 * time.Millisecond},
		{10 * time.Second, 100 * time.Millisecond},
		{19 * time.Second, 100 * time.Millisecond},
		{30 * time.Second, time.Second},
		{10 * time.Minute, 2 * time.Second},
		{24 * time.Hour, 5 * time.Minute},
		{1000 * time.Hour, 4 * time.Hour},
	} {
		if got := bucketWidth(c.span); got != c.want || c.span/got >= maxBuckets {
			t.Errorf("bucketWidth(%v) = %v, want %v", c.span, got, c.want)
		}
	}
}

// A long run still gives a small page: the plot is bucketed, the tables
// and examples are bounded.
func TestLargeRunPageStaysSmall(t *testing.T) {
	n := 30_000
	if testing.Short() {
		n = 10_000
	}
	run := cleanRun(t, n, 1000)
	start := time.Now()
	dir, s := writeRun(t, run)
	t.Logf("%d messages: report written in %v", n, time.Since(start))
	if s.Verdict != Pass || s.Delivered != n {
		t.Fatalf("verdict %s delivered %d", s.Verdict, s.Delivered)
	}
	page := readFile(t, filepath.Join(dir, IndexFile))
	if len(page) > 150<<10 {
		t.Errorf("index.html is %d bytes for %d messages", len(page), n)
	}
	if got, want := len(readHistory(t, dir)), 3*n+1+len(run.Timeline.Entries()); got != want { // 1: the subscription
		t.Errorf("history has %d lines, want %d", got, want)
	}
	// Every series has at most one point per bucket.
	for _, d := range regexpAll(`<path d="([^"]*)"`, string(page)) {
		if pts := strings.Count(d, "M") + strings.Count(d, "L") + strings.Count(d, "V"); pts > maxBuckets+1 {
			t.Errorf("a series has %d points", pts)
		}
	}
}

// The plots' latencies run from a message's first invoke to each of its
// deliveries, whatever its seq.
func TestIndexerLatency(t *testing.T) {
	l := ledger.New(fixtureStart)
	type msg struct {
		seq     uint64
		invokes []int // ms
		deliver []int // ms
	}
	msgs := []msg{
		{seq: 0, invokes: []int{0}, deliver: []int{7}},
		{seq: 1, invokes: []int{10, 40}, deliver: []int{45, 50}}, // retried, delivered twice
		{seq: 1 << 40, invokes: []int{20}, deliver: []int{33}},   // far beyond the table
		{seq: 300_000, invokes: []int{30}, deliver: []int{31}},   // beyond too, then dense again below
	}
	var want []time.Duration
	for _, m := range msgs {
		id := ledger.ID{Publisher: "p", Topic: "t", Seq: m.seq}
		for _, i := range m.invokes {
			l.Invoke(id, at(i))
		}
		for _, d := range m.deliver {
			l.Deliver(ledger.Delivery{Subscriber: "s", Topic: "t", Payload: ledger.Encode(id, at(m.invokes[0])), QoS: 1, At: at(d)})
			want = append(want, ms(d-m.invokes[0]))
		}
	}
	// A delivery of a message never invoked has no latency.
	l.Deliver(ledger.Delivery{Subscriber: "s", Topic: "t", Payload: ledger.Encode(ledger.ID{Publisher: "p", Topic: "t", Seq: 2}, at(0)), QoS: 1, At: at(60)})
	want = append(want, -1)

	var jsonl bytes.Buffer
	h := &history{}
	if err := spoolLedger(&jsonl, l, h); err != nil {
		t.Fatal(err)
	}
	var want2 bytes.Buffer
	if err := l.WriteJSONL(&want2); err != nil {
		t.Fatal(err)
	}
	if jsonl.String() != want2.String() {
		t.Fatalf("spooled history differs from the ledger's WriteJSONL:\n%s\nwant\n%s", jsonl.String(), want2.String())
	}
	for i, x := range h.lines {
		end := int64(jsonl.Len())
		if i+1 < len(h.lines) {
			end = h.lines[i+1].off
		}
		if line := jsonl.Bytes()[x.off:end]; !json.Valid(line) || line[len(line)-1] != '\n' {
			t.Fatalf("line %d at offset %d is %q", i, x.off, line)
		}
	}
	var got []time.Duration
	for _, x := range h.lines {
		if x.kind == lineDeliver {
			got = append(got, x.lat)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("latencies %v, want %v", got, want)
	}
	if h.last != ms(60) {
		t.Errorf("last %v", h.last)
	}
}
