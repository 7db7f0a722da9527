package ledger

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// randomHistory records a random history with everything Check judges:
// several publishers and topics, retries, every outcome, lost, duplicated
// (with and without DUP), reordered and unexpected deliveries, strays,
// subscription windows that open late, close and reopen, and drops.
func randomHistory(rng *rand.Rand) *Ledger { return randomHistoryInto(rng, New(t0)) }

// randomHistoryInto records randomHistory's calls into l.
func randomHistoryInto(rng *rand.Rand, l *Ledger) *Ledger {
	subs := []string{"obs", "c0", "c1", "c2"}[:1+rng.IntN(4)]
	topics := []string{"t/a", "t/b", "u/c", "$sys/x"}
	filters := []string{"#", "t/#", "t/+", "u/c", "+/c"}
	now := 0
	tick := func() time.Time { now += rng.IntN(5); return ms(now) }
	type open struct{ sub, filter string }
	var opened []open
	if rng.IntN(8) > 0 { // sometimes no window at all: any subscriber will do
		for _, sub := range subs {
			for range 1 + rng.IntN(2) {
				f := filters[rng.IntN(len(filters))]
				l.Subscribe(sub, f, ms(rng.IntN(40)))
				opened = append(opened, open{sub, f})
			}
		}
	}
	type attempt struct {
		op Op
		x  ID
	}
	var pending []attempt
	var sent []ID
	seqs := map[string]uint64{}
	for range 20 + rng.IntN(200) {
		switch p := rng.IntN(100); {
		case p < 30 || len(sent) == 0: // a new message, or another attempt of a recent one
			var x ID
			if len(sent) > 0 && rng.IntN(8) == 0 {
				x = sent[len(sent)-1-rng.IntN(min(len(sent), 4))]
			} else {
				pub := fmt.Sprintf("p%d", rng.IntN(3))
				topic := topics[rng.IntN(len(topics))]
				seqs[pub+topic]++
				x = ID{Publisher: pub, Topic: topic, Seq: seqs[pub+topic]}
				sent = append(sent, x)
			}
			pending = append(pending, attempt{l.Invoke(x, tick()), x})
		case p < 50 && len(pending) > 0: // a completion, mostly in order
			i := 0
			if rng.IntN(4) == 0 {
				i = rng.IntN(len(pending))
			}
			a := pending[i]
			o := []Outcome{OK, OK, OK, OK, Fail, Info}[rng.IntN(6)]
			var err error
			if o != OK || rng.IntN(5) == 0 {
				err = errors.New("e" + fmt.Sprint(rng.IntN(3)))
			}
			l.Complete(a.op, o, tick(), err)
			if rng.IntN(10) > 0 {
				pending = slices.Delete(pending, i, i+1)
			}
		case p < 93: // a delivery, mostly of something recent
			x := sent[max(0, len(sent)-1-rng.IntN(min(len(sent), 6)))]
			if rng.IntN(30) == 0 {
				x.Seq += 100 // never published
			}
			l.Deliver(Delivery{Subscriber: subs[rng.IntN(len(subs))], Topic: x.Topic, Payload: Encode(x, ms(0)),
				QoS: byte(rng.IntN(3)), Dup: rng.IntN(6) == 0, Retain: rng.IntN(20) == 0, At: tick()})
		case p < 95: // a stray
			x := sent[rng.IntN(len(sent))]
			payload, topic := []byte("junk"), "t/a"
			if rng.IntN(2) == 0 {
				payload, topic = Encode(x, ms(0)), "elsewhere"
			}
			l.Deliver(Delivery{Subscriber: subs[rng.IntN(len(subs))], Topic: topic, Payload: payload, At: tick()})
		case p < 98 && len(opened) > 0: // a window closes and perhaps reopens
			w := opened[rng.IntN(len(opened))]
			at := tick()
			if l.Unsubscribe(w.sub, w.filter, at) && rng.IntN(2) == 0 {
				l.Subscribe(w.sub, w.filter, at.Add(time.Duration(rng.IntN(20))*time.Millisecond))
			}
		default:
			l.ExpectDrops(subs[rng.IntN(len(subs))], rng.IntN(3))
		}
	}
	return l
}

