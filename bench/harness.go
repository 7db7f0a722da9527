package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/internal/mqttwire"
)

// The paths of the harness-overhead section: what the client under test talks to in every soak and
// scenario (the link: the embedded Toxiproxy with the MQTT tap), Toxiproxy alone (to tell the tap's share),
// a plain relay (to tell what any proxy hop costs on the machine), and the direct connection they are
// compared with.
const (
	PathDirect = "direct"
	// PathRelay is the plainest proxy (relay.go): the floor of any hop a proxy adds on this machine.
	PathRelay     = "plain relay"
	PathToxiproxy = "Toxiproxy alone"
	PathLink      = "link (Toxiproxy + tap)"
	// LedgerName keys the ledger's figures.
	LedgerName = "ledger"
)

// linkPaths lists the paths through the link in the order a round runs them (direct is measured first
// in even rounds and last in odd ones, like the clients).
func linkPaths() []string { return []string{PathRelay, PathToxiproxy, PathLink} }

// proxyPath is a running proxy in front of upstream: Toxiproxy alone or the link.
type proxyPath struct {
	addr  string
	close func()
}

// startPath starts the proxy of path in front of upstream; PathDirect is upstream itself.
func startPath(ctx context.Context, path, upstream string) (proxyPath, error) {
	switch path {
	case PathDirect:
		return proxyPath{addr: upstream, close: func() {}}, nil
	case PathRelay:
		r, err := startRelay(ctx, upstream)
		if err != nil {
			return proxyPath{}, err
		}
		return proxyPath{addr: r.Addr(), close: func() { _ = r.Close() }}, nil
	case PathLink:
		l, err := link.New(ctx, upstream)
		if err != nil {
			return proxyPath{}, err
		}
		return proxyPath{addr: l.Addr(), close: func() { _ = l.Close() }}, nil
	case PathToxiproxy:
		srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
		p := toxiproxy.NewProxy(srv, "bench", "127.0.0.1:0", upstream)
		if err := p.Start(); err != nil {
			return proxyPath{}, fmt.Errorf("toxiproxy: %w", err)
		}
		return proxyPath{addr: p.Listen, close: p.Stop}, nil
	}
	return proxyPath{}, fmt.Errorf("bench: unknown path %q", path)
}

