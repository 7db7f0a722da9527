// Package link is a faulty network link for MQTT tests: an embedded
// Toxiproxy between a client and a broker, with faults as verbs (Latency,
// Blackhole, Down, Reset, ...) and an MQTT-aware tap that records every
// control packet and can drop or delay chosen packet types.
//
// The link listens on 127.0.0.1. Point the client at Addr, the link at the
// broker. Every verb returns an error; verbs that touch the proxy take a
// context because toxiproxy can block while traffic is stuck.
package link

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/mqttas/mqttas-go/harness/link/mqttframe"
)

var (
	// ErrClosed is returned by verbs on a closed Link.
	ErrClosed = errors.New("link: closed")
	// ErrInvalid wraps rejected arguments.
	ErrInvalid = errors.New("link: invalid argument")
	// ErrStuck is returned (with the context's error) when toxiproxy did not
	// finish an operation in time; it may still complete later.
	ErrStuck = errors.New("link: toxiproxy operation did not finish")
)

// ProxyName is the link's proxy in Toxiproxy's HTTP API (see Link.API).
const ProxyName = "mqtt"

// DefaultTapCapacity is how many records the tap keeps by default.
const DefaultTapCapacity = 1 << 15

// closeTimeout bounds Close.
const closeTimeout = 10 * time.Second

// Ports tried for the listener: below Linux's default ephemeral range, so a
// Down/Up rebind cannot collide with an outgoing connection's source port.
const (
	portLow    = 20000
	portHigh   = 32768
	portTrials = 64
)

type options struct {
	listen   string
	capacity int
	log      *slog.Logger
}

// Option configures New.
type Option func(*options)

// WithListenAddr makes the link listen on addr (host:port) instead of a free
// port of 127.0.0.1 chosen by New.
func WithListenAddr(addr string) Option { return func(o *options) { o.listen = addr } }

// WithTapCapacity sets how many records the tap keeps (at least 1).
func WithTapCapacity(n int) Option { return func(o *options) { o.capacity = n } }

// WithLogger sets a logger for debug output (faults applied, removed).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Link is an embedded Toxiproxy with an MQTT tap. It is safe for concurrent
// use; operations on the proxy run one at a time.
type Link struct {
	log   *slog.Logger
	srv   *toxiproxy.ApiServer
	proxy *toxiproxy.Proxy
	eng   *engine
	addr  string

	opMu sync.Mutex     // serialises operations on the proxy
	ops  sync.WaitGroup // operation goroutines, for Close

	mu       sync.Mutex // guards the fields below; never held across a proxy call
	upstream string
	closed   bool
	down     time.Time // when Down was called; zero while up
	faults   []*toxicFault
	faultSeq int
}

// New starts a link to upstream (host:port) listening on 127.0.0.1.
func New(ctx context.Context, upstream string, opts ...Option) (*Link, error) {
	if _, _, err := net.SplitHostPort(upstream); err != nil {
		return nil, fmt.Errorf("%w: upstream %q: %v", ErrInvalid, upstream, err)
	}
	o := options{capacity: DefaultTapCapacity, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.capacity < 1 {
		return nil, fmt.Errorf("%w: tap capacity %d", ErrInvalid, o.capacity)
	}
	registerToxics()

	start := time.Now()
	eng := newEngine(newTap(o.capacity, start))
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, ProxyName, "", upstream)
	for _, d := range Both.each() {
		// The taps go in before the proxy starts: first in every chain, and
		// their fields are set before any Pipe runs.
		w, err := p.Toxics.AddToxicJson(strings.NewReader(fmt.Sprintf(
			`{"name":"tap-%[1]s","type":%[2]q,"stream":"%[1]s","toxicity":1,"attributes":{}}`, d.stream(), tapType)))
		if err != nil {
			return nil, fmt.Errorf("link: install tap: %w", err)
		}
		t := w.Toxic.(*tapToxic)
		t.dir, t.eng = d, eng
	}

	candidates := []string{o.listen}
	if o.listen == "" {
		candidates = listenCandidates()
	}
	var err error
	for _, addr := range candidates {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("link: listen: %w", ctx.Err())
		}
		p.Listen = addr
		if err = p.Start(); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("link: listen: %w", err)
	}
	if err := srv.Collection.Add(p, false); err != nil { // for API: it is already started
		p.Stop()
		return nil, fmt.Errorf("link: register proxy: %w", err)
	}
	l := &Link{log: o.log, srv: srv, proxy: p, eng: eng, addr: p.Listen, upstream: upstream}
	l.log.Debug("link up", "addr", l.addr, "upstream", upstream)
	return l, nil
}

