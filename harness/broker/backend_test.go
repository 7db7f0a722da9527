package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// The behaviour tests run against every backend that can start on this
// machine. A backend is skipped only when it truly cannot run.
var backends = []string{KindProcess, KindContainer}

func forEachBackend(t *testing.T, test func(t *testing.T, kind string)) {
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			requireBackend(t, kind)
			test(t, kind)
		})
	}
}

func requireBackend(t *testing.T, kind string) {
	t.Helper()
	switch kind {
	case KindProcess:
		if _, err := findMosquitto(""); err != nil {
			t.Skipf("process backend cannot run: %v", err)
		}
	case KindContainer:
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		cli, err := dockerClient(ctx, discardLogger())
		if err != nil {
			t.Skipf("container backend cannot run: %v", err)
		}
		_ = cli.Close()
	}
}

func uniq(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// probeWithin probes addr with a deadline of d.
func probeWithin(t *testing.T, addr string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	return Probe(ctx, addr)
}

func TestStartProbeAndLogs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		b := newTestBroker(t, kind, Options{})
		if b.Kind() != kind {
			t.Errorf("Kind() = %q, want %q", b.Kind(), kind)
		}
		host, _, err := net.SplitHostPort(b.Addr())
		if err != nil || host != "127.0.0.1" {
			t.Errorf("Addr() = %q, want 127.0.0.1:port", b.Addr())
		}
		if err := probeWithin(t, b.Addr(), 5*time.Second); err != nil {
			t.Fatalf("Probe after New: %v", err)
		}
		logs, err := b.Logs(t.Context())
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		if !regexp.MustCompile(`mosquitto version \S+ starting`).MatchString(logs) {
			t.Errorf("logs lack mosquitto's startup line:\n%s", logs)
		}
	})
}

// mqttConnect connects a paho client (no auto-reconnect) and returns it with
// the CONNACK's session-present flag.
func mqttConnect(t *testing.T, addr, id string, clean bool, onMessage mqtt.MessageHandler) (mqtt.Client, bool) {
	t.Helper()
	c, present, err := mqttTryConnect(addr, id, clean, "", "", onMessage)
	if err != nil {
		t.Fatalf("MQTT connect %s as %s: %v", addr, id, err)
	}
	return c, present
}

func mqttTryConnect(addr, id string, clean bool, user, pass string, onMessage mqtt.MessageHandler) (mqtt.Client, bool, error) {
	o := mqtt.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(id).
		SetCleanSession(clean).
		SetUsername(user).
		SetPassword(pass).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(30 * time.Second)
	if onMessage != nil {
		// Set before connecting: the queued backlog arrives right after CONNACK.
		o.SetDefaultPublishHandler(onMessage)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, false, errors.New("no CONNACK within 10s")
	}
	if err := tok.Error(); err != nil {
		return nil, false, err
	}
	return c, tok.(*mqtt.ConnectToken).SessionPresent(), nil
}

