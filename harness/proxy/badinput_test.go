package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/proxy"
	"github.com/mqttas/mqttas-go/internal/mqttwire"
)

func runErr(t *testing.T, cfg proxy.Config) (error, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	res, err := proxy.Run(ctx, cfg)
	if err == nil {
		t.Fatalf("Run succeeded (%+v), want an error", res)
	}
	return err, time.Since(began)
}

// TestProxyPortInUse: a device address someone else listens on is refused at once, before any broker
// starts, naming the address.
func TestProxyPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, which := range []string{"listen", "api"} {
		cfg := config(t, "127.0.0.1:1") // never reached
		if which == "listen" {
			cfg.Listen = ln.Addr().String()
		} else {
			cfg.API = ln.Addr().String()
		}
		err, took := runErr(t, cfg)
		if !errors.Is(err, proxy.ErrListen) || !strings.Contains(err.Error(), ln.Addr().String()) ||
			!strings.Contains(err.Error(), "in use") {
			t.Fatalf("%s: err = %v, want ErrListen naming %s in use", which, err, ln.Addr())
		}
		if took > 5*time.Second {
			t.Fatalf("%s: took %v", which, took)
		}
	}
}

// TestProxyUnreachableBroker: an external broker that does not answer is an ErrBroker within the probe's
// bound, and the device's port is free again afterwards.
func TestProxyUnreachableBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	cfg := config(t, dead)
	err, took := runErr(t, cfg)
	if !errors.Is(err, proxy.ErrBroker) || !strings.Contains(err.Error(), dead) {
		t.Fatalf("err = %v, want ErrBroker naming %s", err, dead)
	}
	if took > 20*time.Second {
		t.Fatalf("took %v", took)
	}
}

// TestProxyBadConfig: another address than loopback needs Public; addresses must parse.
func TestProxyBadConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*proxy.Config)
		want string
	}{
		{"public listen", func(c *proxy.Config) { c.Listen = "0.0.0.0:1883" }, "not loopback"},
		{"public api", func(c *proxy.Config) { c.API = "0.0.0.0:8474" }, "not loopback"},
		{"bad broker", func(c *proxy.Config) { c.Broker = "nohostport" }, "broker address"},
		{"no out", func(c *proxy.Config) { c.Out = "" }, "report directory"},
	} {
		cfg := config(t, "127.0.0.1:1")
		c.edit(&cfg)
		err, _ := runErr(t, cfg)
		if !errors.Is(err, proxy.ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrConfig with %q", c.name, err, c.want)
		}
	}
}

