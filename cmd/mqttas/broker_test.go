package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/internal/mqttwire"
	"github.com/mqttas/mqttas-go/internal/syncbuf"
)

// runAsync runs the command in-process in a goroutine. The returned function waits (up to d) for its exit
// code. When the test ends, a command still running is interrupted and waited for.
func runAsync(t *testing.T, ctx context.Context, stdout *syncbuf.Buffer, args ...string) (stderr *syncbuf.Buffer, wait func(d time.Duration) int) {
	t.Helper()
	stderr = new(syncbuf.Buffer)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, strings.NewReader(""), stdout, stderr) }()
	var code int
	returned := false
	t.Cleanup(func() {
		cancel()
		if !returned {
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Errorf("%q did not return after an interrupt", args)
			}
		}
	})
	return stderr, func(d time.Duration) int {
		t.Helper()
		if returned {
			return code
		}
		select {
		case code = <-done:
			returned = true
			return code
		case <-time.After(d):
			t.Fatalf("%q did not return within %v; stderr:\n%s\nstdout (%d lines) ends:\n%s", args, d, stderr,
				len(lines(stdout.String())), tail(stdout.String(), 5))
			return -1
		}
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	l := lines(s)
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// A broker that refuses the first connection makes both commands exit 2 with the CONNACK reason.
func TestFirstConnectionRefused(t *testing.T) {
	port := strconv.Itoa(startMosquitto(t, "allow_anonymous false"))
	for _, args := range [][]string{
		{"pub", "-h", "127.0.0.1", "-p", port, "-t", "a", "-m", "x", "-q", "1"},
		{"sub", "-h", "127.0.0.1", "-p", port, "-t", "a", "-C", "1"},
		{"pub", "-h", "127.0.0.1", "-p", port, "-t", "a", "-m", "x", "-u", "nobody", "-P", "wrong"},
	} {
		code, out, errs := runCLI(t, context.Background(), args...)
		if code != exitConnect {
			t.Errorf("%q: exit %d, want %d; stderr %q", args, code, exitConnect, errs)
		}
		want := "127.0.0.1:" + port + " refused the connection: not authorised (CONNACK return code 5) (check -u and -P)"
		if !strings.Contains(errs, want) || out != "" {
			t.Errorf("%q: stderr %q lacks %q (stdout %q)", args, errs, want, out)
		}
	}
}

// Nothing listening: the first connection fails, exit 2.
func TestFirstConnectionFailed(t *testing.T) {
	port := strconv.Itoa(freePort(t))
	code, _, errs := runCLI(t, context.Background(), "pub", "-h", "127.0.0.1", "-p", port, "-t", "a", "-m", "x", "--response-time", "1s")
	if code != exitConnect || !strings.Contains(errs, "the first connection failed") || !strings.Contains(errs, "connection refused") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

// pub and sub in-process against a real broker: -v output, -C, --count numbering, -l, -r, a subscription
// to several filters, and sub's exit 0 when interrupted without -C.
func TestPubSub(t *testing.T) {
	port := strconv.Itoa(startMosquitto(t, "allow_anonymous true"))
	conn := []string{"-h", "127.0.0.1", "-p", port}
	args := func(cmd string, rest ...string) []string { return append(append([]string{cmd}, conn...), rest...) }

	// A retained message tells the subscriber's test when it is subscribed (it arrives right after SUBACK).
	if code, _, errs := runCLI(t, context.Background(), args("pub", "-t", "t/ready", "-m", "ready", "-r", "-q", "1")...); code != 0 {
		t.Fatalf("retained pub: exit %d, %s", code, errs)
	}
	out := new(syncbuf.Buffer)
	subErr, wait := runAsync(t, context.Background(), out, args("sub", "-t", "t/ready", "-t", "t/n/#", "-q", "1", "-v", "-C", "6")...)
	waitFor(t, out, "t/ready ready\n")

	if code, _, errs := runCLI(t, context.Background(), args("pub", "-t", "t/n", "-q", "1", "--count", "3", "-m", "hello")...); code != 0 {
		t.Fatalf("pub --count: exit %d, %s", code, errs)
	}
	var stdinOut, stdinErr bytes.Buffer
	if code := run(context.Background(), args("pub", "-t", "t/n/l", "-l", "-q", "0"), strings.NewReader("first\n\nsecond\n"), &stdinOut, &stdinErr); code != 0 {
		t.Fatalf("pub -l: exit %d, %s", code, stdinErr.String())
	}
	// A message over the 2,097,151-byte limit is refused before anything is sent: exit 1.
	var bigErr bytes.Buffer
	big := strings.NewReader(strings.Repeat("x", 2_100_000))
	if code := run(context.Background(), args("pub", "-t", "t/n/big", "-s", "-q", "1"), big, io.Discard, &bigErr); code != exitUsage ||
		!strings.Contains(bigErr.String(), "packet too large") {
		t.Errorf("pub -s with 2.1 MB: exit %d, stderr %q", code, bigErr.String())
	}
	if code := wait(10 * time.Second); code != exitOK {
		t.Fatalf("sub -C 6: exit %d; stderr %s", code, subErr)
	}
	want := "t/ready ready\nt/n hello 1\nt/n hello 2\nt/n hello 3\nt/n/l first\nt/n/l second\n"
	if out.String() != want {
		t.Errorf("sub output:\n%s\nwant:\n%s", out, want)
	}
	if subErr.String() != "" {
		t.Errorf("sub reported without an outage: %q", subErr)
	}

	// Interrupted without -C, sub exits 0: a signal is how it is stopped.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out = new(syncbuf.Buffer)
	subErr, wait = runAsync(t, ctx, out, args("sub", "-t", "t/ready")...)
	waitFor(t, out, "ready\n")
	cancel()
	if code := wait(10 * time.Second); code != exitOK || !strings.Contains(subErr.String(), "interrupted after 1 message; disconnecting") {
		t.Errorf("interrupted sub: exit %d, stderr %q", code, subErr)
	}
}

// A burst of qos 0 messages arrives whole: DISCONNECT does not overtake the tail of the burst.
func TestQoS0BurstComplete(t *testing.T) {
	port := strconv.Itoa(startMosquitto(t, "allow_anonymous true"))
	const n = 3000
	out := new(syncbuf.Buffer)
	if code, _, errs := runCLI(t, context.Background(), "pub", "-h", "127.0.0.1", "-p", port, "-t", "q0/ready", "-m", "ready", "-r", "-q", "1"); code != 0 {
		t.Fatalf("retained pub: exit %d, %s", code, errs)
	}
	subErr, wait := runAsync(t, context.Background(), out, "sub", "-h", "127.0.0.1", "-p", port, "-t", "q0/#", "-C", strconv.Itoa(n+1))
	waitFor(t, out, "ready\n")
	if code, _, errs := runCLI(t, context.Background(), "pub", "-h", "127.0.0.1", "-p", port, "-t", "q0/n", "--count", strconv.Itoa(n)); code != 0 {
		t.Fatalf("pub: exit %d, %s", code, errs)
	}
	if code := wait(5 * time.Second); code != exitOK {
		t.Fatalf("sub: exit %d; stderr %s", code, subErr)
	}
	got := lines(out.String())
	if len(got) != n+1 || got[n] != strconv.Itoa(n) {
		t.Errorf("got %d lines, last %q; want %d ending with %d", len(got), got[len(got)-1], n+1, n)
	}
}

// waitFor waits (bounded) until out contains want.
func waitFor(t *testing.T, out *syncbuf.Buffer, want string) {
	t.Helper()
	if !waitOutput(out, 10*time.Second, func(s string) bool { return strings.Contains(s, want) }) {
		t.Fatalf("no %q in the output within 10s; output:\n%s", want, out)
	}
}

// sequence returns "prefix 1" … "prefix n".
func sequence(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %d", prefix, i+1)
	}
	return out
}

// A subscription the broker refuses (SUBACK 0x80) on the first connection exits 2, and so does a malformed
// SUBACK. Mosquitto 2.0 grants what its ACLs deny, so a minimal fake broker answers.
func TestSubscriptionRefused(t *testing.T) {
	for _, tc := range []struct {
		codes []byte // SUBACK return codes
		want  string
	}{
		{[]byte{0x80}, `refused the subscription to "denied/x"`},
		{[]byte{0x01, 0x01}, `subscribing to "denied/x" failed: `},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- fakeBroker(ln, tc.codes, nil) }()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		code, _, errs := runCLI(t, context.Background(), "sub", "-h", "127.0.0.1", "-p", port, "-t", "denied/x", "-C", "1")
		if code != exitConnect || !strings.Contains(errs, tc.want) {
			t.Errorf("SUBACK % x: exit %d, stderr %q; want exit 2 and %q", tc.codes, code, errs, tc.want)
		}
		_ = ln.Close()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}
}

