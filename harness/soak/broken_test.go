package soak

// Recorded failing histories: soaks of deliberately broken clients, whose saved histories are kept under
// harness/ledger/testdata/ with their verdicts as the ledger's regression cases. This test runs them every
// time (into a temporary directory) and checks the verdict against what the broken client did;
// `go test ./harness/soak -run TestBrokenClientHistories -update` writes them to testdata again.

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/report"
	"github.com/mqttas/mqttas-go/harness/rig"
)

var update = flag.Bool("update", false, "write the broken clients' histories and verdicts to harness/ledger/testdata")

// testdata is where the ledger's regression cases live.
const testdata = "../ledger/testdata"

// misdeeds records what the broken clients of one run did, by ledger id.
type misdeeds struct {
	mu         sync.Mutex
	dropped    []ledger.ID // acknowledged, never sent
	duplicated []ledger.ID // sent twice
	corrupted  []ledger.ID // sent under an id never published
}

func (m *misdeeds) add(list *[]ledger.ID, id ledger.ID) {
	m.mu.Lock()
	*list = append(*list, id)
	m.mu.Unlock()
}

// broken wraps a client and misbehaves on qos 1 publications, counting them per client: misbehave says
// what to do with the n-th (1, 2, ...).
type broken struct {
	clients.Client
	mu        sync.Mutex
	n         int
	misbehave func(ctx context.Context, c clients.Client, n int, m clients.Message) error
}

func (b *broken) Publish(ctx context.Context, m clients.Message) error {
	if m.QoS != 1 {
		return b.Client.Publish(ctx, m)
	}
	b.mu.Lock()
	b.n++
	n := b.n
	b.mu.Unlock()
	return b.misbehave(ctx, b.Client, n, m)
}

// brokenRegistry is the standard registry plus name, the mqttas client wrapped to misbehave.
func brokenRegistry(name string, misbehave func(ctx context.Context, c clients.Client, n int, m clients.Message) error) clients.Registry {
	reg := rig.Registry()
	good := reg["mqttas"]
	reg[name] = func(o clients.Options) (clients.Client, error) {
		c, err := good(o)
		if err != nil {
			return nil, err
		}
		return &broken{Client: c, misbehave: misbehave}, nil
	}
	return reg
}

// brokenCases are the broken clients: each misbehaves on its own schedule and reports success.
func brokenCases(md *misdeeds) map[string]clients.Registry {
	decode := func(m clients.Message) ledger.ID {
		id, _, err := ledger.Decode(m.Payload)
		if err != nil {
			panic(err) // every soak payload is a ledger payload
		}
		return id
	}
	return map[string]clients.Registry{
		// Drops every 7th qos 1 publication while reporting success.
		"drop7": brokenRegistry("drop7", func(ctx context.Context, c clients.Client, n int, m clients.Message) error {
			if n%7 == 0 {
				md.add(&md.dropped, decode(m))
				return nil
			}
			return c.Publish(ctx, m)
		}),
		// Publishes every 11th qos 1 message under a sequence number it never announced, and sends every
		// other 5th twice.
		"dupcorrupt": brokenRegistry("dupcorrupt", func(ctx context.Context, c clients.Client, n int, m clients.Message) error {
			switch {
			case n%11 == 0:
				id, sent, _ := ledger.Decode(m.Payload)
				md.add(&md.corrupted, id)
				id.Seq += 1_000_000
				m.Payload = ledger.Encode(id, sent)
			case n%5 == 0:
				md.add(&md.duplicated, decode(m))
				if err := c.Publish(ctx, m); err != nil {
					return err
				}
			}
			return c.Publish(ctx, m)
		}),
	}
}

// distinctIDs returns the sorted distinct ids of xs.
func distinctIDs[T any](xs []T, id func(T) ledger.ID) []string {
	var out []string
	for _, x := range xs {
		if s := id(x).String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// sorted renders ids as sorted strings, each shifted by seq.
func sorted(ids []ledger.ID, seq uint64) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		id.Seq += seq
		out = append(out, id.String())
	}
	slices.Sort(out)
	return out
}

// Each broken client's soak fails with exactly the messages it lost or invented; the saved history checks
// again to the run's verdict; with -update, history and verdict are written to testdata.
func TestBrokenClientHistories(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	md := map[string]*misdeeds{"drop7": {}, "dupcorrupt": {}}
	for name := range md {
		t.Run(name, func(t *testing.T) {
			m := md[name]
			dir := t.TempDir()
			trace := filepath.Join(dir, "calm.yaml")
			// One mild fault, so the schedule plays but no client has to reconnect (no legitimate re-sends).
			if err := os.WriteFile(trace, []byte("version: 1\nname: calm\nfaults:\n"+
				"  - {at: 1s, fault: latency, duration: 1s, params: {latency: 20ms}}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := shortConfig(filepath.Join(dir, "report"), 2)
			cfg.Trace, cfg.Duration, cfg.Rate, cfg.FeedRate = trace, 5*time.Second, 8, 0
			cfg.DrainQuiet = time.Second
			cfg.Registry, cfg.Client = brokenCases(m)[name], name
			res, _ := runSoak(t, cfg)
			l := res.Ledger
			if !res.Failed() || res.Verdict() != "FAIL" || len(res.HarnessErrors) > 0 || len(res.NotReconnected) > 0 {
				t.Fatalf("verdict %s: %s; harness errors %v", res.Verdict(), l.Summary(), res.HarnessErrors)
			}
			lost := distinctIDs(l.Lost, func(x ledger.Lost) ledger.ID { return x.ID })
			unexpected := distinctIDs(l.Unexpected, func(x ledger.Unexpected) ledger.ID { return x.ID })
			duplicated := distinctIDs(l.Duplicated, func(x ledger.Duplicate) ledger.ID { return x.ID })
			switch name {
			case "drop7":
				if len(m.dropped) < 3 || !slices.Equal(lost, sorted(m.dropped, 0)) || len(unexpected) > 0 || len(duplicated) > 0 {
					t.Fatalf("dropped %v\nlost %v, unexpected %v, duplicated %v", m.dropped, lost, unexpected, duplicated)
				}
			case "dupcorrupt":
				if len(m.corrupted) < 1 || len(m.duplicated) < 1 || !slices.Equal(lost, sorted(m.corrupted, 0)) ||
					!slices.Equal(unexpected, sorted(m.corrupted, 1_000_000)) || !slices.Equal(duplicated, sorted(m.duplicated, 0)) {
					t.Fatalf("corrupted %v, duplicated %v\nlost %v, unexpected %v, duplicated %v",
						m.corrupted, m.duplicated, lost, unexpected, duplicated)
				}
			}
			again := sameVerdict(t, cfg.Out, l)
			if !*update {
				return
			}
			// Kept plain in testdata, so a change to one shows in a diff.
			hist, err := plainHistory(filepath.Join(cfg.Out, report.HistoryFile))
			if err != nil {
				t.Fatal(err)
			}
			verdict, err := json.MarshalIndent(again, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(testdata, 0o755); err != nil {
				t.Fatal(err)
			}
			base := filepath.Join(testdata, "broken-"+name)
			if err := os.WriteFile(base+".history.jsonl", hist, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(base+".verdict.json", append(verdict, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s.{history.jsonl,verdict.json}: %s", base, again.Summary())
		})
	}
}

// plainHistory reads a report's history, uncompressed.
func plainHistory(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := ledger.OpenHistory(f)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}
