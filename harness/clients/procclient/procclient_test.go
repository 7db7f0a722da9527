package procclient

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/broker/brokertest"
	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/clientstest"
)

const driversDir = "../../../drivers"

func TestConformancePython(t *testing.T) {
	conformance(t, Python(driversDir))
}

func TestConformanceNode(t *testing.T) {
	conformance(t, Node(driversDir))
}

func TestConformanceC(t *testing.T) {
	conformance(t, C(cDriver(t)))
}

// cDriver builds the C driver with the Makefile's rule (a no-op when it is
// up to date) and returns its path.
func cDriver(t *testing.T) string {
	t.Helper()
	const root = "../../.."
	out, err := exec.Command("make", "--no-print-directory", "-C", root, "c-driver").CombinedOutput()
	if err != nil {
		t.Fatalf("make c-driver: %v\n%s", err, out)
	}
	p, err := filepath.Abs(filepath.Join(root, "build", "drivers", "c", "driver"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// conformance runs the suite and then checks that every Close returned nil:
// the suite ignores Close's error, and a driver that failed quietly must not
// pass.
func conformance(t *testing.T, cfg Config) {
	var (
		mu   sync.Mutex
		errs []error
		n    int
	)
	clientstest.Conformance(t, func(o clients.Options) (clients.Client, error) {
		c, err := New(o, cfg)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		n++
		mu.Unlock()
		return &checkedClose{Client: c, report: func(err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err)
		}}, nil
	})
	mu.Lock()
	defer mu.Unlock()
	if n == 0 {
		t.Fatal("the suite made no client")
	}
	for _, err := range errs {
		t.Errorf("Close: %v", err)
	}
}

type checkedClose struct {
	*Client
	report func(error)
}

func (c *checkedClose) Close() error {
	err := c.Client.Close()
	if err != nil {
		c.report(err)
	}
	return err
}

// TestDriverHello checks what each driver says about itself.
func TestDriverHello(t *testing.T) {
	for _, tc := range []struct {
		cfg             Config
		library, prefix string
		caps            []string
	}{
		{Python(driversDir), "paho-mqtt", "1.", []string{CapDup, CapSessionPresent}},
		{Node(driversDir), "mqtt.js", "4.", []string{CapDup, CapSessionPresent}},
		{C(cDriver(t)), "libmosquitto", "2.", []string{CapSessionPresent}},
	} {
		t.Run(tc.cfg.Name, func(t *testing.T) {
			m := brokertest.Start(t)
			c, err := New(clients.Options{Addr: m.Addr, ClientID: "hello"}, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			h := c.Hello()
			if h.Protocol != 1 || h.Library != tc.library || !strings.HasPrefix(h.Version, tc.prefix) ||
				!slices.Equal(h.Capabilities, tc.caps) {
				t.Fatalf("hello = %+v", h)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		o   clients.Options
		cfg Config
	}{
		{clients.Options{}, Config{Command: []string{"x"}}},
		{clients.Options{Addr: "127.0.0.1:1"}, Config{}},
		{clients.Options{Addr: "no-port"}, Config{Command: []string{"x"}}},
		{clients.Options{Addr: "h:0"}, Config{Command: []string{"x"}}},
	} {
		if _, err := New(tc.o, tc.cfg); !errors.Is(err, clients.ErrInvalidOptions) {
			t.Errorf("New(%+v, %+v) = %v, want ErrInvalidOptions", tc.o, tc.cfg, err)
		}
	}
}

func TestPublishBeforeConnectIsNotSent(t *testing.T) {
	c, err := New(clients.Options{Addr: "127.0.0.1:1"}, Config{Command: []string{os.Args[0]}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Publish(context.Background(), clients.Message{Topic: "t", QoS: 1}); !errors.Is(err, clients.ErrNotSent) {
		t.Fatalf("Publish before Connect = %v, want ErrNotSent", err)
	}
	if c.IsConnected() {
		t.Fatal("IsConnected before Connect")
	}
}

func TestDecodeEvent(t *testing.T) {
	good := []string{
		`{"ev":"result","id":1,"ok":true}`,
		`{"ev":"result","id":2,"ok":false,"error":"boom","not_sent":true}`,
		`{"ev":"result","id":3,"ok":true,"hello":{"protocol":1,"driver":"d","library":"l","version":"1","capabilities":["dup"]}}`,
		`{"ev":"message","topic":"a/b","payload":"aGk=","qos":1,"retain":true,"dup":true}`,
		`{"ev":"message","topic":"a","qos":0}`,
		`{"ev":"up","session_present":true}`,
		`{"ev":"down","reason":"EOF","reconnecting":false}`,
		`{"ev":"reconnect"}`,
		`{"ev":"connect_failed","reason":"refused"}`,
		`{"ev":"log","level":"warn","msg":"x"}`,
		` {"ev":"up"} `,
	}
	for _, l := range good {
		if _, err := decodeEvent([]byte(l)); err != nil {
			t.Errorf("decodeEvent(%s) = %v", l, err)
		}
	}
	ev, _ := decodeEvent([]byte(good[3]))
	if string(ev.Payload) != "hi" || *ev.QoS != 1 || !ev.Retain || !ev.Dup {
		t.Errorf("message decoded as %+v", ev)
	}
	bad := []string{
		``, `not json`, `[]`, `{}`, `{"ev":"nope"}`, `{"ev":"up"} {"ev":"up"}`, `{"ev":"up","extra":1}`,
		`{"ev":"result","ok":true}`, `{"ev":"result","id":1}`, `{"ev":"result","id":1,"ok":false}`,
		`{"ev":"result","id":1,"ok":true,"error":"x"}`, `{"ev":"result","id":-1,"ok":true}`,
		`{"ev":"message","qos":1}`, `{"ev":"message","topic":"a"}`, `{"ev":"message","topic":"a","qos":3}`,
		`{"ev":"message","topic":"a","qos":1,"payload":"%%%"}`, `{"ev":"down"}`, `{"ev":"connect_failed"}`,
		`{"ev":"log","level":"loud","msg":"x"}`, `{"ev":"up","session_present":"yes"}`,
	}
	for _, l := range bad {
		if _, err := decodeEvent([]byte(l)); !errors.Is(err, ErrProtocol) {
			t.Errorf("decodeEvent(%s) = %v, want ErrProtocol", l, err)
		}
	}
	long := make([]byte, MaxLine+1)
	if _, err := decodeEvent(long); !errors.Is(err, ErrProtocol) {
		t.Errorf("decodeEvent(too long) = %v", err)
	}
}

func TestDriverErrorText(t *testing.T) {
	e := &DriverError{Driver: "python", Line: 3, Text: "garbage", Stderr: "Traceback\n", Err: ErrProtocol}
	want := "procclient: driver python: stdout line 3 \"garbage\": procclient: driver broke the protocol\n--- stderr of driver python (tail) ---\nTraceback"
	if e.Error() != want {
		t.Fatalf("Error() = %q, want %q", e.Error(), want)
	}
	if !errors.Is(e, ErrDriver) || !errors.Is(e, clients.ErrClientFailed) || !errors.Is(e, ErrProtocol) || errors.Is(e, ErrHung) {
		t.Fatal("DriverError matches the wrong sentinels")
	}
	var tb tailBuffer
	tb.max = 4
	tb.Write([]byte("abcdef"))
	tb.Write([]byte("gh"))
	if tb.String() != "efgh" {
		t.Fatalf("tail = %q", tb.String())
	}
}
