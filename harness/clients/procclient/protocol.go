package procclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// ProtocolVersion is the version of the driver protocol (PROTOCOL.md) this
// adapter speaks. A driver answers hello with the version it speaks: version 1
// (without durable results) and 2 are accepted, any other is refused.
const ProtocolVersion = 2

// MinProtocolVersion is the oldest version the adapter accepts.
const MinProtocolVersion = 1

// MaxLine bounds one line from a driver, newline excluded. A 4 MiB payload
// takes about 5.6 MiB in base64; longer lines are a protocol error.
const MaxLine = 8 << 20

// Commands, harness to driver.
const (
	cmdHello       = "hello"
	cmdConnect     = "connect"
	cmdPublish     = "publish"
	cmdSubscribe   = "subscribe"
	cmdUnsubscribe = "unsubscribe"
	cmdDisconnect  = "disconnect"
	cmdClose       = "close"
	cmdPing        = "ping"
)

// Events, driver to harness.
const (
	evResult        = "result"
	evMessage       = "message"
	evUp            = "up"
	evDown          = "down"
	evReconnect     = "reconnect"
	evConnectFailed = "connect_failed"
	evLog           = "log"
)

// command is one line to the driver. Fields a command does not use are
// omitted.
type command struct {
	ID       uint64         `json:"id"`
	Cmd      string         `json:"cmd"`
	Protocol int            `json:"protocol,omitempty"`
	Options  *wireOptions   `json:"options,omitempty"`
	Settings map[string]any `json:"settings,omitempty"`
	Topic    string         `json:"topic,omitempty"`
	Filter   string         `json:"filter,omitempty"`
	Payload  *[]byte        `json:"payload,omitempty"` // set for publish, even when empty
	QoS      *byte          `json:"qos,omitempty"`
	Retain   bool           `json:"retain,omitempty"`
}

// wireOptions are clients.Options as the connect command carries them.
// Durations are whole milliseconds; 0 means the library's default.
type wireOptions struct {
	Host              string       `json:"host"`
	Port              int          `json:"port"`
	ClientID          string       `json:"client_id"`
	CleanSession      bool         `json:"clean_session"`
	KeepAliveMS       int64        `json:"keepalive_ms"`
	PingTimeoutMS     int64        `json:"ping_timeout_ms"`
	ResponseTimeoutMS int64        `json:"response_timeout_ms"`
	ConnectTimeoutMS  int64        `json:"connect_timeout_ms"`
	Will              *wireMessage `json:"will,omitempty"`
}

type wireMessage struct {
	Topic   string `json:"topic"`
	Payload []byte `json:"payload"`
	QoS     byte   `json:"qos"`
	Retain  bool   `json:"retain"`
}

// Hello is what a driver says about itself in its answer to hello.
type Hello struct {
	Protocol     int      `json:"protocol"`
	Driver       string   `json:"driver"`  // e.g. "python-paho"
	Library      string   `json:"library"` // e.g. "paho-mqtt"
	Version      string   `json:"version"` // the library's version
	Capabilities []string `json:"capabilities"`
}

// Capabilities a driver may declare.
const (
	// CapDup: deliveries carry the PUBLISH's DUP flag (else always false).
	CapDup = "dup"
	// CapSessionPresent: up events carry CONNACK's session-present flag.
	CapSessionPresent = "session_present"
	// CapDurable (protocol 2): publish results may carry durable, the library's
	// promise that the message is on disk and will be sent after a crash.
	CapDurable = "durable"
	// CapPowerCut (protocol 2): the driver can start after a power cut (connect
	// setting "after": "power-cut"), undoing what it wrote and did not fsync.
	CapPowerCut = "power_cut"
)

// Has reports whether the driver declared capability c.
func (h Hello) Has(c string) bool { return slices.Contains(h.Capabilities, c) }

// event is one line from the driver, decoded and checked by decodeEvent.
type event struct {
	Ev      string `json:"ev"`
	ID      uint64 `json:"id"`
	OK      *bool  `json:"ok"`
	Error   string `json:"error"`
	NotSent bool   `json:"not_sent"`
	Durable bool   `json:"durable"`
	Hello   *Hello `json:"hello"`

	Topic   string `json:"topic"`
	Payload []byte `json:"payload"`
	QoS     *int   `json:"qos"`
	Retain  bool   `json:"retain"`
	Dup     bool   `json:"dup"`

	SessionPresent bool   `json:"session_present"`
	Reason         string `json:"reason"`
	// Reconnecting, on down: the library will reconnect on its own. Absent
	// means true.
	Reconnecting *bool `json:"reconnecting"`

	Level string `json:"level"`
	Msg   string `json:"msg"`
}

// errLine is a line that is not a protocol event; it wraps ErrProtocol.
var errLine = fmt.Errorf("%w: malformed line", ErrProtocol)

// decodeEvent decodes and checks one line (without its newline). It checks
// what a line can show by itself; whether a result answers a request is the
// adapter's business.
func decodeEvent(line []byte) (event, error) {
	var ev event
	if len(line) > MaxLine {
		return ev, fmt.Errorf("%w: line of %d bytes, the limit is %d", errLine, len(line), MaxLine)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return event{}, fmt.Errorf("%w: %v", errLine, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return event{}, fmt.Errorf("%w: more than one JSON value", errLine)
	}
	switch ev.Ev {
	case evResult:
		switch {
		case ev.ID == 0:
			return event{}, fmt.Errorf("%w: result without an id", errLine)
		case ev.OK == nil:
			return event{}, fmt.Errorf("%w: result %d without ok", errLine, ev.ID)
		case !*ev.OK && ev.Error == "":
			return event{}, fmt.Errorf("%w: failed result %d without an error", errLine, ev.ID)
		case *ev.OK && (ev.Error != "" || ev.NotSent):
			return event{}, fmt.Errorf("%w: successful result %d with an error", errLine, ev.ID)
		case !*ev.OK && ev.Durable:
			return event{}, fmt.Errorf("%w: failed result %d that is durable", errLine, ev.ID)
		}
	case evMessage:
		switch {
		case ev.Topic == "":
			return event{}, fmt.Errorf("%w: message without a topic", errLine)
		case ev.QoS == nil || *ev.QoS < 0 || *ev.QoS > 2:
			return event{}, fmt.Errorf("%w: message without a qos of 0, 1 or 2", errLine)
		}
	case evDown, evConnectFailed:
		if ev.Reason == "" {
			return event{}, fmt.Errorf("%w: %s without a reason", errLine, ev.Ev)
		}
	case evUp, evReconnect:
	case evLog:
		switch ev.Level {
		case "debug", "info", "warn", "error":
		default:
			return event{}, fmt.Errorf("%w: log level %q (want debug, info, warn or error)", errLine, ev.Level)
		}
	case "":
		return event{}, fmt.Errorf("%w: no ev", errLine)
	default:
		return event{}, fmt.Errorf("%w: unknown ev %q", errLine, ev.Ev)
	}
	return ev, nil
}

// encodeCommand renders cmd as one line.
func encodeCommand(cmd command) ([]byte, error) {
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("procclient: encode %s: %w", cmd.Cmd, err)
	}
	return append(b, '\n'), nil
}
