package mqttas

// Integration tests against a real mosquitto process started on a free loopback port. They skip only
// when no mosquitto binary exists (make test installs it).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

type mosquitto struct {
	t    *testing.T
	bin  string
	conf string
	port int
	cmd  *exec.Cmd
	logs syncWriter
}

func findMosquitto() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	return ""
}

// startMosquitto runs mosquitto with extra config lines on a free 127.0.0.1 port, persistence on.
func startMosquitto(t *testing.T, extra string) *mosquitto {
	t.Helper()
	bin := findMosquitto()
	if bin == "" {
		t.Skip("mosquitto not installed (make test installs it): integration test not run")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("listener %d 127.0.0.1\nuser root\npersistence true\npersistence_location %s/\nlog_dest stdout\n%s\n", port, dir, extra)
	if !bytes.Contains([]byte(extra), []byte("allow_anonymous")) {
		body += "allow_anonymous true\n"
	}
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &mosquitto{t: t, bin: bin, conf: conf, port: port}
	m.start()
	t.Cleanup(m.stop)
	return m
}

func (m *mosquitto) start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	m.cmd.Stdout, m.cmd.Stderr = &m.logs, &m.logs
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", m.addr(), 100*time.Millisecond); err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.t.Fatalf("mosquitto did not listen on %s: %s", m.addr(), m.logs.String())
}

// stop ends mosquitto gracefully (SIGTERM: it saves its persistence file).
func (m *mosquitto) stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	m.cmd = nil
}

func (m *mosquitto) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)) }

