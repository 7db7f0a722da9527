package k8s

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"github.com/mqttas/mqttas-go/harness/schedule"
)

// Files of a rendering written as a Kustomize overlay.
const (
	KustomizationFile = "kustomization.yaml"
	ChaosFile         = "chaos.yaml"
	TraceFile         = "trace.yaml"
	JobPatchFile      = "job-trace.yaml"
)

// Names in deploy/ that a rendering refers to.
const (
	// JobName is the soak's Indexed Job.
	JobName = "soak"
	// SettingsConfigMap holds the soak's environment (SOAK_DURATION, SOAK_CLIENTS, ...).
	SettingsConfigMap = "soak-settings"
	// TraceConfigMap holds the in-pod trace, mounted at TraceMount.
	TraceConfigMap = "soak-trace"
	TraceMount     = "/etc/mqttas/trace"
)

// Files returns the overlay's files by name: the kustomization (on top of base, a path relative to the
// overlay's directory), the Chaos Mesh objects (left out when there are none), the in-pod trace and the
// patch that hands it to the soak Job.
func (r *Rendering) Files(base string) (map[string][]byte, error) {
	if base == "" {
		return nil, errors.New("no base overlay to render on top of")
	}
	trace, err := schedule.Marshal(r.InPod)
	if err != nil {
		return nil, fmt.Errorf("the in-pod trace: %w", err)
	}
	files := map[string][]byte{TraceFile: trace}
	var resources []string
	if len(r.Chaos) > 0 {
		var b bytes.Buffer
		for i, obj := range r.Chaos {
			y, err := yaml.Marshal(obj)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				b.WriteString("---\n")
			}
			b.Write(y)
		}
		files[ChaosFile] = b.Bytes()
		resources = append(resources, ChaosFile)
	}
	kust := map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"namespace":  r.Namespace,
		// bases, not resources: kustomize 2.0 (Debian's kubectl) reads directories only there.
		"bases": []string{base},
		// The merge Job (deploy/merge) finds the settings by name, so no suffix.
		"generatorOptions": map[string]any{"disableNameSuffixHash": true},
		"configMapGenerator": []any{
			map[string]any{"name": TraceConfigMap, "files": []string{TraceFile}},
			map[string]any{"name": SettingsConfigMap, "behavior": "merge",
				"literals": []string{"SOAK_DURATION=" + r.Duration.String()}},
		},
		"patchesJson6902": []any{map[string]any{
			"target": map[string]any{"group": "batch", "version": "v1", "kind": "Job", "name": JobName},
			"path":   JobPatchFile,
		}},
	}
	if len(resources) > 0 {
		kust["resources"] = resources
	}
	if files[KustomizationFile], err = yaml.Marshal(kust); err != nil {
		return nil, err
	}
	patch := []any{
		map[string]any{"op": "add", "path": "/spec/template/spec/containers/0/args/-",
			"value": "-trace=" + TraceMount + "/" + TraceFile},
		map[string]any{"op": "add", "path": "/spec/template/spec/volumes/-",
			"value": map[string]any{"name": "trace", "configMap": map[string]any{"name": TraceConfigMap}}},
		map[string]any{"op": "add", "path": "/spec/template/spec/containers/0/volumeMounts/-",
			"value": map[string]any{"name": "trace", "mountPath": TraceMount, "readOnly": true}},
	}
	if files[JobPatchFile], err = yaml.Marshal(patch); err != nil {
		return nil, err
	}
	return files, nil
}

// Write writes the overlay's files (Files) into dir, created if need be, with base given relative to the
// working directory or absolute.
func (r *Rendering) Write(dir, base string) error {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	absBase, err := filepath.Abs(base)
	if err != nil {
		return err
	}
	if st, err := os.Stat(filepath.Join(absBase, KustomizationFile)); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%w: the base %s has no %s", ErrTrace, base, KustomizationFile)
	}
	rel, err := filepath.Rel(absDir, absBase)
	if err != nil {
		return err
	}
	files, err := r.Files(filepath.ToSlash(rel))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// A chaos.yaml left from an earlier rendering would not be listed, but would mislead: remove it.
	if _, ok := files[ChaosFile]; !ok {
		if err := os.Remove(filepath.Join(dir, ChaosFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	for _, name := range []string{TraceFile, ChaosFile, JobPatchFile, KustomizationFile} {
		if b, ok := files[name]; ok {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}
