package main

import (
	"bytes"
	"context"
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
