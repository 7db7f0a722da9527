package main

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/link"
)

// SIGINT stops pub after the publication in flight: the subscriber has received exactly the messages pub
// says it published, in order, and none after; pub exits 3. SIGTERM stops sub (no -C) with exit 0. pub's
// PUBACKs are delayed by the link, so the signal lands while a publication waits for its acknowledgement.
func TestInterruptFinishesInFlight(t *testing.T) {
	buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	brokerAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(startMosquitto(t, "allow_anonymous true")))
	l, err := link.New(ctx, brokerAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if err := l.DelayPackets(link.Downstream, pubackType, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	host, lport, _ := net.SplitHostPort(l.Addr())
	_, port, _ := net.SplitHostPort(brokerAddr)
	conn := []string{"-h", "127.0.0.1", "-p", port, "-q", "1"}
	if code, _, errs := runCLI(t, context.Background(), append([]string{"pub", "-t", "sig/ready", "-m", "ready", "-r"}, conn...)...); code != 0 {
		t.Fatalf("retained pub: exit %d, %s", code, errs)
	}
	sub := startProc(t, "sub", append([]string{"sub", "-t", "sig/#", "-v"}, conn...)...)
	if !sub.waitOutput(10*time.Second, func(s string) bool { return strings.Contains(s, "sig/ready ready\n") }) {
		t.Fatalf("sub did not subscribe; stderr:\n%s", sub.stderr)
	}
	pub := startProc(t, "pub", "pub", "-h", host, "-p", lport, "-q", "1", "-t", "sig/n", "--count", "100000", "-m", "n")
	if !sub.waitOutput(10*time.Second, func(s string) bool { return len(lines(s)) > 5 }) {
		t.Fatalf("the stream did not start; pub stderr:\n%s", pub.stderr)
	}
	if err := pub.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := pub.wait(10 * time.Second); code != exitInterrupted {
		t.Fatalf("pub after SIGINT: exit %d, want %d; stderr:\n%s", code, exitInterrupted, pub.stderr)
	}
	m := regexp.MustCompile(`interrupted after (\d+) publications; disconnecting`).FindStringSubmatch(pub.stderr.String())
	if m == nil {
		t.Fatalf("pub did not say how many it published:\n%s", pub.stderr)
	}
	k, _ := strconv.Atoi(m[1])
	want := "sig/ready ready\n"
	for _, s := range sequence("n", k) {
		want += "sig/n " + s + "\n"
	}
	if !sub.waitOutput(5*time.Second, func(s string) bool { return len(lines(s)) >= k+1 }) {
		t.Fatalf("sub received %d of the %d published", len(lines(sub.stdout.String()))-1, k)
	}
	time.Sleep(300 * time.Millisecond) // anything published after the last acknowledged one would show by now
	if got := sub.stdout.String(); got != want {
		t.Errorf("sub received (last lines):\n%s\nwant %d messages ending with \"n %d\"", tail(got, 3), k, k)
	}
	if err := sub.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := sub.wait(10 * time.Second); code != exitOK {
		t.Errorf("sub after SIGTERM: exit %d, want %d; stderr:\n%s", code, exitOK, sub.stderr)
	}
	if want := "interrupted after " + strconv.Itoa(k+1) + " messages; disconnecting"; !strings.Contains(sub.stderr.String(), want) {
		t.Errorf("sub stderr %q lacks %q", sub.stderr, want)
	}

	// A publication that cannot finish (the link is a black hole) holds pub after the first SIGINT; the
	// second abandons it.
	pub = startProc(t, "pub", "pub", "-h", host, "-p", lport, "-q", "1", "-t", "sig/stuck", "--count", "5", "--interval", "300ms")
	if _, err := l.Tap().WaitFor(ctx, packetType("PUBLISH"), func(p link.Packet) bool { return p.Topic == "sig/stuck" }); err != nil {
		t.Fatal(err)
	}
	if err := l.Silent(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // its PUBACK went into the black hole: the publication is in flight
	if err := pub.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pub.done:
		t.Fatalf("pub exited (%d) at the first SIGINT with a publication in flight; stderr:\n%s", pub.code, pub.stderr)
	case <-time.After(500 * time.Millisecond):
	}
	if err := pub.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := pub.wait(5 * time.Second); code != exitInterrupted || !strings.Contains(pub.stderr.String(), "interrupted again: abandoning") {
		t.Errorf("pub after a second SIGINT: exit %d; stderr:\n%s", code, pub.stderr)
	}
}

// SIGINT stops a sub without -C with exit 0, as it does mosquitto_sub: it has no planned end, so the signal
// cuts nothing short. A sub with -C that has not yet received its N messages exits 3.
func TestSubInterruptExitCode(t *testing.T) {
	buildBinary(t)
	port := strconv.Itoa(startMosquitto(t, "allow_anonymous true"))
	conn := []string{"-h", "127.0.0.1", "-p", port}
	if code, _, errs := runCLI(t, context.Background(), append([]string{"pub", "-t", "int/ready", "-m", "ready", "-r"}, conn...)...); code != 0 {
		t.Fatalf("retained pub: exit %d, %s", code, errs)
	}
	for _, tc := range []struct {
		name  string
		flags []string
		want  int
	}{
		{"without -C", nil, exitOK},
		{"-C 5 after 1 message", []string{"-C", "5"}, exitInterrupted},
	} {
		sub := startProc(t, "sub "+tc.name, append(append([]string{"sub", "-t", "int/ready"}, conn...), tc.flags...)...)
		if !sub.waitOutput(10*time.Second, func(s string) bool { return s == "ready\n" }) {
			t.Fatalf("sub %s did not subscribe; stderr:\n%s", tc.name, sub.stderr)
		}
		if err := sub.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := sub.wait(10 * time.Second); code != tc.want {
			t.Errorf("sub %s after SIGINT: exit %d, want %d; stderr:\n%s", tc.name, code, tc.want, sub.stderr)
		}
		if want := "interrupted after 1 message; disconnecting"; !strings.Contains(sub.stderr.String(), want) {
			t.Errorf("sub %s stderr %q lacks %q", tc.name, sub.stderr, want)
		}
	}
}

// A persistent session can deliver messages before the SUBACK, so a signal can reach sub while it still waits
// for one: without -C that ends the work as any other interrupt does (exit 0), with -C it cuts it short (exit 3).
func TestSubInterruptedBeforeSuback(t *testing.T) {
	buildBinary(t)
	for _, tc := range []struct {
		name  string
		flags []string
		want  int
	}{
		{"without -C", nil, exitOK},
		{"-C 1", []string{"-C", "1"}, exitInterrupted},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		subscribed := make(chan struct{}, 1)
		served := make(chan error, 1)
		go func() { served <- fakeBroker(ln, nil, subscribed) }()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		sub := startProc(t, "sub "+tc.name, append([]string{"sub", "-h", "127.0.0.1", "-p", port, "-t", "held/x"}, tc.flags...)...)
		select {
		case <-subscribed:
		case <-time.After(10 * time.Second):
			t.Fatalf("sub %s sent no SUBSCRIBE; stderr:\n%s", tc.name, sub.stderr)
		}
		if err := sub.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := sub.wait(10 * time.Second); code != tc.want {
			t.Errorf("sub %s interrupted before its SUBACK: exit %d, want %d; stderr:\n%s", tc.name, code, tc.want, sub.stderr)
		}
		_ = ln.Close()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}
}
