package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

func TestChoose(t *testing.T) {
	noDocker := fmt.Errorf("%w: dial unix /var/run/docker.sock: no such file", ErrDockerUnavailable)
	noImage := fmt.Errorf("%w: cannot build", ErrImageUnavailable)
	noMosquitto := fmt.Errorf("%w (looked on PATH)", ErrMosquittoNotFound)
	for _, tc := range []struct {
		name string
		d    detection
		want string
	}{
		{"everything", detection{}, KindContainer},
		{"no docker", detection{dockerErr: noDocker}, KindProcess},
		{"docker without image", detection{imageErr: noImage}, KindProcess},
		{"only docker", detection{mosquittoErr: noMosquitto}, KindContainer},
	} {
		got, err := choose(tc.d)
		if err != nil || got != tc.want {
			t.Errorf("%s: choose = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}

	_, err := choose(detection{dockerErr: noDocker, mosquittoErr: noMosquitto})
	for _, target := range []error{ErrNoBackend, ErrDockerUnavailable, ErrMosquittoNotFound} {
		if !errors.Is(err, target) {
			t.Errorf("choose with nothing = %v; want it to match %v", err, target)
		}
	}
	for _, want := range []string{"docker.sock", "looked on PATH", EnvBackend, EnvAddr} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestStartWithPortRetriesOnlyPickedPorts(t *testing.T) {
	opts := Options{}.withDefaults()
	var tried []int
	got, err := startWithPort(t.Context(), opts, func(port int) (int, error) {
		tried = append(tried, port)
		if len(tried) == 1 {
			return 0, fmt.Errorf("bind: %w", errPortInUse)
		}
		return port, nil
	})
	if err != nil || len(tried) != 2 || got != tried[1] {
		t.Fatalf("startWithPort = %d, %v after trying %v; want success on the second port", got, err, tried)
	}
	for _, p := range tried {
		if p < portLow || p > portHigh {
			t.Errorf("picked port %d outside %d-%d", p, portLow, portHigh)
		}
	}

	fixed, err := pickPort()
	if err != nil {
		t.Fatal(err)
	}
	opts.Port = fixed
	tried = nil
	_, err = startWithPort(t.Context(), opts, func(port int) (int, error) {
		tried = append(tried, port)
		return 0, fmt.Errorf("bind: %w", errPortInUse)
	})
	if !errors.Is(err, errPortInUse) || len(tried) != 1 || tried[0] != fixed {
		t.Fatalf("fixed port: err %v after trying %v; want one failed try on %d", err, tried, fixed)
	}
}

// clearEnv makes the selection tests independent of the caller's environment.
func clearEnv(t *testing.T) {
	t.Setenv(EnvBackend, "")
	t.Setenv(EnvAddr, "")
}

func TestSelectionByEnv(t *testing.T) {
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			requireBackend(t, kind)
			clearEnv(t)
			t.Setenv(EnvBackend, kind)
			if b := newTestBroker(t, "", Options{}); b.Kind() != kind {
				t.Errorf("%s=%s gave a %s broker", EnvBackend, kind, b.Kind())
			}
		})
	}
	t.Run("options override env", func(t *testing.T) {
		requireBackend(t, KindProcess)
		clearEnv(t)
		t.Setenv(EnvBackend, KindExternal) // would fail: no address
		if b := newTestBroker(t, KindProcess, Options{}); b.Kind() != KindProcess {
			t.Errorf("Options.Backend=process gave a %s broker", b.Kind())
		}
	})
	t.Run("unknown", func(t *testing.T) {
		clearEnv(t)
		t.Setenv(EnvBackend, "vm")
		_, err := New(t.Context(), Options{})
		if !errors.Is(err, ErrUnknownBackend) {
			t.Fatalf("New with %s=vm = %v, want ErrUnknownBackend", EnvBackend, err)
		}
		for _, want := range []string{`"vm"`, EnvBackend, KindContainer, KindProcess, KindExternal} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		}
	})
}

func TestAutomaticSelection(t *testing.T) {
	clearEnv(t)
	want := KindProcess
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	if cli, err := dockerClient(ctx, discardLogger()); err == nil {
		if _, _, err := planImage(ctx, cli, Options{}); err == nil {
			want = KindContainer
		}
		_ = cli.Close()
	}
	cancel()
	if b := newTestBroker(t, "", Options{}); b.Kind() != want {
		t.Errorf("automatic selection gave %s, want %s on this machine", b.Kind(), want)
	}
}

