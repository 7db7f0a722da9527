package procclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/clientstest"
)

// The test binary doubles as a fake driver: with fakeEnv set it speaks just
// enough of the protocol, then misbehaves as the mode says.
const fakeEnv = "PROCCLIENT_FAKE_DRIVER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		os.Exit(fakeDriver(mode))
	}
	os.Exit(m.Run())
}

// fakeDriver modes:
//
//	ok           a well-behaved driver with no broker: every request succeeds
//	die          starts a grandchild that sleeps at connect, exits with status 3 and a stderr
//	             message on the first publish
//	hang         stops reading and answering after connect (with a grandchild that sleeps)
//	garbage      prints a line that is not JSON after connect
//	stray        answers a request that was never made
//	twice        answers the connect twice
//	version      answers hello with protocol 99
//	mute         never answers hello
//	early        sends an up event before answering hello
//	ignore-close answers close but does not exit, even at EOF
//	flood        sends messages after connect, and answers pings only after them
//	crash-close  exits with status 4 at close, without answering it
//	slow-hello   answers hello after 300 ms
//	durable      speaks protocol 2 with the durable capability: publishes are answered durable
//	durable-v1   speaks protocol 1 but answers a publish durable
//	stuck        never answers a publish
func fakeDriver(mode string) int {
	out := bufio.NewWriter(os.Stdout)
	emit := func(v map[string]any) {
		b, _ := json.Marshal(v)
		out.Write(append(b, '\n'))
		out.Flush()
	}
	ok := func(id float64) { emit(map[string]any{"ev": "result", "id": id, "ok": true}) }
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var cmd map[string]any
		if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
			fmt.Fprintln(os.Stderr, "fake: bad command:", err)
			return 2
		}
		id, _ := cmd["id"].(float64)
		switch cmd["cmd"] {
		case "hello":
			switch mode {
			case "mute":
				time.Sleep(time.Hour)
			case "early":
				emit(map[string]any{"ev": "up"})
			case "slow-hello":
				time.Sleep(300 * time.Millisecond)
			}
			proto, caps := 1, []string{}
			switch mode {
			case "version":
				proto = 99
			case "durable":
				proto, caps = 2, []string{CapDurable}
			}
			emit(map[string]any{"ev": "result", "id": id, "ok": true,
				"hello": map[string]any{"protocol": proto, "driver": "fake", "library": "none", "version": "0", "capabilities": caps}})
		case "connect":
			emit(map[string]any{"ev": "log", "level": "info", "msg": "fake connecting"})
			ok(id)
			emit(map[string]any{"ev": "up", "session_present": false})
			if mode == "hang" || mode == "die" {
				sleeper := exec.Command("sleep", "3600")
				if err := sleeper.Start(); err != nil {
					fmt.Fprintln(os.Stderr, "fake:", err)
					return 2
				}
				emit(map[string]any{"ev": "log", "level": "info", "msg": "grandchild " + strconv.Itoa(sleeper.Process.Pid)})
			}
			switch mode {
			case "hang":
				fmt.Fprintln(os.Stderr, "fake: hanging now")
				time.Sleep(time.Hour)
			case "garbage":
				fmt.Fprintln(os.Stderr, "fake: about to print garbage")
				out.WriteString("Traceback (most recent call last): not json\n")
				out.Flush()
			case "stray":
				ok(12345)
			case "twice":
				ok(id)
			case "flood":
				for i := range 5 {
					emit(map[string]any{"ev": "message", "topic": "flood", "payload": []byte(strconv.Itoa(i)), "qos": 1})
				}
			}
		case "publish":
			if mode == "die" {
				fmt.Fprintln(os.Stderr, "fake: panic: the library fell over")
				return 3
			}
			switch mode {
			case "durable", "durable-v1":
				emit(map[string]any{"ev": "result", "id": id, "ok": true, "durable": true})
			case "stuck":
			default:
				ok(id)
			}
		case "close":
			if mode == "crash-close" {
				fmt.Fprintln(os.Stderr, "fake: crashing at close")
				return 4
			}
			ok(id)
			if mode == "ignore-close" {
				time.Sleep(time.Hour)
			}
			return 0
		default:
			ok(id)
		}
	}
	if mode == "ignore-close" {
		time.Sleep(time.Hour)
	}
	return 0
}

