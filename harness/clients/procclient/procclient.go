// Package procclient drives an MQTT client in another process through the
// driver protocol (PROTOCOL.md beside this file): newline-delimited JSON
// commands on the driver's stdin, events on its stdout. It makes any MQTT
// library with a small driver program a clients.Client, so the harness can put
// Python, Node or C clients through the same faults and ledger as the Go ones.
//
// The adapter polices the driver as well as driving it. A driver that exits,
// stops answering, prints a line that is not a protocol event, or answers out
// of protocol fails the client with a *DriverError naming the driver and the
// line, with the tail of the driver's stderr; every pending and later call
// returns it, and so does Close. Every wait is bounded: by the caller's
// context, and independently of it by a heartbeat (the driver must answer a
// ping within Config.HangTimeout even while its library waits for a broker).
//
// Option mapping is each driver's business, documented in the driver; the
// adapter passes clients.Options on in the connect command, durations in
// milliseconds.
package procclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
)

// Config says which driver to run and how closely to watch it.
type Config struct {
	// Name names the driver in errors and logs, e.g. "python".
	Name string
	// Command is the driver's argv; Command[0] is looked up in PATH.
	Command []string
	// Dir is the driver's working directory; empty is the caller's.
	Dir string
	// Env is added to the caller's environment.
	Env []string
	// Settings are driver-specific settings, sent as they are with connect
	// (see each driver for what it reads).
	Settings map[string]any

	// StartTimeout bounds the start-up: from exec to the answer to hello.
	// Default 20 s (an interpreter on a loaded machine).
	StartTimeout time.Duration
	// Heartbeat is how often the adapter pings the driver. Default 1 s.
	Heartbeat time.Duration
	// HangTimeout is how long the driver may leave a ping unanswered, or
	// its stdin unread, before it is declared hung. Time the adapter spends
	// in OnMessage and OnEvent does not count. Default 10 s.
	HangTimeout time.Duration
	// CloseTimeout bounds Close's wait for the driver to answer close and
	// exit; then it is killed. Default 5 s.
	CloseTimeout time.Duration
	// StderrTail is how many bytes of the driver's stderr a DriverError
	// keeps. Default 8 KiB.
	StderrTail int
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.StartTimeout, 20*time.Second)
	def(&c.Heartbeat, time.Second)
	def(&c.HangTimeout, 10*time.Second)
	def(&c.CloseTimeout, 5*time.Second)
	if c.StderrTail <= 0 {
		c.StderrTail = 8 << 10
	}
	if c.Name == "" && len(c.Command) > 0 {
		c.Name = c.Command[0]
	}
	return c
}

// Factory returns a clients.Factory for the driver cfg describes.
func Factory(cfg Config) clients.Factory {
	return func(o clients.Options) (clients.Client, error) { return New(o, cfg) }
}

// Bounds the adapter keeps on its own clean-up.
const (
	stderrDrain = time.Second     // after a kill, for the last stderr bytes
	exitGrace   = time.Second     // after stdout closes, for the exit status
	killWait    = 5 * time.Second // after SIGKILL, for the exit
)

// Client is a driver process behind clients.Client.
type Client struct {
	cfg  Config
	opts clients.Options
	wire wireOptions
	log  *slog.Logger

	mu        sync.Mutex
	started   bool
	running   bool // the process was started; the plumbing below is set
	finished  bool // Disconnect or Close called: nothing more is sent but close
	closing   bool // Close called: EOF and exit are expected
	linkUp    bool // connected or reconnecting, as the driver says
	helloDone bool
	hello     Hello
	nextID    uint64
	pending   map[uint64]*request
	failing   bool
	failErr   *DriverError
	lineNo    int
	lastLine  string

	connects, outages, failures atomic.Int64
	durable                     atomic.Int64 // publish results with durable
	killed                      bool         // Kill called: no close command, the exit is ours

	// Process plumbing, set by start.
	cmd        *exec.Cmd
	stdin      *os.File // our end of the driver's stdin
	stdout     *os.File // our end of the driver's stdout
	stderr     *os.File // our end of the driver's stderr
	wmu        sync.Mutex
	tail       tailBuffer
	exited     chan struct{} // closed when the driver has been waited for
	exitErr    error         // cmd.Wait's error, valid after exited
	readerDone chan struct{}
	stderrDone chan struct{}
	broken     chan struct{} // closed when failErr is set
	stop       chan struct{} // closed by Close: the watchdog ends
	wg         sync.WaitGroup

	// Callbacks: serialised, and dropped once quiet is set.
	cbMu  sync.Mutex
	quiet bool

	// Time in callbacks, which the watchdog does not count against a ping.
	busySince atomic.Int64 // unix nanos the reader entered a callback, 0 outside
	cbTotal   atomic.Int64 // nanos the reader spent in callbacks

	closeOnce   sync.Once
	closeResult error
}

