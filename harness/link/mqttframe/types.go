// Package mqttframe frames an MQTT 3.1.1 byte stream incrementally, so that a
// proxy can see, drop or delay whole control packets while every other byte
// passes through untouched. It never buffers payloads: only the few header
// bytes a decision needs are held when a packet's head is split across reads.
package mqttframe

import (
	"errors"
	"fmt"
	"time"

	"github.com/mqttas/mqttas-go/internal/mqttwire"
)

// Type is an MQTT control packet type (the high nibble of the first byte):
// the repository's one packet type, shared with the test kit's codec.
type Type = mqttwire.Type

// MQTT 3.1.1 control packet types (§2.2.1).
const (
	CONNECT     = mqttwire.CONNECT
	CONNACK     = mqttwire.CONNACK
	PUBLISH     = mqttwire.PUBLISH
	PUBACK      = mqttwire.PUBACK
	PUBREC      = mqttwire.PUBREC
	PUBREL      = mqttwire.PUBREL
	PUBCOMP     = mqttwire.PUBCOMP
	SUBSCRIBE   = mqttwire.SUBSCRIBE
	SUBACK      = mqttwire.SUBACK
	UNSUBSCRIBE = mqttwire.UNSUBSCRIBE
	UNSUBACK    = mqttwire.UNSUBACK
	PINGREQ     = mqttwire.PINGREQ
	PINGRESP    = mqttwire.PINGRESP
	DISCONNECT  = mqttwire.DISCONNECT
)

// Errors that end framing. Once one occurs the stream is passed through
// unparsed: a proxy cannot resynchronise on an unframed byte stream.
var (
	// ErrReservedType: a packet starts with type 0 or 15.
	ErrReservedType = errors.New("mqttframe: reserved packet type")
	// ErrLengthOverflow: the remaining length does not end within 4 bytes.
	ErrLengthOverflow = errors.New("mqttframe: remaining length longer than 4 bytes")
	// ErrUnexpectedFirst: the stream does not start with the expected packet type.
	ErrUnexpectedFirst = errors.New("mqttframe: unexpected first packet")
)

// Header is what the framer learned about one control packet from its fixed
// header and the start of its variable header. Slices alias framer or caller
// memory and are valid only during the Framer.Decide call.
type Header struct {
	Type      Type
	Flags     byte // low nibble of the first byte
	Remaining int  // remaining length
	Size      int  // whole packet on the wire: fixed header + remaining length

	ID    uint16 // packet identifier, when HasID
	HasID bool

	// Topic is the PUBLISH topic, or the first filter of SUBSCRIBE/UNSUBSCRIBE.
	Topic []byte
	// PayloadSize is the PUBLISH application payload length.
	PayloadSize int

	// CONNECT fields.
	ClientID      []byte
	ProtocolLevel byte
	ConnectFlags  byte
	KeepAlive     uint16

	// SessionPresent is the CONNACK flag.
	SessionPresent bool
	// ReturnCode is the CONNACK return code or the first SUBACK return code.
	ReturnCode byte

	// Malformed: flags or fields break the spec (e.g. a topic longer than the
	// packet). Framing by remaining length still holds, so the stream goes on.
	Malformed bool
}

// DUP is the PUBLISH duplicate delivery flag.
func (h *Header) DUP() bool { return h.Type == PUBLISH && h.Flags&0x08 != 0 }

// QoS is the PUBLISH quality of service (0 for other packets).
func (h *Header) QoS() byte {
	if h.Type != PUBLISH {
		return 0
	}
	return (h.Flags >> 1) & 0x03
}

// Retain is the PUBLISH retain flag.
func (h *Header) Retain() bool { return h.Type == PUBLISH && h.Flags&0x01 != 0 }

// CleanSession is the CONNECT clean session flag.
func (h *Header) CleanSession() bool { return h.Type == CONNECT && h.ConnectFlags&0x02 != 0 }

// Action is what to do with one packet.
type Action uint8

const (
	Forward Action = iota // pass the packet on
	Drop                  // remove the whole packet from the stream
	Delay                 // hold the packet (and so everything after it) for Verdict.Delay
)

func (a Action) String() string {
	switch a {
	case Forward:
		return "forward"
	case Drop:
		return "drop"
	case Delay:
		return "delay"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Verdict is a decision about one packet.
type Verdict struct {
	Action Action
	Delay  time.Duration // for Delay
}

// Op is one step of forwarding a chunk: either bytes to pass on (Data != nil)
// or a pause before the following ops (Data == nil).
type Op struct {
	Data []byte
	Wait time.Duration
}
