package soak

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/procclient"
	"github.com/mqttas/mqttas-go/harness/rig"
	"github.com/mqttas/mqttas-go/harness/schedule"
)

// The Python driver behind a shell pipeline that passes its first 30 stdout lines on (the set-up and a
// few publications) and then misbehaves: each soak must end long before its 2 minutes with a harness
// error naming the driver and what it did, write its report, and leave no process of the drivers behind.
func TestSoakEndsOnMisbehavingDriver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and Python drivers")
	}
	// The search for leftovers finds a process by its marker.
	probe := exec.Command("sleep", "60")
	probe.Env = append(os.Environ(), "SOAK_MISBEHAVING_DRIVER=probe")
	if err := probe.Start(); err != nil {
		t.Fatal(err)
	}
	found := false // its environment can be unreadable for a moment after the exec
	for deadline := time.Now().Add(5 * time.Second); !found && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		found = slices.Contains(processesWith("SOAK_MISBEHAVING_DRIVER=probe"), probe.Process.Pid)
	}
	_ = probe.Process.Kill()
	_ = probe.Wait()
	if !found {
		t.Fatal("processesWith does not find a process by its environment")
	}
	py := procclient.Python("../../drivers")
	// Passes 30 lines on as they come (head would hold them in its buffer); a driver closed before it
	// wrote them ends the pipeline as it should.
	const pass30 = `i=0; while [ $i -lt 30 ] && IFS= read -r l; do printf '%s\n' "$l"; i=$((i+1)); done; `
	for _, tc := range []struct {
		name, after string // after: the shell's part once 30 lines went through
		want        []string
	}{
		{"crash", "exit 3", []string{"driver exited", "exit status 3"}},
		{"hang", "exec sleep 3600", []string{"driver stopped answering", "a ping unanswered"}},
		{"garbage", "echo 'Traceback (most recent call last): not a protocol line'; cat",
			[]string{"driver broke the protocol", `stdout line 31 "Traceback (most recent call last)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := "py-" + tc.name
			// Every process of the pipeline inherits the marker, so leftovers can be found by it.
			marker := fmt.Sprintf("SOAK_MISBEHAVING_DRIVER=%s-%d", name, time.Now().UnixNano())
			cfg := procclient.Config{Name: name, Env: append(py.Env, marker), HangTimeout: 3 * time.Second,
				Command: []string{"/bin/sh", "-c", `"$1" "$2" | { ` + pass30 + `if [ $i -eq 30 ]; then ` + tc.after + `; fi; }`, "sh", py.Command[0], py.Command[1]}}
			reg := rig.Registry()
			reg[name] = procclient.Factory(cfg)

			dir := filepath.Join(t.TempDir(), "report")
			scfg := shortConfig(dir, 2)
			scfg.Duration, scfg.Client, scfg.Registry = 2*time.Minute, name, reg
			sched, err := schedule.Random(18, scfg.Duration, schedule.RandomOptions{})
			if err != nil {
				t.Fatal(err)
			}
			const bound = 45 * time.Second // the failure, the heal, the drain and the report
			began := time.Now()
			res, err := Run(t.Context(), scfg, sched)
			took := time.Since(began)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if took > bound {
				t.Fatalf("the run took %v with a failed driver", took)
			}
			if res.Verdict() != "HARNESS ERROR" || len(res.HarnessErrors) == 0 {
				t.Fatalf("verdict %s, harness errors %v", res.Verdict(), res.HarnessErrors)
			}
			first := res.HarnessErrors[0]
			t.Logf("ended after %v: %s", took.Round(time.Millisecond), first)
			for _, w := range append(tc.want, "failed: procclient: driver "+name) {
				if !strings.Contains(first, w) {
					t.Errorf("harness error %q lacks %q", first, w)
				}
			}
			// Another client may reach its 30th line only while the run closes it: that failure is the
			// clean-up's to report. Nothing else may fail there.
			if res.CloseErr != nil && !errors.Is(res.CloseErr, clients.ErrClientFailed) {
				t.Errorf("clean-up: %v", res.CloseErr)
			}
			sum := readSummary(t, dir)
			if errs, _ := sum.Config["harness_errors"].([]any); len(errs) != len(res.HarnessErrors) {
				t.Errorf("the report's harness errors %v, the run's %v", sum.Config["harness_errors"], res.HarnessErrors)
			}
			if left := processesWith(marker); len(left) > 0 {
				t.Fatalf("processes of the driver left behind: %v", left)
			}
		})
	}
}

// processesWith lists the live (not zombie) processes whose environment holds env.
func processesWith(env string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(b, append([]byte(env), 0)) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if s := string(stat); err == nil {
			if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && s[i+2] == 'Z' {
				continue
			}
		}
		out = append(out, pid)
	}
	return out
}
