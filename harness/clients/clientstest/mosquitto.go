// Package clientstest helps test client adapters and the tools built on them:
// a throwaway mosquitto process on a free loopback port, and a conformance
// suite every clients.Client adapter should pass.
package clientstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker"
	"github.com/mqttas/mqttas-go/internal/syncbuf"
)

// Mosquitto is a mosquitto broker process private to one test. Its sessions
// persist across Restart (persistence is on, in the test's temp dir).
type Mosquitto struct {
	// Addr is the broker's 127.0.0.1:port; it stays the same across restarts.
	Addr string

	t    testing.TB
	bin  string
	conf string

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan struct{} // closed when cmd has been waited for
	log  syncbuf.Buffer
}

// Bounds for process management; generous because the machine is noisy.
const (
	readyTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
	startTries   = 3
)

// StartMosquitto starts mosquitto on a free 127.0.0.1 port and stops it when
// the test ends. extra lines are appended to the configuration, e.g.
// "max_queued_messages 3" or "persistence false". The broker's log is
// printed if the test fails.
func StartMosquitto(t testing.TB, extra ...string) *Mosquitto {
	t.Helper()
	bin, err := mosquittoBinary()
	if err != nil {
		t.Fatal(err)
	}
	m := &Mosquitto{t: t, bin: bin}
	dir := t.TempDir() // before the Cleanup below, so it is removed after the broker stops
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("mosquitto log (%s):\n%s", m.Addr, m.log.String())
		}
	})
	var lastErr error
	// The free port can be taken between probing and binding; try again.
	for range startTries {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		m.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		m.conf = filepath.Join(dir, "mosquitto.conf")
		conf := strings.Join(append([]string{
			fmt.Sprintf("listener %d 127.0.0.1", port),
			"allow_anonymous true",
			"user root", // only consulted when running as root; avoids dropping privileges
			"persistence true",
			"persistence_location " + dir + "/",
			"log_dest stderr",
			"log_type error",
			"log_type warning",
			"log_type notice",
			"log_type information",
		}, extra...), "\n") + "\n"
		if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if lastErr = m.start(); lastErr == nil {
			return m
		}
	}
	t.Fatalf("mosquitto did not start: %v\n%s", lastErr, m.log.String())
	return nil
}

// Stop terminates the broker with SIGTERM (it saves its database) and waits
// for it to exit, killing it after a bound. Stopping a stopped broker is a
// no-op.
func (m *Mosquitto) Stop() {
	m.signal(syscall.SIGTERM)
}

// Kill stops the broker with SIGKILL: nothing is saved since the last
// autosave.
func (m *Mosquitto) Kill() {
	m.signal(syscall.SIGKILL)
}

// Start starts a stopped broker again on the same address.
func (m *Mosquitto) Start() {
	m.t.Helper()
	if err := m.start(); err != nil {
		m.t.Fatalf("mosquitto restart: %v\n%s", err, m.log.String())
	}
}

// Restart stops and starts the broker.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	m.Stop()
	m.Start()
}

// Log returns what the broker has logged so far.
func (m *Mosquitto) Log() string { return m.log.String() }

func (m *Mosquitto) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return errors.New("already running")
	}
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = &m.log, &m.log
	if err := cmd.Start(); err != nil {
		return err
	}
	exit := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a broker we stop is not interesting
		close(exit)
	}()
	m.cmd, m.exit = cmd, exit

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for {
		if err := broker.Probe(ctx, m.Addr); err == nil {
			return nil
		}
		select {
		case <-exit:
			m.cmd = nil
			return errors.New("mosquitto exited during start-up")
		case <-ctx.Done():
			m.killLocked()
			return fmt.Errorf("not ready within %v", readyTimeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (m *Mosquitto) signal(sig os.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(sig) // fails only if it already exited
	select {
	case <-m.exit:
	case <-time.After(stopTimeout):
		m.killLocked()
		return
	}
	m.cmd = nil
}

func (m *Mosquitto) killLocked() {
	_ = m.cmd.Process.Kill()
	<-m.exit
	m.cmd = nil
}

func mosquittoBinary() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	const debian = "/usr/sbin/mosquitto" // not on every user's PATH
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", errors.New("clientstest: mosquitto not found in PATH or /usr/sbin (apt-get install mosquitto)")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