func waitToken(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("%s: no acknowledgement within 10s", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// A graceful restart keeps the address, and mosquitto's persistence keeps a
// clean-session=false subscriber's queued QoS 1 message.
func TestRestartKeepsAddrAndPersistentSession(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		b := newTestBroker(t, kind, Options{})
		addr := b.Addr()
		subID, topic := uniq("sub-"), uniq("mqttas/test/")

		sub, _ := mqttConnect(t, addr, subID, false, nil)
		waitToken(t, "subscribe", sub.Subscribe(topic, 1, nil))
		sub.Disconnect(100)

		pub, _ := mqttConnect(t, addr, uniq("pub-"), true, nil)
		waitToken(t, "publish", pub.Publish(topic, 1, false, "queued before restart"))
		pub.Disconnect(100)

		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if err := b.Restart(ctx); err != nil {
			t.Fatalf("Restart: %v", err)
		}
		if b.Addr() != addr {
			t.Fatalf("Addr changed across Restart: %s -> %s", addr, b.Addr())
		}

		got := make(chan mqtt.Message, 8)
		sub, present := mqttConnect(t, addr, subID, false, func(_ mqtt.Client, m mqtt.Message) { got <- m })
		defer sub.Disconnect(100)
		if !present {
			t.Error("CONNACK session-present = 0 after a graceful restart, want 1")
		}
		select {
		case m := <-got:
			if m.Topic() != topic || string(m.Payload()) != "queued before restart" || m.Qos() != 1 {
				t.Errorf("got %q on %q (qos %d), want the queued message on %q", m.Payload(), m.Topic(), m.Qos(), topic)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the queued QoS 1 message did not survive the restart")
		}
	})
}

// Without persistence a graceful restart forgets the session.
func TestNoPersistenceForgetsSessions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		b := newTestBroker(t, kind, Options{NoPersistence: true})
		subID, topic := uniq("sub-"), uniq("mqttas/test/")
		sub, _ := mqttConnect(t, b.Addr(), subID, false, nil)
		waitToken(t, "subscribe", sub.Subscribe(topic, 1, nil))
		sub.Disconnect(100)

		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if err := b.Restart(ctx); err != nil {
			t.Fatalf("Restart: %v", err)
		}
		sub, present := mqttConnect(t, b.Addr(), subID, false, nil)
		sub.Disconnect(100)
		if present {
			t.Error("CONNACK session-present = 1 after restarting a broker without persistence, want 0")
		}
	})
}

// A paused broker still completes TCP handshakes but sends no CONNACK.
func TestPauseHangsAndUnpauseRecovers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		b := newTestBroker(t, kind, Options{})
		ctx := t.Context()
		if err := b.Pause(ctx); err != nil {
			t.Fatalf("Pause: %v", err)
		}
		if err := b.Pause(ctx); err != nil {
			t.Errorf("second Pause: %v, want nil", err)
		}
		conn, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err != nil {
			t.Fatalf("TCP connect to the paused broker: %v, want success", err)
		}
		_ = conn.Close()
		if err := probeWithin(t, b.Addr(), time.Second); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Probe of the paused broker = %v, want no CONNACK within 1s", err)
		}
		if err := b.Unpause(ctx); err != nil {
			t.Fatalf("Unpause: %v", err)
		}
		if err := probeWithin(t, b.Addr(), 10*time.Second); err != nil {
			t.Fatalf("Probe after Unpause: %v", err)
		}
	})
}

// Kill is a crash (no orderly shutdown), also of a paused broker; Start
// brings the broker back on the same address; Stop is graceful and saves the
// database.
func TestKillThenStartAndGracefulStop(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		b := newTestBroker(t, kind, Options{})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		addr := b.Addr()

		if err := b.Pause(ctx); err != nil {
			t.Fatalf("Pause: %v", err)
		}
		if err := b.Kill(ctx); err != nil {
			t.Fatalf("Kill of a paused broker: %v", err)
		}
		if err := b.Kill(ctx); err != nil {
			t.Errorf("Kill of a dead broker: %v, want nil", err)
		}
		if err := probeWithin(t, addr, 2*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("Probe after Kill = %v, want connection refused", err)
		}
		if err := b.Pause(ctx); !errors.Is(err, ErrNotRunning) {
			t.Errorf("Pause of a dead broker = %v, want ErrNotRunning", err)
		}
		logs, err := b.Logs(ctx)
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		if strings.Contains(logs, "terminating") {
			t.Errorf("logs show an orderly shutdown after SIGKILL:\n%s", logs)
		}

		if err := b.Start(ctx); err != nil {
			t.Fatalf("Start after Kill: %v", err)
		}
		if b.Addr() != addr {
			t.Fatalf("Addr changed: %s -> %s", addr, b.Addr())
		}
		if err := probeWithin(t, addr, 5*time.Second); err != nil {
			t.Fatalf("Probe after Start: %v", err)
		}

		if err := b.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := b.Stop(ctx); err != nil {
			t.Errorf("Stop of a stopped broker: %v, want nil", err)
		}
		if logs, err = b.Logs(ctx); err != nil {
			t.Fatalf("Logs: %v", err)
		}
		if !strings.Contains(logs, "terminating") || !strings.Contains(logs, "Saving in-memory database") {
			t.Errorf("logs lack the graceful shutdown and database save:\n%s", logs)
		}
		if err := b.Start(ctx); err != nil {
			t.Fatalf("Start after Stop: %v", err)
		}
		if err := probeWithin(t, addr, 5*time.Second); err != nil {
			t.Fatalf("Probe after Start: %v", err)
		}
	})
}

