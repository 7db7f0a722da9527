package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// shardRun records shard k of a run: two clients publishing to each other
// and an observer, all named for the shard; lose drops one delivery to the
// observer.
func shardRun(t testing.TB, k int, lose bool) *Ledger {
	t.Helper()
	r := &run{l: New(t0)}
	obs := fmt.Sprintf("s%d-observer", k)
	r.l.Subscribe(obs, fmt.Sprintf("soak/s%d/#", k), ms(0))
	for c := range 2 {
		r.l.Subscribe(fmt.Sprintf("s%d-c%d", k, c), fmt.Sprintf("soak/s%d/c%d", k, 1-c), ms(0))
	}
	for i := range 20 {
		for c := range 2 {
			x := id(fmt.Sprintf("s%d-c%d", k, c), fmt.Sprintf("soak/s%d/c%d", k, c), uint64(i+1))
			r.publish(x, 10*i, OK, 10*i+3, nil)
			if !(lose && c == 1 && i == 7) {
				r.deliver(obs, x, 10*i+1, false)
			}
			r.deliver(fmt.Sprintf("s%d-c%d", k, 1-c), x, 10*i+2, i == 3)
			if i == 5 {
				r.deliver(obs, x, 10*i+4, true) // a duplicate
			}
		}
	}
	return r.l
}

func written(t testing.TB, l *Ledger, gz bool) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	write := l.WriteJSONL
	if gz {
		write = l.WriteJSONLGzip
	}
	if err := write(&b); err != nil {
		t.Fatal(err)
	}
	return &b
}

func TestMergeAddsUpShards(t *testing.T) {
	a, b := shardRun(t, 0, false), shardRun(t, 1, true)
	ra, rb := a.Check(), b.Check()
	if !ra.Valid() || rb.Valid() || len(rb.Lost) != 1 {
		t.Fatalf("shards: %s / %s", ra.Summary(), rb.Summary())
	}
	m, err := Merge(Shard{Name: "0", History: written(t, a, false)}, Shard{Name: "1", Offset: 250 * time.Millisecond, History: written(t, b, true)})
	if err != nil {
		t.Fatal(err)
	}
	r := m.Check()
	if r.Valid() || len(r.Lost) != 1 || r.Lost[0].ID != rb.Lost[0].ID || r.Lost[0].Subscriber != "s1-observer" ||
		r.Lost[0].Invoked != rb.Lost[0].Invoked+250*time.Millisecond {
		t.Fatalf("merged lost %v, shard 1 lost %v", r.Lost, rb.Lost)
	}
	if r.Attempted != ra.Attempted+rb.Attempted || r.Acknowledged != ra.Acknowledged+rb.Acknowledged ||
		r.Delivered != ra.Delivered+rb.Delivered || r.Deliveries != ra.Deliveries+rb.Deliveries ||
		r.DuplicateDeliveries != ra.DuplicateDeliveries+rb.DuplicateDeliveries ||
		len(r.Duplicated) != len(ra.Duplicated)+len(rb.Duplicated) || r.Latency.N != ra.Latency.N+rb.Latency.N {
		t.Fatalf("merged %s\nshards %s\n       %s", r.Summary(), ra.Summary(), rb.Summary())
	}
	// Its history, written and read again, checks the same.
	back, err := ReadJSONL(written(t, m, true))
	if err != nil {
		t.Fatal(err)
	}
	if resultJSON(t, back.Check()) != resultJSON(t, r) {
		t.Fatal("the merged history checks differently once written")
	}
}

func TestMergeRefusesOverlappingShards(t *testing.T) {
	a := shardRun(t, 0, false)
	_, err := Merge(Shard{Name: "0", History: written(t, a, false)}, Shard{Name: "1", History: written(t, a, false)})
	if !errors.Is(err, ErrOverlap) || !strings.Contains(err.Error(), "0 and 1") {
		t.Fatalf("the same shard twice: %v", err)
	}
	_, err = Merge(Shard{Name: "0", History: strings.NewReader("junk")})
	if !errors.Is(err, ErrHistory) {
		t.Fatalf("a bad history: %v", err)
	}
}
