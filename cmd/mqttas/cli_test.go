package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mqttas/mqttas-go/mqttas"
)

// runCLI runs the command in-process with empty stdin and returns its exit code, stdout and stderr. It is
// interrupted (exit 3) if it runs for 20 s.
func runCLI(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// Every usage error exits 1 with a message that names the problem and a pointer to --help, before any
// connection: the commands point at 127.0.0.1:1, where nothing listens, so an attempt would exit 2.
func TestUsageErrors(t *testing.T) {
	base := []string{"-h", "127.0.0.1", "-p", "1"}
	cases := []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"pub"}, "no topic"},
		{[]string{"pub", "-t", "a"}, "no message"},
		{[]string{"pub", "-t", "a", "-m", "x", "-t", "b"}, "-t given 2 times"},
		{[]string{"pub", "-t", "a/+", "-m", "x"}, "cannot contain the wildcards"},
		{[]string{"pub", "-t", "", "-m", "x"}, "the topic is empty"},
		{[]string{"pub", "-t", "a", "-m", "x", "-q", "2"}, "qos 2 is not supported"},
		{[]string{"pub", "-t", "a", "-m", "x", "-q", "-1"}, "qos must be 0 or 1"},
		{[]string{"pub", "-t", "a", "-m", "x", "-n"}, "only one of -m, -n, -f, -s and -l"},
		{[]string{"pub", "-t", "a", "-s", "-l"}, "only one of"},
		{[]string{"pub", "-t", "a", "--count", "3", "-l"}, "does not combine"},
		{[]string{"pub", "-t", "a", "--count", "-1"}, "--count -1"},
		{[]string{"pub", "-t", "a", "-m", "x", "--interval", "1s"}, "--interval needs --count or -l"},
		{[]string{"pub", "-t", "a", "-m", "x", "-p", "70000"}, "the port must be"},
		{[]string{"pub", "-t", "a", "-m", "x", "-k", "-1"}, "keepalive"},
		{[]string{"pub", "-t", "a", "-m", "x", "-k", "70000"}, "keepalive"},
		{[]string{"pub", "-t", "a", "-m", "x", "-c"}, "-c needs a client id"},
		{[]string{"pub", "-t", "a", "-m", "x", "--clean-init"}, "--clean-init only applies with -c"},
		{[]string{"pub", "-t", "a", "-m", "x", "--cert", "c.pem"}, "--cert and --key go together"},
		{[]string{"pub", "-t", "a", "-m", "x", "-P", "pw"}, "-P needs -u"},
		{[]string{"pub", "-t", "a", "-m", "x", "--response-time", "0"}, "must be positive"},
		{[]string{"pub", "-t", "a", "-m", "x", "--ping-interval", "soon"}, "not a duration"},
		{[]string{"pub", "-t", "a", "-m", "x", "--ping-interval", "-1s"}, "negative"},
		{[]string{"pub", "-t", "a", "-m", "x", "--max-repubs", "-1"}, "--max-repubs"},
		{[]string{"pub", "-t", "a", "-m", "x", "-q", "one"}, "invalid value"},
		{[]string{"pub", "-t", "a", "-m", "x", "--cafile", "/nonexistent/ca.pem"}, "--cafile"},
		{[]string{"pub", "-t", "a", "-m", "x", "--cert", "/nonexistent/c", "--key", "/nonexistent/k"}, "--cert/--key"},
		{[]string{"pub", "-t", "a", "-m", "x", "extra"}, `unexpected argument "extra"`},
		{[]string{"pub", "-t", "a", "-m", "x", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"pub", "-t", "a", "-f", "/nonexistent/payload"}, "-f: open /nonexistent/payload"},
		{[]string{"pub", "-t", "a", "-m", "x", "-i", "a\x00b"}, "invalid config"},
		{[]string{"sub"}, "no topic filter"},
		{[]string{"sub", "-t", "a/#/b"}, "'#' must be the whole last level"},
		{[]string{"sub", "-t", "a+"}, "'+' must be a whole level"},
		{[]string{"sub", "-t", "a", "-C", "-1"}, "-C -1"},
		{[]string{"sub", "-t", "a", "-q", "1", "-c"}, "-c needs a client id"},
		{[]string{"sub", "-t", "a", "-m", "x"}, "flag provided but not defined: -m"},
	}
	for _, tc := range cases {
		args := tc.args
		if len(args) > 0 && (args[0] == "pub" || args[0] == "sub") {
			args = append(append([]string{args[0]}, base...), args[1:]...)
		}
		code, out, errs := runCLI(t, context.Background(), args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", tc.args, code, exitUsage, errs)
			continue
		}
		if !strings.Contains(errs, tc.want) {
			t.Errorf("%q: stderr %q does not contain %q", tc.args, errs, tc.want)
		}
		if out != "" {
			t.Errorf("%q: wrote %q on stdout", tc.args, out)
		}
		if len(tc.args) > 1 && !strings.Contains(errs, "--help\" for usage") {
			t.Errorf("%q: stderr %q does not point to --help", tc.args, errs)
		}
	}
}

