package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttas/mqttas-go/mqttas"
)

// The durable section: qos 1 publication that survives a crash or a power cut of the client, mqttas's
// FileStore (PublishDurable) against paho's file store (SetStore(NewFileStore), CleanSession false), both
// under the same temporary directory, so on the same disk.

// DurablePublishers are the numbers of concurrent publishers the durable section measures.
var DurablePublishers = []int{1, 16, 64}

// durableResult is one durable run: how long until every publication was reported durable, and the
// fsyncs it took (-1 where they cannot be counted).
type durableResult struct {
	n       int
	elapsed time.Duration
	fsyncs  int64
}

func (r durableResult) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

// runDurable publishes n messages of size bytes from publishers goroutines on one client of lib whose store
// lives in a new directory under dir, times them until every call reported the message durable, then waits
// (untimed) for the broker to acknowledge them all, so nothing is left for the next run.
func runDurable(ctx context.Context, lib, addr string, publishers, n, size int, dir, id string) (durableResult, error) {
	store, err := os.MkdirTemp(dir, id+"-")
	if err != nil {
		return durableResult{}, err
	}
	defer os.RemoveAll(store)
	payload := make([]byte, size)
	topic := "bench/durable/" + id
	switch lib {
	case MQTTAS:
		return runDurableMQTTAS(ctx, addr, id, topic, filepath.Join(store, "outbox"), publishers, n, payload)
	case Paho:
		return runDurablePaho(ctx, addr, id, topic, filepath.Join(store, "paho"), publishers, n, payload)
	}
	return durableResult{}, fmt.Errorf("bench: unknown client library %q", lib)
}

// spread runs n calls of publish over publishers goroutines and returns the first error.
func spread(publishers, n int, publish func() error) error {
	var wg sync.WaitGroup
	errs := make([]error, publishers)
	for w := range publishers {
		wg.Go(func() {
			for i := w; i < n; i += publishers {
				if err := publish(); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func runDurableMQTTAS(ctx context.Context, addr, id, topic, dir string, publishers, n int, payload []byte) (durableResult, error) {
	st, err := mqttas.OpenFileStore(dir)
	if err != nil {
		return durableResult{}, err
	}
	defer st.Close()
	cfg, err := mqttasConfig(nativeOptions{addr: addr, id: id, keepAlive: 30 * time.Second})
	if err != nil {
		return durableResult{}, err
	}
	cfg.KeepSession, cfg.Store = true, st
	c, err := mqttas.New(cfg)
	if err != nil {
		return durableResult{}, err
	}
	defer c.Close()
	if err := c.ConnectQuick(ctx); err != nil {
		return durableResult{}, fmt.Errorf("mqttas connect %s: %w", addr, err)
	}
	base := st.Syncs()
	start := time.Now()
	err = spread(publishers, n, func() error { return c.PublishDurable(ctx, topic, payload, false) })
	res := durableResult{n: n, elapsed: time.Since(start), fsyncs: int64(st.Syncs() - base)}
	if err != nil {
		return res, err
	}
	for st.Len() > 0 { // the broker's acknowledgements, untimed
		if err := ctx.Err(); err != nil {
			return res, err
		}
		time.Sleep(5 * time.Millisecond)
	}
	return res, nil
}

// runDurablePaho counts no fsyncs: paho's FileStore has none (filestore.go writes each message to a
// temporary file, closes it and renames it; v1.5.1), so its figure is 0 by its source, not a count.
func runDurablePaho(ctx context.Context, addr, id, topic, dir string, publishers, n int, payload []byte) (durableResult, error) {
	po := pahoOptions(nativeOptions{addr: addr, id: id, keepAlive: 30 * time.Second}).
		SetCleanSession(false).SetStore(paho.NewFileStore(dir)).SetResumeSubs(true).SetAutoReconnect(true)
	c := paho.NewClient(po)
	if err := waitToken(ctx, c.Connect()); err != nil {
		c.Disconnect(0)
		return durableResult{}, fmt.Errorf("paho connect %s: %w", addr, err)
	}
	defer c.Disconnect(250)
	var mu sync.Mutex
	var toks []paho.Token
	start := time.Now()
	// Publish returns once paho has put the message in its store: that is what paho has for durable.
	err := spread(publishers, n, func() error {
		t := c.Publish(topic, 1, false, payload)
		mu.Lock()
		toks = append(toks, t)
		mu.Unlock()
		return nil
	})
	res := durableResult{n: n, elapsed: time.Since(start)}
	for _, t := range toks { // the broker's acknowledgements, untimed
		if werr := waitToken(ctx, t); werr != nil {
			return res, werr
		}
	}
	return res, err
}

func benchDurable(ctx context.Context, rep *BenchReport, cfg *BenchConfig, addr string, round int, libs []string, tmp string) {
	for _, p := range DurablePublishers {
		rate := rep.metric(fmt.Sprintf("durable.p%d.rate", p), fmt.Sprintf("durable qos 1, %d publisher%s, %d msgs: reported durable msg/s",
			p, plural(p), cfg.DurableMsgs), "msg/s", "higher", asRate)
		fsyncs := rep.metric(fmt.Sprintf("durable.p%d.fsyncs", p), fmt.Sprintf("durable qos 1, %d publisher%s: fsyncs per message", p, plural(p)),
			"count", "lower", asFloat2)
		fsyncs.noRatio = true // paho's 0 is no fsync at all
		for _, lib := range libs {
			res, err := runDurable(ctx, lib, addr, p, cfg.DurableMsgs, cfg.PayloadSize, tmp, tag(fmt.Sprintf("dur%d", p), lib, round))
			if err != nil {
				rep.errorf("durable %s %d publishers round %d: %v", lib, p, round+1, err)
				rate.fail(lib, round)
				fsyncs.fail(lib, round)
				continue
			}
			cfg.Log("  durable %2d publishers %-7s %8.0f msg/s, %.3f fsyncs/msg", p, lib, res.rate(), float64(res.fsyncs)/float64(res.n))
			rate.set(lib, round, res.rate())
			fsyncs.set(lib, round, float64(res.fsyncs)/float64(res.n))
		}
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// durableTable renders the durable section with what its figures mean.
func (r *BenchReport) durableTable() *Table {
	t := r.metricTable("Durable publication (qos 1 that survives a crash or a power cut)", false, "durable.")
	t.Notes = []string{
		"mqttas: PublishDurable on a client with a FileStore; a call returns once the message is written and fsynced " +
			"(concurrent calls share an fsync: group commit), fsyncs counted by the store (FileStore.Syncs). " +
			"paho.mqtt.golang: Publish on a client with its file store (SetStore(NewFileStore(dir)), CleanSession false, " +
			"a stable client id); a call returns once paho has written the message to its store, which is what paho offers " +
			"for durable. paho's file store calls no fsync (a file per message, written, closed and renamed), so its 0 is by its " +
			"source: what it stored is in the page cache, and a power cut before the kernel writes it back loses it.",
		"msg/s: the messages over the time until every call returned, the broker's acknowledgements afterwards and untimed; " +
			"both stores in one temporary directory, so on the same disk. The same through the store alone, as Go benchmarks: " +
			"`cd mqttas && go test -run '^$' -bench Durable -benchtime 2000x .`",
	}
	return t
}
