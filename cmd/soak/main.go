// Command soak runs the mqttas client (or paho, for comparison) through a long, seeded fault schedule
// against a real Mosquitto broker, or replays a recorded trace, and proves with the delivery ledger that
// nothing acknowledged was lost:
//
//	go run ./cmd/soak                                  # 2 minutes, 20 clients, random faults
//	SOAK_SEED=42 SOAK_DURATION=10m go run ./cmd/soak   # the same schedule again, longer
//	go run ./cmd/soak -trace traces/ap-reboot.yaml     # replay a field trace
//	go run ./cmd/soak -record seen.yaml                # also write the outages seen as a trace
//	go run ./cmd/soak check reports/<run>/history.jsonl.gz # check a saved history again
//
// The run itself is harness/soak's (see its package comment); this command parses the flags and the
// environment, prints the plan, a progress line and the verdict, and maps the result to an exit code.
// The report goes to -out. Run with -h for the flags and exit codes.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Ryuk (testcontainers' reaper) cannot be pulled offline; the harness removes what it starts. The value
	// is read once, at the first testcontainers call, so it is set before anything else.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "\nsoak: interrupted: healing, draining and writing the report (again to abandon)")
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "soak: interrupted again: exiting now; `make clean-containers` removes a broker left behind")
		os.Exit(exitInterrupted)
	}()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	cancel()
	os.Exit(code)
}
