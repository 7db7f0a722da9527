package ledger

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Unix(1_800_000_000, 0)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

// run is a tiny DSL for hand-built histories.
type run struct {
	t *testing.T
	l *Ledger
}

func newRun(t *testing.T) *run { return &run{t: t, l: New(t0)} }

func id(pub, topic string, seq uint64) ID { return ID{Publisher: pub, Topic: topic, Seq: seq} }

// publish records invoke at inv and, unless o is Pending, its outcome at done.
func (r *run) publish(x ID, inv int, o Outcome, done int, err error) Op {
	op := r.l.Invoke(x, ms(inv))
	if o != Pending {
		r.l.Complete(op, o, ms(done), err)
	}
	return op
}

func (r *run) deliver(sub string, x ID, at int, dup bool) {
	r.l.Deliver(Delivery{Subscriber: sub, Topic: x.Topic, Payload: Encode(x, ms(0)), QoS: 1, Dup: dup, At: ms(at)})
}

func TestCheckCleanHistory(t *testing.T) {
	r := newRun(t)
	r.l.Subscribe("obs", "t/#", ms(0))
	for i := range 10 {
		x := id("p1", "t/a", uint64(i))
		r.publish(x, 10*i, OK, 10*i+2, nil)
		r.deliver("obs", x, 10*i+1+i, false) // latency 1..10 ms
	}
	res := r.l.Check()
	if !res.Valid() {
		t.Fatalf("clean history invalid: %s", res.Summary())
	}
	want := Result{Attempts: 10, Attempted: 10, Acknowledged: 10, Delivered: 10, Deliveries: 10}
	if res.Attempts != want.Attempts || res.Attempted != want.Attempted || res.Acknowledged != want.Acknowledged ||
		res.Delivered != want.Delivered || res.Deliveries != want.Deliveries || res.Failed != 0 || res.Indeterminate != 0 {
		t.Fatalf("counts: %s", res.Summary())
	}
	if len(res.Duplicated)+len(res.Reordered)+len(res.Recovered)+len(res.Lost)+len(res.Unexpected) != 0 {
		t.Fatalf("unexpected findings: %s", res.Summary())
	}
	wantLat := Quantiles{N: 10, P50: 5 * time.Millisecond, P90: 9 * time.Millisecond, P99: 10 * time.Millisecond, Max: 10 * time.Millisecond}
	if res.Latency != wantLat {
		t.Fatalf("latency = %v, want %v", res.Latency, wantLat)
	}
	if res.AckLatency.N != 10 || res.AckLatency.Max != 2*time.Millisecond {
		t.Fatalf("ack latency = %v", res.AckLatency)
	}
}

func TestCheckLost(t *testing.T) {
	r := newRun(t)
	r.l.Subscribe("obs", "t/+", ms(0))
	r.l.Subscribe("other", "u/#", ms(0))
	a, b, c := id("p1", "t/a", 1), id("p1", "t/a", 2), id("p1", "u/x", 3)
	r.publish(a, 100, OK, 105, nil)
	r.publish(b, 110, OK, 120, nil)
	r.publish(c, 130, OK, 131, nil)
	r.deliver("obs", a, 106, false)
	r.deliver("obs", c, 132, false) // obs is not subscribed to u/x: c is lost for "other"
	res := r.l.Check()
	want := []Lost{
		{ID: b, Subscriber: "obs", Invoked: 110 * time.Millisecond, Acked: 120 * time.Millisecond},
		{ID: c, Subscriber: "other", Invoked: 130 * time.Millisecond, Acked: 131 * time.Millisecond},
	}
	if !slices.Equal(res.Lost, want) {
		t.Fatalf("lost = %v, want %v", res.Lost, want)
	}
	if res.Valid() {
		t.Fatal("history with lost messages reported valid")
	}
	if got := res.Lost[0].String(); got != "p1 t/a#2 never delivered to obs (invoked +0.110000s, acked +0.120000s)" {
		t.Fatalf("Lost.String() = %q", got)
	}
}

