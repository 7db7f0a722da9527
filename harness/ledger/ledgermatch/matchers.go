// Package ledgermatch provides Gomega matchers for ledger verdicts. Each
// accepts a ledger.Result, a *ledger.Result or a *ledger.Ledger (which it
// checks), and on failure prints the smallest counter-example: the first few
// offending messages in publish order with the history around them, not a dump
// of the whole run.
package ledgermatch

import (
	"fmt"
	"strings"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/onsi/gomega/types"
)

// Bounds on failure output.
const (
	shown  = 3 // offending items printed in full
	radius = 2 // history events printed either side of each
)

// BeValidDelivery succeeds when nothing was lost and nothing unexpected was
// delivered (Result.Valid, Jepsen's total-queue verdict).
func BeValidDelivery() types.GomegaMatcher {
	return &matcher{
		want: "a valid delivery history (nothing lost, nothing unexpected)",
		bad: func(r *ledger.Result) string {
			if r.Valid() {
				return ""
			}
			return explainLost(r) + explainUnexpected(r)
		},
	}
}

// HaveNoLostMessages succeeds when every acknowledged message reached every
// subscriber that should have had it.
func HaveNoLostMessages() types.GomegaMatcher {
	return &matcher{want: "no lost messages", bad: explainLost}
}

// HaveNoUnexpectedMessages succeeds when every delivery names a message that
// was attempted.
func HaveNoUnexpectedMessages() types.GomegaMatcher {
	return &matcher{want: "no unexpected messages", bad: explainUnexpected}
}

// HaveAtMostDuplicates succeeds when at most n deliveries were duplicates
// (deliveries beyond the first per message and subscriber).
func HaveAtMostDuplicates(n int) types.GomegaMatcher {
	return &matcher{
		want: fmt.Sprintf("at most %d duplicate deliveries", n),
		bad: func(r *ledger.Result) string {
			if r.DuplicateDeliveries <= n {
				return ""
			}
			var b strings.Builder
			fmt.Fprintf(&b, "%d duplicate deliveries over %d (message, subscriber) pairs, more than %d.\n",
				r.DuplicateDeliveries, len(r.Duplicated), n)
			for i, d := range r.Duplicated[:min(shown, len(r.Duplicated))] {
				item(&b, r, i, d.String(), d.ID)
			}
			more(&b, len(r.Duplicated))
			return b.String()
		},
	}
}

// HaveNoReorderedMessages succeeds when, per subscriber and (publisher,
// topic), first deliveries arrived in publish order.
func HaveNoReorderedMessages() types.GomegaMatcher {
	return &matcher{
		want: "no reordered messages",
		bad: func(r *ledger.Result) string {
			if len(r.Reordered) == 0 {
				return ""
			}
			var b strings.Builder
			fmt.Fprintf(&b, "%d first deliveries arrived out of publish order.\n", len(r.Reordered))
			for i, x := range r.Reordered[:min(shown, len(r.Reordered))] {
				item(&b, r, i, x.String(), x.ID)
			}
			more(&b, len(r.Reordered))
			return b.String()
		},
	}
}

func explainLost(r *ledger.Result) string {
	if len(r.Lost) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d lost: acknowledged by the client, never delivered (of %d acknowledged).\n", len(r.Lost), r.Acknowledged)
	for i, x := range r.Lost[:min(shown, len(r.Lost))] {
		item(&b, r, i, x.String(), x.ID)
	}
	more(&b, len(r.Lost))
	return b.String()
}

func explainUnexpected(r *ledger.Result) string {
	if len(r.Unexpected) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d unexpected: delivered, never attempted.\n", len(r.Unexpected))
	for i, x := range r.Unexpected[:min(shown, len(r.Unexpected))] {
		fmt.Fprintf(&b, "  %d. %s\n", i+1, x)
		lines(&b, r.UnexpectedContext(x, radius))
	}
	more(&b, len(r.Unexpected))
	return b.String()
}

func item(b *strings.Builder, r *ledger.Result, i int, what string, id ledger.ID) {
	fmt.Fprintf(b, "  %d. %s\n", i+1, what)
	lines(b, r.Context(id, radius))
}

func lines(b *strings.Builder, ls []string) {
	for _, l := range ls {
		b.WriteString("       ")
		b.WriteString(l)
		b.WriteByte('\n')
	}
}

func more(b *strings.Builder, n int) {
	if n > shown {
		fmt.Fprintf(b, "  ... and %d more\n", n-shown)
	}
}

// matcher is the common shape: bad returns "" when r passes, else the
// counter-example.
type matcher struct {
	want string
	bad  func(*ledger.Result) string
	// Set by Match, read by the failure messages Gomega asks for next.
	res *ledger.Result
	why string
}

func (m *matcher) Match(actual any) (bool, error) {
	switch a := actual.(type) {
	case *ledger.Ledger:
		if a == nil {
			return false, fmt.Errorf("ledgermatch: expected %s, got a nil *ledger.Ledger", m.want)
		}
		r := a.Check()
		m.res = &r
	case ledger.Result:
		m.res = &a
	case *ledger.Result:
		if a == nil {
			return false, fmt.Errorf("ledgermatch: expected %s, got a nil *ledger.Result", m.want)
		}
		m.res = a
	default:
		return false, fmt.Errorf("ledgermatch: expected a ledger.Result, *ledger.Result or *ledger.Ledger, got %T", actual)
	}
	m.why = m.bad(m.res)
	return m.why == "", nil
}

func (m *matcher) FailureMessage(any) string {
	return fmt.Sprintf("Expected %s, but:\n%s%s", m.want, m.why, m.res.Summary())
}

func (m *matcher) NegatedFailureMessage(any) string {
	return fmt.Sprintf("Expected not %s, but it was: %s", m.want, m.res.Summary())
}
