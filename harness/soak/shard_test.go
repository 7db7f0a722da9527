package soak

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/harness/faults"
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