func TestCheckSubscriptionWindows(t *testing.T) {
	r := newRun(t)
	r.l.Subscribe("obs", "t/a", ms(100))
	r.publish(id("p", "t/a", 1), 50, OK, 51, nil) // before the subscription: not expected
	r.publish(id("p", "t/a", 2), 150, OK, 151, nil)
	if !r.l.Unsubscribe("obs", "t/a", ms(200)) {
		t.Fatal("Unsubscribe found no open subscription")
	}
	if r.l.Unsubscribe("nobody", "t/a", ms(200)) {
		t.Fatal("Unsubscribe of an unknown subscriber reported success")
	}
	r.publish(id("p", "t/a", 3), 250, OK, 251, nil) // session gone: not expected
	r.l.Subscribe("obs", "t/a", ms(300))
	r.publish(id("p", "t/a", 4), 350, OK, 351, nil)
	res := r.l.Check()
	var lost []uint64
	for _, x := range res.Lost {
		lost = append(lost, x.ID.Seq)
	}
	if !slices.Equal(lost, []uint64{2, 4}) {
		t.Fatalf("lost seqs = %v, want [2 4]", lost)
	}
}

func TestCheckWithoutSubscriptionsExpectsAnyDelivery(t *testing.T) {
	r := newRun(t)
	a, b := id("p", "t", 1), id("p", "t", 2)
	r.publish(a, 0, OK, 1, nil)
	r.publish(b, 2, OK, 3, nil)
	r.deliver("s1", a, 4, false)
	res := r.l.Check()
	if len(res.Lost) != 1 || res.Lost[0].ID != b || res.Lost[0].Subscriber != "" {
		t.Fatalf("lost = %v, want only %v to any subscriber", res.Lost, b)
	}
	if !strings.Contains(res.Lost[0].String(), "any subscriber") {
		t.Fatalf("Lost.String() = %q", res.Lost[0].String())
	}
}

func TestCheckUnexpected(t *testing.T) {
	r := newRun(t)
	a := id("p", "t/a", 1)
	// Delivered before its invoke was recorded: the history cannot explain it.
	r.deliver("obs", a, 1, false)
	r.publish(a, 2, OK, 3, nil)
	r.deliver("obs", id("p", "t/a", 99), 4, false)                                                    // never published
	r.l.Deliver(Delivery{Subscriber: "obs", Topic: "t/a", Payload: []byte("hello"), At: ms(5)})       // foreign
	r.l.Deliver(Delivery{Subscriber: "obs", Topic: "t/b", Payload: Encode(a, ms(0)), At: ms(6)})      // misrouted
	r.l.Deliver(Delivery{Subscriber: "obs", Topic: "t/a", Payload: Encode(a, ms(0))[:10], At: ms(7)}) // truncated
	res := r.l.Check()
	if res.Valid() {
		t.Fatal("history with unexpected deliveries reported valid")
	}
	var reasons []string
	for _, u := range res.Unexpected {
		reasons = append(reasons, u.Reason)
	}
	want := []string{"never published", "never published", ErrForeign.Error(),
		"delivered on topic t/b, published on t/a", "ledger: corrupt ledger payload: no checksum"}
	if !slices.Equal(reasons, want) {
		t.Fatalf("reasons = %q, want %q", reasons, want)
	}
	if res.Unexpected[2].Payload != "hello" || res.Unexpected[3].ID != a {
		t.Fatalf("unexpected details: %+v", res.Unexpected)
	}
	if res.Deliveries != 5 || res.Delivered != 0 {
		t.Fatalf("deliveries=%d delivered=%d", res.Deliveries, res.Delivered)
	}
	ctx := res.UnexpectedContext(res.Unexpected[2], 1)
	if len(ctx) != 5 || ctx[4] != "  ... (1 more events)" || !strings.HasPrefix(ctx[2], "> ") || !strings.Contains(ctx[2], `on "t/a": ledger: not a ledger payload`) {
		t.Fatalf("UnexpectedContext:\n%s", strings.Join(ctx, "\n"))
	}
}

