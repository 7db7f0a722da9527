package ledger

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// asShard renames l's publishers, topics, filters and subscribers for shard
// k, so the shards made of random histories are disjoint, and writes it as a
// soak writes a shard's history: plain or compressed, in record order or, as
// a report, sorted by time.
func asShard(t *testing.T, l *Ledger, k int, sorted, gz bool) []byte {
	t.Helper()
	pre := fmt.Sprintf("s%d", k)
	var evs []Event
	for ev := range l.Events() {
		if ev.ID.Publisher != "" || ev.ID.Topic != "" {
			ev.ID.Publisher, ev.ID.Topic = pre+"-"+ev.ID.Publisher, pre+"/"+ev.ID.Topic
		}
		if ev.Subscriber != "" {
			ev.Subscriber = pre + "-" + ev.Subscriber
		}
		if ev.Filter != "" {
			ev.Filter = pre + "/" + ev.Filter
		}
		if ev.Topic != "" {
			ev.Topic = pre + "/" + ev.Topic
		}
		evs = append(evs, ev)
	}
	if sorted {
		slices.SortStableFunc(evs, func(a, b Event) int { return cmp.Compare(a.At, b.At) })
	}
	var b bytes.Buffer
	w := io.Writer(&b)
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&b)
		w = zw
	}
	enc := json.NewEncoder(w)
	for _, ev := range evs {
		if err := enc.Encode(ev); err != nil {
			t.Fatal(err)
		}
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// shardsOf gives the same shard histories twice: for Merge and for
// MergeOnline, which seeks.
func shardsOf(names []string, offsets []time.Duration, texts [][]byte) (mem, files []Shard) {
	for k := range texts {
		mem = append(mem, Shard{Name: names[k], Offset: offsets[k], History: bytes.NewReader(texts[k])})
		files = append(files, Shard{Name: names[k], Offset: offsets[k], History: bytes.NewReader(texts[k])})
	}
	return mem, files
}

// canonical puts the findings a merge orders differently (by time, not shard
// after shard) in one order.
func canonical(r Result) Result {
	idCmp := func(a, b ID) int {
		return cmp.Or(cmp.Compare(a.Publisher, b.Publisher), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Seq, b.Seq))
	}
	r.Lost = slices.Clone(r.Lost)
	slices.SortStableFunc(r.Lost, func(a, b Lost) int { return cmp.Or(idCmp(a.ID, b.ID), cmp.Compare(a.Subscriber, b.Subscriber)) })
	r.Unexpected = slices.Clone(r.Unexpected)
	slices.SortStableFunc(r.Unexpected, func(a, b Unexpected) int {
		return cmp.Or(cmp.Compare(a.Subscriber, b.Subscriber), cmp.Compare(a.At, b.At), idCmp(a.ID, b.ID), cmp.Compare(a.Topic, b.Topic))
	})
	r.Reordered = slices.Clone(r.Reordered)
	slices.SortStableFunc(r.Reordered, func(a, b Reordered) int {
		return cmp.Or(cmp.Compare(a.Subscriber, b.Subscriber), cmp.Compare(a.At, b.At), idCmp(a.ID, b.ID))
	})
	r.Recovered = slices.Clone(r.Recovered)
	slices.SortStableFunc(r.Recovered, func(a, b Recovered) int { return idCmp(a.ID, b.ID) })
	r.Duplicated = slices.Clone(r.Duplicated)
	slices.SortStableFunc(r.Duplicated, func(a, b Duplicate) int { return cmp.Or(idCmp(a.ID, b.ID), cmp.Compare(a.Subscriber, b.Subscriber)) })
	return r
}