// listenCandidates returns random 127.0.0.1 ports outside the ephemeral
// range, or port 0 (any) if the range leaves no room.
func listenCandidates() []string {
	lo, hi := ephemeralRange()
	var out []string
	for range portTrials {
		p := portLow + rand.IntN(portHigh-portLow)
		if p >= lo && p <= hi {
			continue
		}
		out = append(out, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	}
	return append(out, "127.0.0.1:0")
}

// ephemeralRange reads Linux's ephemeral port range (default 32768–60999).
func ephemeralRange() (lo, hi int) {
	lo, hi = 32768, 60999
	f, err := os.Open("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	if s.Scan() {
		if fs := strings.Fields(s.Text()); len(fs) == 2 {
			a, err1 := strconv.Atoi(fs[0])
			b, err2 := strconv.Atoi(fs[1])
			if err1 == nil && err2 == nil {
				return a, b
			}
		}
	}
	return lo, hi
}

// Addr is the address clients dial (127.0.0.1:port). It stays the same
// across Down/Up and SetUpstream.
func (l *Link) Addr() string { return l.addr }

// Upstream is the broker address the link forwards to.
func (l *Link) Upstream() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.upstream
}

// Tap returns the link's packet recorder.
func (l *Link) Tap() *Tap { return l.eng.tap }

// SetUpstream points the link at a broker that moved. Toxiproxy restarts the
// listener (same address) and closes every current connection; new ones go
// to addr. A link that is Down stays down.
func (l *Link) SetUpstream(ctx context.Context, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%w: upstream %q: %v", ErrInvalid, addr, err)
	}
	return l.do(ctx, "set upstream", func() error {
		l.mu.Lock()
		enabled := l.down.IsZero()
		l.mu.Unlock()
		if err := l.proxy.Update(&toxiproxy.Proxy{Listen: l.addr, Upstream: addr, Enabled: enabled}); err != nil {
			return err
		}
		l.mu.Lock()
		l.upstream = addr
		l.mu.Unlock()
		l.log.Debug("link upstream moved", "addr", l.addr, "upstream", addr)
		return nil
	})
}

// Down makes the link refuse connections (ECONNREFUSED) and closes every
// current one (FIN to both peers): toxiproxy disables the proxy and closes
// its listener.
func (l *Link) Down(ctx context.Context) error {
	return l.do(ctx, "down", func() error {
		l.proxy.Stop()
		l.mu.Lock()
		if l.down.IsZero() {
			l.down = time.Now()
		}
		l.mu.Unlock()
		l.log.Debug("link down", "addr", l.addr)
		return nil
	})
}

// Up accepts connections again, on the same address. It fails if another
// process took the port meanwhile.
func (l *Link) Up(ctx context.Context) error {
	return l.do(ctx, "up", l.up)
}

func (l *Link) up() error {
	if err := l.proxy.Start(); err != nil && !errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
		return err
	}
	l.mu.Lock()
	l.down = time.Time{}
	l.mu.Unlock()
	l.log.Debug("link up", "addr", l.addr)
	return nil
}

// Reset abruptly closes every current connection, while new connections are
// accepted throughout (no refused window). The tap ends each direction at
// once; toxiproxy then closes both sockets with a FIN, which faults added
// after the tap still shape: a Blackhole or SlowClose holds the FIN back.
// For RST instead of FIN see ResetPeer. Reset returns once every connection
// has begun closing.
func (l *Link) Reset(ctx context.Context) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	l.log.Debug("link reset", "addr", l.addr)
	if err := l.eng.abortAll(ctx); err != nil {
		return fmt.Errorf("link: reset: %w (%w)", ErrStuck, err)
	}
	return nil
}

