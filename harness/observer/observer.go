// Package observer is the harness's independent witness: a paho client
// connected straight to the broker (never through the faulty link) that holds
// a persistent QoS 1 session and records every delivery into a ledger.
//
// It survives broker restarts. If the broker kept the session, the backlog
// simply flows again; if the session was lost (a broker without
// persistence), the observer's resubscribe.Keeper closes its subscription
// windows in the ledger at the moment the connection dropped, subscribes
// again and opens new windows, so messages published while nobody could
// receive them are not counted as lost.
package observer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/harness/clients/pahoclient"
	"github.com/mqttas/mqttas-go/harness/ledger"
	"github.com/mqttas/mqttas-go/harness/resubscribe"
)

// Config configures an observer.
type Config struct {
	// Addr is the broker's own host:port, not the fault-injecting proxy.
	Addr string
	// ClientID defaults to "observer". Reuse it to resume a session.
	ClientID string
	// Name is the subscriber's name in the ledger; defaults to ClientID.
	Name string
	// Ledger receives every delivery. Required.
	Ledger *ledger.Ledger
	// KeepAlive (whole seconds) defaults to 5 s.
	KeepAlive time.Duration
	// ReconnectInterval caps the wait between reconnect attempts; defaults
	// to 250 ms.
	ReconnectInterval time.Duration
	// OnEvent, if set, receives the observer's connection events (e.g. to
	// record them on a timeline). It must not block.
	OnEvent func(clients.Event)
	// Logger receives debug output; nil discards it.
	Logger *slog.Logger
	// OnMessage, if set, receives every delivery instead of the Ledger (which still records the
	// subscriptions): for payloads that are not the ledger's, which the caller translates. It must not
	// block.
	OnMessage func(clients.Delivery)
}

// ErrClosed is returned by calls after Close.
var ErrClosed = errors.New("observer: closed")

// Bounds for waits the observer makes on its own.
const (
	resubscribeTimeout = 10 * time.Second
	resubscribeRetry   = 100 * time.Millisecond
	connectTimeout     = 2 * time.Second
	pingTimeout        = 2 * time.Second
)

// Observer records deliveries into a ledger. Its methods are safe for
// concurrent use.
type Observer struct {
	cfg  Config
	c    *pahoclient.Client
	log  *slog.Logger
	keep *resubscribe.Keeper // the subscriptions, across session losses

	mu     sync.Mutex
	closed bool
	up     bool

	delivered atomic.Int64
	last      atomic.Int64 // unix ns of the latest delivery
}

// Start connects an observer with a persistent session (clean session off).
// Subscribe to what it should watch; a resumed session may deliver its
// backlog before that.
func Start(ctx context.Context, cfg Config) (*Observer, error) {
	if cfg.Addr == "" || cfg.Ledger == nil {
		return nil, fmt.Errorf("observer: %w: Addr and Ledger are required", clients.ErrInvalidOptions)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "observer"
	}
	if cfg.Name == "" {
		cfg.Name = cfg.ClientID
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 5 * time.Second
	}
	if cfg.ReconnectInterval == 0 {
		cfg.ReconnectInterval = 250 * time.Millisecond
	}
	o := &Observer{cfg: cfg, log: cfg.Logger}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	o.log = o.log.With("observer", cfg.Name)

	pc := pahoclient.DefaultConfig()
	pc.MaxReconnectInterval = cfg.ReconnectInterval
	pc.OrderMatters = true // record deliveries in arrival order, for the ordering check
	c, err := pahoclient.New(clients.Options{
		Addr:           cfg.Addr,
		ClientID:       cfg.ClientID,
		CleanSession:   false,
		KeepAlive:      cfg.KeepAlive,
		PingTimeout:    pingTimeout,
		ConnectTimeout: connectTimeout,
		OnMessage:      o.onMessage,
		OnEvent:        o.onEvent,
		Logger:         cfg.Logger,
	}, pc)
	if err != nil {
		return nil, fmt.Errorf("observer: %w", err)
	}
	o.c = c
	o.keep, err = resubscribe.New(resubscribe.Config{
		Subscribe: func(ctx context.Context, f string) error { return c.Subscribe(ctx, f, 1) },
		Ledger:    cfg.Ledger, Name: cfg.Name, Timeout: resubscribeTimeout, Retry: resubscribeRetry,
		Notify: func(_ time.Time, err error) {
			if err != nil {
				o.log.Debug("resubscribe", "err", err)
			}
		},
		Logger: o.log,
	})
	if err != nil {
		return nil, fmt.Errorf("observer: %w", err)
	}
	if err := c.Connect(ctx); err != nil {
		_ = o.Close()
		return nil, fmt.Errorf("observer: %w", err)
	}
	return o, nil
}

