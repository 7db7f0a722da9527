package main

import (
	"bufio"
	"bytes"
	"cmp"
	"os"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mqttas/mqttas-go/harness/schedule"
	"github.com/mqttas/mqttas-go/harness/timeline"
)

// outageFigures are one client's outages measured against the fault windows.
type outageFigures struct {
	outages   int
	detection []time.Duration // fault start → the client's first down
	recovery  []time.Duration // heal (or the outage's start, if later) → up again
}

// measureOutages attributes each outage of source (down/outage → up, from the timeline) to the latest
// fault that started before it, if the outage began no later than slack after that fault was healed
// (a blackhole is only noticed through keepalive; healing it closes the connections it held). Per
// fault with outages it records:
//
//   - detection: from the fault's start to the first attributed outage;
//   - recovery: from the later of the heal and the last attributed outage's start, to the client being
//     up again; if the client came back while the fault was still in force, the outage's own length.
//
// Outages no fault explains still count in outages; open outages (never up again) have no recovery.
func measureOutages(entries []timeline.Entry, windows []timeline.Window, source string, slack time.Duration) outageFigures {
	outs := schedule.Outages(entries, source)
	fig := outageFigures{outages: len(outs)}
	ws := slices.Clone(windows)
	slices.SortStableFunc(ws, func(a, b timeline.Window) int { return cmp.Compare(a.Start, b.Start) })
	byWindow := make(map[int][]schedule.Outage)
	for _, o := range outs {
		i := -1
		for j, w := range ws {
			if w.Start <= o.Start {
				i = j
			}
		}
		if i < 0 || o.Start > ws[i].End+slack {
			continue
		}
		byWindow[i] = append(byWindow[i], o)
	}
	for i, w := range ws {
		att := byWindow[i]
		if len(att) == 0 {
			continue
		}
		fig.detection = append(fig.detection, att[0].Start-w.Start)
		last := att[len(att)-1]
		if last.Open {
			continue
		}
		from := max(w.End, last.Start)
		if last.End < from {
			from = last.Start
		}
		fig.recovery = append(fig.recovery, last.End-from)
	}
	return fig
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
