package mqttas

// Panics in the application's callbacks are not recovered (Config): on the client's goroutines they crash
// the program; inside the first Connect they reach Connect's caller and leave the client reusable.

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"
)

const panicCaseEnv = "MQTTAS_TEST_PANIC_CASE"

// panicLink is a fake Link whose Connect panics from call number from on.
type panicLink struct {
	*fakeLink
	calls atomic.Int32
	from  int32
}

func (l *panicLink) Connect(ctx context.Context) error {
	if l.calls.Add(1) >= l.from {
		panic("mqttas-test: Link.Connect panicked")
	}
	return l.fakeLink.Connect(ctx)
}

// panicCases each set up a client whose callback panics with the marker on one of the client's goroutines.
var panicCases = []struct {
	name, marker string
	run          func(t *testing.T, b *fakeBroker, cfg Config, marker string)
}{
	{"OnMessage", "mqttas-test: OnMessage panicked", func(t *testing.T, b *fakeBroker, cfg Config, marker string) {
		cfg.OnMessage = func(Message) { panic(marker) }
		fbConnect(t, cfg)
		_ = b.Conn(1).Send(fbPublish("p", []byte("x"), 1, false, false, 1))
	}},
	{"OnConnect", "mqttas-test: OnConnect panicked", func(t *testing.T, b *fakeBroker, cfg Config, marker string) {
		cfg.OnConnect = func(context.Context, *Client) { panic(marker) }
		fbConnect(t, cfg)
	}},
	{"OnLinkChange", "mqttas-test: OnLinkChange panicked", func(t *testing.T, b *fakeBroker, cfg Config, marker string) {
		cfg.OnLinkChange = func(bool) { panic(marker) }
		fbConnect(t, cfg)
	}},
	{"Dial", "mqttas-test: Dial panicked", func(t *testing.T, b *fakeBroker, cfg Config, marker string) {
		var calls atomic.Int32
		cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if calls.Add(1) > 1 {
				panic(marker) // on the supervisor, reconnecting
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
		fbConnect(t, cfg)
		b.Conn(1).Close()
	}},
	{"Link", "mqttas-test: Link.Connect panicked", func(t *testing.T, b *fakeBroker, cfg Config, marker string) {
		cfg.Link = &panicLink{fakeLink: newFakeLink(), from: 2}
		cfg.LinkStableFor = 10 * time.Millisecond
		c := fbClient(t, cfg)
		if err := c.ConnectQuick(fbCtx(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		b.Conn(1).Close()
	}},
}

// Each case runs in a child process (this test binary, re-run for that case), which must die of the
// panic: exit status 2 and the panic's value on stderr.
func TestPort_CallbackPanicsCrashTheProgram(t *testing.T) {
	if name := os.Getenv(panicCaseEnv); name != "" {
		for _, pc := range panicCases {
			if pc.name == name {
				b := newFakeBroker(t)
				pc.run(t, b, fbConfig(b), pc.marker)
				time.Sleep(5 * time.Second) // the panic must come first
				t.Fatalf("%s: no crash", name)
			}
		}
		t.Fatalf("unknown case %q", name)
	}
	for _, pc := range panicCases {
		t.Run(pc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPort_CallbackPanicsCrashTheProgram$", "-test.count=1")
			cmd.Env = append(os.Environ(), panicCaseEnv+"="+pc.name)
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stderr, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("child: %v, want exit status 2 (a panic); output:\n%s", err, stderr.String())
			}
			if !bytes.Contains(stderr.Bytes(), []byte("panic: "+pc.marker)) {
				t.Errorf("child's output lacks %q:\n%s", "panic: "+pc.marker, stderr.String())
			}
		})
	}
}

// A panic in a callback that the first Connect runs on its caller's goroutine reaches the caller; the
// client is left as after a failed Connect: not connected, no event, Link down, and Connect works again.
func TestPort_PanicInFirstConnectLeavesClientReusable(t *testing.T) {
	b := fbNew(t)
	cfg := fbConfig(b)
	var panicking atomic.Bool
	panicking.Store(true)
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if panicking.Load() {
			panic("mqttas-test: Dial panicked")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	link := newFakeLink()
	cfg.Link = link
	c := fbClient(t, cfg)
	got := func() (r any) {
		defer func() { r = recover() }()
		_ = c.ConnectQuick(fbCtx(t, 5*time.Second))
		return nil
	}()
	if got != "mqttas-test: Dial panicked" {
		t.Fatalf("recovered %v from ConnectQuick, want the Dial's panic", got)
	}
	if c.IsConnected() || c.Up().IsSet() || c.Down().IsSet() {
		t.Errorf("after the panic: connected %t, Up %t, Down %t; want none", c.IsConnected(), c.Up().IsSet(), c.Down().IsSet())
	}
	ev := link.Events()
	if len(ev) < 2 || ev[len(ev)-1].What != "disconnect" {
		t.Errorf("link events %v, want the link taken down after the panic", ev)
	}
	panicking.Store(false)
	if err := c.ConnectQuick(fbCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("Connect after the panic: %v", err)
	}
	if !c.IsConnected() {
		t.Error("not connected after the second Connect")
	}
}
