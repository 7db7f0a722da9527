package k8s

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scaleResults is the part of bench/results/scale.json (make scale) that docs/scale.md quotes.
type scaleResults struct {
	Command   string `json:"command"`
	PerClient struct {
		RSSKiB      float64 `json:"rss_kib"`
		CPUmsPerS   float64 `json:"cpu_ms_per_s"`
		FixedRSSKiB float64 `json:"fixed_rss_kib"`
	} `json:"per_client"`
	BrokerUs     float64 `json:"broker_cpu_us_per_message"`
	MergeUs      float64 `json:"merge_cpu_us_per_event"`
	MergeBytes   float64 `json:"merge_rss_bytes_per_event"`
	MergeKiB     float64 `json:"merge_rss_kib_per_client"`
	MergeFixed   float64 `json:"merge_fixed_rss_kib"`
	HistoryBytes float64 `json:"history_bytes_per_event"`
	Deliveries   float64 `json:"deliveries_per_publication"`
	Plan         struct {
		Pods         int     `json:"pods"`
		PodMemoryMiB int     `json:"pod_memory_mib"`
		PodCPU       float64 `json:"pod_cpu_cores"`
		BrokerCores  float64 `json:"broker_cores"`
		Runs         []struct {
			MergeCPU    int     `json:"merge_cpu_s"`
			MergeMemory float64 `json:"merge_memory_gb"`
			Histories   float64 `json:"histories_gb"`
		} `json:"runs"`
	} `json:"plan"`
}

// thousands writes n with a comma every three digits, as docs/scale.md does.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// docs/scale.md quotes the committed results of make scale: re-running it means updating the page.
func TestScaleDocQuotesTheResults(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "bench", "results", "scale.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r scaleResults
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "scale.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Plan.Runs) != 2 {
		t.Fatalf("scale.json has %d planned runs, want 2 (1 and 10 minutes)", len(r.Plan.Runs))
	}
	for _, want := range []string{
		"make scale",
		fmt.Sprintf("| %.0f KiB |", r.PerClient.RSSKiB),
		fmt.Sprintf("| %.1f MiB |", r.PerClient.FixedRSSKiB/1024),
		fmt.Sprintf("| %.2f ms per second", r.PerClient.CPUmsPerS),
		fmt.Sprintf("| %.2f |", r.Deliveries),
		fmt.Sprintf("| %.1f µs |", r.BrokerUs),
		fmt.Sprintf("| %.1f µs |", r.MergeUs),
		fmt.Sprintf("| %s bytes |", thousands(int(r.MergeBytes+0.5))),
		fmt.Sprintf("| %.1f KiB |", r.MergeKiB),
		fmt.Sprintf("| %.1f MiB |", r.MergeFixed/1024),
		fmt.Sprintf("| %.1f bytes |", r.HistoryBytes),
		fmt.Sprintf("**%d MiB**", r.Plan.PodMemoryMiB),
		fmt.Sprintf("**%.2f core**", r.Plan.PodCPU),
		fmt.Sprintf("**Pods: %d**", r.Plan.Pods),
		fmt.Sprintf("**%.1f cores**", r.Plan.BrokerCores),
		fmt.Sprintf("| %d s ", r.Plan.Runs[0].MergeCPU), fmt.Sprintf("| %.1f GB |", r.Plan.Runs[0].MergeMemory),
		fmt.Sprintf("| %.2f GB |", r.Plan.Runs[0].Histories),
		fmt.Sprintf("| %s s ", thousands(r.Plan.Runs[1].MergeCPU)), fmt.Sprintf("| %.0f GB |", r.Plan.Runs[1].MergeMemory),
		fmt.Sprintf("| %.1f GB |", r.Plan.Runs[1].Histories),
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/scale.md does not quote %q from bench/results/scale.json (%s)", want, r.Command)
		}
	}
}
