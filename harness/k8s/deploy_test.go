package k8s

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/mqttas/mqttas-go/harness/schedule"
)

// kustomize renders dir with kubectl kustomize (make deps installs kubectl) and decodes every object
// strictly.
func kustomize(t *testing.T, dir string) []Object {
	t.Helper()
	objs, err := Build(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// fleet is a rendered overlay's objects by kind and name.
type fleet map[string]any

func index(t *testing.T, objs []Object) fleet {
	t.Helper()
	f := fleet{}
	for _, o := range objs {
		key := o.Kind + "/" + o.Name
		if _, dup := f[key]; dup {
			t.Errorf("%s twice", key)
		}
		f[key] = o.Value
		if ns := o.Value.(interface{ GetNamespace() string }).GetNamespace(); o.Kind != "Namespace" && ns != DefaultNamespace {
			t.Errorf("%s in namespace %q, want %s", key, ns, DefaultNamespace)
		}
	}
	return f
}

func get[T any](t *testing.T, f fleet, key string) T {
	t.Helper()
	v, ok := f[key].(T)
	if !ok {
		t.Fatalf("no %s (have %v)", key, slices.Sorted(maps.Keys(f)))
	}
	return v
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkJob checks the soak Job of an overlay: an Indexed Job of SHARDS shards whose args use only
// variables the pod defines, reading settings and writing to volumes the overlay has.
func checkJob(t *testing.T, f fleet) (*batchv1.Job, map[string]string) {
	t.Helper()
	job := get[*batchv1.Job](t, f, "Job/"+JobName)
	settings := get[*corev1.ConfigMap](t, f, "ConfigMap/"+SettingsConfigMap).Data
	if job.Spec.CompletionMode == nil || *job.Spec.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("the soak Job's completionMode is %v, want Indexed", job.Spec.CompletionMode)
	}
	if job.Spec.Completions == nil || job.Spec.Parallelism == nil || *job.Spec.Parallelism > *job.Spec.Completions {
		t.Fatalf("completions %v, parallelism %v", job.Spec.Completions, job.Spec.Parallelism)
	}
	if settings["SHARDS"] != strconv.Itoa(int(*job.Spec.Completions)) {
		t.Errorf("SHARDS=%s but the Job has %d completions", settings["SHARDS"], *job.Spec.Completions)
	}
	pod := job.Spec.Template
	if !hasLabels(pod.Labels, ShardLabels) {
		t.Errorf("the shard pods' labels %v lack %v, which the Chaos Mesh objects select", pod.Labels, ShardLabels)
	}
	if job.Spec.BackoffLimitPerIndex == nil || *job.Spec.BackoffLimitPerIndex != 0 || job.Spec.BackoffLimit != nil {
		t.Errorf("backoffLimitPerIndex %v, backoffLimit %v: a failed shard must be neither retried nor stop the others",
			job.Spec.BackoffLimitPerIndex, job.Spec.BackoffLimit)
	}
	if pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %s: a shard's report directory must not be reused by a restart", pod.Spec.RestartPolicy)
	}
	c := pod.Spec.Containers[0]
	defined := map[string]bool{}
	for _, e := range c.Env {
		defined[e.Name] = true
	}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil && ef.ConfigMapRef.Name == SettingsConfigMap {
			for k := range settings {
				defined[k] = true
			}
		}
	}
	if !defined["JOB_COMPLETION_INDEX"] || !slices.Contains(c.Args, "-shard=$(JOB_COMPLETION_INDEX)/$(SHARDS)") {
		t.Errorf("the shard's index does not reach -shard: args %q", c.Args)
	}
	for _, a := range c.Args {
		for _, m := range envRef.FindAllStringSubmatch(a, -1) {
			if !defined[m[1]] {
				t.Errorf("arg %q uses $(%s), which the pod does not define", a, m[1])
			}
		}
	}
	checkVolumes(t, f, pod.Spec)
	return job, settings
}

func checkVolumes(t *testing.T, f fleet, spec corev1.PodSpec) {
	t.Helper()
	vols := map[string]bool{}
	for _, v := range spec.Volumes {
		vols[v.Name] = true
		switch {
		case v.PersistentVolumeClaim != nil:
			get[*corev1.PersistentVolumeClaim](t, f, "PersistentVolumeClaim/"+v.PersistentVolumeClaim.ClaimName)
		case v.ConfigMap != nil:
			get[*corev1.ConfigMap](t, f, "ConfigMap/"+v.ConfigMap.Name)
		}
	}
	for _, c := range spec.Containers {
		for _, m := range c.VolumeMounts {
			if !vols[m.Name] {
				t.Errorf("container %s mounts %s, which is not a volume", c.Name, m.Name)
			}
		}
	}
}