// syncWriter collects mosquitto's output, written by exec's copying goroutine and read by the test.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (m *mosquitto) config(id string) Config {
	cfg := Config{}
	cfg.Server, cfg.Port, cfg.ClientID = "127.0.0.1", m.port, id
	cfg.KeepAlive = 2 * time.Second
	cfg.ResponseTime = time.Second
	cfg.ReconnectMin, cfg.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	return cfg
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustConnect(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Connect(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	return c
}

// checkNoGoroutines waits (bounded) for the goroutine count to return to base.
func checkNoGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left after Close (baseline %d):\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIntegrationPubSubBothModes(t *testing.T) {
	m := startMosquitto(t, "")
	base := runtime.NumGoroutine()
	ctx := testCtx(t, 20*time.Second)

	got := make(chan Message, 100)
	cbCfg := m.config("it-callback")
	cbCfg.OnMessage = func(msg Message) { got <- msg }
	sub := mustConnect(t, cbCfg)
	evCfg := m.config("it-events")
	evCfg.QueueLen = 100
	ev := mustConnect(t, evCfg)
	for _, c := range []*Client{sub, ev} {
		if err := c.Subscribe(ctx, "it/+/x", 1); err != nil {
			t.Fatal(err)
		}
	}
	pub := mustConnect(t, m.config("it-pub"))
	for i := range 20 {
		if err := pub.Publish(ctx, fmt.Sprintf("it/%d/x", i), []byte(strconv.Itoa(i)), false, byte(i%2)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		select {
		case msg := <-got:
			if msg.Topic != fmt.Sprintf("it/%d/x", i) || string(msg.Payload) != strconv.Itoa(i) {
				t.Fatalf("callback message %d: %+v", i, msg)
			}
		case <-ctx.Done():
			t.Fatalf("callback got %d of 20", i)
		}
		msg, err := ev.Queue().Next(ctx)
		if err != nil || string(msg.Payload) != strconv.Itoa(i) {
			t.Fatalf("queue message %d: %+v %v", i, msg, err)
		}
	}
	if st := pub.Stats(); st.Published != 20 || st.Connects != 1 || st.Outages != 0 {
		t.Fatalf("publisher stats %+v", st)
	}
	for _, c := range []*Client{sub, ev, pub} {
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	checkNoGoroutines(t, base)
}

// A persistent session (KeepSession) receives what was published while it was away, and the port accepts
// CONNACK session present = 1 (mqtt_as rejected it and never reconnected).
func TestIntegrationPersistentSessionBacklog(t *testing.T) {
	m := startMosquitto(t, "")
	ctx := testCtx(t, 20*time.Second)
	cfg := m.config("it-persistent")
	cfg.KeepSession, cfg.ResumeSession = true, true
	cfg.QueueLen = 50
	c := mustConnect(t, cfg)
	if err := c.Subscribe(ctx, "backlog", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	pub := mustConnect(t, m.config("it-backlog-pub"))
	for i := range 10 {
		if err := pub.Publish(ctx, "backlog", []byte(strconv.Itoa(i)), false, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if !c.Stats().SessionPresent {
		t.Fatal("CONNACK session present not reported")
	}
	for i := range 10 {
		msg, err := c.Queue().Next(ctx)
		if err != nil || string(msg.Payload) != strconv.Itoa(i) {
			t.Fatalf("backlog message %d: %+v %v", i, msg, err)
		}
	}
}

// KeepSession without ResumeSession discards the old session at start-up only (mqtt_as's clean_init).
func TestIntegrationKeepSessionDiscardsOldSessionAtStart(t *testing.T) {
	m := startMosquitto(t, "")
	ctx := testCtx(t, 20*time.Second)
	old := m.config("it-cleaninit")
	old.KeepSession, old.ResumeSession = true, true
	c := mustConnect(t, old)
	if err := c.Subscribe(ctx, "ci", 1); err != nil {
		t.Fatal(err)
	}
	_ = c.Disconnect(ctx)
	_ = c.Close()
	pub := mustConnect(t, m.config("it-ci-pub"))
	if err := pub.Publish(ctx, "ci", []byte("stale"), false, 1); err != nil {
		t.Fatal(err)
	}
	fresh := m.config("it-cleaninit")
	fresh.KeepSession = true
	fresh.QueueLen = 10
	c2 := mustConnect(t, fresh)
	if c2.Stats().SessionPresent {
		t.Fatal("session present after the clean-init dance")
	}
	if err := c2.Subscribe(ctx, "ci", 1); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, "ci", []byte("fresh"), false, 1); err != nil {
		t.Fatal(err)
	}
	msg, err := c2.Queue().Next(ctx)
	if err != nil || string(msg.Payload) != "fresh" {
		t.Fatalf("got %+v %v, want only the fresh message", msg, err)
	}
	// The dance ends in a persistent session: what is published while the client is gone is kept for it.
	// (Connect after Disconnect is a new start-up and would discard it again, as in mqtt_as.)
	_ = c2.Close()
	if err := pub.Publish(ctx, "ci", []byte("while-away"), false, 1); err != nil {
		t.Fatal(err)
	}
	resume := fresh
	resume.ResumeSession = true
	c3 := mustConnect(t, resume)
	if !c3.Stats().SessionPresent {
		t.Fatal("no session present: the dance did not end with a persistent session")
	}
	// Close is abrupt, so c2's PUBACK for "fresh" may not have gone out: qos 1 then redelivers it.
	msg, err = c3.Queue().Next(ctx)
	if err == nil && string(msg.Payload) == "fresh" {
		msg, err = c3.Queue().Next(ctx)
	}
	if err != nil || string(msg.Payload) != "while-away" {
		t.Fatalf("got %+v %v, want the message published while away", msg, err)
	}
}

// A broker restart is an outage the client rides through: a qos 1 publish issued while the broker is down
// completes after it comes back, Down and Up fire, and the persistent session keeps the subscription.
func TestIntegrationBrokerRestart(t *testing.T) {
	m := startMosquitto(t, "")
	ctx := testCtx(t, 30*time.Second)
	cfg := m.config("it-restart")
	cfg.KeepSession = true
	cfg.QueueLen = 10
	c := mustConnect(t, cfg)
	if err := c.Subscribe(ctx, "restart", 1); err != nil {
		t.Fatal(err)
	}
	c.Up().Clear()
	m.stop()
	if err := c.Down().Wait(ctx); err != nil {
		t.Fatal("no Down event after the broker stopped")
	}
	done := make(chan error, 1)
	go func() { done <- c.Publish(ctx, "restart", []byte("through"), false, 1) }()
	time.Sleep(300 * time.Millisecond)
	m.start()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := c.Up().Wait(ctx); err != nil {
		t.Fatal("no Up event after the broker restarted")
	}
	msg, err := c.Queue().Next(testCtx(t, 3*time.Second))
	if err != nil || string(msg.Payload) != "through" {
		t.Fatalf("got %+v %v; stats %+v; broker log:\n%s", msg, err, c.Stats(), m.logs.String())
	}
	if st := c.Stats(); st.Reconnects < 1 || st.Outages < 1 {
		t.Fatalf("stats %+v", st)
	}
	if err := c.LastError(); err == nil {
		t.Fatal("LastError is nil after an outage")
	}
}

// Disconnect writes every qos 0 publication that Publish already accepted before DISCONNECT: they were
// queued first. (An earlier version sent DISCONNECT ahead of them and lost up to the whole queue.)
func TestIntegrationDisconnectFlushesQueuedQoS0(t *testing.T) {
	m := startMosquitto(t, "max_queued_messages 0")
	ctx := testCtx(t, 20*time.Second)
	subCfg := m.config("it-flush-sub")
	subCfg.QueueLen = 2000
	sub := mustConnect(t, subCfg)
	if err := sub.Subscribe(ctx, "flush", 0); err != nil {
		t.Fatal(err)
	}
	pub := mustConnect(t, m.config("it-flush-pub"))
	const n = 1000
	for i := range n {
		if err := pub.Publish(ctx, "flush", []byte(strconv.Itoa(i)), false, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		msg, err := sub.Queue().Next(ctx)
		if err != nil {
			t.Fatalf("received %d of %d qos 0 messages published before Disconnect: %v", i, n, err)
		}
		if string(msg.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, msg.Payload)
		}
	}
}

// The broker publishes the will when the client vanishes (Close), not after Disconnect.
func TestIntegrationWill(t *testing.T) {
	m := startMosquitto(t, "")
	ctx := testCtx(t, 20*time.Second)
	watchCfg := m.config("it-will-watch")
	watchCfg.QueueLen = 10
	watch := mustConnect(t, watchCfg)
	if err := watch.Subscribe(ctx, "will/+", 1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id       string
		graceful bool
	}{{"polite", true}, {"abrupt", false}} {
		cfg := m.config("it-will-" + tc.id)
		cfg.Will = &Message{Topic: "will/" + tc.id, Payload: []byte("gone"), QoS: 1}
		c := mustConnect(t, cfg)
		if tc.graceful {
			if err := c.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
		}
		_ = c.Close()
	}
	msg, err := watch.Queue().Next(ctx)
	if err != nil || msg.Topic != "will/abrupt" {
		t.Fatalf("got %+v %v, want the abrupt client's will", msg, err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if msg, err := watch.Queue().Next(short); err == nil {
		t.Fatalf("unexpected will %+v after a graceful Disconnect", msg)
	}
}

func TestIntegrationNotAuthorised(t *testing.T) {
	m := startMosquitto(t, "allow_anonymous false")
	c, err := New(m.config("it-refused"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Connect(testCtx(t, 10*time.Second))
	var ce *ConnackError
	if !errors.As(err, &ce) || ce.Code != 5 || !errors.Is(err, ErrConnectionRefused) {
		t.Fatalf("got %v, want CONNACK code 5", err)
	}
	if c.IsConnected() || c.Up().IsSet() || c.Down().IsSet() {
		t.Fatal("a failed first Connect must leave the client down with no events")
	}
}

// With KeepSession the will goes in the resumed CONNECT too: an abrupt loss of the first connection and of
// the one that resumed its session each make mosquitto publish the will.
func TestIntegrationWillAfterResume(t *testing.T) {
	m := startMosquitto(t, "")
	ctx := testCtx(t, 20*time.Second)
	watchCfg := m.config("it-will-resume-watch")
	watchCfg.QueueLen = 10
	watch := mustConnect(t, watchCfg)
	if err := watch.Subscribe(ctx, "will/resume", 1); err != nil {
		t.Fatal(err)
	}
	cfg := m.config("it-will-resume")
	cfg.KeepSession = true
	cfg.Will = &Message{Topic: "will/resume", Payload: []byte("gone"), QoS: 1}
	for i, resume := range []bool{false, true} {
		cfg.ResumeSession = resume
		c := mustConnect(t, cfg)
		if got := c.Stats().SessionPresent; got != resume {
			t.Fatalf("connection %d: session present %t, want %t", i+1, got, resume)
		}
		_ = c.Close() // no DISCONNECT: an abrupt loss
		msg, err := watch.Queue().Next(ctx)
		if err != nil || msg.Topic != "will/resume" || string(msg.Payload) != "gone" {
			t.Fatalf("after connection %d: got %+v %v, want its will", i+1, msg, err)
		}
	}
}

// A handler slower than 1.5 × KeepAlive (mosquitto drops a client that sends nothing for that long): the
// client keeps pinging while the handler runs and counts the PINGRESPs waiting in the socket, so neither
// side declares an outage and each message is delivered once.
func TestIntegrationSlowHandlerNoFalseOutage(t *testing.T) {
	m := startMosquitto(t, "")
	ctx := testCtx(t, 30*time.Second)
	subCfg := m.config("it-slow-sub")
	subCfg.KeepSession = true
	per := subCfg.KeepAlive*3/2 + 500*time.Millisecond // 3.5 s with KeepAlive 2 s
	var handled atomic.Int32
	subCfg.OnMessage = func(Message) {
		time.Sleep(per)
		handled.Add(1)
	}
	sub := mustConnect(t, subCfg)
	if err := sub.Subscribe(ctx, "slow/handler", 1); err != nil {
		t.Fatal(err)
	}
	pub := mustConnect(t, m.config("it-slow-pub"))
	for i := range 2 {
		if err := pub.Publish(ctx, "slow/handler", []byte{byte(i)}, false, 1); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2*per + 5*time.Second)
	for handled.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(subCfg.KeepAlive) // an outage right after the last handler would show now
	st := sub.Stats()
	if handled.Load() != 2 || st.Outages != 0 || st.Connects != 1 || st.Received != 2 {
		t.Errorf("handled %d, stats %+v: want 2 messages, each once, no outage; mosquitto log:\n%s", handled.Load(), st, m.logs.String())
	}
}
