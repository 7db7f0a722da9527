// Package pahoclient adapts github.com/eclipse/paho.mqtt.golang (v1.5.1) to
// clients.Client, so the harness can run paho through the same faults as
// mqttas and compare them.
//
// The adapter reports paho's behaviour as it is. In particular, after an
// automatic reconnect paho completes the token of a stored QoS 1 publish as
// soon as it re-queues the message, before any PUBACK (paho issues #563,
// #458); Publish then returns nil, and the ledger shows whether the
// message really arrived. A QoS 0 publish during a reconnect is dropped by
// paho with a successful token; that too is returned as success (see
// TestQoS0DuringReconnectReportsSuccess).
//
// Option mapping:
//   - KeepAlive: whole seconds only (paho truncates; other values are
//     rejected rather than silently changed). PingTimeout and ConnectTimeout
//     map to paho's options of the same name.
//   - ResponseTimeout: paho has no equivalent; it is ignored.
//   - The first connection is a single attempt (ConnectRetry off); later ones
//     are paho's AutoReconnect loop, with Config.MaxReconnectInterval as the
//     backoff cap.
//   - The adapter dials the TCP connection itself (CustomOpenConnectionFn),
//     so Close can drop it abruptly and Up events can carry CONNACK's
//     session-present flag, which paho does not expose after a reconnect.
package pahoclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/internal/connack"
)

// Name is the adapter's name in a clients.Registry.
const Name = "paho"

// Config holds paho-specific settings that clients.Options does not cover.
type Config struct {
	AutoReconnect bool // paho default true
	ResumeSubs    bool // re-send SUBSCRIBEs made while disconnected; paho default false
	OrderMatters  bool // run handlers inline, in order; paho default true
	// OrderedStore uses paho's OrderedMemoryStore; the default MemoryStore
	// is a map, so resends after a reconnect come in no particular order.
	OrderedStore bool
	// WriteTimeout bounds PUBLISH writes and paho's wait to queue a publish
	// (30 s when 0); paho default 0.
	WriteTimeout time.Duration
	// MaxReconnectInterval caps paho's reconnect backoff; paho's default is
	// 10 minutes.
	MaxReconnectInterval time.Duration
}

// DefaultConfig is paho's defaults except MaxReconnectInterval, which is 1 s
// so that recovery times measure detection and reconnection, not a backoff
// cap of minutes (the paho baseline used the same).
func DefaultConfig() Config {
	return Config{AutoReconnect: true, OrderMatters: true, MaxReconnectInterval: time.Second}
}

// Factory returns a clients.Factory that makes paho adapters with cfg.
func Factory(cfg Config) clients.Factory {
	return func(o clients.Options) (clients.Client, error) { return New(o, cfg) }
}

// Bounds on waits paho itself does not bound by context.
const (
	closeBound      = 5 * time.Second // Close: paho's Disconnect quiesce
	disconnectBound = 5 * time.Second // Disconnect without a ctx deadline
)

// Client is a paho client behind the clients.Client interface.
type Client struct {
	opts clients.Options
	cfg  Config
	pc   paho.Client
	log  *slog.Logger

	ctx    context.Context // cancelled by Close: aborts dials in progress
	cancel context.CancelFunc

	mu       sync.Mutex
	conn     *connack.Conn // the latest connection
	finished bool          // Disconnect or Close started: dial nothing more

	evMu sync.Mutex  // serialises OnEvent
	done atomic.Bool // set after Disconnect/Close: callbacks are dropped

	connects, outages, failures atomic.Int64
}