func fakeConfig(mode string) Config {
	return Config{
		Name: "fake-" + mode, Command: []string{os.Args[0]}, Env: []string{fakeEnv + "=" + mode, "GORACE=atexit_sleep_ms=0"}, // -race sleeps 1 s at exit by default
		// The fake is this race-built test binary: on a loaded machine its start-up alone took over 2 s.
		StartTimeout: fakeStart, Heartbeat: 50 * time.Millisecond, HangTimeout: 500 * time.Millisecond,
		CloseTimeout: 3 * time.Second,
	}
}

// fakeStart bounds a fake driver's start-up, and failBound how long any misbehaviour may take to surface:
// the slowest, a driver that never answers hello, is seen at fakeStart.
const (
	fakeStart = 8 * time.Second
	failBound = fakeStart + 2*time.Second
)

type fakeRun struct {
	t    *testing.T
	c    *Client
	rec  *clientstest.Recorder
	base int
}

// startFake makes a client of the fake driver; Connect is the test's.
func startFake(t *testing.T, mode string, tweak ...func(*Config)) *fakeRun {
	t.Helper()
	base := runtime.NumGoroutine()
	cfg := fakeConfig(mode)
	for _, f := range tweak {
		f(&cfg)
	}
	rec := &clientstest.Recorder{}
	c, err := New(clients.Options{Addr: "127.0.0.1:1883", ClientID: "fake", OnMessage: rec.OnMessage, OnEvent: rec.OnEvent}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &fakeRun{t: t, c: c, rec: rec, base: base}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// driverError checks that err is a *DriverError wrapping want, and returns it.
func driverError(t *testing.T, err, want error) *DriverError {
	t.Helper()
	var de *DriverError
	if !errors.As(err, &de) || !errors.Is(err, want) || !errors.Is(err, ErrDriver) {
		t.Fatalf("error = %v, want a *DriverError wrapping %v", err, want)
	}
	if !strings.HasPrefix(de.Driver, "fake-") || !strings.Contains(de.Error(), de.Driver) {
		t.Fatalf("the error does not name the driver: %v", de)
	}
	return de
}

// closeAndCheck closes the client, expects Close to return the same failure
// within its bound, and checks that no goroutine and no process is left.
func (r *fakeRun) closeAndCheck(want error, pids ...int) {
	r.t.Helper()
	began := time.Now()
	err := r.c.Close()
	if took := time.Since(began); took > failBound {
		r.t.Fatalf("Close took %v", took)
	}
	if want == nil {
		if err != nil {
			r.t.Fatalf("Close = %v, want nil", err)
		}
	} else {
		driverError(r.t, err, want)
	}
	if err2 := r.c.Close(); !errors.Is(err2, want) {
		r.t.Fatalf("second Close = %v, want the first's result", err2)
	}
	clientstest.WaitGoroutines(r.t, r.base, failBound)
	// A SIGKILLed process may take a moment to be scheduled and die on a loaded machine.
	pids = append(pids, r.c.cmd.Process.Pid)
	for _, pid := range pids {
		clientstest.Eventually(r.t, failBound, fmt.Sprintf("process %d gone after Close", pid), func() bool { return !alive(pid) })
	}
}

// alive reports whether pid runs (a zombie awaiting its reaper does not).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestFakeDriverBehaves(t *testing.T) {
	r := startFake(t, "ok")
	if err := r.c.Connect(ctxFor(t, failBound)); err != nil {
		t.Fatal(err)
	}
	if !r.c.IsConnected() {
		t.Fatal("not connected")
	}
	// Pings go on in the background: stay well past the hang timeout.
	time.Sleep(4 * fakeConfig("ok").HangTimeout)
	if err := r.c.Publish(ctxFor(t, failBound), clients.Message{Topic: "t", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	clientstest.Eventually(t, failBound, "an up event", func() bool { return r.rec.Count(clients.EventUp) == 1 })
	if st := r.c.Stats(); st[clients.StatConnects] != 1 || st[clients.StatOutages] != 0 {
		t.Fatalf("stats = %v", st)
	}
	r.closeAndCheck(nil)
}

func TestDriverDiesMidRun(t *testing.T) {
	r := startFake(t, "die")
	if err := r.c.Connect(ctxFor(t, failBound)); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	err := r.c.Publish(ctxFor(t, time.Minute), clients.Message{Topic: "t", Payload: []byte("x"), QoS: 1})
	if took := time.Since(began); took > failBound {
		t.Fatalf("the death took %v to surface", took)
	}
	de := driverError(t, err, ErrDied)
	if !strings.Contains(de.Stderr, "the library fell over") || !strings.Contains(de.Error(), "exit status 3") {
		t.Fatalf("the error lacks the stderr tail or the exit status: %v", de)
	}
	if r.c.IsConnected() {
		t.Fatal("IsConnected after the driver died")
	}
	// The harness hears of it as an outage carrying the error, and later
	// calls fail at once with the same error.
	clientstest.Eventually(t, failBound, "a down event", func() bool { return r.rec.Count(clients.EventDown) == 1 })
	if ev := r.rec.Events()[len(r.rec.Events())-1]; !errors.Is(ev.Err, ErrDied) {
		t.Fatalf("down event = %+v", ev)
	}
	err = r.c.Publish(ctxFor(t, time.Minute), clients.Message{Topic: "t", QoS: 1})
	if !errors.Is(err, ErrDied) || !errors.Is(err, clients.ErrNotSent) {
		t.Fatalf("Publish after the death = %v, want not sent with the death", err)
	}
	// The driver is gone; the grandchild it left must go too.
	r.closeAndCheck(ErrDied, grandchild(t, de))
}

func TestDriverHangs(t *testing.T) {
	r := startFake(t, "hang")
	if err := r.c.Connect(ctxFor(t, failBound)); err != nil {
		t.Fatal(err)
	}
	// The caller's context is long: the heartbeat, not the context, ends it.
	began := time.Now()
	err := r.c.Publish(ctxFor(t, time.Minute), clients.Message{Topic: "t", QoS: 1})
	if took := time.Since(began); took > failBound {
		t.Fatalf("the hang took %v to surface", took)
	}
	de := driverError(t, err, ErrHung)
	if !strings.Contains(de.Stderr, "hanging now") {
		t.Fatalf("no stderr tail: %v", de)
	}
	r.closeAndCheck(ErrHung, grandchild(t, de))
}

// grandchild returns the pid of the sleeper the hang mode started, from the error naming the last line
// read: the log line that gives it.
func grandchild(t *testing.T, de *DriverError) int {
	t.Helper()
	if de.Line != 5 || !strings.Contains(de.Text, "grandchild") {
		t.Fatalf("the error names line %d %q, want the last line read (5, the grandchild log)", de.Line, de.Text)
	}
	pid, err := strconv.Atoi(strings.TrimSuffix(de.Text[strings.LastIndex(de.Text, " ")+1:], `"}`))
	if err != nil {
		t.Fatalf("no grandchild pid in %q", de.Text)
	}
	return pid
}

func TestDriverPrintsGarbage(t *testing.T) {
	r := startFake(t, "garbage")
	_ = r.c.Connect(ctxFor(t, failBound)) // the garbage may come before or after the answer
	clientstest.Eventually(t, failBound, "the failure", func() bool { return r.c.usable() != nil })
	err := r.c.Publish(ctxFor(t, time.Minute), clients.Message{Topic: "t", QoS: 1})
	de := driverError(t, err, ErrProtocol)
	if de.Line != 5 || !strings.HasPrefix(de.Text, "Traceback") || !strings.Contains(de.Stderr, "about to print garbage") {
		t.Fatalf("error = %v, want line 5, its text and the stderr tail", de)
	}
	r.closeAndCheck(ErrProtocol)
}

func TestDriverOutOfProtocol(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want string
	}{
		{"stray", "request 12345, which is not pending"},
		{"twice", "which is not pending"},
		{"early", "up event before the answer to hello"},
		{"version", "driver speaks protocol 99"},
		{"durable-v1", "without protocol 2's durable capability"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			r := startFake(t, tc.mode)
			_ = r.c.Connect(ctxFor(t, failBound))
			if tc.mode == "durable-v1" {
				_ = r.c.Publish(ctxFor(t, failBound), clients.Message{Topic: "t", QoS: 1})
			}
			clientstest.Eventually(t, failBound, "the failure", func() bool { return r.c.usable() != nil })
			de := driverError(t, r.c.usable(), ErrProtocol)
			if !strings.Contains(de.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", de, tc.want)
			}
			r.closeAndCheck(ErrProtocol)
		})
	}
}

func TestDriverNeverAnswersHello(t *testing.T) {
	r := startFake(t, "mute")
	began := time.Now()
	err := r.c.Connect(ctxFor(t, time.Minute))
	if took := time.Since(began); took > failBound {
		t.Fatalf("Connect took %v", took)
	}
	de := driverError(t, err, ErrHung)
	if !strings.Contains(de.Error(), "no answer to hello") {
		t.Fatalf("error = %v", de)
	}
	r.closeAndCheck(ErrHung)
}

func TestDriverIgnoresClose(t *testing.T) {
	r := startFake(t, "ignore-close")
	if err := r.c.Connect(ctxFor(t, failBound)); err != nil {
		t.Fatal(err)
	}
	r.closeAndCheck(ErrHung)
}

func TestDriverNotFound(t *testing.T) {
	base := runtime.NumGoroutine()
	c, err := New(clients.Options{Addr: "127.0.0.1:1883"}, Config{Name: "ghost", Command: []string{"/nonexistent/driver"}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Connect(ctxFor(t, failBound))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("Connect = %v, want the missing file, naming the driver", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	clientstest.WaitGoroutines(t, base, failBound)
}

// TestSlowHandlerIsNotAHang: time in OnMessage delays the answer to a ping,
// and must not count against the driver.
func TestSlowHandlerIsNotAHang(t *testing.T) {
	r := startFake(t, "flood")
	hang := fakeConfig("flood").HangTimeout
	var got []string
	done := make(chan struct{})
	r.c.opts.OnMessage = func(d clients.Delivery) {
		time.Sleep(hang / 2) // five of these are 2.5 hang timeouts
		got = append(got, string(d.Payload))
		if len(got) == 5 {
			close(done)
		}
	}
	if err := r.c.Connect(ctxFor(t, failBound)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(failBound):
		t.Fatal("the messages did not all arrive")
	}
	time.Sleep(2 * hang)
	if err := r.c.usable(); err != nil {
		t.Fatalf("a slow handler failed the driver: %v", err)
	}
	if strings.Join(got, ",") != "0,1,2,3,4" {
		t.Fatalf("deliveries = %v", got)
	}
	r.closeAndCheck(nil)
}

func TestDriverCrashesAtClose(t *testing.T) {
	r := startFake(t, "crash-close")
	if err := r.c.Connect(ctxFor(t, failBound)); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	err := r.c.Close()
	// The exit ends the wait for the answer: no need to sit out the bound.
	if took := time.Since(began); took >= fakeConfig("crash-close").CloseTimeout {
		t.Fatalf("Close took %v", took)
	}
	de := driverError(t, err, ErrDied)
	if !strings.Contains(de.Error(), "exit status 4") || !strings.Contains(de.Stderr, "crashing at close") {
		t.Fatalf("error = %v", de)
	}
	r.closeAndCheck(ErrDied)
}

// TestCloseDuringCalls: Close while publishes are in flight and while
// Connect waits for hello ends them all, with no driver error.
func TestCloseDuringCalls(t *testing.T) {
	r := startFake(t, "ok")
	if err := r.c.Connect(ctxFor(t, failBound)); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() {
			var err error
			for err == nil {
				err = r.c.Publish(ctxFor(t, failBound), clients.Message{Topic: "t", Payload: []byte("x"), QoS: 1})
			}
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	r.closeAndCheck(nil)
	for range cap(errs) {
		if err := <-errs; !errors.Is(err, clients.ErrClosed) || errors.Is(err, ErrDriver) {
			t.Fatalf("Publish during Close = %v, want ErrClosed", err)
		}
	}

	s := startFake(t, "slow-hello")
	connected := make(chan error, 1)
	go func() { connected <- s.c.Connect(ctxFor(t, time.Minute)) }()
	time.Sleep(100 * time.Millisecond)
	s.closeAndCheck(nil)
	select {
	case err := <-connected:
		if !errors.Is(err, clients.ErrClosed) {
			t.Fatalf("Connect during Close = %v, want ErrClosed", err)
		}
	case <-time.After(failBound):
		t.Fatal("Connect still waiting after Close")
	}
}

// TestDriverStopsReadingStdin: with no heartbeat to notice, a write that
// cannot finish because the driver does not read its stdin fails it too.
func TestDriverStopsReadingStdin(t *testing.T) {
	r := startFake(t, "hang", func(c *Config) { c.Heartbeat = time.Hour })
	if err := r.c.Connect(ctxFor(t, failBound)); err != nil {
		t.Fatal(err)
	}
	// Eight times what a pipe holds (64 KiB), and no more: json.Marshal of a large payload is slow under the
	// race detector (4 MiB took 2-4 s there, most of failBound, before the write even began).
	big := make([]byte, 512<<10)
	began := time.Now()
	err := r.c.Publish(ctxFor(t, time.Minute), clients.Message{Topic: "t", Payload: big, QoS: 1})
	if took := time.Since(began); took > failBound {
		t.Fatalf("the blocked write took %v to fail", took)
	}
	if !errors.Is(err, clients.ErrNotSent) {
		t.Fatalf("Publish = %v, want not sent", err)
	}
	de := driverError(t, err, ErrHung)
	if !strings.Contains(de.Error(), "stdin not read") {
		t.Fatalf("error = %v", de)
	}
	r.closeAndCheck(ErrHung, grandchild(t, de))
}

// A protocol 2 driver's durable results are counted; the Stats key is there only for such a driver.
func TestDurableResults(t *testing.T) {
	r := startFake(t, "durable")
	if err := r.c.Connect(ctxFor(t, failBound)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := r.c.Publish(ctxFor(t, failBound), clients.Message{Topic: "t", QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if st := r.c.Stats(); st[clients.StatDurable] != 3 {
		t.Fatalf("stats = %v, want 3 durable", st)
	}
	if r.c.Hello().Protocol != 2 {
		t.Fatalf("hello %+v", r.c.Hello())
	}
	r.closeAndCheck(nil)
	ok := startFake(t, "ok")
	if err := ok.c.Connect(ctxFor(t, failBound)); err != nil {
		t.Fatal(err)
	}
	if _, has := ok.c.Stats()[clients.StatDurable]; has {
		t.Fatal("a protocol 1 driver has a durable count")
	}
	ok.closeAndCheck(nil)
}

// Kill ends the driver as a crash does: a publish in flight fails with ErrKilled (outcome unknown, so not
// ErrNotSent), later calls fail, nothing of the adapter or the process is left, and Kill reports no failure.
func TestKill(t *testing.T) {
	r := startFake(t, "stuck")
	if err := r.c.Connect(ctxFor(t, failBound)); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- r.c.Publish(ctxFor(t, time.Minute), clients.Message{Topic: "t", QoS: 1}) }()
	clientstest.Eventually(t, failBound, "the publish pending", func() bool {
		r.c.mu.Lock()
		defer r.c.mu.Unlock()
		for _, req := range r.c.pending {
			if req.cmd == cmdPublish {
				return true
			}
		}
		return false
	})
	began := time.Now()
	if err := r.c.Kill(); err != nil {
		t.Fatalf("Kill = %v", err)
	}
	if took := time.Since(began); took > failBound {
		t.Fatalf("Kill took %v", took)
	}
	err := <-errc
	if !errors.Is(err, ErrKilled) || errors.Is(err, clients.ErrNotSent) {
		t.Fatalf("the publish in flight: %v, want ErrKilled and not ErrNotSent", err)
	}
	if err := r.c.Publish(ctxFor(t, failBound), clients.Message{Topic: "t", QoS: 1}); !errors.Is(err, clients.ErrNotSent) {
		t.Fatalf("a publish after Kill: %v", err)
	}
	if r.c.IsConnected() {
		t.Fatal("connected after Kill")
	}
	r.closeAndCheck(nil)
}