func deployDir(parts ...string) string {
	return filepath.Join(append([]string{root, "deploy"}, parts...)...)
}

func TestDeploySelfContained(t *testing.T) {
	f := index(t, kustomize(t, deployDir("overlays", "self-contained")))
	get[*corev1.Namespace](t, f, "Namespace/"+DefaultNamespace)
	_, settings := checkJob(t, f)
	dep := get[*appsv1.Deployment](t, f, "Deployment/mosquitto")
	svc := get[*corev1.Service](t, f, "Service/mosquitto")
	if !hasLabels(dep.Spec.Template.Labels, BrokerLabels) || !hasLabels(dep.Spec.Template.Labels, dep.Spec.Selector.MatchLabels) {
		t.Errorf("the broker's pod labels %v lack %v or the Deployment's selector", dep.Spec.Template.Labels, BrokerLabels)
	}
	if !hasLabels(dep.Spec.Template.Labels, svc.Spec.Selector) || len(svc.Spec.Selector) == 0 {
		t.Errorf("the Service selects %v, the broker's pods are %v", svc.Spec.Selector, dep.Spec.Template.Labels)
	}
	if want := svc.Name + ":" + strconv.Itoa(int(svc.Spec.Ports[0].Port)); settings["BROKER"] != want {
		t.Errorf("BROKER=%s, want the Service %s", settings["BROKER"], want)
	}
	checkVolumes(t, f, dep.Spec.Template.Spec)
	conf := get[*corev1.ConfigMap](t, f, "ConfigMap/"+dep.Spec.Template.Spec.Volumes[0].ConfigMap.Name)
	if !strings.Contains(conf.Data["mosquitto.conf"], "listener 1883") {
		t.Errorf("the broker's config does not listen on 1883:\n%s", conf.Data["mosquitto.conf"])
	}
}

// The fleet's broker runs with the settings of the broker image the harness tests with.
func TestDeployBrokerConfigIsTheImages(t *testing.T) {
	settings := func(path string) []string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for line := range strings.Lines(string(b)) {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				out = append(out, line)
			}
		}
		return out
	}
	fleet := settings(deployDir("overlays", "self-contained", "mosquitto.conf"))
	image := settings(filepath.Join(root, "containers", "mosquitto", "mosquitto.conf"))
	if !slices.Equal(fleet, image) || len(fleet) == 0 {
		t.Errorf("the fleet's mosquitto.conf sets\n%s\nthe image's\n%s", strings.Join(fleet, "\n"), strings.Join(image, "\n"))
	}
}

func TestDeployExternalBroker(t *testing.T) {
	f := index(t, kustomize(t, deployDir("overlays", "external-broker")))
	_, settings := checkJob(t, f)
	if _, ok := f["Deployment/mosquitto"]; ok {
		t.Error("the external-broker overlay runs a broker of its own")
	}
	if host, port, ok := strings.Cut(settings["BROKER"], ":"); !ok || host == "" || port == "" {
		t.Errorf("BROKER=%q is not host:port", settings["BROKER"])
	}
}

// The 100,000-device plan: 100 shards of 1,000 clients, against an external broker.
func TestDeployFleet100k(t *testing.T) {
	f := index(t, kustomize(t, deployDir("overlays", "fleet-100k")))
	job, settings := checkJob(t, f)
	if *job.Spec.Completions != 100 || *job.Spec.Parallelism != 100 || settings["SOAK_CLIENTS"] != "1000" {
		t.Errorf("%d shards (%d at once) of %s clients, want 100 of 1000", *job.Spec.Completions, *job.Spec.Parallelism, settings["SOAK_CLIENTS"])
	}
	if _, ok := f["Deployment/mosquitto"]; ok {
		t.Error("the 100,000-device plan runs on one mosquitto")
	}
}

