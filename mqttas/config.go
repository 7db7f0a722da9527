package mqttas

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Version is the version of this package.
const Version = "0.1.0"

// Message is an application message: one received, one to publish as the last will.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Link is the network link under MQTT: mqtt_as's WiFi station. A client with a Link brings it up before
// connecting, takes it down and up again after every outage (so every hop notices), treats its loss as
// an outage at once, and takes it down at Disconnect and Close. InterfaceLink is one for a Linux network interface
// (WiFi, LTE, Ethernet) that the operating system manages. Leave Config.Link nil where the network is
// always there (Ethernet, a gateway).
type Link interface {
	// Connect brings the link up and returns when it is usable, or with an error, or when ctx ends.
	Connect(ctx context.Context) error
	// Disconnect takes the link down. It must be safe to call while the link is down, and concurrently
	// with a Connect (Close does, while a first Connect unwinds).
	Disconnect() error
	// Lost returns a channel that is closed when the link goes down. While the link is down it returns a
	// closed channel.
	Lost() <-chan struct{}
}

// Config configures a Client. Only Server is required: every other field's zero value is a working
// default, mqtt_as's where it has one (KeepAlive 60 s, ResponseTime 10 s, MaxRepubs 4, a clean session),
// so a composite literal names only what it changes:
//
//	mqttas.Config{Server: "broker.local", ClientID: "sensor-7"}
type Config struct {
	Server string // broker host name or address (required)
	Port   int    // 0 means 1883, or 8883 with TLS
	// ClientID names the client to the broker. "" generates a random 12-hex-digit id, a new one on every run:
	// only for a clean session (KeepSession needs an id that stays the same, and New refuses it without one).
	ClientID string
	// User and Password are sent only when User is set; a Password alone is ignored, as MQTT 3.1.1 requires.
	// Neither is ever logged.
	User     string
	Password string

	// KeepAlive is sent in CONNECT (whole seconds, at most 65535 s) and sets the ping interval, KeepAlive/4.
	// 0 means 60 s (mqtt_as's default). Negative turns the broker's timer off: CONNECT carries 0 and the
	// client pings every 20 s.
	KeepAlive time.Duration
	// PingInterval, when shorter than the derived interval, replaces it. The broker is declared dead after 4
	// whole ping intervals without a received byte.
	PingInterval time.Duration
	// ResponseTime bounds every wait for the broker: a read or write that makes no progress, a CONNACK, and
	// each wait for a PUBACK, SUBACK or UNSUBACK. 0 means 10 s.
	ResponseTime time.Duration

	// KeepSession keeps the MQTT session across outages: every reconnection's CONNECT has the clean-session
	// flag 0, so the broker keeps the subscriptions and queues qos 1 messages while the client is away
	// (mqtt_as's clean=False). It needs a ClientID that stays the same across runs, or the session would never
	// be reached again after a restart. False, the default, starts a clean session on every connection
	// (clean=True): subscribe again after each one (OnConnect, or on each Up).
	KeepSession bool
	// ResumeSession, with KeepSession, makes the first connection resume the session the broker kept from an
	// earlier run (mqtt_as's clean_init=False). Without it the first connection discards any old session (a
	// CONNECT with clean=1 and a DISCONNECT), then keeps the session from there on. It has no effect without
	// KeepSession.
	ResumeSession bool
	// MaxRepubs is how many times an unacknowledged qos 1 PUBLISH is re-sent with DUP=1 and the same packet id,
	// ResponseTime apart, before the link is declared dead. After reconnecting, the publication is sent again
	// with a new packet id. 0 means 4 (mqtt_as's default); negative means none: the link is declared dead
	// after the first ResponseTime without a PUBACK.
	MaxRepubs int

	Will *Message    // last will; nil for none
	TLS  *tls.Config // nil for plain TCP; ServerName defaults to Server

	// The callbacks below (OnMessage, OnConnect, OnLinkChange, Link's methods, Dial) are the application's
	// code, and the client does not recover their panics: it cannot know what state a panicking callback
	// left behind. A panic on one of the client's goroutines (the reader for OnMessage, their own goroutines
	// for OnConnect and OnLinkChange, the supervisor for Dial and the Link while reconnecting) crashes the
	// program, like any unrecovered panic; one inside the first Connect (Dial, Link.Connect) reaches
	// Connect's caller, after leaving the client as a failed Connect does. A qos 1 message whose OnMessage
	// panicked is not acknowledged: recover in the handler if a message may make it panic, or a broker that
	// keeps the session delivers that message again after every restart.

	// QueueLen > 0 selects the event interface: received messages go to Queue() (holding exactly QueueLen),
	// and the callbacks OnMessage, OnConnect and OnLinkChange are not called.
	QueueLen int
	// OnMessage receives each message in callback mode, on the reader goroutine: return quickly or hand off.
	// The PUBACK of a qos 1 message is sent after it returns. Calls never overlap, not even across a
	// reconnection. A slow handler does not make the client think the broker went silent, and a hung one does
	// not hide a broker that did: bytes count as received when they reach the socket (Linux, TCP or TLS), so
	// the silence rule applies unchanged while a handler runs. Where the client cannot see the socket (a Dial
	// connection without one, other systems), the handler's run counts as traffic from its start: a handler
	// that runs for 4 ping intervals or more is then taken for a silent broker. Close waits for a running call.
	OnMessage func(Message)
	// OnConnect runs after every successful connection, once per connection, in its own goroutine, with a
	// context that is cancelled when that connection ends. Subscribe here unless KeepSession is set.
	OnConnect func(ctx context.Context, c *Client)
	// OnLinkChange(true) follows every successful connection and OnLinkChange(false) every outage, in order,
	// on a goroutine of their own. A deliberate Disconnect or Close fires neither.
	OnLinkChange func(up bool)

	Link Link // optional network link; nil means always up
	// LinkStableFor is how long a Link must stay up before connecting (mqtt_as's stability check).
	// 0 means 5 s. ConnectQuick skips it on the first connection.
	LinkStableFor time.Duration

	// Dial opens the TCP (or other stream) connection; nil uses net.Dialer. TLS, when set, wraps what it returns.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// ReconnectMin and ReconnectMax bound the delay between failed reconnection attempts: the first retry
	// is immediate, then the delay doubles from ReconnectMin up to ReconnectMax, with jitter (each wait is
	// drawn from [delay/2, delay), which spreads a fleet reconnecting to a restarted broker).
	// 0 means 100 ms and 1 s: a link that heals is found again within a second. Raise ReconnectMax for
	// large fleets on one broker.
	ReconnectMin time.Duration
	ReconnectMax time.Duration

	// MaxPacketSize caps the remaining length of every packet sent or accepted: larger publications are
	// refused before any I/O, and a larger packet from the broker is a protocol error, refused before its
	// body is read. 0 means 2,097,151 bytes (mqtt_as's limit); at most 268,435,455.
	MaxPacketSize int

	// ReadBatchDelay is the longest the client lets the kernel hold received bytes so that, while a stream
	// of small packets arrives, it is woken once per batch instead of once per packet (Linux, plain TCP:
	// SO_RCVLOWAT). That saves the broker and this process a wakeup per packet: with mosquitto it halved
	// the broker's CPU per message of a qos 0 stream. Only a stream that fills a 2 KB batch within the delay
	// is batched (a slower one keeps its latency); a packet after a pause is never held; a batch is
	// never larger than half the PUBACKs of the requests still in flight as the read begins add up to;
	// the tail of a burst waits at most this long. 0 means 1 ms; negative turns batching off.
	ReadBatchDelay time.Duration

	// WANCheckServer is the DNS server WANOK queries (host:port); "" means 8.8.8.8:53.
	WANCheckServer string
	// WANCheckName is the name whose A record WANOK asks for (a trailing dot is allowed); "" means
	// www.google.com, mqtt_as's fixed query. Pick a name the server can answer, e.g. a local resolver's own zone.
	WANCheckName string
	// WANCheckTimeout bounds WANOK's wait for a DNS answer; 0 means 2 s.
	WANCheckTimeout time.Duration

	// Store, when set, keeps the publications of PublishDurable until the broker acknowledges them, across
	// crashes and power cuts: New reads what it holds and the client sends it again, in order, with new
	// packet ids, once connected. FileStore is one on a local disk. nil means no persistence.
	Store Store

	// Logger receives debug output; nil discards it.
	Logger *slog.Logger
}

