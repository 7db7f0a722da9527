// Package broker runs the Mosquitto broker that the fault-injection harness
// tests against, behind one interface with three backends:
//
//   - container: a Docker container started with testcontainers-go;
//   - process: a mosquitto child process on the host;
//   - external: a broker someone else runs (no lifecycle control).
//
// New picks the backend from Options.Backend, else the MQTTAS_BROKER
// environment variable, else the container backend when a Docker engine
// answers and an image is present or buildable, else the process backend.
//
// The container and process backends serve plain MQTT on a 127.0.0.1 address
// that stays the same across Stop/Start/Restart/Kill, so that proxies in front
// of the broker never need re-pointing.
//
// The container backend needs TESTCONTAINERS_RYUK_DISABLED=true when the Ryuk
// image cannot be pulled; set it before the first testcontainers call (the
// value is read once per process).
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// Backend kinds, as returned by Broker.Kind and accepted by Options.Backend
// and the MQTTAS_BROKER environment variable.
const (
	KindContainer = "container"
	KindProcess   = "process"
	KindExternal  = "external"
)

// Environment variables read by New.
const (
	// EnvBackend selects the backend: container, process or external.
	EnvBackend = "MQTTAS_BROKER"
	// EnvAddr is the host:port of the external broker.
	EnvAddr = "MQTTAS_BROKER_ADDR"
	// EnvImage names the container image to run instead of the default choice.
	EnvImage = "MQTTAS_BROKER_IMAGE"
)

// Broker is a running (or deliberately stopped) MQTT broker under test.
// Methods are safe for concurrent use; lifecycle calls are serialised.
type Broker interface {
	// Kind is KindContainer, KindProcess or KindExternal.
	Kind() string
	// Addr is "127.0.0.1:port" (for external: what it was given); it stays the
	// same across Stop, Start, Restart and Kill.
	Addr() string
	// Start starts a stopped or killed broker, resumes a paused one, and returns
	// once it answers an MQTT CONNECT. It is a no-op on a running broker.
	Start(ctx context.Context) error
	// Stop stops gracefully with SIGTERM, so mosquitto saves its persistence
	// database. It escalates to SIGKILL after Options.StopTimeout and then
	// reports an error. A no-op on a stopped broker.
	Stop(ctx context.Context) error
	// Restart is Stop followed by Start.
	Restart(ctx context.Context) error
	// Kill crashes the broker with SIGKILL: whatever autosave had not written
	// is lost. A no-op on a stopped broker.
	Kill(ctx context.Context) error
	// Pause freezes the broker: TCP connections are still accepted by the
	// kernel but nothing answers, not even a CONNACK. It fails with
	// ErrNotRunning on a stopped broker.
	Pause(ctx context.Context) error
	// Unpause resumes a paused broker; a no-op otherwise.
	Unpause(ctx context.Context) error
	// Logs returns the broker's output since it was created, across restarts
	// (the process backend keeps the last 4 MiB).
	Logs(ctx context.Context) (string, error)
	// Close terminates the broker and removes everything it created
	// (container, processes, temporary files). Idempotent.
	Close(ctx context.Context) error
}

// Errors, usable with errors.Is.
var (
	// ErrUnsupported is returned by operations a backend cannot perform, e.g.
	// Stop on an external broker. It also matches errors.ErrUnsupported.
	ErrUnsupported = fmt.Errorf("broker: operation not supported by this backend: %w", errors.ErrUnsupported)
	// ErrUnknownBackend: Options.Backend or MQTTAS_BROKER holds an unknown value.
	ErrUnknownBackend = errors.New("broker: unknown backend")
	// ErrNoBackend: neither the container nor the process backend can run here.
	ErrNoBackend = errors.New("broker: no backend can run")
	// ErrDockerUnavailable: no Docker engine answered.
	ErrDockerUnavailable = errors.New("broker: docker engine unavailable")
	// ErrImageUnavailable: the container image is not present and cannot be built.
	ErrImageUnavailable = errors.New("broker: container image unavailable")
	// ErrMosquittoNotFound: no mosquitto binary on PATH or in /usr/sbin.
	ErrMosquittoNotFound = errors.New("broker: mosquitto binary not found")
	// ErrNotRunning: the operation needs a running broker.
	ErrNotRunning = errors.New("broker: not running")
	// ErrClosed: the broker was closed.
	ErrClosed = errors.New("broker: closed")
)

