package k8s

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Object is one decoded object of a manifest stream: its kind, name and typed value (a pointer to a
// k8s.io/api type, or to this package's NetworkChaos or Schedule).
type Object struct {
	APIVersion, Kind, Name string
	Value                  any
}

// ErrDecode is wrapped by Decode's errors.
var ErrDecode = errors.New("cannot decode the manifests")

// MaxDocuments bounds the documents Decode reads from one stream.
const MaxDocuments = 10_000

// kinds are the objects a fleet's manifests may hold, each with its type.
var kinds = map[string]func() any{
	"v1/Namespace":                           func() any { return new(corev1.Namespace) },
	"v1/ConfigMap":                           func() any { return new(corev1.ConfigMap) },
	"v1/Service":                             func() any { return new(corev1.Service) },
	"v1/PersistentVolumeClaim":               func() any { return new(corev1.PersistentVolumeClaim) },
	"apps/v1/Deployment":                     func() any { return new(appsv1.Deployment) },
	"batch/v1/Job":                           func() any { return new(batchv1.Job) },
	ChaosAPIVersion + "/" + KindNetworkChaos: func() any { return new(NetworkChaos) },
	ChaosAPIVersion + "/" + KindSchedule:     func() any { return new(Schedule) },
	ChaosAPIVersion + "/" + KindWorkflow:     func() any { return new(Workflow) },
}

// Decode reads a stream of YAML documents (what kubectl kustomize prints, or a rendering's files)
// strictly: each document must be an object of a kind the fleet uses, with no field its type lacks and
// no key given twice, and a Chaos Mesh object must pass its Validate. Empty documents are skipped.
func Decode(r io.Reader) ([]Object, error) {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var out []Object
	for n := 0; ; n++ {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("%w: document %d: %w", ErrDecode, n, err)
		}
		if n >= MaxDocuments {
			return out, fmt.Errorf("%w: more than %d documents", ErrDecode, MaxDocuments)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, err := decodeOne(doc)
		if err != nil {
			return out, fmt.Errorf("%w: document %d: %w", ErrDecode, n, err)
		}
		out = append(out, obj)
	}
}

func decodeOne(doc []byte) (Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return Object{}, err
	}
	newValue, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return Object{}, fmt.Errorf("apiVersion %q kind %q is not a kind of the fleet's manifests", tm.APIVersion, tm.Kind)
	}
	// As the API server reads what kubectl sends: YAML to JSON with no regard for the target's types (a
	// number is a number, not the string a field wants), then JSON with field names matched by case, no
	// unknown field and no field twice.
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return Object{}, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	v := newValue()
	strict, err := kjson.UnmarshalStrict(j, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err == nil {
		err = errors.Join(strict...)
	}
	if err != nil {
		return Object{}, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	name := v.(metav1.Object).GetName()
	if name == "" {
		return Object{}, fmt.Errorf("%s: no metadata.name", tm.Kind)
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return Object{}, err
		}
	}
	return Object{APIVersion: tm.APIVersion, Kind: tm.Kind, Name: name, Value: v}, nil
}

// stripComments drops the comment lines of a document, to tell an empty one from an object.
func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for line := range bytes.Lines(doc) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			b.Write(line)
		}
	}
	return b.Bytes()
}

// Build renders the Kustomize directory dir with kubectl (kubectl kustomize, found on PATH) and decodes
// every object strictly (Decode). kubectl's warnings (deprecated fields) are not errors.
func Build(ctx context.Context, dir string) ([]Object, error) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: kubectl is not installed (make deps installs it): %w", dir, err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %w: %s", dir, err, bytes.TrimSpace(stderr.Bytes()))
	}
	objs, err := Decode(&stdout)
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %w", dir, err)
	}
	return objs, nil
}
