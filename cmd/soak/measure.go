package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime/metrics"
	"strconv"
	"sync"
)

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
