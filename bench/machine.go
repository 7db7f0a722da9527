package bench

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/mqttas"
)

// Machine holds the facts that make a report's figures interpretable.
type Machine struct {
	Date string `json:"date"` // RFC 3339, when the run started
	// Commit is the checkout the run measured: git's HEAD, with "-dirty" when the tree differs from it
	// (the results and README that cmd/bench writes aside), "unknown" outside a git checkout.
	Commit     string `json:"commit"`
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"` // logical CPUs
	GOMAXPROCS int    `json:"gomaxprocs"`
	MemoryGB   string `json:"memory"`
	Kernel     string `json:"kernel"`
	OS         string `json:"os"`
	Go         string `json:"go"`
	Mosquitto  string `json:"mosquitto"`
	Paho       string `json:"paho"`
	MQTTAS     string `json:"mqttas"`
	LoadStart  string `json:"load_start"` // /proc/loadavg: 1, 5, 15 minutes
	LoadEnd    string `json:"load_end,omitempty"`
	// LoadRounds is the load average as each round started: on a shared machine, what the other
	// processes took from the clients meanwhile.
	LoadRounds []string `json:"load_rounds,omitempty"`
}

// CollectMachine gathers the machine's facts; what it cannot find reads "unknown".
func CollectMachine(ctx context.Context, mosquittoBin string) Machine {
	m := Machine{
		Date:       time.Now().UTC().Format(time.RFC3339),
		Commit:     Commit(ctx),
		CPU:        cpuModel(),
		Cores:      runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		MemoryGB:   memTotal(),
		Kernel:     firstLine(readFile("/proc/sys/kernel/osrelease")),
		OS:         osName(),
		Go:         runtime.Version(),
		Mosquitto:  mosquittoVersion(ctx, mosquittoBin),
		Paho:       pahoVersion(),
		MQTTAS:     mqttas.Version,
		LoadStart:  LoadAvg(),
	}
	return m
}

// Commit names the checkout in the current directory: git's HEAD, plus "-dirty" when a file differs
// from it or is untracked (ignored files, ResultsDir and README aside: they are what cmd/bench writes).
// Without git it falls back to the revision the binary was built from, and then to "unknown".
func Commit(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	git := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "git", args...).Output()
		return strings.TrimSpace(string(out)), err
	}
	if head, err := git("rev-parse", "HEAD"); err == nil && head != "" {
		status, err := git("status", "--porcelain", "--", ":(top)",
			":(top,exclude)"+ResultsDir, ":(top,exclude)"+README)
		switch {
		case err != nil:
			return head + "-unknown-status"
		case status != "":
			return head + "-dirty"
		}
		return head
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			if modified == "true" {
				rev += "-dirty"
			}
			return rev
		}
	}
	return "unknown"
}

// LoadAvg returns the 1, 5 and 15 minute load averages, or "unknown".
func LoadAvg() string {
	f := strings.Fields(readFile("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func readFile(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return ""
	}
	return string(b)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if s = strings.TrimSpace(s); s == "" {
		return "unknown"
	}
	return s
}

func cpuModel() string {
	sc := bufio.NewScanner(strings.NewReader(readFile("/proc/cpuinfo")))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotal() string {
	sc := bufio.NewScanner(strings.NewReader(readFile("/proc/meminfo")))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			return f[1] + " kB"
		}
	}
	return "unknown"
}

func osName() string {
	sc := bufio.NewScanner(strings.NewReader(readFile("/etc/os-release")))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`) + " (" + runtime.GOOS + "/" + runtime.GOARCH + ")"
		}
	}
	return runtime.GOOS + "/" + runtime.GOARCH
}

// mosquittoVersion runs "mosquitto -h", which prints "mosquitto version 2.0.11" (and exits non-zero).
func mosquittoVersion(ctx context.Context, bin string) string {
	if bin == "" {
		bin = findMosquitto()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "-h").CombinedOutput()
	for l := range bytes.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(string(l)), "mosquitto version "); ok {
			return v
		}
	}
	return "unknown"
}

// findMosquitto finds the broker binary as the harness does: PATH, then /usr/sbin.
func findMosquitto() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	return "/usr/sbin/mosquitto"
}

func pahoVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/eclipse/paho.mqtt.golang" {
			return d.Version
		}
	}
	return "unknown"
}

// Table renders the facts as a two-column Markdown table.
func (m Machine) Table() *Table {
	t := &Table{Title: "Machine", Header: []string{"item", "value"}}
	t.AddRow("date", m.Date)
	t.AddRow("commit", m.Commit)
	t.AddRow("CPU", m.CPU)
	t.AddRow("cores (logical) / GOMAXPROCS", fmtFloat(float64(m.Cores))+" / "+fmtFloat(float64(m.GOMAXPROCS)))
	t.AddRow("memory", m.MemoryGB)
	t.AddRow("kernel", m.Kernel)
	t.AddRow("OS", m.OS)
	t.AddRow("Go", m.Go)
	t.AddRow("mosquitto", m.Mosquitto)
	t.AddRow("paho.mqtt.golang", m.Paho)
	t.AddRow("mqttas", m.MQTTAS)
	load := m.LoadStart
	if m.LoadEnd != "" {
		load += " → " + m.LoadEnd
	}
	t.AddRow("load average (1/5/15 min), start → end", load)
	if len(m.LoadRounds) > 0 {
		t.AddRow("load average as each round started", strings.Join(m.LoadRounds, "; "))
	}
	return t
}