// mergedAlike fails unless MergeOnline's verdict and the history it wrote
// check as Merge's ledger does.
func mergedAlike(t *testing.T, mem, files []Shard, horizon time.Duration) (Result, MergeStats) {
	t.Helper()
	ml, err := Merge(mem...)
	if err != nil {
		t.Fatal(err)
	}
	want := ml.Check()
	var hist bytes.Buffer
	o, st, err := MergeOnline(t.Context(), files, MergeOptions{Horizon: horizon, History: &hist})
	if err != nil {
		t.Fatal(err)
	}
	got := o.Result()
	sameVerdict(t, canonical(got), canonical(want), o.Untimed())
	if st.Lines+st.Repeats != ml.Len()+countEarly(ml) || st.Events+st.Repeats != ml.Len() {
		t.Fatalf("merged %d lines, %d events; Merge's ledger has %d events, %d lines", st.Lines, st.Events, ml.Len(), ml.Len()+countEarly(ml))
	}
	// The merged history is a history: it checks, exactly and online, as Merge's ledger.
	back, err := ReadJSONL(bytes.NewReader(hist.Bytes()))
	if err != nil {
		t.Fatalf("reading the merged history: %v", err)
	}
	again := back.Check()
	if g, w := resultJSON(t, canonical(again)), resultJSON(t, canonical(want)); g != w {
		t.Fatalf("the merged history checks differently:\n%s", firstDiff(g, w))
	}
	oo, err := ReadOnline(bytes.NewReader(hist.Bytes()), horizon)
	if err != nil {
		t.Fatal(err)
	}
	sameVerdict(t, canonical(oo.Result()), canonical(want), oo.Untimed())
	return got, st
}

func countEarly(l *Ledger) int {
	n := 0
	for ev := range l.Events() {
		if earlyKind(ev.Kind) {
			n++
		}
	}
	return n
}

func TestMergeOnlineGivesMergeVerdictOnRandomShards(t *testing.T) {
	var lost, dups, reord, unexpected, repeats int
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 17))
		n := 1 + rng.IntN(4)
		var names []string
		var offsets []time.Duration
		var texts [][]byte
		for k := range n {
			names = append(names, fmt.Sprintf("shard-%d", k))
			offsets = append(offsets, time.Duration(rng.IntN(200))*time.Millisecond)
			texts = append(texts, asShard(t, randomHistory(rng), k, rng.IntN(2) == 0, rng.IntN(2) == 0))
		}
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			for _, horizon := range []time.Duration{math.MaxInt64, 3 * time.Millisecond} {
				mem, files := shardsOf(names, offsets, texts)
				r, st := mergedAlike(t, mem, files, horizon)
				if horizon == math.MaxInt64 {
					lost += len(r.Lost)
					dups += len(r.Duplicated)
					reord += len(r.Reordered)
					unexpected += len(r.Unexpected)
					repeats += st.Repeats
				}
			}
		})
	}
	if lost == 0 || dups == 0 || reord == 0 || unexpected == 0 || repeats == 0 {
		t.Fatalf("weak shards: lost %d, duplicated %d, reordered %d, unexpected %d, repeated completions %d", lost, dups, reord, unexpected, repeats)
	}
}

// A message lost in one shard is lost in the merge, at its shard's offset.
func TestMergeOnlineLostInOneShard(t *testing.T) {
	a, b := shardRun(t, 0, false), shardRun(t, 1, true)
	rb := b.Check()
	texts := [][]byte{written(t, a, false).Bytes(), written(t, b, true).Bytes()}
	mem, files := shardsOf([]string{"0", "1"}, []time.Duration{0, 250 * time.Millisecond}, texts)
	r, _ := mergedAlike(t, mem, files, 0)
	if r.Valid() || len(r.Lost) != 1 || r.Lost[0].ID != rb.Lost[0].ID || r.Lost[0].Subscriber != "s1-observer" ||
		r.Lost[0].Invoked != rb.Lost[0].Invoked+250*time.Millisecond {
		t.Fatalf("merged lost %v, shard 1 lost %v", r.Lost, rb.Lost)
	}
}

func TestMergeOnlineRecordedShards(t *testing.T) {
	// The recorded failing histories (two soaks of broken clients, with clients and topics of their
	// own) as two shards of one run.
	files, err := filepath.Glob(filepath.Join("testdata", "*.history.jsonl"))
	if err != nil || len(files) != 2 {
		t.Fatal("recorded histories", files, err)
	}
	var texts [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, b)
	}
	mem, fs := shardsOf(files, []time.Duration{time.Second, 0}, texts)
	r, _ := mergedAlike(t, mem, fs, 0)
	// As many lost as the two recorded verdicts together.
	if len(r.Lost) != 15+9 || len(r.Unexpected) != 12 {
		t.Fatalf("merged %s", r.Summary())
	}
}

