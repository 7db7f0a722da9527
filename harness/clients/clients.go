// Package clients is the seam between the harness and the MQTT client under
// test: one small interface that faults, scenarios, soak and bench drive, so
// the same run can compare clients (mqttas, paho) on equal terms.
//
// Adapters must not paper over their client's behaviour. Publish returns what
// the client reports, when the client reports it; if a client calls a message
// done before the broker acknowledged it, the adapter says "done" too, and the
// ledger will show the consequence.
package clients

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"
)

// Client is an MQTT 3.1.1 client as the harness drives it. Methods are safe
// for concurrent use. After Disconnect or Close, only Close may be called.
type Client interface {
	// Connect makes the first connection and returns when the broker accepted
	// it (CONNACK) or it failed. From then on the client keeps itself
	// connected; the harness never calls Connect again. After a failed
	// Connect, call Close.
	Connect(ctx context.Context) error

	// Publish sends one message and returns when the client says it is done:
	// for QoS 1 that should mean PUBACK received, but it is whatever the
	// client's own completion means. An error wrapping ErrNotSent means the
	// client guarantees the message was not and will not be sent; any other
	// error, including ctx's, leaves the outcome indeterminate.
	Publish(ctx context.Context, m Message) error

	// Subscribe subscribes to filter at qos and returns after SUBACK.
	// Deliveries go to Options.OnMessage, including those a persistent
	// session delivers before Subscribe is called again.
	Subscribe(ctx context.Context, filter string, qos byte) error

	// Unsubscribe removes a subscription and returns after UNSUBACK.
	Unsubscribe(ctx context.Context, filter string) error

	// Disconnect ends the session gracefully: it sends DISCONNECT (so the
	// broker discards the will) and stops reconnecting.
	Disconnect(ctx context.Context) error

	// Close ends the client abruptly: the network connection is dropped with
	// no DISCONNECT, so the broker publishes the will. It releases every
	// resource, is bounded in time, and may be called more than once.
	Close() error

	// IsConnected reports whether the client currently considers itself
	// connected, or reconnecting on its own (as the client defines it).
	IsConnected() bool

	// Stats returns the client's counters (see the Stat* keys). A key is
	// absent when the client cannot count it; a zero is a real zero.
	Stats() Stats
}

// Crasher is a client the harness can crash: one that runs in a child process
// with a store on disk (crashclient). The client faults (client-kill,
// client-power-cut) act on the Crashers of a run.
type Crasher interface {
	Client
	// Crash kills the client's process at once (SIGKILL); with powerCut, what
	// it wrote and did not fsync is lost too. Until Restart the client is down:
	// publications fail as not sent.
	Crash(powerCut bool) error
	// Restart starts the client's process again on the same store with the
	// same options, as a device boots, and returns: the client connects on
	// its own (trying again while the broker is unreachable).
	Restart(ctx context.Context) error
}

// Message is an application message to publish.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Delivery is one message as the client handed it to the application.
type Delivery struct {
	Topic string
	// Payload belongs to the application, which may keep it: adapters must
	// not reuse the buffer.
	Payload []byte
	QoS     byte
	Retain  bool
	Dup     bool      // the DUP flag; always false if the client hides it
	At      time.Time // when the adapter received it from the client
}

// EventKind names a connection event. The strings match harness/timeline's
// kinds, so events convert with timeline.Kind(ev.Kind).
type EventKind string

const (
	EventUp            EventKind = "up"             // connected (CONNACK accepted)
	EventDown          EventKind = "down"           // connection lost
	EventReconnect     EventKind = "reconnect"      // a reconnect attempt began
	EventConnectFailed EventKind = "connect-failed" // a connect attempt failed
	EventResend        EventKind = "dup-resend"     // a PUBLISH re-sent with DUP
	EventPIDRenew      EventKind = "pid-renew"      // a message re-sent under a new packet id
	EventOutage        EventKind = "outage"         // the client decided the link is dead
)

// Event is a connection event reported by an adapter.
type Event struct {
	Kind EventKind
	At   time.Time
	// SessionPresent is CONNACK's flag, for EventUp.
	SessionPresent bool
	// Err is the cause, for EventDown and EventConnectFailed.
	Err error
}