// benchHarness measures what the harness adds to every soak and scenario: a qos 1 exchange (one Publish at
// a time, the publisher through the path, the subscriber direct) through Toxiproxy alone and through the
// link against direct, the rate at which each path saturates forwarding qos 0 PUBLISH packets to a sink,
// and the ledger's cost per recorded event.
func benchHarness(ctx context.Context, rep *BenchReport, cfg *BenchConfig, addr string, round int, pid int) {
	n := cfg.QoS1SeqMsgs
	p50 := rep.metric("harness.seq.p50", fmt.Sprintf("qos 1 sequential through the path, %d msgs (mqttas): Publish latency p50", n), "µs", "lower", asUS)
	p99 := rep.metric("harness.seq.p99", "qos 1 sequential through the path: Publish latency p99", "µs", "lower", asUS)
	cpu := rep.metric("harness.seq.cpu", "qos 1 sequential through the path: CPU per message of this process (clients + proxy)", "µs", "lower", asUS1)
	add50 := rep.metric("harness.seq.p50_added", "qos 1 sequential: p50 added by the path (path − direct, per round)", "µs", "lower", asUS1)
	add99 := rep.metric("harness.seq.p99_added", "qos 1 sequential: p99 added by the path (path − direct, per round)", "µs", "lower", asUS1)
	addCPU := rep.metric("harness.seq.cpu_added", "qos 1 sequential: CPU per message added by the path (path − direct, per round)", "µs", "lower", asUS1)
	paths := append([]string{PathDirect}, linkPaths()...)
	if round%2 == 1 {
		paths = append(linkPaths(), PathDirect)
	}
	got := map[string]flowResult{}
	for _, path := range paths {
		res, err := runPathSeq(ctx, path, addr, n, cfg.PayloadSize, tag("hseq", pathTag(path), round), pid)
		if err != nil {
			rep.errorf("harness qos 1 sequential %s round %d: %v", path, round+1, err)
			for _, m := range []*Metric{p50, p99, cpu} {
				m.fail(path, round)
			}
			continue
		}
		a, b := Percentile(res.Latencies, 50), Percentile(res.Latencies, 99)
		cfg.Log("  harness qos1 sequential %-24s p50 %v p99 %v, CPU %.1f µs/msg", path, a, b, res.cpuPerMessage(res.ClientCPU))
		got[path] = res
		p50.set(path, round, us(a))
		p99.set(path, round, us(b))
		cpu.set(path, round, res.cpuPerMessage(res.ClientCPU))
	}
	if d, ok := got[PathDirect]; ok {
		for _, path := range linkPaths() {
			if r, ok := got[path]; ok {
				add50.set(path, round, us(Percentile(r.Latencies, 50))-us(Percentile(d.Latencies, 50)))
				add99.set(path, round, us(Percentile(r.Latencies, 99))-us(Percentile(d.Latencies, 99)))
				addCPU.set(path, round, r.cpuPerMessage(r.ClientCPU)-d.cpuPerMessage(d.ClientCPU))
			}
		}
	}

	q0 := rep.metric("harness.q0.rate", fmt.Sprintf("qos 0 through the path, %d × %d B (mqttas, publisher and subscriber through it): received msg/s", cfg.QoS0Msgs, cfg.PayloadSize), "msg/s", "higher", asRate)
	q0c := rep.metric("harness.q0.of_ceiling", "qos 0 through the path: received msg/s as % of the broker's ceiling (a whole core at its CPU per message)", "%", "higher", asPct)
	q0cpu := rep.metric("harness.q0.cpu", "qos 0 through the path: CPU per message of this process (clients + proxy)", "µs", "lower", asUS1)
	q0b := rep.metric("harness.q0.cpu_broker", "qos 0 through the path: broker CPU per message", "µs", "lower", asUS1)
	q0w := rep.metric("harness.q0.broker_wait", "qos 0 through the path: broker runnable, waiting for a CPU (% of the run)", "%", "lower", asPct)
	q0i := rep.metric("harness.q0.broker_idle", "qos 0 through the path: broker idle, waiting for the clients (% of the run)", "%", "lower", asPct)
	for _, path := range paths {
		res, err := runPathQoS0(ctx, path, addr, cfg.QoS0Msgs, cfg.PayloadSize, tag("hq0", pathTag(path), round), pid)
		if err != nil {
			rep.errorf("harness qos 0 %s round %d: %v", path, round+1, err)
			for _, m := range []*Metric{q0, q0c, q0cpu, q0b, q0w, q0i} {
				m.fail(path, round)
			}
			continue
		}
		cfg.Log("  harness qos0 %-24s %8.0f msg/s received (%.0f%% of the broker's ceiling), CPU %.1f µs/msg", path, res.Rate(), res.brokerBusy(), res.cpuPerMessage(res.ClientCPU))
		q0.set(path, round, res.Rate())
		q0c.set(path, round, res.brokerBusy()) // rate ÷ (1 s ÷ broker CPU per message) = broker CPU ÷ duration
		q0cpu.set(path, round, res.cpuPerMessage(res.ClientCPU))
		q0b.set(path, round, res.cpuPerMessage(res.BrokerCPU))
		q0w.set(path, round, res.share(res.BrokerWait))
		q0i.set(path, round, res.brokerIdle())
	}

	sat := rep.metric("harness.sat.rate", fmt.Sprintf("saturation: %d qos 0 PUBLISH packets (%d B payloads) in writes of %d KB, forwarded to a sink: msg/s", satMsgs*cfg.QoS0Msgs, cfg.PayloadSize, satChunk>>10), "msg/s", "higher", asRate)
	satCPU := rep.metric("harness.sat.cpu", "saturation: CPU per packet of this process (writer + proxy + sink)", "µs", "lower", asUS1)
	for _, path := range paths {
		r, err := runSaturation(ctx, path, satMsgs*cfg.QoS0Msgs, cfg.PayloadSize)
		if err != nil {
			rep.errorf("harness saturation %s round %d: %v", path, round+1, err)
			sat.fail(path, round)
			satCPU.fail(path, round)
			continue
		}
		cfg.Log("  harness saturation %-24s %8.0f msg/s, CPU %.2f µs/msg", path, r.rate, r.cpu)
		sat.set(path, round, r.rate)
		satCPU.set(path, round, r.cpu)
	}

	ev := rep.metric("harness.ledger.event", fmt.Sprintf("ledger: time per recorded event (%d messages: invoke, complete, delivery)", cfg.QoS0Msgs), "µs", "lower", asUS3)
	evAllocs := rep.metric("harness.ledger.allocs", "ledger: allocations per recorded event", "allocs", "lower", asFloat2)
	evBytes := rep.metric("harness.ledger.bytes", "ledger: bytes allocated per recorded event", "bytes", "lower", asInt)
	lr := measureLedger(cfg.QoS0Msgs, cfg.PayloadSize)
	cfg.Log("  harness ledger %.3f µs/event, %.2f allocs, %.0f B per event", lr.us, lr.allocs, lr.bytes)
	ev.set(LedgerName, round, lr.us)
	evAllocs.set(LedgerName, round, lr.allocs)
	evBytes.set(LedgerName, round, lr.bytes)
}

func pathTag(path string) string {
	switch path {
	case PathRelay:
		return "relay"
	case PathToxiproxy:
		return "toxiproxy"
	case PathLink:
		return "link"
	}
	return "direct"
}

// runPathSeq is runQoS1Seq with mqttas's publisher connected through path and its subscriber direct.
func runPathSeq(ctx context.Context, path, addr string, n, size int, tag string, brokerPID int) (flowResult, error) {
	p, err := startPath(ctx, path, addr)
	if err != nil {
		return flowResult{}, err
	}
	defer p.close()
	return runQoS1SeqVia(ctx, MQTTAS, p.addr, addr, n, size, tag, brokerPID)
}

