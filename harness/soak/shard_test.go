package soak

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/faults"
	"github.com/mqttas/mqttas-go/harness/ledger"
)

func TestShardNames(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	seen := map[string]bool{}
	for i := range 4 {
		cfg := Config{RunID: "fleet", Shard: i, Shards: 4}
		id, topic := names(cfg, now)
		if !strings.HasPrefix(id, "soak-fleet-s") || !strings.HasPrefix(topic, "soak/fleet/s") || seen[id] || seen[topic] {
			t.Fatalf("shard %d: %q %q", i, id, topic)
		}
		seen[id], seen[topic] = true, true
		// No shard's topics fall under another's observer filter.
		for j := range i {
			_, other := names(Config{RunID: "fleet", Shard: j, Shards: 4}, now)
			if strings.HasPrefix(topic, other) || strings.HasPrefix(other, topic) {
				t.Fatalf("shards %d and %d overlap: %q %q", i, j, topic, other)
			}
		}
	}
	if id, topic := names(Config{RunID: "r1"}, now); id != "soak-r1-" || topic != "soak/r1/" {
		t.Fatalf("unsharded with a run id: %q %q", id, topic)
	}
	if id, _ := names(Config{}, now); !strings.HasPrefix(id, "soak-") || len(id) < 7 {
		t.Fatalf("drawn tag: %q", id)
	}
}

