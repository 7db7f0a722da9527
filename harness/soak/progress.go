package soak

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Progress is a snapshot of a run in progress, for a live progress line.
type Progress struct {
	Phase     string        // setup, run, heal, stop, reconnect, drain, report
	Elapsed   time.Duration // since the soak's start, at most Duration
	Duration  time.Duration
	Published int64
	Acked     int64
	// Delivered and Pending come from a ledger check: pending is what is acknowledged but not yet
	// delivered to every subscriber that must have it (loss is only decided after the drain). A check
	// reads the whole history, so it runs at most every 20 times its own duration.
	Delivered int
	Pending   int
	Received  int64    // deliveries to the clients
	Faults    []string // the faults in force
	Injected  int      // faults injected so far
	Scheduled int      // faults in the schedule
	Up        int      // clients through the link connected
	Clients   int
	Final     bool // the last snapshot, after the drain
}

// startProgress samples the memory every 250 ms and, with Config.OnProgress, sends a snapshot every
// ProgressEvery until stopProgress.
func (s *run) startProgress() {
	quit, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.stopProgress = func() {
		once.Do(func() { close(quit) })
		<-done
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(s.cfg.ProgressEvery)
		defer tick.Stop()
		sample := time.NewTicker(250 * time.Millisecond)
		defer sample.Stop()
		p := &progress{s: s}
		send := func(final bool) {
			if s.cfg.OnProgress != nil {
				snap := p.snapshot()
				snap.Final = final
				s.cfg.OnProgress(snap)
			}
		}
		for {
			select {
			case <-quit:
				send(true)
				return
			case <-sample.C:
				s.mem.sample()
			case <-tick.C:
				send(false)
			}
		}
	}()
}

// progress keeps what snapshots reuse between ledger checks.
type progress struct {
	s         *run
	lastCheck time.Time
	checkCost time.Duration
	delivered int
	pending   int
}

func (p *progress) snapshot() Progress {
	s := p.s
	if time.Since(p.lastCheck) >= max(s.cfg.ProgressEvery, 20*p.checkCost) {
		t := time.Now()
		res := s.r.Ledger.Check()
		p.lastCheck, p.checkCost = time.Now(), time.Since(t)
		p.delivered, p.pending = res.Delivered, len(res.Lost)
	}
	snap := Progress{Elapsed: min(time.Since(s.start).Round(time.Second), s.cfg.Duration), Duration: s.cfg.Duration,
		Published: s.traffic.Published(), Acked: s.traffic.Acked(), Delivered: p.delivered, Pending: p.pending,
		Received: s.recv.Load(), Injected: s.player.Injected(), Scheduled: len(s.player.Occurrences()),
		Clients: len(s.clients)}
	snap.Phase, _ = s.phase.Load().(string)
	for _, o := range s.player.Active() {
		snap.Faults = append(snap.Faults, o.Fault.Name())
	}
	for _, c := range s.clients {
		if c.c.IsConnected() {
			snap.Up++
		}
	}
	return snap
}

// memPeak tracks the process's peak memory: the kernel's high-water mark of the resident set (VmHWM, on
// Linux) and the largest Go heap seen by sample.
type memPeak struct {
	mu   sync.Mutex
	heap uint64
	s    []metrics.Sample
}

func newMemPeak() *memPeak {
	return &memPeak{s: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
}

func (m *memPeak) sample() {
	m.mu.Lock()
	defer m.mu.Unlock()
	metrics.Read(m.s)
	if v := m.s[0].Value; v.Kind() == metrics.KindUint64 {
		m.heap = max(m.heap, v.Uint64())
	}
}

// peaks returns the peak RSS in bytes (0 where /proc is missing) and the peak Go heap.
func (m *memPeak) peaks() (rss, heap uint64) {
	m.sample()
	m.mu.Lock()
	heap = m.heap
	m.mu.Unlock()
	return vmHWM(), heap
}

// vmHWM reads the peak resident set size from /proc/self/status, in bytes.
func vmHWM() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == "VmHWM:" {
			kb, err := strconv.ParseUint(string(f[1]), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

var mosquittoVersion = regexp.MustCompile(`mosquitto version (\S+)`)

// versions names what the run was made of: Go, the code under test, the broker and the harness's parts.
func versions(ctx context.Context, brokerKind, brokerLogs string) map[string]string {
	v := map[string]string{"go": runtime.Version(), "broker": brokerKind, "mqttas": "(devel)"}
	if m := mosquittoVersion.FindStringSubmatch(brokerLogs); m != nil {
		v["mosquitto"] = m[1]
	} else {
		v["mosquitto"] = "unknown"
	}
	deps := map[string]string{
		"github.com/Shopify/toxiproxy/v2":             "toxiproxy",
		"github.com/eclipse/paho.mqtt.golang":         "paho",
		"github.com/testcontainers/testcontainers-go": "testcontainers",
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v["mqttas"] = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v["mqttas"] = s.Value
			}
		}
		for _, d := range bi.Deps {
			if name, ok := deps[d.Path]; ok {
				v[name] = d.Version
			}
		}
	}
	if v["mqttas"] == "(devel)" {
		// go run builds without VCS stamps here (-buildvcs=false); ask git, briefly.
		gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(gctx, "git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
			rev := strings.TrimSpace(string(out))
			if st, err := exec.CommandContext(gctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
				rev += "+dirty"
			}
			v["mqttas"] = rev
		}
	}
	return v
}