// request is a command waiting for its result. Exactly one reply is ever
// sent on done (by the reader or by fail), so it never blocks.
type request struct {
	cmd  string
	done chan reply // buffered 1
}

type reply struct {
	ev  event
	err error
}

// New checks o and makes an unstarted adapter; Connect starts the driver.
func New(o clients.Options, cfg Config) (*Client, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Command) == 0 {
		return nil, fmt.Errorf("%w: procclient needs a driver command", clients.ErrInvalidOptions)
	}
	host, portStr, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: Addr %q: %v", clients.ErrInvalidOptions, o.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("%w: Addr %q: bad port", clients.ErrInvalidOptions, o.Addr)
	}
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg, opts: o, log: o.Logger, pending: map[uint64]*request{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("client", "proc", "driver", cfg.Name, "id", o.ClientID)
	c.tail.max = cfg.StderrTail
	c.wire = wireOptions{
		Host: host, Port: port, ClientID: o.ClientID, CleanSession: o.CleanSession,
		KeepAliveMS: o.KeepAlive.Milliseconds(), PingTimeoutMS: o.PingTimeout.Milliseconds(),
		ResponseTimeoutMS: o.ResponseTimeout.Milliseconds(), ConnectTimeoutMS: o.ConnectTimeout.Milliseconds(),
	}
	if w := o.Will; w != nil {
		c.wire.Will = &wireMessage{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain}
	}
	return c, nil
}

// Hello returns what the driver said about itself (zero before Connect).
func (c *Client) Hello() Hello {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hello
}

// Connect starts the driver, checks its protocol version, and asks it to
// make the first connection; it returns when the driver reports the outcome
// or ctx ends. A driver that does not answer hello within StartTimeout fails
// with ErrHung.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.finished:
		c.mu.Unlock()
		return clients.ErrClosed
	case c.started:
		c.mu.Unlock()
		return fmt.Errorf("procclient: driver %s: Connect called twice", c.cfg.Name)
	}
	c.started = true
	c.mu.Unlock()
	if err := c.start(); err != nil {
		return err
	}

	hctx, cancel := context.WithTimeout(ctx, c.cfg.StartTimeout)
	ev, err := c.request(hctx, command{Cmd: cmdHello, Protocol: ProtocolVersion})
	cancel()
	switch {
	case err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		return c.fail(ErrHung, fmt.Sprintf("no answer to hello within %v", c.cfg.StartTimeout), c.line())
	case err != nil:
		return fmt.Errorf("procclient: driver %s: hello: %w", c.cfg.Name, err)
	case ev.Hello == nil:
		return c.fail(ErrProtocol, "the answer to hello has no hello object", c.line())
	case ev.Hello.Protocol < MinProtocolVersion || ev.Hello.Protocol > ProtocolVersion:
		return c.fail(ErrProtocol, fmt.Sprintf("driver speaks protocol %d, the adapter %d to %d", ev.Hello.Protocol,
			MinProtocolVersion, ProtocolVersion), c.line())
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return clients.ErrClosed
	}
	c.hello = *ev.Hello
	c.helloDone = true
	// Under mu: Close sets closing under mu before it waits for the group.
	c.wg.Go(c.watchdog)
	c.mu.Unlock()
	c.log.Debug("driver ready", "library", ev.Hello.Library, "version", ev.Hello.Version, "capabilities", ev.Hello.Capabilities)

	wire := c.wire
	if _, err := c.request(ctx, command{Cmd: cmdConnect, Options: &wire, Settings: c.cfg.Settings}); err != nil {
		return fmt.Errorf("procclient: connect %s: %w", c.opts.Addr, err)
	}
	c.mu.Lock()
	c.linkUp = !c.finished
	c.mu.Unlock()
	return nil
}