// fakeBroker serves one MQTT connection: CONNACK accepted, a SUBACK with codes for every SUBSCRIBE (none
// when codes is nil), PINGRESP for PINGREQ, until DISCONNECT or EOF. Each SUBSCRIBE is signalled on
// subscribed when it is not nil.
func fakeBroker(ln net.Listener, codes []byte, subscribed chan<- struct{}) error {
	conn, err := ln.Accept()
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	for {
		if _, err := r.Peek(1); err != nil {
			return nil // EOF: the client went away
		}
		p, err := mqttwire.Read(r)
		if err != nil {
			return err
		}
		var reply []byte
		switch p.Type {
		case mqttwire.CONNECT:
			reply = mqttwire.Connack{}.Bytes()
		case mqttwire.SUBSCRIBE: // SUBACK with its packet id, then the return codes
			if subscribed != nil {
				subscribed <- struct{}{}
			}
			if codes == nil {
				continue
			}
			reply = mqttwire.Suback{ID: p.ID(), Codes: codes}.Bytes()
		case mqttwire.PINGREQ:
			reply = mqttwire.Empty(mqttwire.PINGRESP).Bytes()
		case mqttwire.DISCONNECT:
			return nil
		default:
			return fmt.Errorf("fake broker: unexpected packet type %v", p.Type)
		}
		if _, err := conn.Write(reply); err != nil {
			return err
		}
	}
}
