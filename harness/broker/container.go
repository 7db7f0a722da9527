package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/wait"
)

// LabelID is the container label holding a broker's unique id, for finding
// (and cleaning up) exactly the containers one broker created.
const LabelID = "io.mqttas.broker.id"

// closeTimeout bounds Close, which also runs with an already cancelled ctx.
const closeTimeout = 30 * time.Second

// mqttPort is the broker's port inside the container.
const mqttPort = "1883/tcp"

// dockerBroker runs mosquitto in a container with its port pinned to
// 127.0.0.1:<port>, so the address survives restarts. It creates no network:
// the default bridge suffices, as clients come in through the published port.
type dockerBroker struct {
	opts   Options
	log    *slog.Logger
	docker *testcontainers.DockerClient
	image  string
	addr   string
	id     string // value of LabelID

	life lifecycle // serialises lifecycle operations
	ctr  *testcontainers.DockerContainer
}

// newContainer starts a container broker. cli may be nil; it is owned by the
// broker afterwards (closed on failure or Close).
func newContainer(ctx context.Context, opts Options, cli *testcontainers.DockerClient) (_ *dockerBroker, err error) {
	if cli == nil {
		if cli, err = dockerClient(ctx, opts.Logger); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			_ = cli.Close()
		}
	}()
	image, mustBuild, err := planImage(ctx, cli, opts)
	if err != nil {
		return nil, err
	}
	if mustBuild {
		if err := buildImage(ctx, cli, image, opts); err != nil {
			return nil, err
		}
	}
	return startWithPort(ctx, opts, func(port int) (*dockerBroker, error) {
		return runContainer(ctx, cli, image, port, opts)
	})
}

func runContainer(ctx context.Context, cli *testcontainers.DockerClient, image string, port int, opts Options) (*dockerBroker, error) {
	var raw [6]byte
	_, _ = rand.Read(raw[:])
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	b := &dockerBroker{
		opts:   opts,
		docker: cli,
		image:  image,
		addr:   addr,
		id:     hex.EncodeToString(raw[:]),
		life:   lifecycle{addr: addr},
	}
	b.log = opts.Logger.With("broker", KindContainer, "addr", addr, "id", b.id)

	conf := renderConfig(confParams{listener: "1883", dataDir: containerDataDir, confDir: containerConfDir}, opts)
	files := []testcontainers.ContainerFile{{
		Reader: strings.NewReader(conf), ContainerFilePath: containerConfPath, FileMode: 0o644,
	}}
	for name, content := range opts.Files {
		files = append(files, testcontainers.ContainerFile{
			Reader: bytes.NewReader(content), ContainerFilePath: path.Join(containerConfDir, name), FileMode: 0o644,
		})
	}
	labels := maps.Clone(opts.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelID] = b.id

	ctr, err := testcontainers.Run(ctx, image,
		testcontainers.WithLogger(tcLogger{b.log}),
		testcontainers.WithExposedPorts(mqttPort),
		testcontainers.WithFiles(files...),
		testcontainers.WithLabels(labels),
		// Pinned, not random: Docker hands out a new random port on every start.
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{network.MustParsePort(mqttPort): {{
				HostIP: netip.AddrFrom4([4]byte{127, 0, 0, 1}), HostPort: strconv.Itoa(port),
			}}}
		}),
		testcontainers.WithWaitStrategyAndDeadline(opts.StartTimeout, mqttReady{addr: addr, tls: opts.ProbeTLS}),
	)
	if err != nil {
		if ctr != nil {
			_ = ctr.Terminate(context.WithoutCancel(ctx), testcontainers.StopTimeout(0))
		}
		err = fmt.Errorf("broker: run container %s on %s: %w", image, addr, err)
		if msg := err.Error(); strings.Contains(msg, "port is already allocated") ||
			strings.Contains(msg, "address already in use") {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return nil, err
	}
	b.ctr = ctr
	b.log.Debug("container started", "image", image, "container", ctr.GetContainerID())
	return b, nil
}

// mqttReady is a wait.Strategy that is satisfied by a CONNACK on the pinned
// host port. A port check alone would be fooled by docker-proxy, which accepts
// before mosquitto listens; a log check would match the previous run's line.
type mqttReady struct {
	addr string
	tls  *tls.Config // nil: plain MQTT
}

func (s mqttReady) String() string { return "MQTT CONNACK from " + s.addr }

func (s mqttReady) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := probe(pctx, s.addr, s.tls)
		cancel()
		if answers(err) {
			return nil
		}
		if st, serr := target.State(ctx); serr == nil && !st.Running {
			return fmt.Errorf("mosquitto exited with code %d during start-up; its last output:\n%s",
				st.ExitCode, logTail(ctx, target))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no CONNACK from %s: %w (last probe: %v)", s.addr, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func logTail(ctx context.Context, target wait.StrategyTarget) string {
	rc, err := target.Logs(ctx)
	if err != nil {
		return "(logs unavailable: " + err.Error() + ")"
	}
	defer rc.Close()
	out, _ := io.ReadAll(io.LimitReader(rc, maxProcessLog))
	return lastLines(string(out), 10)
}

// tcLogger sends testcontainers' messages to slog at debug level.
type tcLogger struct{ l *slog.Logger }

var _ tclog.Logger = tcLogger{}

func (t tcLogger) Printf(format string, v ...any) {
	if t.l.Enabled(context.Background(), slog.LevelDebug) {
		t.l.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "testcontainers")
	}
}

func (b *dockerBroker) Kind() string { return KindContainer }
func (b *dockerBroker) Addr() string { return b.addr }