// Publish asks the driver to publish m and returns when the driver reports
// the library's completion, or ctx ends (outcome unknown). A failed result
// with not_sent wraps clients.ErrNotSent.
func (c *Client) Publish(ctx context.Context, m clients.Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("procclient: publish %q: %w: %w", m.Topic, clients.ErrNotSent, err)
	}
	if err := c.usable(); err != nil {
		return fmt.Errorf("procclient: publish %q: %w: %w", m.Topic, clients.ErrNotSent, err)
	}
	payload, qos := m.Payload, m.QoS
	if payload == nil {
		payload = []byte{}
	}
	_, err := c.request(ctx, command{Cmd: cmdPublish, Topic: m.Topic, Payload: &payload, QoS: &qos, Retain: m.Retain})
	if err != nil {
		return fmt.Errorf("procclient: publish %q: %w", m.Topic, err)
	}
	return nil
}

// Subscribe asks the driver to subscribe; the driver answers after SUBACK.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte) error {
	if err := c.usable(); err != nil {
		return err
	}
	if _, err := c.request(ctx, command{Cmd: cmdSubscribe, Filter: filter, QoS: &qos}); err != nil {
		return fmt.Errorf("procclient: subscribe %q: %w", filter, err)
	}
	return nil
}

// Unsubscribe asks the driver to unsubscribe; it answers after UNSUBACK.
func (c *Client) Unsubscribe(ctx context.Context, filter string) error {
	if err := c.usable(); err != nil {
		return err
	}
	if _, err := c.request(ctx, command{Cmd: cmdUnsubscribe, Filter: filter}); err != nil {
		return fmt.Errorf("procclient: unsubscribe %q: %w", filter, err)
	}
	return nil
}

// Disconnect asks the driver to send DISCONNECT and stop reconnecting. The
// driver keeps running until Close; events after Disconnect are dropped.
func (c *Client) Disconnect(ctx context.Context) error {
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return clients.ErrClosed
	}
	c.finished, c.linkUp = true, false
	started, failed := c.started, c.failErr
	c.mu.Unlock()
	defer c.silence()
	switch {
	case !started:
		return nil
	case failed != nil:
		return failed
	}
	if _, err := c.request(ctx, command{Cmd: cmdDisconnect}); err != nil {
		return fmt.Errorf("procclient: disconnect: %w", err)
	}
	return nil
}

// Close asks the driver to drop its connection without DISCONNECT (so the
// broker publishes the will) and exit, closes its stdin, and kills its
// process group if it has not exited within CloseTimeout. It returns the
// driver's failure, if it failed at any time, and waits for every goroutine
// of the adapter. Later calls return the same result at once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { c.closeResult = c.close() })
	return c.closeResult
}

// Kill ends the driver at once with SIGKILL to its process group, as a crash
// would: no close command, nothing flushed. Requests pending fail with an
// error wrapping ErrKilled (their outcome is unknown), events stop, and Kill
// waits for every goroutine of the adapter, like Close. Later calls of Kill
// and Close return the same result.
func (c *Client) Kill() error {
	c.mu.Lock()
	c.killed = true
	c.mu.Unlock()
	return c.Close()
}