// Close works on a paused broker and leaves nothing behind (checked by
// newTestBroker's cleanup, here run explicitly); afterwards everything
// reports ErrClosed.
func TestCloseWhilePausedRemovesEverything(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		b := newTestBroker(t, kind, Options{})
		ctx := t.Context()
		if err := b.Pause(ctx); err != nil {
			t.Fatalf("Pause: %v", err)
		}
		closeAndCheckGone(t, b)
		for name, op := range map[string]func(context.Context) error{
			"Start": b.Start, "Stop": b.Stop, "Restart": b.Restart, "Kill": b.Kill, "Pause": b.Pause, "Unpause": b.Unpause,
		} {
			if err := op(ctx); !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Close = %v, want ErrClosed", name, err)
			}
		}
		if _, err := b.Logs(ctx); !errors.Is(err, ErrClosed) {
			t.Errorf("Logs after Close = %v, want ErrClosed", err)
		}
	})
}

// aliceWonderland is mosquitto_passwd's entry for user alice, password wonderland.
const aliceWonderland = "alice:$7$101$z/qqSVW2b73zqWXA$MATW6rSVaL+NRrR5ggmRQvi/pDKY7761LzgVadq8kfNH/tFip/iQkRKBrFiTd+LLQReyr9kmmfs/ozPpSAkZ3w==\n"

// Options.Config and Options.Files reach the broker: here an authenticating
// broker, which must still count as started although it refuses the probe.
func TestExtraConfigAndFiles(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		b := newTestBroker(t, kind, Options{
			Config: []string{"allow_anonymous false", "password_file " + ConfigDirVar + "/passwd"},
			Files:  map[string][]byte{"passwd": []byte(aliceWonderland)},
		})
		var ce *ConnackError
		if err := probeWithin(t, b.Addr(), 5*time.Second); !errors.As(err, &ce) || ce.Code != 5 {
			t.Fatalf("anonymous Probe = %v, want CONNACK code 5 (not authorized)", err)
		}
		c, _, err := mqttTryConnect(b.Addr(), uniq("alice-"), true, "alice", "wonderland", nil)
		if err != nil {
			t.Fatalf("connect with the right password: %v", err)
		}
		c.Disconnect(100)
		if _, _, err := mqttTryConnect(b.Addr(), uniq("mallory-"), true, "alice", "guess", nil); err == nil {
			t.Fatal("connect with a wrong password succeeded")
		}
	})
}

// A broker that cannot start fails New promptly with mosquitto's own words,
// and leaves nothing behind (TestMain checks for containers).
func TestBadConfigFailsWithBrokerOutput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		b, err := New(ctx, Options{
			Backend: kind,
			Config:  []string{"no_such_option 1"},
			Labels:  map[string]string{labelRun: runID()},
			Logger:  testLogger(t),
		})
		if err == nil {
			closeAndCheckGone(t, b)
			t.Fatal("New with an invalid config succeeded")
		}
		if b != nil {
			t.Error("New returned a non-nil Broker along with an error")
		}
		if !strings.Contains(err.Error(), "no_such_option") {
			t.Errorf("error %q does not quote mosquitto's complaint", err)
		}
	})
}