// apiCall makes one request and returns its status and Toxiproxy error body.
func apiCall(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &e); err != nil || e.Status != resp.StatusCode || e.Error == "" {
			t.Fatalf("%s %s: %d with body %q, want Toxiproxy's error body", method, url, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, e.Error
}

// TestProxyAPIErrors: requests that name an unknown toxic or proxy, give a bad MQTT toxic, or would break
// the link each get an HTTP error with Toxiproxy's body, and the proxy keeps serving.
func TestProxyAPIErrors(t *testing.T) {
	run := start(t, config(t, startBroker(t)))
	base := "http://" + run.addrs.API
	for _, c := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"DELETE", "/proxies/mqtt/toxics/nope", "", 404, "toxic not found"},
		{"GET", "/proxies/mqtt/toxics/nope", "", 404, "toxic not found"},
		{"GET", "/proxies/other", "", 404, "proxy not found"},
		{"POST", "/proxies/mqtt/toxics", `{"type":"no_such_toxic"}`, 400, "invalid toxic type"},
		{"POST", "/proxies/mqtt/toxics", `{"type":"mqtt_drop","attributes":{"packet_type":"PUBLICK"}}`, 400, "want one of CONNECT"},
		{"POST", "/proxies/mqtt/toxics", `{"type":"mqtt_delay","attributes":{"packet_type":"PUBACK"}}`, 400, "delay 0"},
		{"POST", "/proxies/mqtt/toxics", `{"type":"mqtt_drop","attributes":{"packet_type":"PUBACK","colour":1}}`, 400, "colour"},
		{"POST", "/proxies/mqtt/toxics", `{"type":"mqtt_drop","toxicity":0.5,"attributes":{"packet_type":"PUBACK"}}`, 400, "toxicity"},
		{"POST", "/proxies/mqtt/toxics", `{not json`, 400, "bad request body"},
		{"DELETE", "/proxies/mqtt", "", 403, "cannot be deleted"},
		{"POST", "/proxies", `{"name":"x","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}`, 403, "cannot be created"},
		{"DELETE", "/proxies/mqtt/toxics/tap-upstream", "", 403, "belongs to the link"},
		{"POST", "/proxies/mqtt", `{"listen":"127.0.0.1:1"}`, 400, "cannot change"},
	} {
		status, msg := apiCall(t, c.method, base+c.path, c.body)
		if status != c.status || !strings.Contains(msg, c.want) {
			t.Errorf("%s %s %s: %d %q, want %d with %q", c.method, c.path, c.body, status, msg, c.status, c.want)
		}
	}
	// A second rule for the same packets conflicts; reset removes the first.
	ok := `{"name":"d1","type":"mqtt_delay","stream":"upstream","attributes":{"packet_type":"PINGREQ","delay":200}}`
	if status, msg := apiCall(t, "POST", base+"/proxies/mqtt/toxics", ok); status != 200 {
		t.Fatalf("add: %d %s", status, msg)
	}
	if status, msg := apiCall(t, "POST", base+"/proxies/mqtt/toxics", strings.Replace(ok, "d1", "d2", 1)); status != 409 {
		t.Fatalf("second rule: %d %s, want 409", status, msg)
	}
	if status, msg := apiCall(t, "POST", base+"/reset", ""); status != 204 {
		t.Fatalf("reset: %d %s", status, msg)
	}
	if status, _ := apiCall(t, "GET", base+"/proxies/mqtt/toxics/d1", ""); status != 404 {
		t.Fatalf("d1 after reset: %d, want 404", status)
	}
	if status, _ := apiCall(t, "GET", base+"/proxies/mqtt/toxics/tap-upstream", ""); status != 200 {
		t.Fatalf("the tap after reset: %d, want 200 (still there)", status)
	}
	dev := dialMQTT(t, run.addrs.Listen, "after-errors")
	dev.publish("dev/x", 1, "1")
	if p, err := dev.read(5 * time.Second); err != nil || p.Type != mqttwire.PUBACK {
		t.Fatalf("after the errors: %v %v, want PUBACK", p, err)
	}
}

// TestProxyGarbageDevice: a connection that sends garbage is passed to the broker (which closes it) and
// logged as unframed; a device connected alongside, and one connecting after, are served as usual.
func TestProxyGarbageDevice(t *testing.T) {
	run := start(t, config(t, startBroker(t)))
	good := dialMQTT(t, run.addrs.Listen, "good-before")
	bad, err := net.DialTimeout("tcp", run.addrs.Listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	_ = bad.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := bad.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\xfe garbage")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(bad); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("garbage connection: %v, want it closed", err)
	}
	good.publish("dev/good", 7, "seq=1")
	if p, err := good.read(5 * time.Second); err != nil || p.Type != mqttwire.PUBACK || p.ID() != 7 {
		t.Fatalf("device alongside: %v %v, want PUBACK 7", p, err)
	}
	dialMQTT(t, run.addrs.Listen, "good-after")
	if _, err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	unframed := 0
	for _, w := range readWire(t, run) {
		if w.Event == "unframed" && w.Dir == "c→b" {
			unframed++
		}
	}
	if unframed != 1 {
		t.Fatalf("%d unframed records, want 1 for the garbage connection", unframed)
	}
}
