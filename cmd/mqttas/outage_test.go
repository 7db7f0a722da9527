package main

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/harness/link"
	"github.com/mqttas/mqttas-go/internal/syncbuf"
)

// pubackType is PUBACK's packet type (MQTT 3.1.1 §2.2.1) for Link.DropPackets.
const pubackType = 4

// packetType matches tap records of one MQTT control packet type, by name.
func packetType(name string) link.Filter {
	return func(p link.Packet) bool { return p.Event == link.EventPacket && p.Type.String() == name }
}

// The binaries ride through resets and a blackhole: a persistent-session subscriber (sub -C N -q 1 -c -i id)
// receives every one of the N messages a qos 1 publisher (pub --count N) sends through an embedded
// Toxiproxy link, and both report the outages on stderr.
func TestRideThroughOutages(t *testing.T) {
	buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	brokerAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(startMosquitto(t, "allow_anonymous true")))
	l, err := link.New(ctx, brokerAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	host, port, err := net.SplitHostPort(l.Addr())
	if err != nil {
		t.Fatal(err)
	}

	const n = 150
	const topic = "ride/seq"
	// Outages are detected within about a second: silence after 4 pings 200 ms apart, or no PUBACK after
	// 500 ms and 2 DUP re-sends; reconnection attempts are at most 300 ms apart.
	common := []string{"-h", host, "-p", port, "-q", "1", "--ping-interval", "200ms", "--response-time", "500ms",
		"--max-repubs", "2", "--reconnect-max", "300ms"}
	subArgs := append([]string{"sub", "-t", topic, "-c", "-i", "fixedid-ride"}, common...)
	sub := startProc(t, "sub", append(subArgs, "-C", strconv.Itoa(n))...)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = l.Tap().WaitFor(wctx, link.InDir(link.Downstream), packetType("SUBACK"))
	wcancel()
	if err != nil {
		t.Fatalf("no SUBACK for the subscriber: %v; sub stderr:\n%s", err, sub.stderr)
	}
	pub := startProc(t, "pub", append([]string{"pub", "-t", topic, "--count", strconv.Itoa(n), "--interval", "20ms",
		"-m", "msg", "-i", "ride-pub"}, common...)...)

	// Faults, each while the stream flows: timed by the subscriber's progress.
	progress := func(k int) {
		t.Helper()
		if !sub.waitOutput(15*time.Second, func(s string) bool { return len(lines(s)) >= k }) {
			t.Fatalf("the subscriber did not reach %d messages; pub stderr:\n%s\nsub stderr:\n%s\ntap:\n%s",
				k, pub.stderr, sub.stderr, l.Tap())
		}
	}
	fault := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s %s", time.Now().Format("15:04:05.000"), what)
	}
	progress(20)
	fault("reset every connection", l.Reset(ctx))
	progress(50)
	fault("reset_peer on the next client→broker data", l.ResetPeer(ctx, 0, link.Upstream))
	time.Sleep(400 * time.Millisecond)
	fault("reset_peer cleared", l.Clear(ctx, link.VerbResetPeer, link.Upstream))
	progress(80)
	fault("blackhole both ways", l.Silent(ctx))
	time.Sleep(2 * time.Second)
	fault("healed", l.Heal(ctx))
	progress(110)
	// A lost PUBACK: pub re-sends with DUP and the broker, which has no duplicate detection at qos 1, delivers
	// the message twice. The duplicate counts towards sub's -C, so the last message is left to a second run.
	fault("drop the next PUBACK to pub", l.DropPackets(link.Downstream, pubackType, 1))

	if code := pub.wait(30 * time.Second); code != exitOK {
		t.Fatalf("pub exit %d; stderr:\n%s", code, pub.stderr)
	}
	if code := sub.wait(15 * time.Second); code != exitOK {
		t.Fatalf("sub exit %d; stderr:\n%s", code, sub.stderr)
	}
	t.Logf("pub stderr:\n%s", pub.stderr)
	t.Logf("sub stderr:\n%s", sub.stderr)

	// Every payload 1..n, duplicates allowed (qos 1 is at least once) but counted.
	seen := map[string]int{}
	want := sequence("msg", n)
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w] = true
	}
	tally := func(out string) {
		for _, line := range lines(out) {
			if !wanted[line] {
				t.Errorf("unexpected line %q", line)
			}
			seen[line]++
		}
	}
	tally(sub.stdout.String())
	var missing []string
	for _, w := range want {
		if seen[w] == 0 {
			missing = append(missing, w)
		}
	}
	dups := len(lines(sub.stdout.String())) - (n - len(missing))
	t.Logf("sub -C %d printed %d distinct messages and %d duplicates", n, n-len(missing), dups)
	if len(missing) > 0 {
		// Duplicates counted towards -C, so sub stopped before the last messages. They wait in the broker's
		// session for fixedid-ride (sub does not acknowledge what it does not print): collect them.
		if len(missing) > dups {
			t.Errorf("%d messages missing but only %d duplicates: %v", len(missing), dups, missing)
		}
		drain := startProc(t, "drain sub", subArgs...)
		ok := drain.waitOutput(10*time.Second, func(s string) bool {
			got := map[string]bool{}
			for _, line := range lines(s) {
				got[line] = true
			}
			for _, m := range missing {
				if !got[m] {
					return false
				}
			}
			return true
		})
		if err := drain.cmd.Process.Signal(syscall.SIGTERM); err != nil && err != os.ErrProcessDone {
			t.Error(err)
		}
		if code := drain.wait(10 * time.Second); code != exitOK {
			t.Errorf("drain sub: exit %d, want %d after SIGTERM", code, exitOK)
		}
		tally(drain.stdout.String())
		if !ok {
			t.Errorf("the persistent session did not deliver the missing %v; drain stdout:\n%s", missing, drain.stdout)
		}
		t.Logf("a second sub with the same session delivered the %d remaining messages", len(missing))
	}
	for _, w := range want {
		if seen[w] == 0 {
			t.Errorf("%q never arrived", w)
		} else if seen[w] > 1 {
			t.Logf("%q arrived %d times", w, seen[w])
		}
	}

	// Both commands saw the outages and reported them, and the reconnections.
	for _, p := range []*proc{pub, sub} {
		errs := p.stderr.String()
		downs, ups := strings.Count(errs, "link down (outage "), strings.Count(errs, "link up again after ")
		if downs < 3 || ups < 3 {
			t.Errorf("%s reported %d outages and %d reconnections, want at least 3 of each (2 resets and a blackhole):\n%s",
				p.name, downs, ups, errs)
		}
		if !strings.Contains(errs, "outages, ") || !strings.Contains(errs, "reconnects (") {
			t.Errorf("%s printed no summary:\n%s", p.name, errs)
		}
	}
	if !strings.Contains(pub.stderr.String(), "acknowledged after re-sending: 1 DUP re-send\n") {
		t.Errorf("pub did not report the DUP re-send of the message whose PUBACK was lost:\n%s", pub.stderr)
	}
	if !strings.Contains(pub.stderr.String(), "done: 150 published") {
		t.Errorf("pub summary:\n%s", pub.stderr)
	}
	if !strings.Contains(sub.stderr.String(), "the broker kept the session") {
		t.Errorf("sub did not report the kept session:\n%s", sub.stderr)
	}
	tap := l.Tap()
	t.Logf("through the link: %d CONNECTs, %d PUBLISH with DUP, %d connections",
		tap.Count(packetType("CONNECT")), tap.Count(packetType("PUBLISH"), func(p link.Packet) bool { return p.DUP }),
		tap.Count(link.IsEvent(link.EventOpen)))
}

