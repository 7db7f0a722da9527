package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mqttas/mqttas-go/internal/syncbuf"
)

// maxProcessLog bounds the captured output of the process backend.
const maxProcessLog = 4 << 20

// reapTimeout bounds waiting for a SIGKILLed process to be reaped.
const reapTimeout = 10 * time.Second

// process runs mosquitto as a child process in its own process group.
type process struct {
	opts Options
	log  *slog.Logger
	bin  string
	dir  string // temporary: mosquitto.conf, Files, data/
	addr string
	logs *syncbuf.Buffer // bounded to maxProcessLog

	life   lifecycle // serialises lifecycle operations; run and paused belong to it
	run    *procRun  // the current or last child; nil before the first start
	paused bool
}

// procRun is one mosquitto child.
type procRun struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the child is reaped
	err  error         // cmd.Wait's result, written before done is closed
}

func (r *procRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// findMosquitto returns the mosquitto binary to run: explicit, else on PATH,
// else Debian's /usr/sbin (not on every user's PATH).
func findMosquitto(explicit string) (string, error) {
	if explicit != "" {
		p, err := exec.LookPath(explicit)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrMosquittoNotFound, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	const debian = "/usr/sbin/mosquitto"
	if p, err := exec.LookPath(debian); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w (looked on PATH and at /usr/sbin/mosquitto; Debian: apt-get install mosquitto)",
		ErrMosquittoNotFound)
}

func newProcess(ctx context.Context, opts Options) (*process, error) {
	bin, err := findMosquitto(opts.Mosquitto)
	if err != nil {
		return nil, err
	}
	return startWithPort(ctx, opts, func(port int) (*process, error) {
		p, err := prepareProcess(bin, port, opts)
		if err != nil {
			return nil, err
		}
		if err := p.Start(ctx); err != nil {
			_ = p.Close(ctx)
			return nil, err
		}
		return p, nil
	})
}

// prepareProcess writes the configuration into a new temporary directory.
func prepareProcess(bin string, port int, opts Options) (_ *process, err error) {
	dir, err := os.MkdirTemp("", "mqttas-broker-")
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	data := filepath.Join(dir, "data") + string(filepath.Separator)
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	conf := renderConfig(confParams{
		listener: strconv.Itoa(port) + " 127.0.0.1",
		dataDir:  data,
		confDir:  dir,
	}, opts)
	if err := os.WriteFile(filepath.Join(dir, "mosquitto.conf"), []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	for name, content := range opts.Files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return &process{
		opts: opts,
		log:  opts.Logger.With("broker", KindProcess, "addr", addr),
		bin:  bin,
		dir:  dir,
		addr: addr,
		logs: &syncbuf.Buffer{Max: maxProcessLog},
		life: lifecycle{addr: addr},
	}, nil
}

func (p *process) Kind() string { return KindProcess }
func (p *process) Addr() string { return p.addr }

func (p *process) Start(ctx context.Context) error {
	return p.life.do("start", func() error { return p.startLocked(ctx) })
}

func (p *process) startLocked(ctx context.Context) error {
	if r := p.run; r != nil && !r.exited() {
		if p.paused {
			p.signal(syscall.SIGCONT)
			p.paused = false
		}
		return p.waitReady(ctx, r)
	}
	cmd := exec.Command(p.bin, "-c", filepath.Join(p.dir, "mosquitto.conf"))
	cmd.Dir = p.dir
	cmd.Stdout = p.logs
	cmd.Stderr = p.logs
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("broker: start %s: %w", p.bin, err)
	}
	r := &procRun{cmd: cmd, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	p.run = r
	p.paused = false
	p.log.Debug("mosquitto started", "pid", cmd.Process.Pid)
	if err := p.waitReady(ctx, r); err != nil {
		_ = p.killLocked(ctx)
		return err
	}
	return nil
}

// waitReady polls with Probe until the broker answers, the child exits, or
// StartTimeout/ctx ends.
func (p *process) waitReady(ctx context.Context, r *procRun) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.StartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		err := probe(pctx, p.addr, p.opts.ProbeTLS)
		pcancel()
		if answers(err) {
			return nil
		}
		select {
		case <-r.done:
			tail := lastLines(p.logs.String(), 10)
			err := fmt.Errorf("broker: mosquitto exited during start-up (%v); its last output:\n%s", r.err, tail)
			if strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("%w: %w", errPortInUse, err)
			}
			return err
		case <-ctx.Done():
			return fmt.Errorf("broker: mosquitto at %s does not answer MQTT: %w (last probe: %v)", p.addr, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// signal sends sig to the child's process group.
func (p *process) signal(sig syscall.Signal) {
	if p.run == nil {
		return
	}
	// Setpgid made the child the leader of a group whose id is its pid.
	if err := syscall.Kill(-p.run.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		p.log.Warn("signal failed", "signal", sig, "err", err)
	}
}

func (p *process) Stop(ctx context.Context) error {
	return p.life.do("stop", func() error { return p.stopLocked(ctx) })
}

func (p *process) stopLocked(ctx context.Context) error {
	r := p.run
	if r == nil || r.exited() {
		p.paused = false
		return nil
	}
	p.signal(syscall.SIGTERM)
	if p.paused {
		// A stopped process acts on SIGTERM only once continued.
		p.signal(syscall.SIGCONT)
		p.paused = false
	}
	grace := time.NewTimer(p.opts.StopTimeout)
	defer grace.Stop()
	select {
	case <-r.done:
		if r.err != nil {
			return fmt.Errorf("broker: mosquitto exited with %w after SIGTERM", r.err)
		}
		return nil
	case <-grace.C:
		_ = p.killLocked(ctx)
		return fmt.Errorf("broker: mosquitto ignored SIGTERM for %v and was killed; persistence may be incomplete",
			p.opts.StopTimeout)
	case <-ctx.Done():
		_ = p.killLocked(context.WithoutCancel(ctx))
		return fmt.Errorf("broker: stop: %w (mosquitto was killed)", ctx.Err())
	}
}

func (p *process) Restart(ctx context.Context) error {
	return p.life.restart(func() error { return p.stopLocked(ctx) }, func() error { return p.startLocked(ctx) })
}

func (p *process) Kill(ctx context.Context) error {
	return p.life.do("kill", func() error { return p.killLocked(ctx) })
}

func (p *process) killLocked(ctx context.Context) error {
	r := p.run
	p.paused = false
	if r == nil || r.exited() {
		return nil
	}
	p.signal(syscall.SIGKILL)
	reap := time.NewTimer(reapTimeout)
	defer reap.Stop()
	select {
	case <-r.done:
		return nil
	case <-reap.C:
		return fmt.Errorf("broker: mosquitto (pid %d) not reaped %v after SIGKILL", r.cmd.Process.Pid, reapTimeout)
	case <-ctx.Done():
		return fmt.Errorf("broker: kill: %w", ctx.Err())
	}
}

func (p *process) Pause(context.Context) error {
	return p.life.do("pause", func() error {
		if p.run == nil || p.run.exited() {
			return p.life.notRunning("pause")
		}
		p.signal(syscall.SIGSTOP)
		p.paused = true
		return nil
	})
}

func (p *process) Unpause(context.Context) error {
	return p.life.do("unpause", func() error {
		if p.paused && p.run != nil && !p.run.exited() {
			p.signal(syscall.SIGCONT)
		}
		p.paused = false
		return nil
	})
}

func (p *process) Logs(context.Context) (string, error) {
	if err := p.life.check("logs"); err != nil {
		return "", err
	}
	return p.logs.String(), nil
}

// Close kills and reaps mosquitto and removes the temporary directory. It
// finishes even when ctx is already cancelled (e.g. a test's context).
func (p *process) Close(ctx context.Context) error {
	return p.life.close(func() error {
		err := p.killLocked(context.WithoutCancel(ctx))
		return errors.Join(err, os.RemoveAll(p.dir))
	})
}
