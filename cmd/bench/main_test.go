package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}, {"bench", "compare"}, {"-nope", "bench"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 1 {
			t.Errorf("run(%q) = %d, want 1", args, code)
		}
		if !strings.Contains(errb.String(), "usage: bench") && !strings.Contains(errb.String(), "flag provided but not defined") {
			t.Errorf("run(%q) printed no usage: %q", args, errb.String())
		}
	}
}

func TestSplit(t *testing.T) {
	if got := split(" mqttas, ,paho "); len(got) != 2 || got[0] != "mqttas" || got[1] != "paho" {
		t.Errorf("split = %q", got)
	}
}

// readme fails with a message naming the file when the results or the README's markers are missing.
func TestReadmeErrors(t *testing.T) {
	dir := t.TempDir()
	readme := filepath.Join(dir, "README.md")
	if err := os.WriteFile(readme, []byte("# no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-out", dir, "-readme", readme, "readme"}, &out, &errb); code != 1 {
		t.Errorf("readme without results = %d, want 1", code)
	}
	if !strings.Contains(errb.String(), filepath.Join(dir, "bench.json")) {
		t.Errorf("the error does not name the missing results file: %q", errb.String())
	}
}

func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"-rounds", "1", "-scenarios", "reset,down", "-out", "my dir", "it's", "compare"})
	want := `go run ./cmd/bench -rounds 1 -scenarios reset,down -out 'my dir' 'it'\''s' compare`
	if got != want {
		t.Errorf("commandLine = %s\nwant %s", got, want)
	}
}

// -trace and -cpuprofile write their files from start to stop; a file that cannot be created is an error.
func TestProfiles(t *testing.T) {
	dir := t.TempDir()
	for name, p := range map[string]profile{"trace": execTrace, "cpu": cpuProfile} {
		file := filepath.Join(dir, name)
		stop, err := p.record(file)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		stop()
		b, err := os.ReadFile(file)
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %d bytes, %v", name, len(b), err)
		}
		if name == "trace" && !strings.HasPrefix(string(b), "go 1.") {
			t.Errorf("the trace does not start with a trace header: %q", b[:min(len(b), 16)])
		}
	}
	if _, err := execTrace.record(filepath.Join(dir, "missing", "trace")); err == nil {
		t.Error("a trace into a missing directory succeeded")
	}
}
