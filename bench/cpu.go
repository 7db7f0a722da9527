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

// cpuMeter measures the CPU this process and the broker use during a run.
type cpuMeter struct {
	brokerPID    int
	self, broker time.Duration
}

func startCPU(brokerPID int) cpuMeter {
	return cpuMeter{brokerPID: brokerPID, self: selfCPU(), broker: procCPU(brokerPID)}
}

// stop returns the CPU used since start by this process and by the broker (-1 when unknown).
func (m cpuMeter) stop() (self, broker time.Duration) {
	self, broker = -1, -1
	if s := selfCPU(); s >= 0 && m.self >= 0 {
		self = s - m.self
	}
	if b := procCPU(m.brokerPID); b >= 0 && m.broker >= 0 {
		broker = b - m.broker
	}
	return self, broker
}
