package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProxyCommandVerdict runs mqttas proxy in front of a broker with a trace that resets the link
// twice, and mqttas pub through it as the stand-in device (a numbered qos 1 stream); SIGINT after the
// device is done ends the proxy, which prints the verdict, writes the report and exits 0.
func TestProxyCommandVerdict(t *testing.T) {
	bport := startMosquitto(t, "allow_anonymous true")
	dir := t.TempDir()
	trace := filepath.Join(dir, "two-resets.yaml")
	if err := os.WriteFile(trace, []byte("version: 1\nname: two-resets\nfaults:\n  - {at: 300ms, fault: reset, repeat: {every: 400ms, count: 2}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lport, aport := freePort(t), freePort(t)
	out := filepath.Join(dir, "report")
	px := startProc(t, "proxy", "proxy", "--broker", "127.0.0.1:"+strconv.Itoa(bport), "--listen", "127.0.0.1:"+strconv.Itoa(lport),
		"--api", "127.0.0.1:"+strconv.Itoa(aport), "--trace", trace, "--tail", "1m", "--out", out, "--pattern", `^n (\d+)$`)
	if !waitOutput(px.stderr, 30*time.Second, func(s string) bool { return strings.Contains(s, "devices connect to") }) {
		t.Fatalf("proxy not ready; stderr:\n%s", px.stderr)
	}
	dev := startProc(t, "device", "pub", "-h", "127.0.0.1", "-p", strconv.Itoa(lport), "-i", "standin", "-t", "dev/n",
		"-q", "1", "--count", "40", "--interval", "30ms", "-m", "n")
	if code := dev.wait(time.Minute); code != exitOK {
		t.Fatalf("device: exit %d; stderr:\n%s", code, dev.stderr)
	}
	if err := px.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := px.wait(time.Minute); code != exitOK {
		t.Fatalf("proxy: exit %d; stdout:\n%s\nstderr:\n%s", code, px.stdout, px.stderr)
	}
	so := px.stdout.String()
	for _, want := range []string{"verdict PASS: 40 received, 0 lost", "dev/n: #1–#40, 40 received, 0 lost", "index.html"} {
		if !strings.Contains(so, want) {
			t.Fatalf("stdout lacks %q:\n%s", want, so)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Verdict string `json:"verdict"`
		Faults  []struct {
			Name string `json:"name"`
		} `json:"faults"`
	}
	if err := json.Unmarshal(b, &sum); err != nil || sum.Verdict != "PASS" || len(sum.Faults) != 2 {
		t.Fatalf("summary.json: %v, verdict %q, %d faults; want PASS and the 2 resets", err, sum.Verdict, len(sum.Faults))
	}
	if st, err := os.Stat(filepath.Join(out, "wire.jsonl")); err != nil || st.Size() == 0 {
		t.Fatalf("wire.jsonl: %v", err)
	}
}

// TestProxyCommandBadInput: each mistake is a message and an exit code, at once.
func TestProxyCommandBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nname: bad\nfaults:\n  - {at: 1s, fault: latencyy, duration: 2s}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dead := freePort(t)
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"malformed trace", []string{"--trace", bad}, exitUsage, "bad.yaml:4"},
		{"missing trace", []string{"--trace", filepath.Join(dir, "none.yaml")}, exitUsage, "none.yaml"},
		{"client crash", []string{"--trace", "../../traces/client-crash.yaml"}, exitUsage, "whose processes it cannot crash"},
		{"port in use", []string{"--listen", busy.Addr().String(), "--broker", "127.0.0.1:" + strconv.Itoa(dead)}, exitCannotStart, "in use"},
		{"unreachable broker", []string{"--listen", "127.0.0.1:" + strconv.Itoa(freePort(t)), "--broker", "127.0.0.1:" + strconv.Itoa(dead)},
			exitCannotStart, "does not answer"},
		{"not loopback", []string{"--listen", "0.0.0.0:1883"}, exitUsage, "--public"},
		{"seed alone", []string{"--seed", "7"}, exitUsage, "--duration"},
		{"bad pattern", []string{"--pattern", "("}, exitUsage, "--pattern"},
	} {
		args := append([]string{"proxy", "--api", "", "--out", filepath.Join(dir, c.name)}, c.args...)
		p := startProc(t, c.name, args...)
		if code := p.wait(30 * time.Second); code != c.code || !strings.Contains(p.stderr.String(), c.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d with %q", c.name, code, p.stderr, c.code, c.want)
		}
	}
}

// TestProxyCommandHelp lists every flag.
func TestProxyCommandHelp(t *testing.T) {
	p := startProc(t, "help", "proxy", "--help")
	if code := p.wait(10 * time.Second); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	fs, _ := newProxyFlags()
	help := p.stdout.String()
	for _, name := range []string{"listen", "public", "api", "broker", "trace", "repeat", "seed", "duration", "tail", "out", "pattern", "filter", "progress", "quiet"} {
		if fs.Lookup(name) == nil || !strings.Contains(help, "--"+name) {
			t.Errorf("--%s missing from the flags or the help", name)
		}
	}
	if !strings.Contains(help, "Exit codes: 0 the report is written") || strings.Contains(help, "mosquitto_sub") {
		t.Errorf("help has the wrong exit codes:\n%s", help)
	}
}

// TestProxyCommandLost: three of a qos 0 device's publications dropped mid-stream through the API (an
// mqtt_drop toxic for the next 3 PUBLISHes upstream) are reported lost, and the exit code says so.
func TestProxyCommandLost(t *testing.T) {
	bport := startMosquitto(t, "allow_anonymous true")
	lport, aport := freePort(t), freePort(t)
	out := filepath.Join(t.TempDir(), "report")
	px := startProc(t, "proxy", "proxy", "--broker", "127.0.0.1:"+strconv.Itoa(bport), "--listen", "127.0.0.1:"+strconv.Itoa(lport),
		"--api", "127.0.0.1:"+strconv.Itoa(aport), "--out", out, "--progress", "50ms")
	if !waitOutput(px.stderr, 30*time.Second, func(s string) bool { return strings.Contains(s, "devices connect to") }) {
		t.Fatalf("proxy not ready; stderr:\n%s", px.stderr)
	}
	dev := startProc(t, "device", "pub", "-h", "127.0.0.1", "-p", strconv.Itoa(lport), "-i", "lossy", "-t", "dev/q0",
		"-q", "0", "--count", "40", "--interval", "40ms")
	received := regexp.MustCompile(`received ([5-9]|[1-9]\d)\b`)
	if !waitOutput(px.stderr, 30*time.Second, received.MatchString) {
		t.Fatalf("the observer saw nothing; stderr:\n%s", px.stderr)
	}
	resp, err := http.Post("http://127.0.0.1:"+strconv.Itoa(aport)+"/proxies/mqtt/toxics", "application/json",
		strings.NewReader(`{"name":"lose3","type":"mqtt_drop","stream":"upstream","attributes":{"packet_type":"PUBLISH","count":3}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("add toxic: %s", resp.Status)
	}
	if code := dev.wait(time.Minute); code != exitOK {
		t.Fatalf("device: exit %d; stderr:\n%s", code, dev.stderr)
	}
	if err := px.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := px.wait(time.Minute); code != exitLost {
		t.Fatalf("proxy: exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitLost, px.stdout, px.stderr)
	}
	if so := px.stdout.String(); !strings.Contains(so, "verdict FAIL: 37 received, 3 lost") ||
		!strings.Contains(so, "dev/q0: #1–#40, 37 received, 3 lost") {
		t.Fatalf("stdout:\n%s", so)
	}
}
