package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/internal/syncbuf"
)

// binPath is the mqttas binary TestMain builds once for the process-level tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mqttas-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "mqttas")
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

var buildOnce sync.Once
var buildErr error

// buildBinary builds the command once (go build -o into a temporary directory) and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// mosquittoBin finds the broker: on PATH, else Debian's /usr/sbin (not on every user's PATH).
func mosquittoBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	t.Fatal("mosquitto is not installed (apt-get install mosquitto; make deps does it)")
	return ""
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startMosquitto runs a mosquitto on a free 127.0.0.1 port with a temporary configuration (extra is added
// to the listener's settings) and kills it when the test ends. It returns the port.
func startMosquitto(t *testing.T, extra string) int {
	t.Helper()
	bin := mosquittoBin(t)
	dir := t.TempDir()
	var lastLog string
	for attempt := 0; attempt < 3; attempt++ { // another process may take the free port first
		port := freePort(t)
		conf := fmt.Sprintf("listener %d 127.0.0.1\nuser root\npersistence false\n%s\n", port, extra)
		path := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		log := new(syncbuf.Buffer)
		cmd := exec.Command(bin, "-c", path)
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = childAttr()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				t.Errorf("mosquitto (pid %d) did not exit after SIGKILL", cmd.Process.Pid)
			}
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				deadline = time.Time{} // it failed to start
				continue
			default:
			}
			if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
				_ = c.Close()
				t.Cleanup(stop)
				return port
			}
			time.Sleep(20 * time.Millisecond)
		}
		stop()
		lastLog = log.String()
	}
	t.Fatalf("mosquitto did not start; its log:\n%s", lastLog)
	return 0
}

// proc is a running mqttas command.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdout *syncbuf.Buffer
	stderr *syncbuf.Buffer
	done   chan struct{}
	code   int
}

// startProc starts the mqttas binary with args and kills it when the test ends, if still running.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, stdout: new(syncbuf.Buffer), stderr: new(syncbuf.Buffer), done: make(chan struct{})}
	p.cmd = exec.Command(buildBinary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.SysProcAttr = childAttr()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits up to d for the command to exit and returns its exit code; it fails the test on timeout.
func (p *proc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("%s did not exit within %v; stdout:\n%s\nstderr:\n%s", p.name, d, p.stdout, p.stderr)
		return -1
	}
}

// waitOutput waits up to d until stdout satisfies ok.
func (p *proc) waitOutput(d time.Duration, ok func(string) bool) bool {
	return waitOutput(p.stdout, d, ok)
}

// waitOutput waits up to d until the buffer satisfies ok.
func waitOutput(b *syncbuf.Buffer, d time.Duration, ok func(string) bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return b.Wait(ctx, ok)
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}