func TestDeployMerge(t *testing.T) {
	f := index(t, kustomize(t, deployDir("merge")))
	job := get[*batchv1.Job](t, f, "Job/soak-merge")
	c := job.Spec.Template.Spec.Containers[0]
	if len(c.Args) < 3 || c.Args[0] != "merge" || !strings.HasSuffix(c.Args[len(c.Args)-1], "/shard-*") {
		t.Errorf("merge args %q", c.Args)
	}
	// The merge Job reads what the soak Job writes, from the settings and the volume the base makes.
	base := index(t, kustomize(t, deployDir("overlays", "self-contained")))
	if c.EnvFrom[0].ConfigMapRef.Name != SettingsConfigMap {
		t.Errorf("the merge Job reads %s", c.EnvFrom[0].ConfigMapRef.Name)
	}
	soakPod := get[*batchv1.Job](t, base, "Job/"+JobName).Spec.Template.Spec
	if got, want := job.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ClaimName, soakPod.Volumes[0].PersistentVolumeClaim.ClaimName; got != want {
		t.Errorf("the merge Job reads claim %s, the shards write %s", got, want)
	}
	for _, a := range c.Args[1:] {
		if !strings.Contains(a, "/reports/$(RUN_ID)/") {
			t.Errorf("merge arg %q is not under the run's reports", a)
		}
	}
	if !slices.Contains(soakPod.Containers[0].Args, "-out=/reports/$(RUN_ID)/shard-$(JOB_COMPLETION_INDEX)") {
		t.Errorf("the shards write elsewhere: %q", soakPod.Containers[0].Args)
	}
}

// Every shipped trace, rendered on top of each overlay, builds with kubectl kustomize into objects that
// decode strictly, with the trace handed to the soak Job and the Chaos Mesh objects selecting its pods.
func TestRenderedTracesBuild(t *testing.T) {
	for _, mode := range []struct {
		overlay  string
		workflow bool
	}{{"self-contained", false}, {"external-broker", false}, {"self-contained", true}, {"external-broker", true}} {
		overlay := mode.overlay
		for _, path := range shippedTraces(t) {
			s, err := schedule.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			o := Options{Tail: 10 * time.Second, Workflow: mode.workflow}
			if overlay == "external-broker" {
				o.ExternalBrokers = []string{"mqtt.example.org"}
			}
			r, err := Render(s, o)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "run")
			if err := r.Write(dir, deployDir("overlays", overlay)); err != nil {
				t.Fatal(err)
			}
			f := index(t, kustomize(t, dir))
			job, settings := checkJob(t, f)
			if settings["SOAK_DURATION"] != r.Duration.String() || settings["BROKER"] == "" {
				t.Errorf("%s on %s: settings %v, want SOAK_DURATION=%v and the overlay's BROKER", path, overlay, settings, r.Duration)
			}
			c := job.Spec.Template.Spec.Containers[0]
			if !slices.Contains(c.Args, "-trace="+TraceMount+"/"+TraceFile) {
				t.Errorf("%s: the soak is not given the trace: %q", path, c.Args)
			}
			want, _ := os.ReadFile(filepath.Join(dir, TraceFile))
			if got := get[*corev1.ConfigMap](t, f, "ConfigMap/"+TraceConfigMap).Data[TraceFile]; got != string(want) || got == "" {
				t.Errorf("%s: the trace ConfigMap holds %q, want %q", path, got, want)
			}
			n := 0
			var specs []NetworkChaosSpec
			for _, v := range f {
				switch v := v.(type) {
				case *NetworkChaos:
					n++
					specs = append(specs, v.Spec)
				case *Schedule:
					n++
					specs = append(specs, *v.Spec.NetworkChaos)
				case *Workflow:
					n++
					tl, err := v.Timeline()
					if err != nil {
						t.Fatal(err)
					}
					for _, x := range tl {
						specs = append(specs, x.Spec)
					}
				}
			}
			for _, spec := range specs {
				key := spec.Action
				if !hasLabels(job.Spec.Template.Labels, spec.Selector.LabelSelectors) || !slices.Contains(spec.Selector.Namespaces, DefaultNamespace) {
					t.Errorf("%s: %s selects %v in %v, not the shard pods", path, key, spec.Selector.LabelSelectors, spec.Selector.Namespaces)
				}
				if spec.Target != nil {
					dep := get[*appsv1.Deployment](t, f, "Deployment/mosquitto")
					if !hasLabels(dep.Spec.Template.Labels, spec.Target.Selector.LabelSelectors) {
						t.Errorf("%s: %s targets %v, not the broker's pods", path, key, spec.Target.Selector.LabelSelectors)
					}
				}
			}
			if n != len(r.Chaos) {
				t.Errorf("%s on %s: %d Chaos Mesh objects built, %d rendered", path, overlay, n, len(r.Chaos))
			}
		}
	}
}
