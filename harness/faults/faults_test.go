package faults

import (
	"errors"
	"strings"
	"testing"
)

func TestParseKnownFaults(t *testing.T) {
	for _, name := range Names() {
		f, err := Parse(name, nil)
		if err != nil {
			t.Fatalf("%s with defaults: %v", name, err)
		}
		if f.Name != name {
			t.Fatalf("Parse(%q) made %q", name, f.Name)
		}
	}
	f, err := Parse("latency", map[string]string{"latency": "150ms", "jitter": "20ms"})
	if err != nil || f.String() != "latency(jitter=20ms, latency=150ms)" {
		t.Fatalf("got %v, %v", f, err)
	}
	if !Reset().OneShot() || Blackhole().OneShot() {
		t.Fatal("reset is one-shot, blackhole is not")
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	_, err := Parse("latency", map[string]string{"latency": "soon"})
	var pe *ParamError
	if !errors.As(err, &pe) || pe.Param != "latency" || !strings.Contains(err.Error(), `"soon"`) {
		t.Fatalf("got %v", err)
	}
	_, err = Parse("reset", map[string]string{"delay": "1s"})
	if !errors.As(err, &pe) || pe.Param != "delay" {
		t.Fatalf("unknown parameter: got %v", err)
	}
	_, err = Parse("bandwidth", map[string]string{"rate": "0"})
	if !errors.As(err, &pe) || pe.Param != "rate" {
		t.Fatalf("rate 0 stalls toxiproxy forever and must be refused: got %v", err)
	}
	if _, err = Parse("earthquake", nil); !errors.Is(err, ErrUnknown) {
		t.Fatalf("got %v", err)
	}
}
