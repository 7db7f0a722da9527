package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mqttas/mqttas-go/mqttas"
)

const subSynopsis = `Usage: mqttas sub [flags] -t filter [-t filter ...]

Subscribes and prints each message on stdout (flushed at once) like mosquitto_sub, but rides through
outages: it reconnects by itself, resubscribes when the broker forgot the session, and reports on stderr.
With -c -i id -q 1 the broker keeps the messages published while the link is down. qos 1 duplicates
(at-least-once delivery) are printed and count towards -C; messages after the -Cth are not acknowledged,
so with -c the broker delivers them to the next run.`

// subFlags are sub's parsed flags.
type subFlags struct {
	options
	topics  stringList
	count   int
	verbose bool
}

func newSubFlags() (*flag.FlagSet, *subFlags) {
	fs := flag.NewFlagSet("sub", flag.ContinueOnError)
	f := &subFlags{}
	f.options.register(fs)
	fs.Var(&f.topics, "t", "topic `filter` to subscribe to (repeatable)")
	fs.IntVar(&f.count, "C", 0, "exit after `N` messages (0: never)")
	fs.BoolVar(&f.verbose, "v", false, "print \"topic payload\" instead of the payload alone")
	return fs, f
}

// parseSub parses and checks sub's arguments.
func parseSub(args []string, stdout, stderr io.Writer) (f *subFlags, code int, done bool) {
	fs, f := newSubFlags()
	if code, done := parse(fs, args, stdout, stderr, subSynopsis); done {
		return nil, code, true
	}
	if err := f.check(); err != nil {
		return nil, usage(stderr, "sub", err), true
	}
	return f, 0, false
}

func (f *subFlags) check() error {
	if err := f.options.check(); err != nil {
		return err
	}
	if len(f.topics) == 0 {
		return usagef("no topic filter: give at least one with -t")
	}
	for _, t := range f.topics {
		if err := mqttas.CheckFilter(t); err != nil {
			return usagef("-t: %v", err)
		}
	}
	if f.count < 0 {
		return usagef("-C %d: must not be negative", f.count)
	}
	return nil
}

// printer is sub's OnMessage: it writes each message to stdout in one write (unbuffered: a pipe sees it at
// once). The client acknowledges a qos 1 message after OnMessage returns, so a message is acknowledged
// only once printed; once the planned work is over (-C reached, interrupt, output failure) the handler
// holds further messages unprinted and unacknowledged until the client stops, so the broker keeps them.
type printer struct {
	out     io.Writer
	verbose bool
	limit   int

	mu       sync.Mutex
	n        int
	finished bool
	err      error         // the output failed
	done     chan struct{} // closed when finished
	release  chan struct{} // closed when the client stops: held handlers return
}

func newPrinter(out io.Writer, verbose bool, limit int) *printer {
	return &printer{out: out, verbose: verbose, limit: limit, done: make(chan struct{}), release: make(chan struct{})}
}

func (p *printer) onMessage(m mqttas.Message) {
	p.mu.Lock()
	if p.finished {
		p.mu.Unlock()
		<-p.release
		return
	}
	line := make([]byte, 0, len(m.Topic)+len(m.Payload)+2)
	if p.verbose {
		line = append(append(line, m.Topic...), ' ')
	}
	line = append(append(line, m.Payload...), '\n')
	if _, err := p.out.Write(line); err != nil {
		p.err = err
		p.finishLocked()
		p.mu.Unlock()
		<-p.release
		return
	}
	p.n++
	if p.limit > 0 && p.n >= p.limit {
		p.finishLocked()
	}
	p.mu.Unlock()
}

func (p *printer) finishLocked() {
	if !p.finished {
		p.finished = true
		close(p.done)
	}
}

// finish stops printing; a message being printed is printed first.
func (p *printer) finish() (printed int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
	return p.n, p.err
}

func runSub(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, code, done := parseSub(args, stdout, stderr)
	if done {
		return code
	}
	rep := &reporter{name: "sub", w: stderr, clean: !f.noClean}
	cfg, err := f.config(stderr)
	if err != nil {
		return usage(stderr, "sub", err)
	}
	qos := byte(f.qos)
	topics := []string(f.topics)
	p := newPrinter(stdout, f.verbose, f.count)
	cfg.Logger = rep.logger(cfg.Logger)
	cfg.OnLinkChange = rep.linkChange
	cfg.OnMessage = p.onMessage
	var conns atomic.Int64
	cfg.OnConnect = func(ctx context.Context, c *mqttas.Client) {
		if conns.Add(1) == 1 {
			return // runSub subscribes on the first connection, and reports a refusal
		}
		if cfg.KeepSession && c.Stats().SessionPresent {
			return // the broker kept the subscriptions, and queued what arrived meanwhile
		}
		for _, t := range topics {
			if err := c.Subscribe(ctx, t, qos); err != nil {
				if ctx.Err() == nil {
					rep.printf("resubscribing to %q failed: %v", t, err)
				}
				return
			}
		}
		why := "clean session: messages published while the link was down are lost; -c -i id -q 1 keeps them"
		if cfg.KeepSession {
			why = "the broker had lost the session and the messages queued in it"
		}
		rep.printf("resubscribed to %s (%s)", strings.Join(topics, ", "), why)
	}
	c, err := mqttas.New(cfg)
	if err != nil {
		return usage(stderr, "sub", err)
	}
	defer c.Close()
	defer close(p.release) // before Close, which waits for the handler
	rep.attach(c)
	addr := addrOf(&f.options)
	if code := connect(ctx, c, "sub", addr, stderr); code >= 0 {
		return code
	}
	interrupted := false
	for _, t := range topics {
		err := c.Subscribe(ctx, t, qos)
		switch {
		case err == nil:
			continue
		case ctx.Err() != nil:
			// A persistent session can deliver before the SUBACK, so a signal may land here: judged below
			// like any other interrupt.
			interrupted = true
		case errors.Is(err, mqttas.ErrSubscriptionRefused):
			fmt.Fprintf(stderr, "mqttas sub: %s refused the subscription to %q\n", addr, t)
			code = exitConnect
		case errors.Is(err, mqttas.ErrInvalidTopic), errors.Is(err, mqttas.ErrPacketTooLarge):
			fmt.Fprintf(stderr, "mqttas sub: subscribing to %q: %v\n", t, err)
			code = exitUsage
		default: // e.g. a malformed SUBACK: the broker's fault
			fmt.Fprintf(stderr, "mqttas sub: subscribing to %q failed: %v\n", t, err)
			code = exitConnect
		}
		break
	}
	if code == 0 && !interrupted {
		select {
		case <-p.done:
		case <-ctx.Done():
			interrupted = true
		}
	}
	n, werr := p.finish()
	switch {
	case werr != nil:
		fmt.Fprintf(stderr, "mqttas sub: writing a message: %v\n", werr)
		code = exitUsage
	case interrupted:
		rep.printf("interrupted after %d message%s; disconnecting", n, plural(n))
		// Without -C a signal is the way to stop sub, so it ends the work rather than cutting it short
		// (mosquitto_sub exits 0 too). With -C only an interrupt before the Nth message is one.
		if f.count > 0 && n < f.count {
			code = exitInterrupted
		}
	}
	disconnect(c, f.responseTime, "sub", stderr)
	rep.summary(fmt.Sprintf("done: %d received", n), f.debug)
	return code
}
