package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mqttas/mqttas-go/mqttas"
)

const pubSynopsis = `Usage: mqttas pub [flags] -t topic (-m message | -n | -f file | -s | -l | --count N)

Publishes like mosquitto_pub, but rides through outages: a qos 1 message is re-sent until the broker
acknowledges it, across any number of reconnections, and what was re-sent is reported on stderr.`

// pubFlags are pub's parsed flags.
type pubFlags struct {
	options
	topics   stringList
	message  string
	hasMsg   bool // -m was given (an empty -m is an empty message)
	null     bool
	file     string
	stdin    bool // -s
	lines    bool // -l
	retain   bool
	count    int
	interval time.Duration
}

func newPubFlags() (*flag.FlagSet, *pubFlags) {
	fs := flag.NewFlagSet("pub", flag.ContinueOnError)
	f := &pubFlags{}
	f.options.register(fs)
	fs.Var(&f.topics, "t", "`topic` to publish to")
	fs.StringVar(&f.message, "m", "", "`message` to publish (with --count: the prefix of each numbered message)")
	fs.BoolVar(&f.null, "n", false, "publish an empty message")
	fs.StringVar(&f.file, "f", "", "publish the contents of `file` as one message")
	fs.BoolVar(&f.stdin, "s", false, "publish all of stdin as one message")
	fs.BoolVar(&f.lines, "l", false, "publish each line of stdin as a message (blank lines are skipped)")
	fs.BoolVar(&f.retain, "r", false, "retain the message(s)")
	fs.IntVar(&f.count, "count", 0, "publish a numbered stream of `N` messages: \"message 1\" … \"message N\" with -m,\n\"1\" … \"N\" without")
	fs.Var(durationValue{&f.interval}, "interval", "wait this `duration` between publications (with --count or -l)")
	return fs, f
}

// parsePub parses and checks pub's arguments.
func parsePub(args []string, stdout, stderr io.Writer) (f *pubFlags, code int, done bool) {
	fs, f := newPubFlags()
	if code, done := parse(fs, args, stdout, stderr, pubSynopsis); done {
		return nil, code, true
	}
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "m" {
			f.hasMsg = true
		}
	})
	if err := f.check(); err != nil {
		return nil, usage(stderr, "pub", err), true
	}
	return f, 0, false
}

func (f *pubFlags) check() error {
	if err := f.options.check(); err != nil {
		return err
	}
	switch len(f.topics) {
	case 0:
		return usagef("no topic: give one with -t")
	case 1:
	default:
		return usagef("-t given %d times: pub publishes to one topic", len(f.topics))
	}
	if err := mqttas.CheckTopic(f.topics[0]); err != nil {
		return usagef("-t: %v", err)
	}
	sources := 0
	for _, set := range []bool{f.hasMsg, f.null, f.file != "", f.stdin, f.lines} {
		if set {
			sources++
		}
	}
	if f.count < 0 {
		return usagef("--count %d: must not be negative", f.count)
	}
	if f.count > 0 {
		if f.null || f.file != "" || f.stdin || f.lines {
			return usagef("--count numbers -m's message: it does not combine with -n, -f, -s or -l")
		}
		return nil
	}
	switch {
	case sources == 0:
		return usagef("no message: give one of -m message, -n, -f file, -s, -l or --count N")
	case sources > 1:
		return usagef("give only one of -m, -n, -f, -s and -l")
	case f.interval > 0 && !f.lines:
		return usagef("--interval needs --count or -l (there is only one message)")
	}
	return nil
}

// source yields the payloads to publish. next returns ok false when there are no more; it returns
// errInterrupted when ctx ends while it waits for input.
type source interface {
	next(ctx context.Context) (payload []byte, ok bool, err error)
}

var errInterrupted = errors.New("interrupted")

// single is one message.
type single struct {
	payload []byte
	sent    bool
}

func (s *single) next(context.Context) ([]byte, bool, error) {
	if s.sent {
		return nil, false, nil
	}
	s.sent = true
	return s.payload, true, nil
}

// numbered is --count's stream: "prefix 1", "prefix 2", … or "1", "2", … when the prefix is empty.
type numbered struct {
	prefix string
	i, n   int
}

func (s *numbered) next(context.Context) ([]byte, bool, error) {
	if s.i >= s.n {
		return nil, false, nil
	}
	s.i++
	if s.prefix != "" {
		return []byte(s.prefix + " " + strconv.Itoa(s.i)), true, nil
	}
	return []byte(strconv.Itoa(s.i)), true, nil
}

// lineSource is -l: every non-blank line of stdin, read by a goroutine so that an interrupt is noticed
// while waiting for input.
type lineSource struct {
	ch   chan lineOrErr
	stop chan struct{}
}