func TestCheckDuplicated(t *testing.T) {
	r := newRun(t)
	r.l.Subscribe("obs", "#", ms(0))
	r.l.Subscribe("obs2", "#", ms(0))
	a, b := id("p", "t", 1), id("p", "t", 2)
	r.publish(a, 0, OK, 1, nil)
	r.publish(b, 2, OK, 3, nil)
	r.deliver("obs", a, 4, false)
	r.deliver("obs", a, 5, true)
	r.deliver("obs", a, 6, false)
	r.deliver("obs", b, 7, false)
	r.deliver("obs2", a, 8, false)
	r.deliver("obs2", b, 9, false)
	r.deliver("obs2", b, 10, true)
	res := r.l.Check()
	want := []Duplicate{{ID: a, Subscriber: "obs", Count: 3, Flagged: 1}, {ID: b, Subscriber: "obs2", Count: 2, Flagged: 1}}
	if !slices.Equal(res.Duplicated, want) || res.DuplicateDeliveries != 3 {
		t.Fatalf("duplicated = %v (%d extra), want %v (3 extra)", res.Duplicated, res.DuplicateDeliveries, want)
	}
	if !res.Valid() || len(res.Reordered) != 0 {
		t.Fatalf("duplicates must not invalidate or reorder: %s", res.Summary())
	}
	if res.Latency.N != 4 {
		t.Fatalf("latency counts first deliveries only: %v", res.Latency)
	}
}

func TestCheckReordered(t *testing.T) {
	r := newRun(t)
	for seq := uint64(1); seq <= 4; seq++ {
		r.publish(id("p", "t/a", seq), int(seq), OK, int(seq)+1, nil)
	}
	r.publish(id("p", "t/b", 1), 5, OK, 6, nil)
	r.publish(id("q", "t/a", 1), 5, OK, 6, nil)
	r.deliver("obs", id("p", "t/a", 1), 10, false)
	r.deliver("obs", id("p", "t/a", 3), 11, false)
	r.deliver("obs", id("p", "t/b", 1), 12, false) // other topic: its own order
	r.deliver("obs", id("q", "t/a", 1), 13, false) // other publisher: its own order
	r.deliver("obs", id("p", "t/a", 2), 14, false) // after #3: reordered
	r.deliver("obs", id("p", "t/a", 1), 15, true)  // redelivery: duplicate, not reordered
	r.deliver("obs", id("p", "t/a", 4), 16, false)
	r.deliver("obs2", id("p", "t/a", 2), 17, false) // other subscriber: its own order
	r.deliver("obs2", id("p", "t/a", 4), 18, false)
	res := r.l.Check()
	want := []Reordered{{ID: id("p", "t/a", 2), Subscriber: "obs", After: 3, At: 14 * time.Millisecond}}
	if !slices.Equal(res.Reordered, want) {
		t.Fatalf("reordered = %v, want %v", res.Reordered, want)
	}
	if !res.Valid() {
		t.Fatalf("reordering must not invalidate: %s", res.Summary())
	}
}

func TestCheckOutcomesAndRecovered(t *testing.T) {
	r := newRun(t)
	boom := errors.New("connection reset")
	retried := id("p", "t", 1) // failed, then acknowledged on retry
	r.publish(retried, 0, Fail, 1, boom)
	r.publish(retried, 2, OK, 3, nil)
	infoFail := id("p", "t", 2) // info then fail: still indeterminate
	r.publish(infoFail, 4, Info, 5, boom)
	r.publish(infoFail, 6, Fail, 7, nil)
	failed := id("p", "t", 3)
	r.publish(failed, 8, Fail, 9, errors.New("not connected"))
	pending := id("p", "t", 4)
	r.publish(pending, 10, Pending, 0, nil)
	lying := id("p", "t", 5) // reported failed, yet delivered: a false negative
	r.publish(lying, 11, Fail, 12, errors.New("write: broken pipe"))
	silent := id("p", "t", 6) // indeterminate and never delivered: not lost
	r.publish(silent, 13, Info, 14, nil)

	for _, x := range []ID{retried, infoFail, pending, lying} {
		r.deliver("obs", x, 20, false)
	}
	res := r.l.Check()
	if res.Attempts != 8 || res.Attempted != 6 || res.Acknowledged != 1 || res.Failed != 2 || res.Indeterminate != 3 {
		t.Fatalf("counts: %s", res.Summary())
	}
	want := []Recovered{
		{ID: infoFail, Outcome: Info, Err: "connection reset"},
		{ID: pending, Outcome: Info},
		{ID: lying, Outcome: Fail, Err: "write: broken pipe"},
	}
	if !slices.Equal(res.Recovered, want) {
		t.Fatalf("recovered = %v, want %v", res.Recovered, want)
	}
	if !res.Valid() || len(res.Lost) != 0 {
		t.Fatalf("unacknowledged messages are never lost: %s", res.Summary())
	}
}