// runPathQoS0 is runQoS0 with mqttas's publisher and subscriber both connected through path.
func runPathQoS0(ctx context.Context, path, addr string, n, size int, tag string, brokerPID int) (flowResult, error) {
	p, err := startPath(ctx, path, addr)
	if err != nil {
		return flowResult{}, err
	}
	defer p.close()
	return runQoS0Via(ctx, MQTTAS, p.addr, p.addr, n, size, tag, brokerPID)
}

// satMsgs is how many times QoS0Msgs packets the saturation runs write: enough for a few hundred
// milliseconds at the link's rate.
const satMsgs = 10

type saturation struct {
	rate float64 // packets a second
	cpu  float64 // µs of this process's CPU per packet
}

// satChunk is how many bytes the saturation writer hands the kernel per write: what a client that
// coalesces its packets writes at most at once (mqttas: 16 KB).
const satChunk = 16 << 10

// runSaturation writes n qos 0 PUBLISH packets with size-byte payloads, satChunk bytes a write, as fast as
// the socket takes them through path to a sink that reads and discards them, and times the first write to
// the sink's last byte. The sink stands in for a broker that is never the bottleneck, so the rate is the
// path's own ceiling on this machine: writer, proxy and sink share its CPUs, as client, link and broker do
// in a soak.
func runSaturation(ctx context.Context, path string, n, size int) (saturation, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	pkt := mqttwire.Publish{Topic: "bench/saturation", Payload: makePayloads(1, size)[0]}.Packet().Append(nil)
	total := int64(n) * int64(len(pkt))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return saturation{}, err
	}
	defer ln.Close()
	type sinkResult struct {
		got int64
		end time.Time
		err error
	}
	sunk := make(chan sinkResult, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sunk <- sinkResult{err: err}
			return
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
		defer stop()
		buf := make([]byte, 64<<10)
		var got int64
		for got < total {
			k, err := c.Read(buf)
			got += int64(k)
			if err != nil {
				sunk <- sinkResult{got: got, end: time.Now(), err: err}
				return
			}
		}
		sunk <- sinkResult{got: got, end: time.Now()}
	}()
	p, err := startPath(ctx, path, ln.Addr().String())
	if err != nil {
		return saturation{}, err
	}
	defer p.close()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return saturation{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	per := max(satChunk/len(pkt), 1)
	chunk := make([]byte, 0, per*len(pkt))
	for range per {
		chunk = append(chunk, pkt...)
	}
	runtime.GC()
	meter := startCPU(0)
	start := time.Now()
	for left := n; left > 0; left -= per {
		if _, err := c.Write(chunk[:min(left, per)*len(pkt)]); err != nil {
			return saturation{}, fmt.Errorf("write: %w", err)
		}
	}
	r := <-sunk
	u := meter.stop()
	if r.err != nil && !errors.Is(r.err, io.EOF) {
		return saturation{}, fmt.Errorf("sink: %w after %d of %d bytes", r.err, r.got, total)
	}
	if r.got < total {
		return saturation{}, fmt.Errorf("sink: %d of %d bytes arrived", r.got, total)
	}
	dur := r.end.Sub(start)
	if dur <= 0 || u.Self < 0 {
		return saturation{}, errors.New("no time or no CPU measured")
	}
	return saturation{rate: float64(n) / dur.Seconds(), cpu: us(u.Self) / float64(n)}, nil
}

type ledgerCost struct {
	us, allocs, bytes float64 // per event
}

// measureLedger records n messages in a ledger as a soak does (each an invoke, a completion and a
// delivery whose payload carries the message's identity), with the payloads encoded beforehand, and
// returns the time and allocations per recorded event.
func measureLedger(n, size int) ledgerCost {
	t0 := time.Now()
	l := ledger.New(t0)
	l.Subscribe("obs", "bench/#", t0)
	ids := make([]ledger.ID, n)
	payloads := make([][]byte, n)
	for i := range n {
		ids[i] = ledger.ID{Publisher: "pub", Topic: "bench/ledger", Seq: uint64(i)}
		payloads[i] = ledger.AppendEncode(nil, ids[i], t0, size)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	start := time.Now()
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Microsecond)
		op := l.Invoke(ids[i], at)
		l.Complete(op, ledger.OK, at, nil)
		l.Deliver(ledger.Delivery{Subscriber: "obs", Topic: ids[i].Topic, Payload: payloads[i], QoS: 1, At: at})
	}
	el := time.Since(start)
	runtime.ReadMemStats(&m1)
	runtime.KeepAlive(l)
	events := float64(3 * n)
	return ledgerCost{us: us(el) / events, allocs: float64(m1.Mallocs-m0.Mallocs) / events,
		bytes: float64(m1.TotalAlloc-m0.TotalAlloc) / events}
}