// New makes an unconnected paho adapter.
func New(o clients.Options, cfg Config) (*Client, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.KeepAlive%time.Second != 0 {
		return nil, fmt.Errorf("%w: paho keepalive has whole seconds, got %v", clients.ErrInvalidOptions, o.KeepAlive)
	}
	c := &Client{opts: o, cfg: cfg, log: o.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("client", Name, "id", o.ClientID)
	c.ctx, c.cancel = context.WithCancel(context.Background())

	po := paho.NewClientOptions().
		AddBroker("tcp://" + o.Addr).
		SetClientID(o.ClientID).
		SetProtocolVersion(4). // 3.1.1, no silent fallback to 3.1
		SetCleanSession(o.CleanSession).
		SetAutoReconnect(cfg.AutoReconnect).
		SetConnectRetry(false).
		SetResumeSubs(cfg.ResumeSubs).
		SetOrderMatters(cfg.OrderMatters).
		SetWriteTimeout(cfg.WriteTimeout).
		SetCustomOpenConnectionFn(c.dial).
		SetDefaultPublishHandler(c.onMessage).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(c.onConnectionLost).
		SetReconnectingHandler(c.onReconnecting).
		SetConnectionNotificationHandler(c.onNotification)
	// SetKeepAlive(0) would disable keepalive; leave paho's default instead.
	if o.KeepAlive > 0 {
		po.SetKeepAlive(o.KeepAlive)
	}
	if o.PingTimeout > 0 {
		po.SetPingTimeout(o.PingTimeout)
	}
	if o.ConnectTimeout > 0 {
		po.SetConnectTimeout(o.ConnectTimeout)
	}
	if cfg.MaxReconnectInterval > 0 {
		po.SetMaxReconnectInterval(cfg.MaxReconnectInterval)
	}
	if cfg.OrderedStore {
		po.SetStore(paho.NewOrderedMemoryStore())
	}
	if w := o.Will; w != nil {
		po.SetBinaryWill(w.Topic, w.Payload, w.QoS, w.Retain)
	}
	c.pc = paho.NewClient(po)
	return c, nil
}

// Connect makes one connection attempt and waits for it or ctx.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	finished := c.finished
	c.mu.Unlock()
	if finished {
		return clients.ErrClosed
	}
	if err := wait(ctx, c.pc.Connect()); err != nil {
		return fmt.Errorf("pahoclient: connect %s: %w", c.opts.Addr, err)
	}
	return nil
}

// Publish hands the message to paho and waits for its token or ctx. paho's
// Publish call itself may block up to WriteTimeout (30 s when 0) while it
// queues the message; it does not observe ctx.
func (c *Client) Publish(ctx context.Context, m clients.Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pahoclient: publish %q: %w: %w", m.Topic, clients.ErrNotSent, err)
	}
	if c.done.Load() {
		return fmt.Errorf("pahoclient: publish %q: %w: %w", m.Topic, clients.ErrNotSent, clients.ErrClosed)
	}
	if err := wait(ctx, c.pc.Publish(m.Topic, m.QoS, m.Retain, m.Payload)); err != nil {
		return fmt.Errorf("pahoclient: publish %q: %w", m.Topic, classify(err))
	}
	return nil
}

// classify marks the paho errors that are raised before a message is stored
// or sent; every other paho error leaves the message in its store, to be
// re-sent after a reconnect.
func classify(err error) error {
	switch {
	case errors.Is(err, paho.ErrNotConnected),
		// No sentinel in paho v1.5.1; raised before the message is stored.
		strings.Contains(err.Error(), "no message IDs available"):
		return fmt.Errorf("%w: %w", clients.ErrNotSent, err)
	}
	return err
}

// ErrRefused is returned when the broker refuses a subscription (SUBACK 0x80).
var ErrRefused = errors.New("pahoclient: subscription refused")

// Subscribe subscribes with paho's default handler, so every delivery goes to
// Options.OnMessage.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte) error {
	if c.done.Load() {
		return clients.ErrClosed
	}
	tok := c.pc.Subscribe(filter, qos, nil)
	if err := wait(ctx, tok); err != nil {
		return fmt.Errorf("pahoclient: subscribe %q: %w", filter, err)
	}
	for topic, granted := range tok.(*paho.SubscribeToken).Result() {
		if granted == 0x80 {
			return fmt.Errorf("%w: %q", ErrRefused, topic)
		}
	}
	return nil
}

// Unsubscribe removes a subscription.
func (c *Client) Unsubscribe(ctx context.Context, filter string) error {
	if c.done.Load() {
		return clients.ErrClosed
	}
	if err := wait(ctx, c.pc.Unsubscribe(filter)); err != nil {
		return fmt.Errorf("pahoclient: unsubscribe %q: %w", filter, err)
	}
	return nil
}