func TestMergeOnlineRefusesOverlappingShards(t *testing.T) {
	a := shardRun(t, 0, false)
	text := written(t, a, false).Bytes()
	mem, files := shardsOf([]string{"0", "1"}, []time.Duration{0, 0}, [][]byte{text, text})
	_, want := Merge(mem...)
	_, _, err := MergeOnline(t.Context(), files, MergeOptions{})
	if !errors.Is(err, ErrOverlap) || want == nil || err.Error() != want.Error() {
		t.Fatalf("the same shard twice: %v, Merge says %v", err, want)
	}
	// Shards that share only a subscriber, and only in their windows.
	b := New(t0)
	b.Subscribe("s0-observer", "soak/other/#", ms(0))
	mem, files = shardsOf([]string{"0", "1"}, []time.Duration{0, 0}, [][]byte{text, written(t, b, false).Bytes()})
	_, want = Merge(mem...)
	_, _, err = MergeOnline(t.Context(), files, MergeOptions{})
	if !errors.Is(err, ErrOverlap) || want == nil || err.Error() != want.Error() {
		t.Fatalf("a subscriber in two shards: %v, Merge says %v", err, want)
	}
	// A reader that cannot seek is refused, not read half.
	if _, _, err := MergeOnline(t.Context(), []Shard{{Name: "pipe", History: strings.NewReader(string(text)[:0]) /* a ReadSeeker */}}, MergeOptions{}); err != nil {
		t.Fatalf("an empty shard: %v", err)
	}
	if _, _, err := MergeOnline(t.Context(), []Shard{{Name: "pipe", History: io.MultiReader(bytes.NewReader(text))}}, MergeOptions{}); err == nil ||
		!strings.Contains(err.Error(), "pipe") {
		t.Fatalf("a reader that cannot seek: %v", err)
	}
}

// A damaged history is refused naming the shard and the line.
func TestMergeOnlineNamesTheBadLine(t *testing.T) {
	good := written(t, shardRun(t, 0, false), false).String()
	lines := strings.SplitAfter(good, "\n")
	other := written(t, shardRun(t, 1, false), false).Bytes()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(other)
	zw.Close()
	cut := gz.Bytes()[:gz.Len()/2]
	for _, c := range []struct {
		name, text, want string
	}{
		{"junk", strings.Join(lines[:5], "") + "not json\n" + strings.Join(lines[5:], ""), "shard-0: line 6:"},
		{"qos", strings.Join(lines[:3], "") + `{"i":2,"at_ns":0,"kind":"deliver","id":{"publisher":"p","topic":"t","seq":1},"qos":3}` + "\n", "shard-0: line 4: "},
		{"orphan", lines[0] + `{"i":1,"at_ns":5,"kind":"ok","op":7}` + "\n", "shard-0: line 2: ok of op 7, which is no earlier invoke"},
		{"twice", lines[0] + lines[0], "shard-0: line 2: two lines with index 0"},
		{"unsub", `{"i":0,"at_ns":0,"kind":"unsubscribe","subscriber":"s","filter":"#","op":3}` + "\n", "shard-0: line 1: unsubscribe of line 3"},
		{"no index", `{"kind":"invoke"}` + "\n", "shard-0: line 1:"},
		{"cut", string(cut), "shard shard-0: ledger: bad history: compressed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			shards := []Shard{{Name: "shard-0", History: strings.NewReader(c.text)}, {Name: "shard-1", History: bytes.NewReader(other)}}
			_, _, err := MergeOnline(t.Context(), shards, MergeOptions{})
			if !errors.Is(err, ErrHistory) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want ErrHistory with %q", err, c.want)
			}
		})
	}
}

