// Package mqttasclient adapts the mqttas client to the harness's clients.Client interface.
package mqttasclient

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mqttas/mqttas-go/harness/clients"
	"github.com/mqttas/mqttas-go/mqttas"
)

// Name is the client's name in a clients.Registry.
const Name = "mqttas"

// Config holds the mqttas settings that clients.Options does not express. Its zero value keeps mqttas's
// defaults.
type Config struct {
	// DiscardOldSession makes a persistent client (Options.CleanSession false) discard the session the broker
	// kept from an earlier run at start-up (mqttas without ResumeSession). False resumes it.
	DiscardOldSession bool
	// MaxRepubs is the number of DUP re-sends before the link is declared dead; 0 keeps mqttas's default (4),
	// negative means none.
	MaxRepubs int
	// PingInterval shortens the ping interval below KeepAlive/4; 0 keeps the derived one.
	PingInterval time.Duration
	// ReconnectMin and ReconnectMax bound the reconnection backoff; 0 keeps mqttas's defaults.
	ReconnectMin, ReconnectMax time.Duration
	// Dial replaces the TCP dialer (e.g. to count or fail dials); nil uses net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Factory returns a clients.Factory for mqttas with cfg.
func Factory(cfg Config) clients.Factory {
	return func(o clients.Options) (clients.Client, error) { return New(o, cfg) }
}

// Client is the adapter.
type Client struct {
	c      *mqttas.Client
	o      clients.Options
	closed atomic.Bool
}

// New maps o onto an mqttas.Config. What mqttas has no equivalent for:
//   - PingTimeout: mqttas declares the broker dead after 4 whole ping intervals of silence instead;
//   - ConnectTimeout: each connection attempt is bounded by ResponseTimeout;
//   - KeepAlive is rounded up to whole seconds (CONNECT carries seconds).
func New(o clients.Options, cfg Config) (*Client, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	host, portStr, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: Addr %q: %v", clients.ErrInvalidOptions, o.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("%w: Addr %q: bad port", clients.ErrInvalidOptions, o.Addr)
	}
	mc := mqttas.Config{Server: host, Port: port, ClientID: o.ClientID, MaxRepubs: cfg.MaxRepubs}
	mc.KeepSession = !o.CleanSession
	mc.ResumeSession = mc.KeepSession && !cfg.DiscardOldSession
	if o.KeepAlive > 0 {
		mc.KeepAlive = time.Duration(math.Ceil(o.KeepAlive.Seconds())) * time.Second
	}
	if o.ResponseTimeout > 0 {
		mc.ResponseTime = o.ResponseTimeout
	}
	mc.PingInterval = cfg.PingInterval
	mc.ReconnectMin, mc.ReconnectMax = cfg.ReconnectMin, cfg.ReconnectMax
	mc.Dial = cfg.Dial
	mc.Logger = o.Logger
	if w := o.Will; w != nil {
		mc.Will = &mqttas.Message{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain}
	}
	a := &Client{o: o}
	if o.OnMessage != nil {
		mc.OnMessage = func(m mqttas.Message) {
			o.OnMessage(clients.Delivery{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, At: time.Now()})
		}
	}
	if o.OnEvent != nil {
		mc.OnLinkChange = func(up bool) {
			if up {
				o.OnEvent(clients.Event{Kind: clients.EventUp, At: time.Now(), SessionPresent: a.c.Stats().SessionPresent})
			} else {
				o.OnEvent(clients.Event{Kind: clients.EventDown, At: time.Now()})
			}
		}
	}
	c, err := mqttas.New(mc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", clients.ErrInvalidOptions, err)
	}
	a.c = c
	return a, nil
}

// Unwrap returns the mqttas client, for scenarios that need more than the adapter offers.
func (a *Client) Unwrap() *mqttas.Client { return a.c }

// Connect makes the first connection.
func (a *Client) Connect(ctx context.Context) error {
	if a.closed.Load() {
		return clients.ErrClosed
	}
	return a.c.Connect(ctx)
}

// notSent reports errors after which mqttas guarantees nothing went on the wire: bad arguments, and a
// client that was not running when the call began.
func notSent(err error) bool {
	return errors.Is(err, mqttas.ErrInvalidTopic) || errors.Is(err, mqttas.ErrInvalidQoS) ||
		errors.Is(err, mqttas.ErrPacketTooLarge) ||
		(errors.Is(err, mqttas.ErrNotConnected) && !errors.Is(err, mqttas.ErrDisconnected))
}

// Publish publishes m; at qos 1 it returns after the PUBACK.
func (a *Client) Publish(ctx context.Context, m clients.Message) error {
	if a.closed.Load() {
		return fmt.Errorf("%w: %w", clients.ErrNotSent, clients.ErrClosed)
	}
	err := a.c.Publish(ctx, m.Topic, m.Payload, m.Retain, m.QoS)
	if err != nil && notSent(err) {
		return fmt.Errorf("%w: %w", clients.ErrNotSent, err)
	}
	return err
}

// Subscribe subscribes and returns after the SUBACK.
func (a *Client) Subscribe(ctx context.Context, filter string, qos byte) error {
	if a.closed.Load() {
		return clients.ErrClosed
	}
	return a.c.Subscribe(ctx, filter, qos)
}

// Unsubscribe unsubscribes and returns after the UNSUBACK.
func (a *Client) Unsubscribe(ctx context.Context, filter string) error {
	if a.closed.Load() {
		return clients.ErrClosed
	}
	return a.c.Unsubscribe(ctx, filter)
}

// Disconnect sends DISCONNECT and stops reconnecting.
func (a *Client) Disconnect(ctx context.Context) error {
	if a.closed.Load() {
		return clients.ErrClosed
	}
	return a.c.Disconnect(ctx)
}

// Close drops the connection without DISCONNECT and waits for every goroutine of the client.
func (a *Client) Close() error {
	a.closed.Store(true)
	return a.c.Close()
}

// IsConnected reports whether an MQTT session is established.
func (a *Client) IsConnected() bool { return a.c.IsConnected() }

// Stats maps mqttas's counters onto the harness's keys, plus mqttas's own (renewals, stray_acks).
func (a *Client) Stats() clients.Stats {
	s := a.c.Stats()
	return clients.Stats{
		clients.StatConnects:        int64(s.Connects),
		clients.StatReconnects:      int64(s.Reconnects),
		clients.StatOutages:         int64(s.Outages),
		clients.StatConnectFailures: int64(s.FailedAttempts),
		clients.StatRepubs:          int64(s.Repubs),
		clients.StatDiscards:        int64(s.Discards),
		"renewals":                  int64(s.Renewals),
		"stray_acks":                int64(s.StrayAcks),
		"protocol_errors":           int64(s.ProtocolErrors),
	}
}
