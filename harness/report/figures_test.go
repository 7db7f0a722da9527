package report

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestReadFigures(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	want := []Figures{{Report: "r1", Seed: 10, Verdict: "PASS", Messages: 1000, Acknowledged: 1000, Deliveries: 3000,
		PeakRSSBytes: 1 << 27, HistoryFile: HistoryFile, HistoryBytes: 85_000, BytesPerMessage: 85}}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadFigures(write("ok.json", string(b)))
	if err != nil || len(got) != 1 || got[0].Report != "r1" || got[0].Messages != 1000 || got[0].HistoryBytes != 85_000 {
		t.Fatalf("ReadFigures = %+v, %v; want what was written", got, err)
	}
	for name, body := range map[string]string{
		"broken.json":  `[{"report": "r1", "messages": 10`,
		"object.json":  `{"report": "r1"}`,
		"empty.json":   `[]`,
		"nothing.json": `[{"report": "r1", "messages": 0}]`,
	} {
		if _, err := ReadFigures(write(name, body)); !errors.Is(err, ErrFigures) {
			t.Errorf("%s: %v, want ErrFigures", name, err)
		}
	}
	if _, err := ReadFigures(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v, want os.ErrNotExist", err)
	}
}