// With an image that is absent (and never pulled) and no mosquitto, nothing
// can run: the error says what is missing for each backend, quickly.
func TestNoBackendErrorNamesWhatIsMissing(t *testing.T) {
	clearEnv(t)
	start := time.Now()
	b, err := New(t.Context(), Options{Image: "mqttas/absent:never", Mosquitto: "/nonexistent/mosquitto"})
	if b != nil {
		t.Error("New returned a non-nil Broker along with an error")
	}
	if !errors.Is(err, ErrNoBackend) || !errors.Is(err, ErrMosquittoNotFound) {
		t.Fatalf("New = %v, want ErrNoBackend naming the missing mosquitto", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "/nonexistent/mosquitto") ||
		(!strings.Contains(msg, "docker engine unavailable") && !strings.Contains(msg, "mqttas/absent:never")) {
		t.Errorf("error %q does not say what is missing", msg)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("New took %v to fail; a pull attempt?", d)
	}
}

func TestContainerWithAbsentImageFailsFast(t *testing.T) {
	requireBackend(t, KindContainer)
	start := time.Now()
	b, err := New(t.Context(), Options{Backend: KindContainer, Image: "mqttas/absent:never"})
	if b != nil {
		t.Error("New returned a non-nil Broker along with an error")
	}
	if !errors.Is(err, ErrImageUnavailable) || !strings.Contains(err.Error(), "mqttas/absent:never") {
		t.Fatalf("New = %v, want ErrImageUnavailable naming the image", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("New took %v to fail; a pull attempt?", d)
	}
}

func TestExternal(t *testing.T) {
	requireBackend(t, KindProcess)
	real := newTestBroker(t, KindProcess, Options{})
	clearEnv(t)
	t.Setenv(EnvBackend, KindExternal)
	t.Setenv(EnvAddr, real.Addr())
	ctx := t.Context()

	b, err := New(ctx, Options{})
	if err != nil {
		t.Fatalf("New external: %v", err)
	}
	if b.Kind() != KindExternal || b.Addr() != real.Addr() {
		t.Errorf("got %s broker at %s, want external at %s", b.Kind(), b.Addr(), real.Addr())
	}
	for name, op := range map[string]func(context.Context) error{
		"Start": b.Start, "Stop": b.Stop, "Restart": b.Restart, "Kill": b.Kill, "Pause": b.Pause, "Unpause": b.Unpause,
	} {
		if err := op(ctx); !errors.Is(err, ErrUnsupported) || !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("external %s = %v, want ErrUnsupported", name, err)
		}
	}
	if _, err := b.Logs(ctx); !errors.Is(err, ErrUnsupported) {
		t.Errorf("external Logs = %v, want ErrUnsupported", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Errorf("external Close = %v", err)
	}
	// Closing the external handle must leave the real broker alone.
	if err := probeWithin(t, real.Addr(), 5*time.Second); err != nil {
		t.Errorf("the real broker stopped answering after the external Close: %v", err)
	}

	t.Setenv(EnvAddr, "")
	if _, err := New(ctx, Options{}); err == nil || !strings.Contains(err.Error(), EnvAddr) {
		t.Errorf("external without an address = %v, want an error naming %s", err, EnvAddr)
	}
	port, err := pickPort() // free, so nothing answers there
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), StartTimeout: 2 * time.Second}); err == nil {
		t.Error("external at a dead address succeeded")
	}
}

// BuildImage (the Go twin of build.sh) builds a working image offline.
func TestBuildImageRuns(t *testing.T) {
	requireBackend(t, KindContainer)
	requireBackend(t, KindProcess) // the image is made of the host's mosquitto
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	tag := "mqttas/mosquitto:test-" + runID()
	if err := BuildImage(ctx, tag, Options{Logger: testLogger(t)}); err != nil {
		t.Fatalf("BuildImage: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cli, err := dockerClient(ctx, discardLogger())
		if err != nil {
			t.Errorf("remove image %s: %v", tag, err)
			return
		}
		defer cli.Close()
		if _, err := cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{PruneChildren: true}); err != nil {
			t.Errorf("remove image %s: %v", tag, err)
		}
	})
	b := newTestBroker(t, KindContainer, Options{Image: tag})
	if err := probeWithin(t, b.Addr(), 5*time.Second); err != nil {
		t.Fatalf("Probe of a container from the built image: %v", err)
	}
}