// --help prints the usage on stdout and exits 0; -h is the host, as in mosquitto.
func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"pub", "--help"}, {"sub", "-help"}} {
		code, out, errs := runCLI(t, context.Background(), args...)
		if code != exitOK || errs != "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
		for _, want := range []string{"Usage: mqttas " + args[0], "--ping-interval duration", "-h host", "-t ", "Exit codes: 0 done; 1 usage error; 2"} {
			if !strings.Contains(out, want) {
				t.Errorf("%q: usage lacks %q:\n%s", args, want, out)
			}
		}
	}
	code, out, _ := runCLI(t, context.Background(), "help")
	if code != exitOK || !strings.Contains(out, "mqttas pub [flags]") {
		t.Errorf("help: exit %d, stdout %q", code, out)
	}
	code, out, _ = runCLI(t, context.Background(), "version")
	if code != exitOK || out != "mqttas "+mqttas.Version+"\n" {
		t.Errorf("version: exit %d, stdout %q", code, out)
	}
}

// The flags map onto the client's configuration.
func TestPubFlagsToConfig(t *testing.T) {
	f, code, done := parsePub([]string{"-h", "broker.example", "-p", "1884", "-i", "id1", "-k", "30", "-u", "user",
		"-P", "pw", "-c", "--clean-init", "-q", "1", "-r", "--ping-interval", "250ms", "--response-time", "1.5",
		"--max-repubs", "2", "--reconnect-max", "2s", "--count", "5", "--interval", "10ms", "-m", "hello", "-t", "x/y"},
		io.Discard, io.Discard)
	if done {
		t.Fatalf("parsePub: exit %d", code)
	}
	if f.topics[0] != "x/y" || f.message != "hello" || !f.hasMsg || !f.retain || f.count != 5 || f.interval != 10*time.Millisecond {
		t.Errorf("pub flags: %+v", f)
	}
	cfg, err := f.config(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := mqttas.Config{Server: "broker.example", Port: 1884, ClientID: "id1", User: "user", Password: "pw",
		KeepAlive: 30 * time.Second, PingInterval: 250 * time.Millisecond, ResponseTime: 1500 * time.Millisecond,
		MaxRepubs: 2, KeepSession: true, ResumeSession: false, ReconnectMax: 2 * time.Second}
	if cfg.Server != want.Server || cfg.Port != want.Port || cfg.ClientID != want.ClientID || cfg.User != want.User ||
		cfg.Password != want.Password || cfg.KeepAlive != want.KeepAlive || cfg.PingInterval != want.PingInterval ||
		cfg.ResponseTime != want.ResponseTime || cfg.MaxRepubs != want.MaxRepubs || cfg.KeepSession != want.KeepSession ||
		cfg.ResumeSession != want.ResumeSession || cfg.ReconnectMax != want.ReconnectMax || cfg.TLS != nil || cfg.Logger != nil {
		t.Errorf("config:\n got %+v\nwant %+v", cfg, want)
	}

	// Defaults: mosquitto's host and keepalive, mqtt_as's ResponseTime and MaxRepubs, clean sessions.
	f, _, done = parsePub([]string{"-t", "a", "-m", "b"}, io.Discard, io.Discard)
	if done {
		t.Fatal("parsePub rejected the minimal command line")
	}
	cfg, _ = f.config(io.Discard)
	if cfg.Server != "localhost" || cfg.Port != 0 || cfg.KeepAlive != 60*time.Second || cfg.ResponseTime != 10*time.Second ||
		cfg.MaxRepubs != 4 || cfg.KeepSession || cfg.ResumeSession || cfg.ClientID != "" || f.qos != 0 {
		t.Errorf("default config: %+v", cfg)
	}

	// -c alone keeps any old session from the first connection on.
	f, _, _ = parsePub([]string{"-t", "a", "-m", "b", "-c", "-i", "keep"}, io.Discard, io.Discard)
	cfg, _ = f.config(io.Discard)
	if !cfg.KeepSession || !cfg.ResumeSession {
		t.Errorf("-c: KeepSession %v ResumeSession %v, want true true", cfg.KeepSession, cfg.ResumeSession)
	}

	// -k 0 and --max-repubs 0 mean none (mqttas reads a zero field as its default).
	f, _, _ = parsePub([]string{"-t", "a", "-m", "b", "-k", "0", "--max-repubs", "0"}, io.Discard, io.Discard)
	cfg, _ = f.config(io.Discard)
	if cfg.KeepAlive >= 0 || cfg.MaxRepubs >= 0 {
		t.Errorf("-k 0 --max-repubs 0: KeepAlive %v MaxRepubs %d, want both negative", cfg.KeepAlive, cfg.MaxRepubs)
	}

	// -d logs at debug level.
	f, _, _ = parsePub([]string{"-t", "a", "-m", "b", "-d"}, io.Discard, io.Discard)
	cfg, _ = f.config(io.Discard)
	if cfg.Logger == nil || !cfg.Logger.Enabled(context.Background(), -4) {
		t.Error("-d: no debug logger")
	}

	// An empty -m is an empty message, not a missing one.
	f, _, done = parsePub([]string{"-t", "a", "-m", ""}, io.Discard, io.Discard)
	if done || !f.hasMsg {
		t.Error("-m '' was not taken as an empty message")
	}
}

func TestSubFlags(t *testing.T) {
	f, code, done := parseSub([]string{"-t", "a", "-t", "b/#", "-t", "+/c", "-C", "3", "-v", "-q", "1"}, io.Discard, io.Discard)
	if done {
		t.Fatalf("parseSub: exit %d", code)
	}
	if strings.Join(f.topics, " ") != "a b/# +/c" || f.count != 3 || !f.verbose || f.qos != 1 {
		t.Errorf("sub flags: %+v", f)
	}
}

func TestDurationFlag(t *testing.T) {
	var d time.Duration
	v := durationValue{&d}
	for in, want := range map[string]time.Duration{"1.5": 1500 * time.Millisecond, "250ms": 250 * time.Millisecond, "2": 2 * time.Second, "1m": time.Minute} {
		if err := v.Set(in); err != nil || d != want {
			t.Errorf("Set(%q): %v, %v; want %v", in, d, err, want)
		}
	}
	for _, in := range []string{"soon", "-1", "-2s", ""} {
		if err := v.Set(in); err == nil {
			t.Errorf("Set(%q) accepted: %v", in, d)
		}
	}
}

func TestNumberedSource(t *testing.T) {
	for prefix, want := range map[string]string{"hello": "hello 1,hello 2,hello 3", "": "1,2,3"} {
		s := &numbered{prefix: prefix, n: 3}
		var got []string
		for {
			p, ok, err := s.next(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			got = append(got, string(p))
		}
		if strings.Join(got, ",") != want {
			t.Errorf("prefix %q: %q, want %q", prefix, got, want)
		}
	}
}

func TestLineSource(t *testing.T) {
	s := newLineSource(strings.NewReader("l1\n\nl2\r\n\r\nl3"))
	defer s.close()
	var got []string
	for {
		p, ok, err := s.next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, string(p))
	}
	if strings.Join(got, ",") != "l1,l2,l3" {
		t.Errorf("lines %q, want l1 l2 l3 (blank lines skipped, CR LF stripped)", got)
	}

	// Waiting for input, an interrupt ends the wait.
	r, w := io.Pipe()
	defer w.Close()
	s = newLineSource(r)
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := s.next(ctx); !errors.Is(err, errInterrupted) {
		t.Errorf("next while stdin is idle and ctx ends: %v, want errInterrupted", err)
	}
}

// errWriter fails every write.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestPrinter(t *testing.T) {
	var out bytes.Buffer
	p := newPrinter(&out, true, 2)
	p.onMessage(mqttas.Message{Topic: "a/b", Payload: []byte("one")})
	p.onMessage(mqttas.Message{Topic: "a/c", Payload: []byte("two")})
	select {
	case <-p.done:
	default:
		t.Fatal("not done after -C 2 messages")
	}
	// A message beyond -C is held unprinted (so not acknowledged) until the client stops.
	returned := make(chan struct{})
	go func() {
		p.onMessage(mqttas.Message{Topic: "a/d", Payload: []byte("three")})
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("the handler returned for a message beyond -C before release")
	case <-time.After(50 * time.Millisecond):
	}
	close(p.release)
	<-returned
	if out.String() != "a/b one\na/c two\n" {
		t.Errorf("output %q", out.String())
	}
	if n, err := p.finish(); n != 2 || err != nil {
		t.Errorf("finish: %d, %v", n, err)
	}

	// Without -v, the payload alone; an output failure finishes the printer and is reported.
	out.Reset()
	p = newPrinter(&out, false, 0)
	p.onMessage(mqttas.Message{Topic: "a", Payload: []byte("x y")})
	if out.String() != "x y\n" {
		t.Errorf("output %q", out.String())
	}
	p = newPrinter(errWriter{}, false, 0)
	close(p.release)
	p.onMessage(mqttas.Message{Topic: "a", Payload: []byte("x")})
	if n, err := p.finish(); n != 0 || err == nil {
		t.Errorf("finish after a failed write: %d, %v", n, err)
	}
}

// The reporter numbers outages, says how the link came back, and prints client warnings. (The outage's
// reason, Client.LastError, is checked where real outages happen: TestInProcessCleanSessionOutages.)
func TestReporter(t *testing.T) {
	var out bytes.Buffer
	rep := &reporter{name: "sub", w: &out}
	c, err := mqttas.New(mqttas.Config{Server: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	log := rep.logger(nil)
	rep.linkChange(false) // before attach: nothing to report on
	rep.attach(c)
	rep.linkChange(true)                                                             // the first connection is not news
	log.Debug("mqttas: re-publishing with a new packet id after an outage", "id", 7) // not a warning: not shown
	rep.linkChange(false)
	rep.linkChange(true)
	rep.linkChange(false)
	log.Warn("mqttas: protocol error, resetting the connection", "err", "bad packet")
	got := out.String()
	for _, want := range []string{
		"link down (outage 0); reconnecting\n",
		"link up again after ",
		"(reconnect 0, the broker had lost the session)\n",
		"warning: protocol error, resetting the connection err=bad packet\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n"); n != 4 || !strings.HasPrefix(got, "mqttas sub: ") {
		t.Errorf("%d lines, want 4:\n%s", n, got)
	}
}
