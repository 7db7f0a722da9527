package rig

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/ledger"
)

// Publisher is one stream of numbered messages from one client to one topic.
type Publisher struct {
	Client   clients.Client
	Name     string        // the publisher's name in the ledger (usually the client id)
	Topic    string        // every message goes here
	QoS      byte          // 0 or 1
	Interval time.Duration // pause between publications; 0 publishes back to back
	Size     int           // payload size in bytes (at least the encoded id); 0 means minimal
	Count    int           // stop after this many; 0 means until stopped
}

// Traffic is publishers running in the background.
type Traffic struct {
	stop      context.CancelFunc // stops issuing new publications
	abandon   context.CancelFunc // gives up on publications in flight
	wg        sync.WaitGroup
	published atomic.Int64
	acked     atomic.Int64
	failed    atomic.Int64
}

// Publish runs p until it has published p.Count messages, or ctx ends. Every publication is recorded in
// the ledger: the attempt before the call, its outcome after.
func (r *Rig) Publish(ctx context.Context, p Publisher) error {
	t := r.StartTraffic(ctx, p)
	t.wg.Wait()
	t.stop()
	t.abandon()
	if n := t.failed.Load(); n > 0 {
		return errors.New("rig: some publications failed (see the ledger)")
	}
	return ctx.Err()
}

// StartTraffic runs the publishers concurrently until Stop (or each one's Count).
func (r *Rig) StartTraffic(ctx context.Context, pubs ...Publisher) *Traffic {
	issue, stop := context.WithCancel(ctx)
	inflight, abandon := context.WithCancel(context.WithoutCancel(ctx))
	t := &Traffic{stop: stop, abandon: abandon}
	for _, p := range pubs {
		t.wg.Go(func() { r.run(issue, inflight, p, t) })
	}
	return t
}

func (r *Rig) run(issue, inflight context.Context, p Publisher, t *Traffic) {
	var tick *time.Ticker
	if p.Interval > 0 {
		tick = time.NewTicker(p.Interval)
		defer tick.Stop()
	}
	for seq := uint64(1); p.Count == 0 || seq <= uint64(p.Count); seq++ {
		if issue.Err() != nil {
			return
		}
		id := ledger.ID{Publisher: p.Name, Topic: p.Topic, Seq: seq}
		now := time.Now()
		op := r.Ledger.Invoke(id, now)
		// A fresh payload each time: a client may keep it after Publish returns (paho stores it for resends).
		payload := ledger.AppendEncode(nil, id, now, p.Size)
		t.published.Add(1)
		err := p.Client.Publish(inflight, clients.Message{Topic: p.Topic, Payload: payload, QoS: p.QoS})
		r.Ledger.Complete(op, ledger.OutcomeOf(err, clients.ErrNotSent), time.Now(), err)
		if err != nil {
			t.failed.Add(1)
			if inflight.Err() != nil {
				return
			}
		} else {
			t.acked.Add(1)
		}
		if tick != nil {
			select {
			case <-tick.C:
			case <-issue.Done():
				return
			}
		}
	}
}

// Stop stops issuing publications and waits up to grace for those in flight to complete (a qos 1
// publication in flight completes once the link is healed); then it gives up on the rest, which the
// ledger records as indeterminate.
func (t *Traffic) Stop(grace time.Duration) {
	t.stop()
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.abandon()
		<-done
	}
	t.abandon()
}

// Published, Acked and Failed count publications so far.
func (t *Traffic) Published() int64 { return t.published.Load() }
func (t *Traffic) Acked() int64     { return t.acked.Load() }
func (t *Traffic) Failed() int64    { return t.failed.Load() }