// Detail renders the event's specifics for a timeline entry.
func (e Event) Detail() string {
	switch {
	case e.Kind == EventUp:
		return fmt.Sprintf("session_present=%t", e.SessionPresent)
	case e.Err != nil:
		return e.Err.Error()
	}
	return ""
}

// Stats are a client's counters by name.
type Stats map[string]int64

// Well-known Stats keys.
const (
	StatConnects        = "connects"         // successful connections, the first included
	StatReconnects      = "reconnects"       // successful connections after the first
	StatOutages         = "outages"          // connections lost
	StatConnectFailures = "connect_failures" // failed connection attempts
	StatRepubs          = "repubs"           // PUBLISH re-sent by the client
	StatDiscards        = "discards"         // inbound messages dropped by the client
	StatDurable         = "durable"          // publications the client reported durable (on disk, sent after a crash)
)

// Options configure a client; every adapter maps them onto its client as
// faithfully as the client allows and documents what it cannot honour. Zero
// durations mean "the client's default".
type Options struct {
	Addr         string // broker host:port
	ClientID     string
	CleanSession bool
	KeepAlive    time.Duration
	// PingTimeout bounds the wait for PINGRESP, where the client has one.
	PingTimeout time.Duration
	// ResponseTimeout bounds the wait for an acknowledgement before the
	// client acts (re-sends, declares an outage), where it has one.
	ResponseTimeout time.Duration
	// ConnectTimeout bounds one connection attempt (dial and CONNACK).
	ConnectTimeout time.Duration
	Will           *Message

	// OnMessage receives every delivery. It runs on a client goroutine and
	// must return quickly; a slow handler shows the client's behaviour under
	// back-pressure, which may be the point of a test.
	OnMessage func(Delivery)
	// OnEvent receives connection events, one at a time, in the order the
	// adapter saw them. It must not block and must not call Close.
	OnEvent func(Event)
	// Logger receives the adapter's debug output; nil discards it.
	Logger *slog.Logger
}

// Validate reports options no adapter can use.
func (o Options) Validate() error {
	switch {
	case o.Addr == "":
		return fmt.Errorf("%w: empty Addr", ErrInvalidOptions)
	case o.KeepAlive < 0 || o.PingTimeout < 0 || o.ResponseTimeout < 0 || o.ConnectTimeout < 0:
		return fmt.Errorf("%w: negative duration", ErrInvalidOptions)
	case o.Will != nil && (o.Will.Topic == "" || o.Will.QoS > 2):
		return fmt.Errorf("%w: will needs a topic and QoS 0..2", ErrInvalidOptions)
	}
	return nil
}

// Errors shared by adapters, usable with errors.Is.
var (
	// ErrNotSent marks a publish the client guarantees it did not send and
	// will not send (ledger outcome Fail rather than Info).
	ErrNotSent = errors.New("clients: message not sent")
	// ErrClosed is returned by calls after Disconnect or Close.
	ErrClosed = errors.New("clients: client closed")
	// ErrInvalidOptions is returned by factories for unusable Options.
	ErrInvalidOptions = errors.New("clients: invalid options")
	// ErrUnknownClient is returned by Registry.New for an unknown name.
	ErrUnknownClient = errors.New("clients: unknown client")
	// ErrClientFailed marks a failure of the client itself, not of its
	// connection: an out-of-process client that died, stopped answering or
	// broke its protocol. No later call can succeed, so a run cannot judge
	// the client any further. An adapter returns it from every later call,
	// and reports it as the Err of an EventDown if the client was connected
	// or reconnecting.
	ErrClientFailed = errors.New("clients: the client failed")
)

// Factory makes a client from options, without connecting it.
type Factory func(Options) (Client, error)

// Registry maps client names ("mqttas", "paho") to factories. Build one where
// the run is configured and pass it down; there is no global registry.
type Registry map[string]Factory

// New makes the named client.
func (r Registry) New(name string, o Options) (Client, error) {
	f, ok := r[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (have %v)", ErrUnknownClient, name, r.Names())
	}
	return f(o)
}

// Names returns the registered names, sorted.
func (r Registry) Names() []string { return slices.Sorted(maps.Keys(r)) }
