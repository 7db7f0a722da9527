package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat times (100 on every mainstream
// architecture).
const clockTick = 10 * time.Millisecond

// selfCPU returns the CPU time (user + system) this process has used, or -1.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU returns the CPU time (user + system) process pid has used, or -1 (10 ms resolution).
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return -1
	}
	s := readFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return -1
	}
	f := strings.Fields(s[i+2:]) // from field 3 (state) on: utime is field 14, stime 15
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	k, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(u+k) * clockTick
}

// listenerPID finds the process listening on TCP port of 127.0.0.1 (IPv4) by its socket's inode, or
// returns 0. It reads /proc, so it sees only this machine's processes that this user may inspect.
func listenerPID(port int) int {
	inode := ""
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	want := fmt.Sprintf(":%04X", port)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
		if len(fs) >= 10 && strings.HasSuffix(fs[1], want) && fs[3] == "0A" {
			inode = fs[9]
			break
		}
	}
	if inode == "" {
		return 0
	}
	target := "socket:[" + inode + "]"
	dirs, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, d := range dirs {
		fds, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join(d, fd.Name())); err == nil && l == target {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
				return pid
			}
		}
	}
	return 0
}

// schedStat returns how long the threads of process pid (0: this process) have run on a CPU and how long
// they have waited, runnable, for one (the kernel's /proc/<pid>/task/*/schedstat, in nanoseconds), or
// -1, -1. Waiting for a CPU is what the machine's load takes from a process; it is neither the process's
// work nor its idleness.
func schedStat(pid int) (run, wait time.Duration) {
	dir := "/proc/self/task"
	if pid > 0 {
		dir = fmt.Sprintf("/proc/%d/task", pid)
	} else if pid < 0 {
		return -1, -1
	}
	tasks, err := os.ReadDir(dir)
	if err != nil || len(tasks) == 0 {
		return -1, -1
	}
	for _, t := range tasks {
		f := strings.Fields(readFile(filepath.Join(dir, t.Name(), "schedstat")))
		if len(f) < 2 {
			continue // the thread has exited meanwhile
		}
		r, err1 := strconv.ParseInt(f[0], 10, 64)
		w, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return -1, -1
		}
		run += time.Duration(r)
		wait += time.Duration(w)
	}
	return run, wait
}

// cpuMeter measures the CPU this process and the broker use during a run, and how long the broker waited
// for a CPU meanwhile.
type cpuMeter struct {
	brokerPID    int
	self, broker time.Duration
	// From schedstat (nanosecond precision), -1 when unknown; broker falls back to /proc/<pid>/stat.
	brokerRun, brokerWait, selfWait time.Duration
	at                              time.Time
}

func startCPU(brokerPID int) cpuMeter {
	m := cpuMeter{brokerPID: brokerPID, self: selfCPU(), broker: procCPU(brokerPID), brokerRun: -1, brokerWait: -1, selfWait: -1}
	if brokerPID > 0 {
		m.brokerRun, m.brokerWait = schedStat(brokerPID)
	}
	_, m.selfWait = schedStat(0)
	m.at = time.Now()
	return m
}

// cpuUse is what a cpuMeter measured, each -1 when unknown.
type cpuUse struct {
	Self, Broker time.Duration // CPU used by this process and by the broker
	BrokerWait   time.Duration // the broker's time runnable but waiting for a CPU
	SelfWait     time.Duration // this process's threads' time runnable but waiting for a CPU (summed)
	Wall         time.Duration // from start to stop
}

// stop returns the CPU used since start by this process and by the broker, and the broker's wait for a CPU.
func (m cpuMeter) stop() cpuUse {
	u := cpuUse{Self: -1, Broker: -1, BrokerWait: -1, SelfWait: -1, Wall: time.Since(m.at)}
	if s := selfCPU(); s >= 0 && m.self >= 0 {
		u.Self = s - m.self
	}
	if m.brokerRun >= 0 {
		if r, w := schedStat(m.brokerPID); r >= 0 {
			u.Broker, u.BrokerWait = r-m.brokerRun, w-m.brokerWait
		}
	}
	if u.Broker < 0 {
		if b := procCPU(m.brokerPID); b >= 0 && m.broker >= 0 {
			u.Broker = b - m.broker
		}
	}
	if _, w := schedStat(0); w >= 0 && m.selfWait >= 0 {
		u.SelfWait = w - m.selfWait
	}
	return u
}