func (c *Client) close() error {
	c.mu.Lock()
	c.finished, c.closing, c.linkUp = true, true, false
	running, failed, killed := c.running, c.failErr != nil, c.killed
	c.mu.Unlock()
	c.silence()
	if !running {
		return nil
	}
	close(c.stop)
	if killed {
		c.killGroup()
	}
	if !failed && !killed {
		// Until the answer, the bound, or the driver's exit (whose status
		// is checked below).
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CloseTimeout)
		c.wg.Go(func() {
			defer cancel()
			select {
			case <-c.exited:
			case <-ctx.Done():
			}
		})
		_, err := c.request(ctx, command{Cmd: cmdClose})
		if errors.Is(err, context.DeadlineExceeded) && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			c.fail(ErrHung, fmt.Sprintf("no answer to close within %v", c.cfg.CloseTimeout), c.line())
		}
		cancel()
	}
	_ = c.stdin.Close() // EOF: a driver must exit on it too
	select {
	case <-c.exited:
	case <-time.After(c.cfg.CloseTimeout):
		c.fail(ErrHung, fmt.Sprintf("still running %v after close", c.cfg.CloseTimeout), c.line())
	}
	c.killGroup() // the driver, and whatever it left behind in its group
	select {
	case <-c.exited:
	case <-time.After(killWait):
		c.log.Error("driver survives SIGKILL", "pid", c.cmd.Process.Pid)
	}
	// Our ends of the pipes: closing them ends the readers even if a
	// grandchild outside the group holds the other ends.
	_ = c.stdout.Close()
	_ = c.stderr.Close()
	c.wg.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	// Requests still waiting (a Connect or Publish racing with Close) will
	// never be answered now.
	gone := clients.ErrClosed
	if c.killed {
		gone = fmt.Errorf("procclient: driver %s: %w", c.cfg.Name, ErrKilled)
	}
	for id, req := range c.pending {
		req.done <- reply{err: gone}
		delete(c.pending, id)
	}
	if c.failErr != nil {
		return c.failErr
	}
	if c.exitErr != nil && !c.killed {
		return &DriverError{Driver: c.cfg.Name, Line: c.lineNo, Text: cut(c.lastLine, maxTextLen),
			Stderr: c.tail.String(), Err: fmt.Errorf("%w after close: %v", ErrDied, c.exitErr)}
	}
	return nil
}

// IsConnected reports whether the driver said the library is connected or
// reconnecting on its own, and the driver is healthy.
func (c *Client) IsConnected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.linkUp && !c.finished && c.failErr == nil
}

// Stats counts the driver's up, down and connect_failed events, and (for a
// driver with the durable capability) its durable publish results; the driver
// does not report resends or discards, so those keys are absent.
func (c *Client) Stats() clients.Stats {
	n := c.connects.Load()
	s := clients.Stats{
		clients.StatConnects:        n,
		clients.StatReconnects:      max(n-1, 0),
		clients.StatOutages:         c.outages.Load(),
		clients.StatConnectFailures: c.failures.Load(),
	}
	if c.Hello().Has(CapDurable) {
		s[clients.StatDurable] = c.durable.Load()
	}
	return s
}

// usable reports why nothing can be sent: finished, not started, or failed.
func (c *Client) usable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.finished:
		return clients.ErrClosed
	case c.failErr != nil:
		return c.failErr
	case !c.started || !c.helloDone:
		return fmt.Errorf("procclient: driver %s: not connected", c.cfg.Name)
	}
	return nil
}

// silence drops every later callback, after any in progress.
func (c *Client) silence() {
	c.cbMu.Lock()
	c.quiet = true
	c.cbMu.Unlock()
}

func (c *Client) line() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lineNo
}

