package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/mqttas/mqttas-go/harness/k8s"
)

const selfContained = "../../deploy/overlays/self-contained"

func TestRenderK8sCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"render-k8s", "-o", dir, "-base", selfContained, "../../traces/broker-restart.yaml"}, envOf(nil), &out, &errOut)
	if code != exitPass || !strings.Contains(out.String(), "0 Chaos Mesh object(s), 0 fault(s) in the pods' trace, 4 not rendered") ||
		!strings.Contains(errOut.String(), "not rendered: faults[2] broker-pause at 45s: it acts on the broker's process") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	for _, f := range []string{k8s.KustomizationFile, k8s.TraceFile, k8s.JobPatchFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, k8s.ChaosFile)); !os.IsNotExist(err) {
		t.Errorf("a chaos file with no Chaos Mesh object: %v", err)
	}

	out.Reset()
	errOut.Reset()
	wf := filepath.Join(t.TempDir(), "wf")
	if code := run(t.Context(), []string{"render-k8s", "-workflow", "-o", wf, "-base", selfContained, "../../traces/edge-of-wifi.yaml"}, envOf(nil), &out, &errOut); code != exitPass ||
		!strings.Contains(out.String(), "1 Chaos Mesh object(s)") {
		t.Fatalf("-workflow: exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	if b, err := os.ReadFile(filepath.Join(wf, k8s.ChaosFile)); err != nil || !strings.Contains(string(b), "kind: Workflow") {
		t.Errorf("-workflow wrote %q (%v)", b, err)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nfaults:\n  - {at: 1s, fault: latency, duration: 3x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"render-k8s", "../../traces/ap-reboot.yaml"}, "usage: soak render-k8s -o <dir>"},
		{[]string{"render-k8s", "-o", dir}, "usage: soak render-k8s"},
		{[]string{"render-k8s", "-o", dir, bad}, "bad.yaml:3: faults[0].duration: \"3x\" is not a duration"},
		{[]string{"render-k8s", "-o", dir, "missing.yaml"}, "missing.yaml"},
		{[]string{"render-k8s", "-o", dir, "-base", t.TempDir(), "../../traces/ap-reboot.yaml"}, "has no kustomization.yaml"},
		{[]string{"render-k8s", "-o", dir, "-external-broker", "10.0.0.1:1883", "../../traces/ap-reboot.yaml"}, "neither a host name nor an IP"},
	} {
		out.Reset()
		errOut.Reset()
		if code := run(t.Context(), tc.args, envOf(nil), &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%q: exit %d, want %d with %q\n%s", tc.args, code, exitUsage, tc.want, errOut.String())
		}
	}
}

var podVar = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// The soak Job's arguments, as a shard pod's would read with its environment, are flags this command
// takes and mean what deploy/ intends: the index as the shard, the settings' run id, broker and duration,
// and the rendered trace.
func TestDeployJobArgsParse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"render-k8s", "-o", dir, "-base", selfContained, "../../traces/ap-reboot.yaml"}, envOf(nil), &out, &errOut); code != exitPass {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	for _, overlay := range []string{selfContained, dir} {
		objs, err := k8s.Build(t.Context(), overlay)
		if err != nil {
			t.Fatal(err)
		}
		var job *batchv1.Job
		var settings map[string]string
		for _, o := range objs {
			switch v := o.Value.(type) {
			case *batchv1.Job:
				job = v
			case *corev1.ConfigMap:
				if v.Name == k8s.SettingsConfigMap {
					settings = v.Data
				}
			}
		}
		if job == nil || settings == nil {
			t.Fatalf("%s: no soak Job or settings", overlay)
		}
		env := map[string]string{"JOB_COMPLETION_INDEX": "3"}
		for k, v := range settings {
			env[k] = v
		}
		var args []string
		for _, a := range job.Spec.Template.Spec.Containers[0].Args {
			args = append(args, podVar.ReplaceAllStringFunc(a, func(m string) string { return env[m[2:len(m)-1]] }))
		}
		c, err := parseConfig(args, envOf(env), &errOut, now)
		if err != nil {
			t.Fatalf("%s: soak %q: %v", overlay, args, err)
		}
		want, _ := time.ParseDuration(settings["SOAK_DURATION"])
		if c.Shard != 3 || c.Shards != 4 || c.RunID != settings["RUN_ID"] || c.BrokerAddr != "mosquitto:1883" ||
			c.Out != "/reports/"+settings["RUN_ID"]+"/shard-3" || c.Duration != want || c.Clients != 500 {
			t.Errorf("%s: soak %q reads as shard %d/%d, run %q, broker %q, out %q, %v, %d clients", overlay, args,
				c.Shard, c.Shards, c.RunID, c.BrokerAddr, c.Out, c.Duration, c.Clients)
		}
		if wantTrace := overlay == dir; (c.Trace == k8s.TraceMount+"/"+k8s.TraceFile) != wantTrace {
			t.Errorf("%s: trace %q", overlay, c.Trace)
		}
	}
}