// Options configure New. The zero value is usable: a persistent broker on a
// free port, backend chosen automatically.
type Options struct {
	// Backend forces a backend (KindContainer, KindProcess, KindExternal) and
	// takes precedence over MQTTAS_BROKER. Empty: MQTTAS_BROKER, else automatic.
	Backend string
	// Addr is the external broker's host:port; overrides MQTTAS_BROKER_ADDR.
	Addr string
	// Port is the host port on 127.0.0.1; 0 picks a free one below the
	// ephemeral range (so nothing else grabs it while the broker restarts).
	Port int
	// Config lines are appended to the generated mosquitto.conf, so they win
	// over the defaults for numeric and boolean settings, e.g.
	// "max_queued_messages 0" or "allow_anonymous false". The text ${CONFIG_DIR}
	// is replaced by the directory holding mosquitto.conf and Files.
	Config []string
	// Files are extra files (base name → content) placed next to
	// mosquitto.conf, e.g. a password_file or acl_file.
	Files map[string][]byte
	// NoPersistence turns persistence off (it is on by default).
	NoPersistence bool
	// ProbeTLS makes the readiness probe speak TLS with this configuration: set
	// it when Config puts certfile/keyfile on the listener. nil probes plain MQTT.
	ProbeTLS *tls.Config
	// Image is the container image; overrides MQTTAS_BROKER_IMAGE. Default:
	// eclipse-mosquitto:2 if present locally, else LocalImage (built from the
	// host's mosquitto when missing). Images are never pulled.
	Image string
	// Mosquitto is the mosquitto binary for the process backend and for
	// building LocalImage. Default: PATH, then /usr/sbin/mosquitto.
	Mosquitto string
	// Labels are added to the container (container backend only).
	Labels map[string]string
	// StartTimeout bounds each start until the first CONNACK. Default 30 s.
	StartTimeout time.Duration
	// StopTimeout is the SIGTERM grace period before SIGKILL. Default 10 s.
	StopTimeout time.Duration
	// Logger receives debug output. Default: discard.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// New starts a broker with the backend chosen as described in the package
// documentation and returns once it answers MQTT. The caller must Close it.
// For the external backend it only checks that the broker answers.
func New(ctx context.Context, opts Options) (Broker, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	kind, source := opts.Backend, "Options.Backend"
	if kind == "" {
		kind, source = os.Getenv(EnvBackend), EnvBackend
	}
	switch kind {
	case KindExternal:
		return asBroker(newExternal(ctx, opts))
	case KindProcess:
		return asBroker(newProcess(ctx, opts))
	case KindContainer:
		return asBroker(newContainer(ctx, opts, nil))
	case "":
		return newAuto(ctx, opts)
	default:
		return nil, fmt.Errorf("%w %q in %s: want %s, %s or %s",
			ErrUnknownBackend, kind, source, KindContainer, KindProcess, KindExternal)
	}
}

// detection is what newAuto found out about this machine.
type detection struct {
	dockerErr    error // nil: an engine answered
	imageErr     error // nil: an image is present or buildable
	mosquittoErr error // nil: a mosquitto binary exists
}

// choose applies the automatic selection rule to what detection found.
func choose(d detection) (string, error) {
	if d.dockerErr == nil && d.imageErr == nil {
		return KindContainer, nil
	}
	if d.mosquittoErr == nil {
		return KindProcess, nil
	}
	containerWhy := d.dockerErr
	if containerWhy == nil {
		containerWhy = d.imageErr
	}
	return "", fmt.Errorf("%w: container backend: %w; process backend: %w "+
		"(install Docker or mosquitto, or set %s=%s and %s=host:port to use a running broker)",
		ErrNoBackend, containerWhy, d.mosquittoErr, EnvBackend, KindExternal, EnvAddr)
}

func newAuto(ctx context.Context, opts Options) (Broker, error) {
	var d detection
	cli, err := dockerClient(ctx, opts.Logger)
	d.dockerErr = err
	if err == nil {
		_, _, d.imageErr = planImage(ctx, cli, opts)
	}
	_, d.mosquittoErr = findMosquitto(opts.Mosquitto)
	kind, err := choose(d)
	if kind != KindContainer && cli != nil {
		_ = cli.Close()
	}
	if err != nil {
		return nil, err
	}
	opts.Logger.Debug("broker backend chosen", "kind", kind,
		"docker", errString(d.dockerErr), "image", errString(d.imageErr), "mosquitto", errString(d.mosquittoErr))
	if kind == KindContainer {
		return asBroker(newContainer(ctx, opts, cli))
	}
	return asBroker(newProcess(ctx, opts))
}

// asBroker keeps a failed constructor's nil pointer out of the interface, so
// that callers may test the Broker against nil.
func asBroker[B Broker](b B, err error) (Broker, error) {
	if err != nil {
		return nil, err
	}
	return b, nil
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// startWithPort runs start on opts.Port, or on freshly picked ports when
// opts.Port is 0, retrying when another process took the port between the
// check and the bind.
func startWithPort[B any](ctx context.Context, opts Options, start func(port int) (B, error)) (B, error) {
	var zero B
	const attempts = 3
	for i := 1; ; i++ {
		port := opts.Port
		if port == 0 {
			p, err := pickPort()
			if err != nil {
				return zero, err
			}
			port = p
		} else if !portFree(port) {
			return zero, fmt.Errorf("broker: port %d on 127.0.0.1 is in use", port)
		}
		b, err := start(port)
		if err == nil {
			return b, nil
		}
		if opts.Port != 0 || !errors.Is(err, errPortInUse) || i == attempts || ctx.Err() != nil {
			return zero, err
		}
		opts.Logger.Debug("broker port taken during start, picking another", "port", port, "err", err)
	}
}
