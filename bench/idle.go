package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// IdleResult is the cost of idle connected clients, per client, measured in one process that holds n of
// them (connected, no subscriptions, KeepAlive 30 s, otherwise the library's defaults).
type IdleResult struct {
	Lib       string `json:"lib"`
	Clients   int    `json:"clients"`
	Connected int    `json:"connected"`
	// Per client, from runtime.MemStats after a GC, before and after connecting.
	HeapInuse   float64 `json:"heap_inuse_bytes"`
	HeapAlloc   float64 `json:"heap_alloc_bytes"`
	HeapObjects float64 `json:"heap_objects"`
	StackInuse  float64 `json:"stack_inuse_bytes"`
	Sys         float64 `json:"sys_bytes"`
	RSS         float64 `json:"rss_bytes"` // VmRSS from /proc/self/status
	Goroutines  float64 `json:"goroutines"`
	ConnectSecs float64 `json:"connect_seconds"` // connecting all of them, 20 at a time
}

// HeapPlusStack is heap in use plus stack in use per client: the memory the library itself holds.
func (r IdleResult) HeapPlusStack() float64 { return r.HeapInuse + r.StackInuse }

// MeasureIdle connects n idle clients of lib to addr in this process and measures what they cost. Run it
// in a process of its own (RunIdleChild) so nothing else pollutes the figures.
func MeasureIdle(ctx context.Context, lib, addr string, n int, settle time.Duration) (IdleResult, error) {
	res := IdleResult{Lib: lib, Clients: n}
	before := memSnapshot()
	cs := make([]native, n)
	sem := make(chan struct{}, 20)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := dialNative(ctx, lib, nativeOptions{addr: addr, id: fmt.Sprintf("idle-%s-%d", lib, i)})
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			cs[i] = c
		})
	}
	wg.Wait()
	res.ConnectSecs = time.Since(start).Seconds()
	defer func() {
		for _, c := range cs {
			if c != nil {
				wg.Go(c.close)
			}
		}
		wg.Wait()
	}()
	for _, c := range cs {
		if c != nil {
			res.Connected++
		}
	}
	if firstErr != nil {
		return res, firstErr
	}
	sleep(ctx, settle)
	after := memSnapshot()
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	res.HeapInuse = per(after.ms.HeapInuse, before.ms.HeapInuse)
	res.HeapAlloc = per(after.ms.HeapAlloc, before.ms.HeapAlloc)
	res.HeapObjects = per(after.ms.HeapObjects, before.ms.HeapObjects)
	res.StackInuse = per(after.ms.StackInuse, before.ms.StackInuse)
	res.Sys = per(after.ms.Sys, before.ms.Sys)
	res.RSS = per(after.rss, before.rss)
	res.Goroutines = (float64(after.goroutines) - float64(before.goroutines)) / float64(n)
	return res, ctx.Err()
}

type snapshot struct {
	ms         runtime.MemStats
	rss        uint64
	goroutines int
}

func memSnapshot() snapshot {
	runtime.GC()
	runtime.GC()
	var s snapshot
	runtime.ReadMemStats(&s.ms)
	s.rss = vmRSS()
	s.goroutines = runtime.NumGoroutine()
	return s
}

// vmRSS returns this process's resident set size in bytes, 0 if unknown.
func vmRSS() uint64 {
	sc := bufio.NewScanner(strings.NewReader(readFile("/proc/self/status")))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// EnvIdleChild, when set in a process's environment, makes IdleChildMain run one idle measurement:
// "lib addr clients settle", e.g. "paho 127.0.0.1:1883 1000 3s".
const EnvIdleChild = "MQTTAS_BENCH_IDLE_CHILD"

// IdleChildMain runs the idle measurement a parent asked for through EnvIdleChild and writes its
// IdleResult as JSON to stdout. It reports whether it ran (the caller should then exit, with status 1
// if err is set). Call it first thing in main or TestMain.
func IdleChildMain() (ran bool, err error) {
	spec, ok := os.LookupEnv(EnvIdleChild)
	if !ok {
		return false, nil
	}
	f := strings.Fields(spec)
	if len(f) != 4 {
		return true, fmt.Errorf("%s=%q: want \"lib addr clients settle\"", EnvIdleChild, spec)
	}
	n, err := strconv.Atoi(f[2])
	if err != nil || n <= 0 {
		return true, fmt.Errorf("%s: bad client count %q", EnvIdleChild, f[2])
	}
	settle, err := time.ParseDuration(f[3])
	if err != nil {
		return true, fmt.Errorf("%s: bad settle time %q", EnvIdleChild, f[3])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := MeasureIdle(ctx, f[0], f[1], n, settle)
	if err != nil {
		return true, err
	}
	return true, json.NewEncoder(os.Stdout).Encode(res)
}

// RunIdleChild runs MeasureIdle in a child process: exe (normally os.Executable()) with args, which must
// call IdleChildMain first thing.
func RunIdleChild(ctx context.Context, exe string, args []string, lib, addr string, n int, settle time.Duration) (IdleResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %s", EnvIdleChild, lib, addr, n, settle))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return IdleResult{}, fmt.Errorf("idle child %s: %w: %s", lib, err, tailString(errb.String(), 2000))
	}
	// The child's stdout may carry other lines (e.g. a test binary's); the result is the last JSON line.
	var res IdleResult
	lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if err := json.Unmarshal(lines[i], &res); err == nil && res.Lib != "" {
			return res, nil
		}
	}
	return IdleResult{}, fmt.Errorf("idle child %s: no result in its output: %s", lib, tailString(out.String(), 2000))
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