func TestCompleteFirstOutcomeWins(t *testing.T) {
	r := newRun(t)
	x := id("p", "t", 1)
	op := r.publish(x, 0, Info, 1, nil)
	r.l.Complete(op, OK, ms(2), nil) // ignored: the op already completed
	if res := r.l.Check(); res.Indeterminate != 1 || res.Acknowledged != 0 {
		t.Fatalf("second completion counted: %s", res.Summary())
	}
	for _, bad := range []func(){
		func() { r.l.Complete(Op(99), OK, ms(3), nil) },
		func() { r.l.Complete(op+1, OK, ms(3), nil) }, // a completion event, not an invoke
		func() { r.l.Complete(op, Pending, ms(3), nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("Complete did not panic on misuse")
				}
			}()
			bad()
		}()
	}
}

func TestExpectDrops(t *testing.T) {
	r := newRun(t)
	r.l.Subscribe("obs", "t", ms(0))
	r.l.Subscribe("obs2", "t", ms(0))
	for seq := range uint64(6) {
		r.publish(id("p", "t", seq), int(seq), OK, int(seq)+1, nil)
		r.deliver("obs2", id("p", "t", seq), 10+int(seq), false)
	}
	r.deliver("obs", id("p", "t", 1), 20, false)
	// obs lost seqs 0, 2, 3, 4, 5; three of them are the broker's to drop.
	r.l.ExpectDrops("obs", 2)
	r.l.ExpectDrops("obs", 1)
	r.l.ExpectDrops("obs2", 10) // nothing to drop there
	res := r.l.Check()
	var lost []uint64
	for _, x := range res.Lost {
		lost = append(lost, x.ID.Seq)
	}
	if !slices.Equal(lost, []uint64{0, 2}) {
		t.Fatalf("lost = %v, want the oldest two [0 2]", lost)
	}
	if res.Dropped["obs"] != 3 || res.Dropped["obs2"] != 0 {
		t.Fatalf("dropped = %v", res.Dropped)
	}
}

func TestOfflineDrops(t *testing.T) {
	cases := []struct {
		limit, n, want int
	}{{0, 100, 0}, {3, 2, 0}, {3, 3, 0}, {3, 10, 7}, {1000, 1500, 500}}
	for _, c := range cases {
		if got := (QueueLimits{MaxQueued: c.limit}).OfflineDrops(c.n); got != c.want {
			t.Errorf("OfflineDrops(limit %d, n %d) = %d, want %d", c.limit, c.n, got, c.want)
		}
	}
}

