package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Recorded failing histories: soaks of deliberately broken clients (harness/soak's
// TestBrokenClientHistories made them and remakes them with -update), kept with the verdicts they
// checked to. Each must check to exactly that verdict again.
func TestRecordedHistories(t *testing.T) {
	cases := []struct {
		name                      string
		lost, unexpected, dupDels int
		attempted, delivered      int
	}{
		// Drops every 7th qos 1 publication while reporting success: 10 of 82 never sent, lost to the
		// observer and, for the persistent subscriber's neighbour, to it too.
		{name: "broken-drop7", lost: 15, attempted: 82, delivered: 72},
		// Sends every 11th under a sequence number never published (lost, and unexpected where it
		// arrives) and every other 5th twice.
		{name: "broken-dupcorrupt", lost: 9, unexpected: 12, dupDels: 32, attempted: 82, delivered: 76},
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(cases) {
		t.Fatalf("testdata holds %d histories, the table %d cases", len(files), len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", c.name+".history.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			res, err := CheckJSONL(f)
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid() || len(res.Lost) != c.lost || len(res.Unexpected) != c.unexpected ||
				res.DuplicateDeliveries != c.dupDels || res.Attempted != c.attempted || res.Delivered != c.delivered ||
				res.Acknowledged != c.attempted {
				t.Fatalf("verdict %s", res.Summary())
			}
			want, err := os.ReadFile(filepath.Join("testdata", c.name+".verdict.json"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(&res, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(append(got, '\n'), want) {
				t.Fatalf("the verdict differs from %s.verdict.json:\n%s", c.name, firstDiff(string(got), string(want)))
			}
		})
	}
}

// firstDiff shows where two renderings part.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n got %s\nwant %s", i+1, g[i], w[i])
		}
	}
	return "one is a prefix of the other"
}