// online checks l's history with the windows and drops first, as ReadOnline
// does.
func online(t *testing.T, l *Ledger, horizon time.Duration, every int) *Online {
	t.Helper()
	o := NewOnline(horizon)
	o.every = every
	var events []Event
	for ev := range l.Events() {
		switch ev.Kind {
		case KindSubscribe, KindUnsubscribe, KindDrops:
			if err := o.Add(ev); err != nil {
				t.Fatal(err)
			}
		default:
			events = append(events, ev)
		}
	}
	for _, ev := range events {
		if err := o.Add(ev); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// sameVerdict fails unless got (an Online verdict) is want (Check's): the
// same JSON once Duplicated is in Online's order and the latency quantiles,
// compared on their own, within the sketch's accuracy. untimed is how many
// latency samples got is allowed to miss.
func sameVerdict(t *testing.T, got, want Result, untimed int) {
	t.Helper()
	slices.SortFunc(want.Duplicated, func(a, b Duplicate) int {
		return cmp.Or(cmp.Compare(a.ID.Publisher, b.ID.Publisher), cmp.Compare(a.ID.Topic, b.ID.Topic),
			cmp.Compare(a.ID.Seq, b.ID.Seq), cmp.Compare(a.Subscriber, b.Subscriber))
	})
	for _, q := range [][2]*Quantiles{{&got.Latency, &want.Latency}, {&got.AckLatency, &want.AckLatency}} {
		g, w := *q[0], *q[1]
		if q[0] == &got.Latency && untimed > 0 {
			if g.N+untimed != w.N {
				t.Fatalf("latency n=%d with %d untimed, want n=%d", g.N, untimed, w.N)
			}
		} else if g.N != w.N || g.Max != w.Max || !within(g.P50, w.P50) || !within(g.P90, w.P90) || !within(g.P99, w.P99) {
			t.Fatalf("quantiles %v, want %v", g, w)
		}
		*q[0], *q[1] = Quantiles{}, Quantiles{}
	}
	if g, w := resultJSON(t, got), resultJSON(t, want); g != w {
		t.Fatalf("online verdict:\n%s\nwant:\n%s", g, firstDiff(g, w))
	}
}

func TestOnlineGivesCheckVerdictOnRandomHistories(t *testing.T) {
	var forgot, held, exact, lost, dups, reord, recovered, untimed int
	for seed := range uint64(600) {
		rng := rand.New(rand.NewPCG(seed, 99))
		l := randomHistory(rng)
		want := l.Check()
		lost += len(want.Lost)
		dups += len(want.Duplicated)
		reord += len(want.Reordered)
		recovered += len(want.Recovered)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			// With no horizon to speak of, exactly Check's verdict.
			o := online(t, l, math.MaxInt64, 1)
			exact += o.Untimed()
			sameVerdict(t, o.Result(), l.Check(), o.Untimed())
			// With a short one, the same but for late latencies.
			o = online(t, l, 3*time.Millisecond, 1)
			untimed += o.Untimed()
			forgot += o.evictions
			held += o.Held()
			sameVerdict(t, o.Result(), l.Check(), o.Untimed())
		})
	}
	// The histories exercise the check, and the check forgets most messages.
	if lost == 0 || dups == 0 || reord == 0 || recovered == 0 || untimed == 0 || forgot < 1000 || exact > 0 {
		t.Fatalf("weak histories: lost %d, duplicated %d, reordered %d, recovered %d, untimed %d (%d without a horizon); forgot %d, held %d",
			lost, dups, reord, recovered, untimed, exact, forgot, held)
	}
}

func TestReadOnlineGivesCheckVerdict(t *testing.T) {
	for seed := range uint64(100) {
		l := randomHistory(rand.New(rand.NewPCG(seed, 7)))
		var buf bytes.Buffer
		if err := l.WriteJSONL(&buf); err != nil {
			t.Fatal(err)
		}
		// As a report writes it: sorted by time, windows where they happened.
		lines := strings.SplitAfter(strings.TrimSpace(buf.String()), "\n")
		slices.SortStableFunc(lines, func(a, b string) int {
			var x, y Event
			if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
				t.Fatal("bad line")
			}
			return cmp.Compare(x.At, y.At)
		})
		sorted := strings.Join(lines, "\n")
		for _, text := range []string{buf.String(), sorted} {
			o, err := ReadOnline(strings.NewReader(text), math.MaxInt64)
			if err != nil {
				t.Fatal(err)
			}
			sameVerdict(t, o.Result(), l.Check(), 0)
		}
	}
}

func TestReadOnlineRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.history.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatal("no recorded histories", err)
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		o, err := ReadOnline(f, 0)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		f, err = os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		want, err := CheckJSONL(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want.Valid() {
			t.Fatalf("%s: a recorded failure checks valid", name)
		}
		sameVerdict(t, o.Result(), want, 0)
	}
}

func TestReadOnlineRejectsBadHistories(t *testing.T) {
	for _, text := range []string{
		`{"i":0,"at_ns":0,"kind":"invoke","id":{"publisher":"p","topic":"t","seq":1}}` + "\n" +
			`{"i":0,"at_ns":1,"kind":"invoke","id":{"publisher":"p","topic":"t","seq":2}}`,
		`{"i":3,"at_ns":0,"kind":"unsubscribe","subscriber":"s","filter":"#","op":1}`,
		`{"i":0,"at_ns":0,"kind":"deliver","id":{"publisher":"p","topic":"t","seq":1},"qos":3}`,
		`{"kind":"invoke"}`,
		`{"i":0,"at_ns":0,"kind":"drops","subscriber":"s","n":-1}`,
		`not json`,
	} {
		if _, err := ReadOnline(strings.NewReader(text), 0); !errors.Is(err, ErrHistory) {
			t.Errorf("%s: err %v, want ErrHistory", text, err)
		}
	}
}

// cleanRun feeds o n messages of a healthy run: four publishers, each
// message acknowledged and delivered to the observer and to one neighbour,
// one a millisecond.
func cleanRun(tb testing.TB, o *Online, n int) {
	tb.Helper()
	line := 0
	add := func(ev Event) {
		ev.Index = line
		line++
		if err := o.Add(ev); err != nil {
			tb.Fatal(err)
		}
	}
	for p := range 4 {
		add(Event{Kind: KindSubscribe, Subscriber: fmt.Sprintf("c%d", p), Filter: fmt.Sprintf("t/c%d", (p+1)%4)})
	}
	add(Event{Kind: KindSubscribe, Subscriber: "obs", Filter: "t/#"})
	for i := range n {
		p := i % 4
		x := ID{Publisher: fmt.Sprintf("c%d", p), Topic: fmt.Sprintf("t/c%d", p), Seq: uint64(i/4 + 1)}
		at := time.Duration(i) * time.Millisecond
		inv := line
		add(Event{Kind: KindInvoke, ID: x, At: at})
		add(Event{Kind: KindDeliver, ID: x, Subscriber: "obs", QoS: 1, At: at + 2*time.Millisecond})
		add(Event{Kind: KindDeliver, ID: x, Subscriber: fmt.Sprintf("c%d", (p+3)%4), QoS: 1, At: at + 3*time.Millisecond})
		add(Event{Kind: KindOK, ID: x, Op: inv, At: at + 4*time.Millisecond})
	}
}

func TestOnlineForgetsAHealthyRun(t *testing.T) {
	o := NewOnline(0)
	cleanRun(t, o, 200_000)
	// Held: what the last second and the last sweep leave, not 200,000.
	if held := o.Held(); held > 1000+sweepEvery/4 {
		t.Fatalf("holds %d messages", held)
	}
	r := o.Result()
	if !r.Valid() || r.Attempted != 200_000 || r.Acknowledged != 200_000 || r.Delivered != 200_000 ||
		r.Latency.N != 400_000 || r.AckLatency.N != 200_000 || o.Untimed() != 0 {
		t.Fatalf("verdict %s, untimed %d", r.Summary(), o.Untimed())
	}
	if !within(r.Latency.P50, 2*time.Millisecond) && !within(r.Latency.P50, 3*time.Millisecond) {
		t.Fatalf("latency %v", r.Latency)
	}
}
