package broker

import (
	"fmt"
	"strings"
	"testing"
)

func TestTailBufferKeepsWholeTrailingLines(t *testing.T) {
	tb := newTailBuffer(64)
	for i := range 20 {
		fmt.Fprintf(tb, "line %02d\n", i)
	}
	got := tb.String()
	const marker = "[earlier output dropped]\n"
	if !strings.HasPrefix(got, marker) {
		t.Fatalf("output %q lacks the drop marker", got)
	}
	body := strings.TrimPrefix(got, marker)
	if len(body) > 64 || !strings.HasPrefix(body, "line ") || !strings.HasSuffix(body, "line 19\n") {
		t.Fatalf("kept %q: want at most 64 bytes of whole lines ending with line 19", body)
	}
}

func TestTailBufferSmallOutputUntouched(t *testing.T) {
	tb := newTailBuffer(64)
	fmt.Fprint(tb, "a\nb\n")
	if got := tb.String(); got != "a\nb\n" {
		t.Fatalf("String() = %q", got)
	}
}

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"", 3, ""},
	} {
		if got := lastLines(tc.in, tc.n); got != tc.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