// A merge that fails or is cancelled leaves no reader behind.
func TestMergeOnlineStopsItsReaders(t *testing.T) {
	var texts [][]byte
	for k := range 8 {
		texts = append(texts, written(t, shardRun(t, k, false), true).Bytes())
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, files := shardsOf(make([]string, 8), make([]time.Duration, 8), texts)
	if _, _, err := MergeOnline(ctx, files, MergeOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled merge: %v", err)
	}
	bad := slices.Clone(texts)
	bad[5] = []byte("{\"i\":0,\"at_ns\":0,\"kind\":\"invoke\"}\nnot json\n")
	_, files = shardsOf(make([]string, 8), make([]time.Duration, 8), bad)
	if _, _, err := MergeOnline(t.Context(), files, MergeOptions{}); !errors.Is(err, ErrHistory) {
		t.Fatalf("a bad shard: %v", err)
	}
	for range 100 {
		if runtime.NumGoroutine() <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d goroutines, %d before", runtime.NumGoroutine(), before)
}

// The merge's memory: what is in flight, not what went by.
func TestMergeOnlineHoldsWhatIsInFlight(t *testing.T) {
	const n = 100_000
	var texts [][]byte
	for k := range 2 {
		l := New(t0)
		sub := fmt.Sprintf("s%d-obs", k)
		l.Subscribe(sub, fmt.Sprintf("s%d/#", k), t0)
		for i := range n {
			x := ID{Publisher: fmt.Sprintf("s%d-c%d", k, i%8), Topic: fmt.Sprintf("s%d/c%d", k, i%8), Seq: uint64(i/8 + 1)}
			at := t0.Add(time.Duration(i) * time.Millisecond)
			op := l.Invoke(x, at)
			l.Deliver(Delivery{Subscriber: sub, Topic: x.Topic, Payload: Encode(x, at), QoS: 1, At: at.Add(2 * time.Millisecond)})
			l.Complete(op, OK, at.Add(3*time.Millisecond), nil)
		}
		texts = append(texts, written(t, l, true).Bytes())
	}
	_, files := shardsOf([]string{"0", "1"}, []time.Duration{0, 500 * time.Millisecond}, texts)
	var lines, timed int
	observe := func(ev Event, lat time.Duration) {
		lines++
		if lat >= 0 {
			if ev.Kind != KindDeliver || lat != 2*time.Millisecond {
				t.Fatalf("%v with latency %v", ev, lat)
			}
			timed++
		}
	}
	o, st, err := MergeOnline(t.Context(), files, MergeOptions{History: io.Discard, Observe: observe})
	if err != nil {
		t.Fatal(err)
	}
	r := o.Result()
	if !r.Valid() || r.Attempted != 2*n || r.Latency.N != 2*n || lines != st.Lines || st.Lines != 6*n+2 || timed != 2*n {
		t.Fatalf("verdict %s, %d lines observed, stats %+v", r.Summary(), lines, st)
	}
	// A second and a half of messages (the linger, the shards' offset) and a sweep's worth, not 200,000.
	if st.MaxHeld > 4*1500+sweepEvery {
		t.Fatalf("held %d messages at most", st.MaxHeld)
	}
}

func FuzzMergeOnline(f *testing.F) {
	a, b := shardRun(f, 0, false), shardRun(f, 1, true)
	f.Add(written(f, a, false).Bytes(), written(f, b, false).Bytes(), int64(0))
	f.Add(written(f, rich(f), false).Bytes(), []byte(`{"i":0,"at_ns":0,"kind":"subscribe","subscriber":"x","filter":"#"}`), int64(5))
	f.Fuzz(func(t *testing.T, x, y []byte, off int64) {
		mem, files := shardsOf([]string{"x", "y"}, []time.Duration{0, time.Duration(off)}, [][]byte{x, y})
		o, st, err := MergeOnline(t.Context(), files, MergeOptions{History: io.Discard})
		ml, merr := Merge(mem...)
		if err != nil {
			if !errors.Is(err, ErrHistory) && !errors.Is(err, ErrOverlap) {
				t.Fatalf("error neither ErrHistory nor ErrOverlap: %v", err)
			}
			if merr == nil {
				t.Fatalf("MergeOnline refuses what Merge takes: %v", err)
			}
			return
		}
		if merr != nil {
			if st.Repeats == 0 {
				t.Fatalf("Merge refuses what MergeOnline takes: %v", merr)
			}
			return // a completion of an earlier line that was no invoke, which MergeOnline takes for a repeat
		}
		sameVerdict(t, canonical(o.Result()), canonical(ml.Check()), o.Untimed())
	})
}