// Disconnect sends DISCONNECT and shuts paho down, waiting at most until
// ctx's deadline (5 s without one) for paho to finish.
func (c *Client) Disconnect(ctx context.Context) error {
	if !c.finish() {
		return nil
	}
	bound := disconnectBound
	if dl, ok := ctx.Deadline(); ok {
		bound = max(time.Until(dl), 0)
	}
	c.pc.Disconnect(uint(bound.Milliseconds())) // returns early once paho is done
	c.release()
	return ctx.Err()
}

// Close drops the connection without DISCONNECT, then shuts paho down.
func (c *Client) Close() error {
	if !c.finish() {
		return nil
	}
	c.mu.Lock()
	cur := c.conn
	c.mu.Unlock()
	if cur != nil {
		_ = cur.Close() // the broker sees the connection end and publishes the will
	}
	// The DISCONNECT paho now tries to send fails on the closed connection.
	c.pc.Disconnect(uint(closeBound.Milliseconds()))
	c.release()
	return nil
}

// IsConnected is paho's IsConnected: true while connected or reconnecting.
func (c *Client) IsConnected() bool { return !c.done.Load() && c.pc.IsConnected() }

// Stats counts what the adapter sees through paho's callbacks. paho does not
// report its resends or discards, so repubs and discards are absent.
func (c *Client) Stats() clients.Stats {
	n := c.connects.Load()
	return clients.Stats{
		clients.StatConnects:        n,
		clients.StatReconnects:      max(n-1, 0),
		clients.StatOutages:         c.outages.Load(),
		clients.StatConnectFailures: c.failures.Load(),
	}
}

// finish marks the client finished; it reports false if it already was.
func (c *Client) finish() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return false
	}
	c.finished = true
	c.cancel()
	return true
}

// release stops callbacks once paho has shut down.
func (c *Client) release() {
	c.evMu.Lock() // wait for an event callback in progress
	c.done.Store(true)
	c.evMu.Unlock()
}

// dial opens the TCP connection for paho, bounded by ConnectTimeout and
// aborted by Close.
func (c *Client) dial(u *url.URL, o paho.ClientOptions) (net.Conn, error) {
	c.mu.Lock()
	finished := c.finished
	c.mu.Unlock()
	if finished {
		return nil, clients.ErrClosed
	}
	ctx, cancel := context.WithTimeout(c.ctx, o.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	w := connack.Wrap(nc)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		_ = nc.Close()
		return nil, clients.ErrClosed
	}
	c.conn = w
	return w, nil
}

func (c *Client) onMessage(_ paho.Client, m paho.Message) {
	at := time.Now()
	if c.done.Load() || c.opts.OnMessage == nil {
		return
	}
	c.opts.OnMessage(clients.Delivery{
		Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(),
		Retain: m.Retained(), Dup: m.Duplicate(), At: at,
	})
}

func (c *Client) onConnect(paho.Client) {
	at := time.Now()
	c.connects.Add(1)
	c.mu.Lock()
	cur := c.conn
	c.mu.Unlock()
	sp := cur != nil && cur.SessionPresent()
	c.log.Debug("up", "session_present", sp)
	c.emit(clients.Event{Kind: clients.EventUp, At: at, SessionPresent: sp})
}

func (c *Client) onConnectionLost(_ paho.Client, err error) {
	at := time.Now()
	c.outages.Add(1)
	c.log.Debug("down", "err", err)
	c.emit(clients.Event{Kind: clients.EventDown, At: at, Err: err})
}

func (c *Client) onReconnecting(paho.Client, *paho.ClientOptions) {
	c.emit(clients.Event{Kind: clients.EventReconnect, At: time.Now()})
}

func (c *Client) onNotification(_ paho.Client, n paho.ConnectionNotification) {
	if f, ok := n.(paho.ConnectionNotificationFailed); ok {
		at := time.Now()
		c.failures.Add(1)
		c.log.Debug("connect failed", "err", f.Reason)
		c.emit(clients.Event{Kind: clients.EventConnectFailed, At: at, Err: f.Reason})
	}
}

func (c *Client) emit(e clients.Event) {
	if c.opts.OnEvent == nil {
		return
	}
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if !c.done.Load() {
		c.opts.OnEvent(e)
	}
}

// wait waits for a paho token or ctx, whichever comes first. A token left
// behind completes in paho's own time; nothing waits on it.
func wait(ctx context.Context, t paho.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return fmt.Errorf("token pending: %w", ctx.Err())
	}
}
