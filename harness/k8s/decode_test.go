package k8s

import (
	"errors"
	"strings"
	"testing"
)

const goodChaos = `apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata:
  name: t-0-latency
  namespace: mqttas
spec:
  action: delay
  mode: all
  selector:
    namespaces: [mqttas]
    labelSelectors: {app.kubernetes.io/name: mqttas-soak}
  direction: both
  target:
    mode: all
    selector:
      labelSelectors: {app.kubernetes.io/name: mosquitto}
  duration: 3s
  delay: {latency: 200ms, jitter: 50ms, correlation: "25"}
`

const goodSchedule = `apiVersion: chaos-mesh.org/v1alpha1
kind: Schedule
metadata: {name: t-1-bandwidth, namespace: mqttas}
spec:
  schedule: '@every 15s'
  concurrencyPolicy: Forbid
  historyLimit: 3
  type: NetworkChaos
  networkChaos:
    action: bandwidth
    mode: fixed-percent
    value: "50"
    selector: {labelSelectors: {app.kubernetes.io/name: mqttas-soak}}
    direction: to
    externalTargets: [mqtt.example.org, 10.1.2.3]
    duration: 4s
    bandwidth: {rate: 16kbps, limit: 16384, buffer: 10000}
`

func TestDecodeGood(t *testing.T) {
	objs, err := Decode(strings.NewReader("# a comment\n---\n" + goodChaos + "---\n" + goodSchedule + "---\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].Kind != KindNetworkChaos || objs[1].Kind != KindSchedule {
		t.Fatalf("decoded %+v", objs)
	}
	n := objs[0].Value.(*NetworkChaos)
	if n.Spec.Delay.Latency != "200ms" || n.Spec.Target.Selector.LabelSelectors["app.kubernetes.io/name"] != "mosquitto" {
		t.Errorf("decoded %+v", n.Spec)
	}
	s := objs[1].Value.(*Schedule)
	if s.Spec.NetworkChaos.Bandwidth.Limit != 16384 || s.Spec.HistoryLimit != 3 {
		t.Errorf("decoded %+v", s.Spec)
	}
}

// Each bad document is refused, with an error that says what is wrong.
func TestDecodeRefuses(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown field", strings.Replace(goodChaos, "duration: 3s", "duration: 3s\n  scheduler: {cron: '@every 1m'}", 1), `unknown field "spec.scheduler"`},
		{"misspelt setting", strings.Replace(goodChaos, "jitter:", "jiter:", 1), `unknown field "spec.delay.jiter"`},
		{"duplicate key", strings.Replace(goodChaos, "mode: all\n  selector", "mode: all\n  mode: one\n  selector", 1), `"mode" already set`},
		{"bad action", strings.Replace(goodChaos, "action: delay", "action: slow", 1), `"slow" is not one of`},
		{"bad mode", strings.Replace(goodChaos, "mode: all\n  selector", "mode: most\n  selector", 1), `"most" is not one of`},
		{"bad direction", strings.Replace(goodChaos, "direction: both", "direction: up", 1), `"up" is not one of`},
		{"bare number latency", strings.Replace(goodChaos, "latency: 200ms", "latency: \"200\"", 1), `"200" is not a duration`},
		{"percent over 100", strings.Replace(goodChaos, `correlation: "25"`, `correlation: "125"`, 1), `"125" is not a percentage`},
		{"number for a string", strings.Replace(goodChaos, `correlation: "25"`, `correlation: 25`, 1), `cannot unmarshal number`},
		{"settings of another action", strings.Replace(goodChaos, "delay: {", "loss: {loss: \"5\"}\n  delay: {", 1), `spec.loss: given for action "delay"`},
		{"action without its settings", strings.Replace(goodChaos, "action: delay", "action: loss", 1), "spec.loss: missing for action loss"},
		{"no duration", strings.Replace(goodChaos, "  duration: 3s\n", "", 1), "spec.duration: missing"},
		{"bad name", strings.Replace(goodChaos, "name: t-0-latency", "name: T_0", 1), "metadata.name"},
		{"wrong group", strings.Replace(goodChaos, "chaos-mesh.org/v1alpha1", "chaos-mesh.org/v1", 1), "not a kind of the fleet"},
		{"rate without unit", strings.Replace(goodSchedule, "rate: 16kbps", "rate: \"16\"", 1), `"16" is not a rate`},
		{"rate in bits", strings.Replace(goodSchedule, "rate: 16kbps", "rate: 128kbit", 1), `"128kbit" is not a rate`},
		{"rate in KB", strings.Replace(goodSchedule, "rate: 16kbps", "rate: 16KB", 1), `"16KB" is not a rate`},
		{"no buffer", strings.Replace(goodSchedule, ", buffer: 10000", "", 1), "bandwidth.buffer: missing"},
		{"external targets both ways", strings.Replace(goodSchedule, "direction: to", "direction: both", 1), "only in direction to"},
		{"bad external target", strings.Replace(goodSchedule, "10.1.2.3", "10.1.2.3:1883", 1), "neither a host name nor an IP"},
		{"percent mode without value", strings.Replace(goodSchedule, "    value: \"50\"\n", "", 1), "networkChaos.value"},
		{"bad cron", strings.Replace(goodSchedule, "'@every 15s'", "'every 15s'", 1), "spec.schedule"},
		{"bad every", strings.Replace(goodSchedule, "'@every 15s'", "'@every 15'", 1), "not a positive duration"},
		{"bad policy", strings.Replace(goodSchedule, "Forbid", "Never", 1), `"Never" is not one of`},
		{"other type", strings.Replace(goodSchedule, "type: NetworkChaos", "type: PodChaos", 1), "spec.type"},
		{"no spec of its type", goodSchedule[:strings.Index(goodSchedule, "  networkChaos:")], "spec.networkChaos: missing"},
		{"empty selector", strings.Replace(goodSchedule, "selector: {labelSelectors: {app.kubernetes.io/name: mqttas-soak}}", "selector: {}", 1), "every pod of the cluster"},
		{"k8s unknown field", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\nbinary: {}\nextra: 1\n", `unknown field "extra"`},
		{"k8s no name", "apiVersion: v1\nkind: Namespace\nmetadata: {}\n", "no metadata.name"},
		{"not a mapping", "- a\n- b\n", "document 0"},
		{"field name in another case", strings.Replace(goodChaos, "action: delay", "Action: delay", 1), `unknown field "spec.Action"`},
		{"bad yaml", "apiVersion: v1\nkind: [\n", "document 0"},
	} {
		_, err := Decode(strings.NewReader(tc.doc))
		if err == nil || !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(goodChaos))
	f.Add([]byte(goodSchedule))
	f.Add([]byte(goodChaos + "---\n" + goodSchedule))
	f.Add([]byte(goodWorkflow))
	f.Add([]byte("apiVersion: batch/v1\nkind: Job\nmetadata: {name: soak}\nspec: {completionMode: Indexed, completions: 4}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		objs, err := Decode(strings.NewReader(string(b)))
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("an error that is not ErrDecode: %v", err)
			}
			return
		}
		for _, o := range objs {
			if o.Name == "" || o.Kind == "" || o.Value == nil {
				t.Fatalf("decoded an object without kind or name: %+v", o)
			}
			if v, ok := o.Value.(interface{ Validate() error }); ok {
				if err := v.Validate(); err != nil {
					t.Fatalf("decoded an object that does not validate: %v", err)
				}
			}
		}
	})
}