type lineOrErr struct {
	line []byte
	err  error
}

func newLineSource(r io.Reader) *lineSource {
	s := &lineSource{ch: make(chan lineOrErr), stop: make(chan struct{})}
	go func() {
		defer close(s.ch)
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadBytes('\n')
			line = bytes.TrimRight(line, "\r\n")
			if len(line) > 0 {
				select {
				case s.ch <- lineOrErr{line: line}:
				case <-s.stop:
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					select {
					case s.ch <- lineOrErr{err: err}:
					case <-s.stop:
					}
				}
				return
			}
		}
	}()
	return s
}

func (s *lineSource) next(ctx context.Context) ([]byte, bool, error) {
	var l lineOrErr
	var ok bool
	select { // a line already waiting wins over an interrupt
	case l, ok = <-s.ch:
	default:
		select {
		case l, ok = <-s.ch:
		case <-ctx.Done():
			return nil, false, errInterrupted
		}
	}
	if !ok {
		return nil, false, nil
	}
	return l.line, l.err == nil, l.err
}

func (s *lineSource) close() { close(s.stop) }

func runPub(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f, code, done := parsePub(args, stdout, stderr)
	if done {
		return code
	}
	topic := f.topics[0]
	var src source
	switch {
	case f.count > 0:
		src = &numbered{prefix: f.message, n: f.count}
	case f.lines:
		ls := newLineSource(stdin)
		defer ls.close()
		src = ls
	case f.stdin:
		b, err := io.ReadAll(stdin)
		if err != nil {
			return usage(stderr, "pub", fmt.Errorf("-s: reading stdin: %w", err))
		}
		src = &single{payload: b}
	case f.file != "":
		b, err := os.ReadFile(f.file)
		if err != nil {
			return usage(stderr, "pub", fmt.Errorf("-f: %w", err))
		}
		src = &single{payload: b}
	case f.null:
		src = &single{payload: []byte{}}
	default:
		src = &single{payload: []byte(f.message)}
	}

	rep := &reporter{name: "pub", w: stderr, clean: !f.noClean}
	cfg, err := f.config(stderr)
	if err != nil {
		return usage(stderr, "pub", err)
	}
	cfg.Logger = rep.logger(cfg.Logger)
	cfg.OnLinkChange = rep.linkChange
	c, err := mqttas.New(cfg)
	if err != nil {
		return usage(stderr, "pub", err)
	}
	defer c.Close()
	rep.attach(c)
	addr := addrOf(&f.options)
	if code := connect(ctx, c, "pub", addr, stderr); code >= 0 {
		return code
	}

	// The publication in flight is finished even after an interrupt: only the next one is not started.
	work := context.WithoutCancel(ctx)
	code = exitOK
	published := 0
	for {
		payload, ok, err := src.next(ctx)
		if errors.Is(err, errInterrupted) {
			code = exitInterrupted
			break
		}
		if err != nil {
			fmt.Fprintf(stderr, "mqttas pub: -l: reading stdin: %v\n", err)
			code = exitUsage
			break
		}
		if !ok {
			break
		}
		if ctx.Err() != nil {
			code = exitInterrupted
			break
		}
		if published > 0 && f.interval > 0 {
			t := time.NewTimer(f.interval)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			if ctx.Err() != nil {
				code = exitInterrupted
				break
			}
		}
		before := c.Stats()
		if err := c.Publish(work, topic, payload, f.retain, byte(f.qos)); err != nil {
			fmt.Fprintf(stderr, "mqttas pub: %q not published: %v\n", abbreviate(payload), err)
			code = exitUsage // the client returns errors only for bad arguments here (e.g. too large)
			break
		}
		published++
		after := c.Stats()
		if dups, renewals := after.Repubs-before.Repubs, after.Renewals-before.Renewals; dups+renewals > 0 {
			var how []string
			if dups > 0 {
				how = append(how, fmt.Sprintf("%d DUP re-send%s", dups, plural(dups)))
			}
			if renewals > 0 {
				how = append(how, fmt.Sprintf("%d renewal%s (re-sent with a new packet id after reconnecting)", renewals, plural(renewals)))
			}
			rep.printf("%q acknowledged after re-sending: %s", abbreviate(payload), strings.Join(how, ", "))
		}
	}
	if code == exitInterrupted {
		rep.printf("interrupted after %d publication%s; disconnecting", published, plural(published))
	}
	disconnect(c, f.responseTime, "pub", stderr)
	rep.summary(fmt.Sprintf("done: %d published", published), f.debug)
	return code
}

// abbreviate shortens a payload for a report.
func abbreviate(p []byte) string {
	const max = 40
	if len(p) <= max {
		return string(p)
	}
	return string(p[:max]) + "…"
}