// start execs the driver in its own process group, with pipes the adapter
// owns (so writes have deadlines and closing them unblocks the readers).
func (c *Client) start() error {
	inR, inW, err := os.Pipe()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW)
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return err
	}
	cmd := exec.Command(c.cfg.Command[0], c.cfg.Command[1:]...)
	cmd.Dir = c.cfg.Dir
	cmd.Env = append(os.Environ(), c.cfg.Env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	// Its own group, so a kill reaches its children; killed if we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		closeAll(inR, inW, outR, outW, errR, errW)
		return fmt.Errorf("procclient: start driver %s (%s): %w", c.cfg.Name, c.cfg.Command[0], err)
	}
	closeAll(inR, outW, errW) // the driver's ends
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cmd, c.stdin, c.stdout, c.stderr = cmd, inW, outR, errR
	c.exited, c.readerDone, c.stderrDone = make(chan struct{}), make(chan struct{}), make(chan struct{})
	c.broken, c.stop = make(chan struct{}), make(chan struct{})
	c.running = true
	if c.closing {
		// Close ran while we started: it found nothing to stop, so stop here.
		c.killGroup()
		_ = cmd.Wait()
		closeAll(inW, outR, errR)
		c.running = false
		return clients.ErrClosed
	}
	c.log.Debug("driver started", "pid", cmd.Process.Pid, "command", c.cfg.Command)
	c.wg.Go(c.waitExit)
	c.wg.Go(c.readStderr)
	c.wg.Go(c.readStdout)
	return nil
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

func (c *Client) killGroup() {
	// Negative pid: the group Setpgid made, led by the driver.
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
}

func (c *Client) waitExit() {
	err := c.cmd.Wait()
	c.mu.Lock()
	c.exitErr = err
	c.mu.Unlock()
	close(c.exited)
	// The reader normally sees EOF and reports the death with the last
	// lines read; if something else holds stdout open, report it here.
	select {
	case <-c.readerDone:
	case <-time.After(exitGrace):
		c.failDied()
	}
}

func (c *Client) readStderr() {
	defer close(c.stderrDone)
	r := bufio.NewReader(c.stderr)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			c.tail.Write([]byte(line))
			c.log.Debug("driver stderr", "line", line)
		}
		if err != nil {
			return
		}
	}
}

func (c *Client) readStdout() {
	defer close(c.readerDone)
	sc := bufio.NewScanner(c.stdout)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine+1)
	for sc.Scan() {
		c.mu.Lock()
		c.lineNo++
		n := c.lineNo
		c.lastLine = sc.Text()
		c.mu.Unlock()
		ev, err := decodeEvent(sc.Bytes())
		if err == nil {
			err = c.handle(ev)
		}
		if err != nil {
			c.fail(err, "", n)
			return
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		c.fail(fmt.Errorf("%w: %v", ErrProtocol, err), "", c.line()+1)
		return
	}
	c.failDied()
}

