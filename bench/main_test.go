package bench

import (
	"fmt"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// The idle measurement re-runs this test binary as its child process.
	if ran, err := IdleChildMain(); ran {
		if err != nil {
			fmt.Fprintln(os.Stderr, "idle child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