func TestOutcomeOf(t *testing.T) {
	notSent := errors.New("not sent")
	cases := []struct {
		err  error
		want Outcome
	}{
		{nil, OK},
		{fmt.Errorf("publish: %w", notSent), Fail},
		{errors.New("timeout"), Info},
	}
	for _, c := range cases {
		if got := OutcomeOf(c.err, notSent); got != c.want {
			t.Errorf("OutcomeOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestMatchTopic(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a/x/c", true},
		{"+/+", "/x", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/b/", "a/b", false},
		{"a", "a/b", false},
	}
	for _, c := range cases {
		if got := MatchTopic(c.filter, c.topic); got != c.want {
			t.Errorf("MatchTopic(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func TestContextShowsTheNeighbourhood(t *testing.T) {
	r := newRun(t)
	r.l.Subscribe("obs", "t", ms(0))
	for seq := range uint64(20) {
		r.publish(id("p", "t", seq), int(seq)*10, OK, int(seq)*10+1, nil)
		if seq != 10 {
			r.deliver("obs", id("p", "t", seq), int(seq)*10+2, false)
		}
	}
	res := r.l.Check()
	if len(res.Lost) != 1 {
		t.Fatalf("lost = %v", res.Lost)
	}
	got := res.Context(res.Lost[0].ID, 1)
	want := []string{
		"  ...",
		"  +0.092000s deliver    p t#9 -> obs qos1",
		"> +0.100000s invoke     p t#10",
		"> +0.101000s ok         p t#10 (op 30)",
		"  +0.110000s invoke     p t#11",
		"  ... (26 more events)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Context:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c := res.Context(id("nobody", "t", 1), 2); len(c) != 0 {
		t.Fatalf("context of an unknown ID: %q", c)
	}
}

func TestHistoryExport(t *testing.T) {
	r := newRun(t)
	x := id("p", "t", 1)
	r.publish(x, 0, Info, 1, errors.New("ctx expired"))
	r.l.Deliver(Delivery{Subscriber: "obs", Topic: "t", Payload: Encode(x, ms(0)), QoS: 1, Dup: true, Retain: true, At: ms(2)})
	var text, js strings.Builder
	if err := r.l.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	wantText := "+0.000000s invoke     p t#1\n" +
		"+0.001000s info       p t#1 (op 0): ctx expired\n" +
		"+0.002000s deliver    p t#1 -> obs qos1 dup retain\n"
	if text.String() != wantText {
		t.Fatalf("WriteText:\n%s\nwant:\n%s", text.String(), wantText)
	}
	if err := r.l.WriteJSONL(&js); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	wantLast := `{"i":2,"at_ns":2000000,"kind":"deliver","id":{"publisher":"p","topic":"t","seq":1},"subscriber":"obs","qos":1,"dup":true,"retain":true}`
	if len(lines) != 3 || lines[2] != wantLast {
		t.Fatalf("WriteJSONL:\n%s", js.String())
	}
}

// TestConcurrentRecordingAndCheck is for the race detector: publishers,
// subscribers and a checker run at once, and the final verdict adds up.
func TestConcurrentRecordingAndCheck(t *testing.T) {
	l := New(time.Now())
	l.Subscribe("obs", "load/#", time.Now())
	const pubs, per = 4, 500
	var wg sync.WaitGroup
	deliveries := make(chan ID, pubs*per)
	for p := range pubs {
		wg.Go(func() {
			for seq := range uint64(per) {
				x := ID{Publisher: fmt.Sprint("p", p), Topic: "load/t", Seq: seq}
				op := l.Invoke(x, time.Now())
				l.Complete(op, OK, time.Now(), nil)
				deliveries <- x
			}
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range pubs * per {
			x := <-deliveries
			l.Deliver(Delivery{Subscriber: "obs", Topic: x.Topic, Payload: Encode(x, time.Now()), QoS: 1, At: time.Now()})
		}
	}()
	for range 5 {
		mid := l.Check()
		if len(mid.Unexpected) != 0 {
			t.Fatalf("mid-run check found unexpected deliveries: %v", mid.Unexpected[0])
		}
	}
	wg.Wait()
	<-done
	res := l.Check()
	if !res.Valid() || res.Acknowledged != pubs*per || res.Delivered != pubs*per || l.Len() != 3*pubs*per {
		t.Fatalf("final: %s, %d events", res.Summary(), l.Len())
	}
}

// TestEscapedNamesMatch: names that the payload format must escape still tie
// deliveries to their invokes.
func TestEscapedNamesMatch(t *testing.T) {
	r := newRun(t)
	odd := id("pub|1%", "t/%7C|x", 1)
	plain := id("pub%7C1%25", "t/%257C%7Cx", 1) // looks like odd's escaped form
	r.publish(odd, 0, OK, 1, nil)
	r.publish(plain, 0, OK, 1, nil)
	r.deliver("obs", odd, 2, false)
	r.deliver("obs", plain, 3, false)
	if res := r.l.Check(); !res.Valid() || res.Delivered != 2 || len(res.Duplicated) != 0 {
		t.Fatalf("escaped names: %s", res.Summary())
	}
}
