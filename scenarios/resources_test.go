package scenarios

// The process's resources, for the load specs: open files, memory, bounded concurrency.

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// loadRaiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and fails unless that allows need open
// files. The Go runtime already raises its own soft limit at start-up, but restores the old one in child
// processes (the process backend's mosquitto); a syscall.Setrlimit call makes children inherit the raised
// limit. It returns the limits before and after, for the report.
func loadRaiseNoFile(need uint64) string {
	GinkgoHelper()
	var lim syscall.Rlimit
	Expect(syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)).To(Succeed())
	before := lim
	Expect(lim.Max).To(BeNumerically(">=", need), "the hard open-file limit (ulimit -Hn) must allow %d", need)
	lim.Cur = lim.Max
	Expect(syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)).To(Succeed())
	return fmt.Sprintf("soft %d → %d (hard %d, need %d)", before.Cur, lim.Cur, lim.Max, need)
}

// loadFDs counts this process's open file descriptors.
func loadFDs() int {
	GinkgoHelper()
	ents, err := os.ReadDir("/proc/self/fd")
	Expect(err).NotTo(HaveOccurred())
	return len(ents)
}

// loadMemInUse is the heap and stack memory in use after a collection.
func loadMemInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// loadEach runs f(i) for i in [0, n) on at most width goroutines at once and returns the errors, joined.
func loadEach(n, width int, f func(i int) error) error {
	sem := make(chan struct{}, width)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = f(i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// loadSettle waits (bounded) until count() is at most want and returns the last count.
func loadSettle(count func() int, want int, within time.Duration) int {
	deadline := time.Now().Add(within)
	n := count()
	for n > want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n = count()
	}
	return n
}