// DropPackets drops packets of type t in dir: the next n of them, or all
// while the rule stands if n < 0. Dropped packets are removed whole, so the
// stream stays valid, and are recorded in the tap as Dropped. One rule per
// direction and type: a new DropPackets or DelayPackets replaces it.
func (l *Link) DropPackets(dir Direction, t mqttframe.Type, n int) error {
	if err := l.checkRule(dir, t); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: drop 0 packets", ErrInvalid)
	}
	l.eng.setRule(dir, t, rule{action: mqttframe.Drop, left: n, since: time.Now()})
	l.log.Debug("link drops packets", "addr", l.addr, "dir", dir, "type", t, "n", n)
	return nil
}

// DelayPackets holds every packet of type t in dir for d before passing it
// on. TCP keeps order, so whatever follows the packet waits too. Delays are
// measured from arrival at the proxy, so packets arriving together are not
// delayed one after another.
func (l *Link) DelayPackets(dir Direction, t mqttframe.Type, d time.Duration) error {
	if err := l.checkRule(dir, t); err != nil {
		return err
	}
	if d <= 0 {
		return fmt.Errorf("%w: delay %v", ErrInvalid, d)
	}
	l.eng.setRule(dir, t, rule{action: mqttframe.Delay, delay: d, since: time.Now()})
	l.log.Debug("link delays packets", "addr", l.addr, "dir", dir, "type", t, "delay", d)
	return nil
}

// StopDropping removes every drop rule.
func (l *Link) StopDropping() { l.eng.clearRules(Both, mqttframe.Drop) }

// StopDelaying removes every delay rule and releases the packets being held.
func (l *Link) StopDelaying() { l.eng.clearRules(Both, mqttframe.Delay) }

func (l *Link) checkRule(dir Direction, t mqttframe.Type) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	if !dir.valid() {
		return fmt.Errorf("%w: direction %v", ErrInvalid, dir)
	}
	if !t.Valid() {
		return fmt.Errorf("%w: packet type %v", ErrInvalid, t)
	}
	return nil
}

func (l *Link) checkOpen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return nil
}

// do runs fn, an operation on the proxy, one at a time. Toxiproxy calls
// cannot be cancelled, so fn runs in its own goroutine and do gives up when
// ctx ends; fn then still finishes (Close waits for it, within its bound).
func (l *Link) do(ctx context.Context, what string, fn func() error) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.ops.Add(1)
	l.mu.Unlock()
	return l.run(ctx, what, fn)
}

// run is do without the closed check; the caller has done l.ops.Add(1).
func (l *Link) run(ctx context.Context, what string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		defer l.ops.Done()
		l.opMu.Lock()
		defer l.opMu.Unlock()
		if err := ctx.Err(); err != nil {
			done <- err
			return
		}
		done <- fn()
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("link: %s: %w", what, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("link: %s: %w (%w)", what, ErrStuck, ctx.Err())
	}
}

// Close shuts the link down within a fixed bound; see Shutdown.
func (l *Link) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return l.Shutdown(ctx)
}

// Shutdown removes every fault (while connections are up, so data held by
// latency drains), closes every connection, stops the proxy and waits until
// no connection is running. Calling it again does nothing.
//
// A toxiproxy 2.12 toxic blocked writing to a peer that stopped reading
// cannot be interrupted; Shutdown then returns ErrStuck when ctx ends and
// some toxiproxy goroutines remain until the peer's socket gives up.
func (l *Link) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.ops.Add(2)
	l.mu.Unlock()

	var errs []error
	l.eng.clearRules(Both, mqttframe.Forward)
	errs = append(errs, l.run(ctx, "close: remove faults", l.removeAll))
	if err := l.eng.abortAll(ctx); err != nil {
		errs = append(errs, fmt.Errorf("link: close: abort connections: %w (%w)", ErrStuck, err))
	}
	errs = append(errs, l.run(ctx, "close: stop proxy", func() error { l.proxy.Stop(); return nil }))
	if err := l.eng.waitIdle(ctx); err != nil {
		errs = append(errs, fmt.Errorf("link: close: connections still running: %w (%w)", ErrStuck, err))
	}
	done := make(chan struct{})
	go func() { l.ops.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("link: close: operations still running: %w (%w)", ErrStuck, ctx.Err()))
	}
	l.log.Debug("link closed", "addr", l.addr)
	return errors.Join(errs...)
}