// failDied reports an unexpected end of the driver; during Close it is
// expected and nothing is reported.
func (c *Client) failDied() {
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return
	}
	select {
	case <-c.exited:
	case <-time.After(exitGrace):
	}
	c.mu.Lock()
	detail := "closed its stdout"
	select {
	case <-c.exited:
		detail = "exited: " + exitString(c.exitErr)
	default:
	}
	c.mu.Unlock()
	c.fail(ErrDied, detail, c.line())
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// handle acts on one checked event.
func (c *Client) handle(ev event) error {
	c.mu.Lock()
	if ev.Ev != evLog && ev.Ev != evResult && !c.helloDone {
		c.mu.Unlock()
		return fmt.Errorf("%w: %s event before the answer to hello", ErrProtocol, ev.Ev)
	}
	switch ev.Ev {
	case evResult:
		req, ok := c.pending[ev.ID]
		if !ok {
			c.mu.Unlock()
			return fmt.Errorf("%w: result for request %d, which is not pending", ErrProtocol, ev.ID)
		}
		delete(c.pending, ev.ID)
		v2 := c.hello.Protocol >= 2 && c.hello.Has(CapDurable)
		c.mu.Unlock()
		if ev.Durable {
			if !v2 || req.cmd != cmdPublish {
				return fmt.Errorf("%w: durable result %d to %s from a driver without protocol 2's durable capability",
					ErrProtocol, ev.ID, req.cmd)
			}
			c.durable.Add(1)
		}
		var err error
		if !*ev.OK {
			err = &RemoteError{Driver: c.cfg.Name, Cmd: req.cmd, Msg: ev.Error}
			if ev.NotSent {
				err = fmt.Errorf("%w: %w", clients.ErrNotSent, err)
			}
		}
		req.done <- reply{ev: ev, err: err} // buffered; nobody may be waiting any more
		return nil
	case evUp:
		c.linkUp = !c.finished
	case evDown:
		c.linkUp = !c.finished && (ev.Reconnecting == nil || *ev.Reconnecting)
	}
	c.mu.Unlock()

	at := time.Now()
	switch ev.Ev {
	case evMessage:
		c.callback(func() {
			if c.opts.OnMessage != nil {
				c.opts.OnMessage(clients.Delivery{Topic: ev.Topic, Payload: ev.Payload, QoS: byte(*ev.QoS),
					Retain: ev.Retain, Dup: ev.Dup, At: at})
			}
		})
	case evUp:
		c.connects.Add(1)
		c.emit(clients.Event{Kind: clients.EventUp, At: at, SessionPresent: ev.SessionPresent})
	case evDown:
		c.outages.Add(1)
		c.emit(clients.Event{Kind: clients.EventDown, At: at, Err: errors.New(ev.Reason)})
	case evReconnect:
		c.emit(clients.Event{Kind: clients.EventReconnect, At: at})
	case evConnectFailed:
		c.failures.Add(1)
		c.emit(clients.Event{Kind: clients.EventConnectFailed, At: at, Err: errors.New(ev.Reason)})
	case evLog:
		c.log.Log(context.Background(), logLevel(ev.Level), ev.Msg, "from", "driver")
	}
	return nil
}