func (b *dockerBroker) state(ctx context.Context) (*container.State, error) {
	st, err := b.ctr.State(ctx)
	if err != nil {
		return nil, fmt.Errorf("broker: inspect container: %w", err)
	}
	return st, nil
}

func (b *dockerBroker) Start(ctx context.Context) error {
	return b.life.do("start", func() error { return b.startLocked(ctx) })
}

func (b *dockerBroker) startLocked(ctx context.Context) error {
	st, err := b.state(ctx)
	if err != nil {
		return err
	}
	if st.Running {
		if st.Paused {
			if err := b.unpauseLocked(ctx); err != nil {
				return err
			}
		}
		wctx, cancel := context.WithTimeout(ctx, b.opts.StartTimeout)
		defer cancel()
		return mqttReady{addr: b.addr, tls: b.opts.ProbeTLS}.WaitUntilReady(wctx, b.ctr)
	}
	// Start re-runs the readiness hook, i.e. mqttReady.
	if err := b.ctr.Start(ctx); err != nil {
		return fmt.Errorf("broker: start container: %w", err)
	}
	return nil
}

func (b *dockerBroker) Stop(ctx context.Context) error {
	return b.life.do("stop", func() error { return b.stopLocked(ctx) })
}

func (b *dockerBroker) stopLocked(ctx context.Context) error {
	st, err := b.state(ctx)
	if err != nil {
		return err
	}
	if !st.Running {
		return nil
	}
	if st.Paused {
		// A frozen mosquitto could not act on SIGTERM.
		if err := b.unpauseLocked(ctx); err != nil {
			return err
		}
	}
	// Docker counts the grace period in whole seconds; 0 would mean SIGKILL at once.
	grace := max(time.Second, b.opts.StopTimeout.Round(time.Second))
	if err := b.ctr.Stop(ctx, &grace); err != nil {
		return fmt.Errorf("broker: stop container: %w", err)
	}
	if st, err = b.state(ctx); err != nil {
		return err
	}
	if st.ExitCode != 0 {
		return fmt.Errorf("broker: mosquitto exited with code %d after SIGTERM (137: killed after the %v grace period; persistence may be incomplete)",
			st.ExitCode, grace)
	}
	return nil
}

func (b *dockerBroker) Restart(ctx context.Context) error {
	return b.life.restart(func() error { return b.stopLocked(ctx) }, func() error { return b.startLocked(ctx) })
}

func (b *dockerBroker) Kill(ctx context.Context) error {
	return b.life.do("kill", func() error {
		st, err := b.state(ctx)
		if err != nil {
			return err
		}
		if !st.Running {
			return nil
		}
		id := b.ctr.GetContainerID()
		if _, err := b.docker.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
			return fmt.Errorf("broker: kill container: %w", err)
		}
		if st.Paused {
			// With the cgroup v1 freezer the SIGKILL lands only once thawed.
			_, _ = b.docker.ContainerUnpause(ctx, id, client.ContainerUnpauseOptions{})
		}
		wctx, cancel := context.WithTimeout(ctx, reapTimeout)
		defer cancel()
		res := b.docker.ContainerWait(wctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
		select {
		case <-res.Result:
			return nil
		case err := <-res.Error:
			return fmt.Errorf("broker: wait for killed container: %w", err)
		}
	})
}

func (b *dockerBroker) Pause(ctx context.Context) error {
	return b.life.do("pause", func() error {
		st, err := b.state(ctx)
		if err != nil {
			return err
		}
		switch {
		case !st.Running:
			return b.life.notRunning("pause")
		case st.Paused:
			return nil
		}
		if _, err := b.docker.ContainerPause(ctx, b.ctr.GetContainerID(), client.ContainerPauseOptions{}); err != nil {
			return fmt.Errorf("broker: pause container: %w", err)
		}
		return nil
	})
}

func (b *dockerBroker) Unpause(ctx context.Context) error {
	return b.life.do("unpause", func() error {
		st, err := b.state(ctx)
		if err != nil {
			return err
		}
		if !st.Paused {
			return nil
		}
		return b.unpauseLocked(ctx)
	})
}

func (b *dockerBroker) unpauseLocked(ctx context.Context) error {
	if _, err := b.docker.ContainerUnpause(ctx, b.ctr.GetContainerID(), client.ContainerUnpauseOptions{}); err != nil {
		return fmt.Errorf("broker: unpause container: %w", err)
	}
	return nil
}

func (b *dockerBroker) Logs(ctx context.Context) (string, error) {
	var out []byte
	err := b.life.do("logs", func() error {
		rc, err := b.ctr.Logs(ctx)
		if err != nil {
			return fmt.Errorf("broker: container logs: %w", err)
		}
		defer rc.Close()
		out, err = io.ReadAll(rc)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("broker: container logs: %w", err)
		}
		return nil
	})
	return string(out), err
}

// Close removes the container (and its anonymous volumes). It finishes even
// when ctx is already cancelled, bounded by closeTimeout.
func (b *dockerBroker) Close(ctx context.Context) error {
	return b.life.close(func() error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		var errs []error
		if st, err := b.state(ctx); err == nil && st.Paused {
			errs = append(errs, b.unpauseLocked(ctx))
		}
		// No grace period: Close is teardown, not a test of a graceful stop.
		errs = append(errs, b.ctr.Terminate(ctx, testcontainers.StopTimeout(0)))
		errs = append(errs, b.docker.Close())
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("broker: close container %s: %w", b.ctr.GetContainerID(), err)
		}
		return nil
	})
}