// Subscribe subscribes at QoS 1 and, once the broker has acknowledged it,
// tells the ledger that every message published on a matching topic from now
// on must reach this observer.
func (o *Observer) Subscribe(ctx context.Context, filter string) error {
	if o.isClosed() {
		return ErrClosed
	}
	if err := o.keep.Subscribe(ctx, filter); err != nil {
		return fmt.Errorf("observer: %w", err)
	}
	return nil
}

// Publish publishes through the observer's own connection.
func (o *Observer) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	if o.isClosed() {
		return ErrClosed
	}
	if err := o.c.Publish(ctx, clients.Message{Topic: topic, Payload: payload, QoS: qos, Retain: retain}); err != nil {
		return fmt.Errorf("observer: %w", err)
	}
	return nil
}

// Delivered returns how many deliveries the observer has recorded.
func (o *Observer) Delivered() int64 { return o.delivered.Load() }

// Ready reports whether the observer is connected with every subscription in
// place.
func (o *Observer) Ready() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.up && !o.closed && o.keep.Ready()
}

// WaitReady waits until Ready or ctx ends.
func (o *Observer) WaitReady(ctx context.Context) error {
	return poll(ctx, 10*time.Millisecond, o.Ready)
}

// Drain waits until no delivery has arrived for quiet (the final phase of a
// run: heal, then drain), or ctx ends.
func (o *Observer) Drain(ctx context.Context, quiet time.Duration) error {
	began := time.Now().UnixNano()
	return poll(ctx, min(quiet/5, 50*time.Millisecond), func() bool {
		last := max(o.last.Load(), began)
		return time.Since(time.Unix(0, last)) >= quiet
	})
}

// Close disconnects gracefully, so the broker keeps the session (and queues
// for it) until an observer with the same ClientID comes back. It waits for
// the observer's goroutines and may be called more than once.
func (o *Observer) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	o.mu.Unlock()
	o.keep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.c.Disconnect(ctx); err != nil {
		return fmt.Errorf("observer: close: %w", err)
	}
	return nil
}

func (o *Observer) isClosed() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed
}

func (o *Observer) onMessage(d clients.Delivery) {
	if o.cfg.OnMessage != nil {
		o.cfg.OnMessage(d)
	} else {
		o.cfg.Ledger.Deliver(ledger.Delivery{
			Subscriber: o.cfg.Name, Topic: d.Topic, Payload: d.Payload,
			QoS: d.QoS, Dup: d.Dup, Retain: d.Retain, At: d.At,
		})
	}
	o.delivered.Add(1)
	o.last.Store(d.At.UnixNano())
}

// onEvent runs on the adapter's event path: it only updates state and hands the event to the Keeper,
// which resubscribes on its own goroutine after a session loss.
func (o *Observer) onEvent(e clients.Event) {
	o.log.Debug("event", "kind", e.Kind, "session_present", e.SessionPresent, "err", e.Err)
	o.mu.Lock()
	switch e.Kind {
	case clients.EventDown:
		o.up = false
	case clients.EventUp:
		o.up = true
	}
	closed := o.closed
	o.mu.Unlock()
	if !closed {
		o.keep.OnEvent(e)
	}
	if o.cfg.OnEvent != nil {
		o.cfg.OnEvent(e)
	}
}

func poll(ctx context.Context, every time.Duration, cond func() bool) error {
	every = max(every, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