// The outage paths under the race detector: pub and sub run in-process through the link, with clean
// sessions. pub re-sends what the resets cut off (a direct subscriber sees all of it) and sub resubscribes
// after every reset, and says so.
func TestInProcessCleanSessionOutages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	brokerPort := strconv.Itoa(startMosquitto(t, "allow_anonymous true"))
	l, err := link.New(ctx, net.JoinHostPort("127.0.0.1", brokerPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	host, port, _ := net.SplitHostPort(l.Addr())
	viaLink := []string{"-h", host, "-p", port, "-q", "1", "--ping-interval", "200ms", "--response-time", "500ms", "--reconnect-max", "300ms"}
	direct := []string{"-h", "127.0.0.1", "-p", brokerPort, "-q", "1"}
	subacks := func(k int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for l.Tap().Count(packetType("SUBACK")) < k {
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d SUBACKs through the link:\n%s", k, l.Tap())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	linkOut := new(syncbuf.Buffer)
	linkSubErr, waitLinkSub := runAsync(t, ctx, linkOut, append([]string{"sub", "-t", "ip/#", "-v"}, viaLink...)...)
	subacks(1)
	// The direct subscriber is ready when it has the retained message.
	if code, _, errs := runCLI(t, ctx, append([]string{"pub", "-t", "ip/ready", "-m", "ready", "-r"}, direct...)...); code != 0 {
		t.Fatalf("pub: exit %d, %s", code, errs)
	}
	directOut := new(syncbuf.Buffer)
	_, waitDirectSub := runAsync(t, ctx, directOut, append([]string{"sub", "-t", "ip/n", "-t", "ip/ready"}, direct...)...)
	waitFor(t, directOut, "ready\n")

	const n = 40
	pubErr, waitPub := runAsync(t, ctx, new(syncbuf.Buffer), append([]string{"pub", "-t", "ip/n", "--count", strconv.Itoa(n), "--interval", "15ms"}, viaLink...)...)
	published := func(k int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for l.Tap().Count(packetType("PUBLISH"), link.InDir(link.Upstream)) < k {
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d PUBLISH through the link; pub stderr:\n%s", k, pubErr)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	published(5)
	if err := l.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	published(20)
	if err := l.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if code := waitPub(20 * time.Second); code != exitOK {
		t.Fatalf("pub: exit %d; stderr:\n%s", code, pubErr)
	}
	for _, s := range []string{"link down (outage 1): broker closed the connection", "link up again after", "link down (outage 2)", "done: 40 published; 2 outages, 2 reconnects"} {
		if !strings.Contains(pubErr.String(), s) {
			t.Errorf("pub stderr lacks %q:\n%s", s, pubErr)
		}
	}
	// Every message reached the broker.
	if !waitOutput(directOut, 10*time.Second, func(s string) bool {
		got := map[string]bool{}
		for _, line := range lines(s) {
			got[line] = true
		}
		for i := 1; i <= n; i++ {
			if !got[strconv.Itoa(i)] {
				return false
			}
		}
		return true
	}) {
		t.Errorf("the direct subscriber did not receive 1..%d:\n%s", n, directOut)
	}

	// sub resubscribed after each reset, and receives what is published afterwards.
	subacks(3)
	if code, _, errs := runCLI(t, ctx, append([]string{"pub", "-t", "ip/last", "-m", "final"}, direct...)...); code != 0 {
		t.Fatalf("pub: exit %d, %s", code, errs)
	}
	waitFor(t, linkOut, "ip/last final\n")
	cancel()
	if code := waitLinkSub(10 * time.Second); code != exitOK {
		t.Errorf("sub through the link: exit %d", code)
	}
	if code := waitDirectSub(10 * time.Second); code != exitOK {
		t.Errorf("direct sub: exit %d", code)
	}
	errs := linkSubErr.String()
	if strings.Count(errs, "resubscribed to ip/# (clean session: messages published while the link was down are lost") != 2 ||
		strings.Count(errs, "link up again after") != 2 || strings.Contains(errs, "kept the session") {
		t.Errorf("sub stderr:\n%s", errs)
	}
	t.Logf("pub stderr:\n%s\nsub stderr:\n%s", pubErr, errs)
}

// With -c, sub relies on the broker's session after a reconnection, unless the broker lost it (here the
// link moves to a second broker): then it resubscribes, and says that what was queued is gone.
func TestLostSessionResubscribes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first := net.JoinHostPort("127.0.0.1", strconv.Itoa(startMosquitto(t, "allow_anonymous true")))
	secondPort := strconv.Itoa(startMosquitto(t, "allow_anonymous true"))
	l, err := link.New(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	host, port, _ := net.SplitHostPort(l.Addr())
	out := new(syncbuf.Buffer)
	subErr, wait := runAsync(t, ctx, out, "sub", "-h", host, "-p", port, "-t", "lost/#", "-q", "1", "-c", "-i", "lost-session",
		"-C", "1", "--ping-interval", "200ms", "--response-time", "500ms", "--reconnect-max", "300ms")
	if _, err := l.Tap().WaitFor(ctx, packetType("SUBACK")); err != nil {
		t.Fatal(err)
	}
	seq := l.Tap().Seq()
	if err := l.SetUpstream(ctx, net.JoinHostPort("127.0.0.1", secondPort)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Tap().WaitFor(ctx, link.AfterSeq(seq), packetType("SUBACK")); err != nil {
		t.Fatalf("no resubscription: %v; sub stderr:\n%s", err, subErr)
	}
	if code, _, errs := runCLI(t, ctx, "pub", "-h", "127.0.0.1", "-p", secondPort, "-t", "lost/x", "-m", "after", "-q", "1"); code != 0 {
		t.Fatalf("pub: exit %d, %s", code, errs)
	}
	if code := wait(10 * time.Second); code != exitOK || out.String() != "after\n" {
		t.Fatalf("sub: exit %d, stdout %q, stderr:\n%s", code, out, subErr)
	}
	for _, want := range []string{"link up again after ", ", the broker had lost the session)\n",
		"resubscribed to lost/# (the broker had lost the session and the messages queued in it)"} {
		if !strings.Contains(subErr.String(), want) {
			t.Errorf("sub stderr lacks %q:\n%s", want, subErr)
		}
	}
}