func TestPlanExternalBroker(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Out, cfg.Duration, cfg.Seed, cfg.BrokerAddr = t.TempDir(), 10*time.Minute, 7, "127.0.0.1:1883"
	s, err := Plan(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Faults) < 20 {
		t.Fatalf("%d faults in 10 minutes", len(s.Faults))
	}
	for _, f := range s.Faults {
		if f.Fault.Family() == faults.FamilyBroker {
			t.Fatalf("a broker fault against an external broker: %v", f.Fault)
		}
	}
	trace := filepath.Join(t.TempDir(), "t.yaml")
	if err := os.WriteFile(trace, []byte("version: 1\nname: t\nfaults:\n  - at: 1s\n    fault: broker-restart\n    duration: 2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Trace, cfg.Duration = trace, 0
	if _, err := Plan(&cfg); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "broker-restart") {
		t.Fatalf("a broker fault in a trace against an external broker: %v", err)
	}
	cfg.BrokerAddr = ""
	if _, err := Plan(&cfg); err != nil {
		t.Fatalf("the same trace with the harness's broker: %v", err)
	}
}

// A shard against an external broker (one the test starts, as `make fleet` does): its ids and topics
// carry the run id and the shard, it passes, and its summary states the shard, its start and its clock.
func TestShardAgainstExternalBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	b, err := broker.New(ctx, broker.Options{Backend: broker.KindProcess, Config: brokerConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.WithoutCancel(ctx))
	dir := filepath.Join(t.TempDir(), "shard1")
	cfg := shortConfig(dir, 2)
	cfg.Duration, cfg.Seed, cfg.RunID, cfg.Shard, cfg.Shards, cfg.BrokerAddr = 8*time.Second, 3, "t1", 1, 2, b.Addr()
	res, sum := runSoak(t, cfg)
	if res.Verdict() != "PASS" {
		t.Fatalf("verdict %s: %s; harness errors %v", res.Verdict(), res.Ledger.Summary(), res.HarnessErrors)
	}
	if sum.Config["shard"] != "1/2" || sum.Config["run_id"] != "t1" || sum.Config["broker_addr"] != b.Addr() {
		t.Fatalf("summary config %v", sum.Config)
	}
	c := clockOf(sum.Config)
	if c == nil || c.Host == "" || !c.Started.Equal(sum.Started) || !strings.Contains(c.Source, "time.Now") {
		t.Fatalf("clock %+v, started %v", c, sum.Started)
	}
	if len(sum.Clients) == 0 {
		t.Fatal("no clients in the summary")
	}
	for _, cl := range sum.Clients {
		if cl.Name == "observer" { // the rig's timeline source for its observer, not a client id
			continue
		}
		if !strings.HasPrefix(cl.Name, "soak-t1-s1-") {
			t.Fatalf("client %q is not named for its run and shard", cl.Name)
		}
	}
}

func TestClockBound(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := func(host string, synced bool, maxErr time.Duration) *ClockInfo {
		return &ClockInfo{Host: host, Source: "x", Synchronised: synced, Known: true, MaxError: maxErr, Started: at}
	}
	names := []string{"s0", "s1", "s2"}
	for _, tc := range []struct {
		clocks []*ClockInfo
		bound  time.Duration
		want   string
	}{
		{[]*ClockInfo{c("a", false, 0), c("a", false, 0), c("a", true, time.Second)}, 0, "one host (a)"},
		{[]*ClockInfo{c("a", true, 3*time.Millisecond), c("b", true, 5*time.Millisecond), c("c", true, time.Millisecond)}, 8 * time.Millisecond, "within ±8ms"},
		{[]*ClockInfo{c("a", true, 3*time.Millisecond), c("a", true, 9*time.Millisecond), c("b", true, 2*time.Millisecond)}, 11 * time.Millisecond, "2 hosts"},
		{[]*ClockInfo{c("a", true, 0), c("b", false, 0), c("c", true, 0)}, -1, "shard s1's clock (host b) is not known to be synchronised"},
		{[]*ClockInfo{c("a", true, 0), nil, c("c", true, 0)}, -1, "shard s1's summary states no clock"},
	} {
		bound, text := ClockBound(names, tc.clocks)
		if bound != tc.bound || !strings.Contains(text, tc.want) {
			t.Errorf("got %v %q, want %v %q", bound, text, tc.bound, tc.want)
		}
	}
	// What a shard's summary states reads back.
	got := clockOf(map[string]any{"clock": readClock().settings(at)})
	if got == nil || got.Host == "" || !got.Started.Equal(at) {
		t.Fatalf("clock read back: %+v", got)
	}
}

// Two shards of one run against one broker (as make fleet runs them), one of them with a client that
// drops every 7th publication: the merged verdict fails with exactly the messages that shard lost, and
// says the shards' clocks are one host's.
func TestFleetMergeReportsAShardsLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	b, err := broker.New(ctx, broker.Options{Backend: broker.KindProcess, Config: BrokerConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.WithoutCancel(ctx))
	dir := t.TempDir()
	trace := filepath.Join(dir, "calm.yaml")
	if err := os.WriteFile(trace, []byte("version: 1\nname: calm\nfaults:\n"+
		"  - {at: 1s, fault: latency, duration: 1s, params: {latency: 20ms}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &misdeeds{}
	results := make([]*Result, 2)
	dirs := make([]string, 2)
	done := make(chan int, 2)
	for i := range 2 {
		cfg := shortConfig(filepath.Join(dir, fmt.Sprintf("shard%d", i)), 2)
		cfg.Trace, cfg.Duration, cfg.Rate, cfg.FeedRate, cfg.DrainQuiet = trace, 5*time.Second, 8, 0, time.Second
		cfg.RunID, cfg.Shard, cfg.Shards, cfg.BrokerAddr = "loss", i, 2, b.Addr()
		if i == 1 {
			cfg.Registry, cfg.Client = brokenCases(m)["drop7"], "drop7"
		}
		dirs[i] = cfg.Out
		go func() {
			defer func() { done <- i }()
			sched, err := Plan(&cfg)
			if err != nil {
				t.Error(err)
				return
			}
			res, err := Run(ctx, cfg, sched)
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = res
		}()
	}
	<-done
	<-done
	if t.Failed() {
		t.FailNow()
	}
	if results[0].Verdict() != "PASS" || results[1].Verdict() != "FAIL" {
		t.Fatalf("shard verdicts %s, %s", results[0].Verdict(), results[1].Verdict())
	}
	merged, err := Merge(t.Context(), filepath.Join(dir, "merged"), dirs...)
	if err != nil {
		t.Fatal(err)
	}
	res, sum := merged.Result, merged.Summary
	lost := distinctIDs(res.Lost, func(x ledger.Lost) ledger.ID { return x.ID })
	if len(m.dropped) < 3 || !slices.Equal(lost, sorted(m.dropped, 0)) || res.Valid() || sum.Verdict != "FAIL" {
		t.Fatalf("dropped %v, the merge lost %v (%s)", m.dropped, lost, sum.Verdict)
	}
	for _, x := range res.Lost {
		if !strings.HasPrefix(x.ID.Publisher, "soak-loss-s1-") {
			t.Fatalf("lost %v is not shard 1's", x)
		}
	}
	if want := results[0].Ledger.Attempted + results[1].Ledger.Attempted; res.Attempted != want {
		t.Fatalf("the merge attempted %d, the shards %d", res.Attempted, want)
	}
	if fmt.Sprint(sum.Config["clock_offset_bound_ns"]) != "0" ||
		!strings.Contains(fmt.Sprint(sum.Config["clock"]), "one host") {
		t.Fatalf("clock statement %v %v", sum.Config["clock_offset_bound_ns"], sum.Config["clock"])
	}
}
