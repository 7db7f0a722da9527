package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// labelRun marks every container this test binary creates, so TestMain can
// prove that none outlives the tests.
const labelRun = "io.mqttas.broker.test-run"

func runID() string { return "pid-" + strconv.Itoa(os.Getpid()) }

func TestMain(m *testing.M) {
	// Ryuk cannot be pulled here; this must precede the first testcontainers
	// call. The tests clean up after themselves instead.
	if err := os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := m.Run()
	if err := checkNoContainersLeft(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		code = 1
	}
	os.Exit(code)
}

// checkNoContainersLeft fails if a container labelled with this run survives,
// and removes it so that one failure does not poison the next run.
func checkNoContainersLeft() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := dockerClient(ctx, discardLogger())
	if err != nil {
		return nil // no engine: no containers
	}
	defer cli.Close()
	left, err := cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", labelRun+"="+runID()),
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range left.Items {
		errs = append(errs, fmt.Errorf("container %s (%v) left behind", c.ID[:12], c.Names))
		_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	}
	return errors.Join(errs...)
}

// newTestBroker starts a broker of the given kind ("": chosen by New) and, at
// cleanup, closes it and checks that it left nothing behind.
func newTestBroker(t *testing.T, kind string, opts Options) Broker {
	t.Helper()
	if kind != "" {
		opts.Backend = kind
	}
	opts.Labels = map[string]string{labelRun: runID()}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	b, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("New(%s): %v", kind, err)
	}
	t.Cleanup(func() { closeAndCheckGone(t, b) })
	return b
}

// closeAndCheckGone closes b and verifies that its container, or its process
// and temporary directory, no longer exist.
func closeAndCheckGone(t *testing.T, b Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Errorf("second Close: %v, want nil (idempotent)", err)
	}
	switch b := b.(type) {
	case *dockerBroker:
		left, err := b.docker.ContainerList(ctx, client.ContainerListOptions{
			All:     true,
			Filters: make(client.Filters).Add("label", "org.testcontainers=true").Add("label", LabelID+"="+b.id),
		})
		if err != nil {
			t.Errorf("list containers: %v", err)
		} else if len(left.Items) > 0 {
			t.Errorf("container %s still exists after Close", left.Items[0].ID)
		}
	case *process:
		if b.run != nil {
			if err := syscall.Kill(b.run.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("mosquitto pid %d still exists after Close (kill -0: %v)", b.run.cmd.Process.Pid, err)
			}
		}
		if _, err := os.Stat(b.dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("temporary directory %s still exists after Close (%v)", b.dir, err)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testLogger sends debug output to the test log, shown with -v or on failure.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
