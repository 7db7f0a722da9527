package ledgermatch

import (
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/onsi/gomega"
)

var t0 = time.Unix(1_800_000_000, 0)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

// history publishes n messages on one topic, delivers all but skip, and
// delivers each seq in dup twice.
func history(n int, skip, dup map[uint64]bool) *ledger.Ledger {
	l := ledger.New(t0)
	l.Subscribe("obs", "t/#", t0)
	for seq := range uint64(n) {
		x := ledger.ID{Publisher: "p1", Topic: "t/a", Seq: seq}
		at := int(seq) * 10
		op := l.Invoke(x, ms(at))
		l.Complete(op, ledger.OK, ms(at+1), nil)
		if skip[seq] {
			continue
		}
		for range 1 + btoi(dup[seq]) {
			l.Deliver(ledger.Delivery{Subscriber: "obs", Topic: x.Topic, Payload: ledger.Encode(x, ms(at)), QoS: 1, At: ms(at + 2)})
		}
	}
	return l
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// failure runs Expect(actual).To(m) and returns the failure message ("" if it
// passed).
func failure(actual any, m interface {
	Match(any) (bool, error)
	FailureMessage(any) string
	NegatedFailureMessage(any) string
}) string {
	var msg string
	g := gomega.NewGomega(func(message string, _ ...int) { msg = message })
	g.Expect(actual).To(m)
	return msg
}

func TestMatchersPassOnCleanHistory(t *testing.T) {
	g := gomega.NewWithT(t)
	l := history(50, nil, nil)
	res := l.Check()
	for _, actual := range []any{l, res, &res} {
		g.Expect(actual).To(BeValidDelivery())
		g.Expect(actual).To(HaveNoLostMessages())
		g.Expect(actual).To(HaveNoUnexpectedMessages())
		g.Expect(actual).To(HaveAtMostDuplicates(0))
		g.Expect(actual).To(HaveNoReorderedMessages())
	}
}

func TestLostFailureShowsSmallestCounterExample(t *testing.T) {
	l := history(100, map[uint64]bool{40: true, 41: true, 42: true, 77: true}, nil)
	msg := failure(l, HaveNoLostMessages())
	for _, want := range []string{
		"Expected no lost messages, but:\n4 lost: acknowledged by the client, never delivered (of 100 acknowledged).\n",
		"  1. p1 t/a#40 never delivered to obs (invoked +0.400000s, acked +0.401000s)\n",
		"> +0.400000s invoke     p1 t/a#40\n",
		"  +0.392000s deliver    p1 t/a#39 -> obs qos1\n", // the history just before
		"  3. p1 t/a#42 never delivered",
		"  ... and 1 more\n",
		"valid=false attempted=100 acked=100",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "#77") {
		t.Errorf("failure message prints more than the first three:\n%s", msg)
	}
	if n := strings.Count(msg, "\n"); n > 40 {
		t.Errorf("failure message has %d lines; it should stay small:\n%s", n, msg)
	}
	// BeValidDelivery explains the same loss.
	if valid := failure(l, BeValidDelivery()); !strings.Contains(valid, "  1. p1 t/a#40 never delivered") {
		t.Errorf("BeValidDelivery failure:\n%s", valid)
	}
}

func TestUnexpectedFailure(t *testing.T) {
	l := history(5, nil, nil)
	l.Deliver(ledger.Delivery{Subscriber: "obs", Topic: "t/a", Payload: []byte("stale retained junk"), At: ms(100)})
	msg := failure(l, HaveNoUnexpectedMessages())
	for _, want := range []string{
		"1 unexpected: delivered, never attempted.\n",
		`  1. obs got "stale retained junk" on "t/a" at +0.100000s: ledger: not a ledger payload`,
		`> +0.100000s unexpected -> obs qos0 on "t/a"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure message lacks %q:\n%s", want, msg)
		}
	}
	if !strings.Contains(failure(l, BeValidDelivery()), "1 unexpected") {
		t.Error("BeValidDelivery does not explain unexpected deliveries")
	}
}

func TestDuplicatesFailure(t *testing.T) {
	l := history(10, nil, map[uint64]bool{2: true, 5: true})
	gomega.NewWithT(t).Expect(l).To(HaveAtMostDuplicates(2))
	msg := failure(l, HaveAtMostDuplicates(1))
	for _, want := range []string{
		"Expected at most 1 duplicate deliveries, but:\n2 duplicate deliveries over 2 (message, subscriber) pairs, more than 1.\n",
		"  1. p1 t/a#2 delivered 2 times to obs (0 with DUP)\n",
		"  2. p1 t/a#5 delivered 2 times to obs",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure message lacks %q:\n%s", want, msg)
		}
	}
}

func TestReorderedFailure(t *testing.T) {
	l := ledger.New(t0)
	for seq := range uint64(3) {
		x := ledger.ID{Publisher: "p1", Topic: "t", Seq: seq}
		l.Complete(l.Invoke(x, ms(int(seq))), ledger.OK, ms(int(seq)+1), nil)
	}
	for _, seq := range []uint64{0, 2, 1} {
		x := ledger.ID{Publisher: "p1", Topic: "t", Seq: seq}
		l.Deliver(ledger.Delivery{Subscriber: "obs", Topic: "t", Payload: ledger.Encode(x, t0), QoS: 1, At: ms(10 + int(seq))})
	}
	msg := failure(l, HaveNoReorderedMessages())
	if !strings.Contains(msg, "1 first deliveries arrived out of publish order.\n  1. p1 t#1 first delivered to obs at +0.011000s, after #2\n") {
		t.Errorf("failure message:\n%s", msg)
	}
}

func TestNegatedAndBadActual(t *testing.T) {
	l := history(3, nil, nil)
	var msg string
	g := gomega.NewGomega(func(message string, _ ...int) { msg = message })
	g.Expect(l).NotTo(BeValidDelivery())
	if !strings.HasPrefix(msg, "Expected not a valid delivery history (nothing lost, nothing unexpected), but it was: valid=true") {
		t.Errorf("negated failure message: %q", msg)
	}
	for _, actual := range []any{42, (*ledger.Ledger)(nil), (*ledger.Result)(nil)} {
		if ok, err := HaveNoLostMessages().Match(actual); ok || err == nil {
			t.Errorf("Match(%T) = %v, %v; want an error", actual, ok, err)
		}
	}
}