const (
	defaultKeepAlive     = 60 * time.Second
	defaultMaxRepubs     = 4
	defaultResponseTime  = 10 * time.Second
	defaultLinkStableFor = 5 * time.Second
	defaultReconnectMin  = 100 * time.Millisecond
	defaultReconnectMax  = time.Second
	defaultMaxPacketSize = 2_097_151
	defaultReadBatch     = time.Millisecond
	defaultWANServer     = "8.8.8.8:53"
	defaultWANName       = "www.google.com"
	defaultWANTimeout    = 2 * time.Second
	keepAliveZeroPing    = 20 * time.Second
)

// validate checks c and fills in the documented "0 means" defaults. It does no I/O. Afterwards KeepAlive is
// what CONNECT carries (0: the broker's timer is off) and MaxRepubs the number of re-sends (0: none).
func (c *Config) validate() error {
	if c.Server == "" {
		return invalidConfig("no Server specified")
	}
	if c.Port < 0 || c.Port > 65535 {
		return invalidConfig("Port %d is out of range 0–65535", c.Port)
	}
	if c.Port == 0 {
		c.Port = 1883
		if c.TLS != nil {
			c.Port = 8883
		}
	}
	if c.ClientID == "" && c.KeepSession {
		// MQTT 3.1.1 §3.1.3.1: a server refuses an empty id with a persistent session. A random one would strand
		// the session, and what the broker queues in it, at the next start.
		return invalidConfig("KeepSession needs a ClientID: a random id would start a new session, and strand the old one, on every run")
	}
	if c.ClientID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux; a zero id would still be usable
		c.ClientID = hex.EncodeToString(b[:])
	}
	if err := checkString("ClientID", c.ClientID); err != nil {
		return invalidConfig("%v", err)
	}
	if err := checkString("User", c.User); err != nil {
		return invalidConfig("%v", err)
	}
	if len(c.Password) > 65535 {
		return invalidConfig("Password is over 65535 bytes")
	}
	switch {
	case c.KeepAlive == 0:
		c.KeepAlive = defaultKeepAlive
	case c.KeepAlive < 0:
		c.KeepAlive = 0 // off
	case c.KeepAlive > 65535*time.Second:
		return invalidConfig("KeepAlive %v is over 65535 s", c.KeepAlive)
	}
	if c.KeepAlive%time.Second != 0 {
		return invalidConfig("KeepAlive %v is not a whole number of seconds (CONNECT carries seconds); use PingInterval for faster pings", c.KeepAlive)
	}
	if c.PingInterval < 0 {
		return invalidConfig("PingInterval %v is negative", c.PingInterval)
	}
	if c.ResponseTime < 0 {
		return invalidConfig("ResponseTime %v is negative", c.ResponseTime)
	}
	if c.ResponseTime == 0 {
		c.ResponseTime = defaultResponseTime
	}
	switch {
	case c.MaxRepubs == 0:
		c.MaxRepubs = defaultMaxRepubs
	case c.MaxRepubs < 0:
		c.MaxRepubs = 0 // none
	}
	if c.QueueLen < 0 {
		return invalidConfig("QueueLen %d is negative", c.QueueLen)
	}
	if c.LinkStableFor < 0 || c.ReconnectMin < 0 || c.ReconnectMax < 0 || c.WANCheckTimeout < 0 {
		return invalidConfig("LinkStableFor, ReconnectMin, ReconnectMax and WANCheckTimeout must not be negative")
	}
	if c.LinkStableFor == 0 {
		c.LinkStableFor = defaultLinkStableFor
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = defaultReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = max(defaultReconnectMax, c.ReconnectMin)
	}
	if c.ReconnectMax < c.ReconnectMin {
		return invalidConfig("ReconnectMax %v is below ReconnectMin %v", c.ReconnectMax, c.ReconnectMin)
	}
	if c.MaxPacketSize < 0 || c.MaxPacketSize > maxRemainingLength {
		return invalidConfig("MaxPacketSize %d is out of range 0–%d", c.MaxPacketSize, maxRemainingLength)
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = defaultMaxPacketSize
	}
	if c.ReadBatchDelay == 0 {
		c.ReadBatchDelay = defaultReadBatch
	}
	if c.ReadBatchDelay > time.Second {
		return invalidConfig("ReadBatchDelay %v is over 1 s (it holds received bytes; the default is 1 ms)", c.ReadBatchDelay)
	}
	if c.WANCheckServer == "" {
		c.WANCheckServer = defaultWANServer
	}
	if c.WANCheckTimeout == 0 {
		c.WANCheckTimeout = defaultWANTimeout
	}
	if c.WANCheckName == "" {
		c.WANCheckName = defaultWANName
	}
	if err := checkDNSName(c.WANCheckName); err != nil {
		return invalidConfig("WANCheckName %q: %v", c.WANCheckName, err)
	}
	if w := c.Will; w != nil {
		if err := CheckTopic(w.Topic); err != nil {
			return invalidConfig("Will: %v", err)
		}
		if err := checkQoS(w.QoS); err != nil {
			return invalidConfig("Will: %v", err)
		}
		if len(w.Payload) > 65535 {
			return invalidConfig("Will payload is %d bytes, over 65535", len(w.Payload))
		}
		cp := *w
		cp.Payload = append([]byte(nil), w.Payload...)
		c.Will = &cp
	}
	return nil
}

// pingInterval derives the ping interval as mqtt_as does (§6.2).
func (c *Config) pingInterval() time.Duration {
	pi := keepAliveZeroPing
	if c.KeepAlive > 0 {
		pi = c.KeepAlive / 4
	}
	if c.PingInterval > 0 && c.PingInterval < pi {
		pi = c.PingInterval
	}
	return pi
}

func (c *Config) addr() string { return net.JoinHostPort(c.Server, strconv.Itoa(c.Port)) }