func logLevel(s string) slog.Level {
	switch s {
	case "info":
		return slog.LevelInfo
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelDebug
}

func (c *Client) emit(e clients.Event) {
	c.callback(func() {
		if c.opts.OnEvent != nil {
			c.opts.OnEvent(e)
		}
	})
}

// callback runs f unless the client is quiet, one at a time, and keeps the
// time spent out of the hang accounting.
func (c *Client) callback(f func()) {
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	if c.quiet {
		return
	}
	began := time.Now()
	c.busySince.Store(began.UnixNano())
	defer func() {
		c.busySince.Store(0)
		c.cbTotal.Add(int64(time.Since(began)))
	}()
	f()
}

// request sends cmd and waits for its result, ctx, or the driver's failure.
func (c *Client) request(ctx context.Context, cmd command) (event, error) {
	req, err := c.send(cmd)
	if err != nil {
		return event{}, err
	}
	select {
	case r := <-req.done:
		return r.ev, r.err
	case <-ctx.Done():
		// The answer may have come in the meantime: the outcome is known.
		select {
		case r := <-req.done:
			return r.ev, r.err
		default:
		}
		return event{}, fmt.Errorf("no answer to %s: %w", cmd.Cmd, ctx.Err())
	}
}

// send registers and writes one command. A write that fails or does not
// finish within HangTimeout fails the driver; nothing was sent, so the
// error wraps clients.ErrNotSent.
func (c *Client) send(cmd command) (*request, error) {
	c.mu.Lock()
	if c.failErr != nil {
		defer c.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", clients.ErrNotSent, c.failErr)
	}
	c.nextID++
	cmd.ID = c.nextID
	req := &request{cmd: cmd.Cmd, done: make(chan reply, 1)}
	c.pending[cmd.ID] = req
	c.mu.Unlock()

	line, err := encodeCommand(cmd)
	if err == nil {
		c.wmu.Lock()
		_ = c.stdin.SetWriteDeadline(time.Now().Add(c.cfg.HangTimeout))
		_, err = c.stdin.Write(line)
		c.wmu.Unlock()
	}
	if err == nil {
		return req, nil
	}
	c.mu.Lock()
	delete(c.pending, cmd.ID)
	closing := c.closing
	c.mu.Unlock()
	if closing && cmd.Cmd != cmdClose {
		// Close closed stdin under a call that began before it.
		return nil, fmt.Errorf("%w: %w", clients.ErrNotSent, clients.ErrClosed)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, fmt.Errorf("%w: %w", clients.ErrNotSent,
			c.fail(ErrHung, fmt.Sprintf("stdin not read for %v", c.cfg.HangTimeout), c.line()))
	}
	return nil, fmt.Errorf("%w: %w", clients.ErrNotSent, c.fail(ErrDied, "write to stdin: "+err.Error(), c.line()))
}

// watchdog pings the driver every Heartbeat and fails it when a ping stays
// unanswered for HangTimeout, not counting time spent in callbacks (the
// answer may be waiting in the pipe behind a slow OnMessage).
func (c *Client) watchdog() {
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	var (
		ping *request // outstanding
		sent time.Time
		cbAt int64
	)
	for {
		select {
		case <-c.stop:
			return
		case <-c.broken:
			return
		case <-t.C:
		}
		if ping != nil {
			select {
			case <-ping.done:
				ping = nil
			default:
				cb := c.cbTotal.Load() - cbAt
				if bs := c.busySince.Load(); bs != 0 {
					cb += time.Now().UnixNano() - bs
				}
				if waited := time.Since(sent) - time.Duration(cb); waited > c.cfg.HangTimeout {
					c.fail(ErrHung, fmt.Sprintf("a ping unanswered for %v", waited.Round(time.Millisecond)), c.line())
					return
				}
				continue
			}
		}
		sent, cbAt = time.Now(), c.cbTotal.Load()
		req, err := c.send(command{Cmd: cmdPing})
		if err != nil {
			return
		}
		ping = req
	}
}

// fail records the driver's failure (once), kills it, and fails every
// pending request; it returns the failure, the first one if there were
// several. cause is a sentinel or an error wrapping one; detail adds to it.
func (c *Client) fail(cause error, detail string, line int) *DriverError {
	c.mu.Lock()
	if c.failing {
		c.mu.Unlock()
		<-c.broken
		return c.failErr
	}
	c.failing = true
	text := ""
	if line > 0 && line == c.lineNo {
		text = cut(c.lastLine, maxTextLen)
	}
	c.mu.Unlock()

	c.killGroup()
	select {
	case <-c.stderrDone:
	case <-time.After(stderrDrain):
	}
	err := cause
	if detail != "" {
		err = fmt.Errorf("%w: %s", cause, detail)
	}
	de := &DriverError{Driver: c.cfg.Name, Line: line, Text: text, Stderr: c.tail.String(), Err: err}

	c.mu.Lock()
	c.failErr = de
	wasUp := c.linkUp && !c.finished
	c.linkUp = false
	pending := c.pending
	c.pending = map[uint64]*request{}
	closing := c.closing
	c.mu.Unlock()
	close(c.broken)
	for _, req := range pending {
		req.done <- reply{err: de}
	}
	if !closing {
		c.log.Error("driver failed", "err", de)
		if wasUp {
			c.outages.Add(1)
			c.emit(clients.Event{Kind: clients.EventDown, At: time.Now(), Err: de})
		}
	}
	return de
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// Python is the configuration for drivers/python/driver.py (paho-mqtt) under
// Debian's python3, given the repository's drivers directory.
func Python(driversDir string) Config {
	return Config{Name: "python", Command: []string{"/usr/bin/python3", filepath.Join(driversDir, "python", "driver.py")}}
}

// Node is the configuration for drivers/node/driver.js (MQTT.js) under node,
// with Debian's node-mqtt on NODE_PATH, given the repository's drivers
// directory.
func Node(driversDir string) Config {
	return Config{Name: "node", Command: []string{"/usr/bin/node", filepath.Join(driversDir, "node", "driver.js")},
		Env: []string{"NODE_PATH=/usr/share/nodejs"}}
}

// C is the configuration for the libmosquitto driver (drivers/c/driver.c),
// given the binary `make c-driver` built (build/drivers/c/driver).
func C(binary string) Config {
	return Config{Name: "c", Command: []string{binary}}
}
