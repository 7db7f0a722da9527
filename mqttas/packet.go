package mqttas

import (
	"encoding/binary"
	"fmt"
	"io"
)

// MQTT 3.1.1 control packet types (spec §2.2.1).
const (
	typeConnect     byte = 1
	typeConnack     byte = 2
	typePublish     byte = 3
	typePuback      byte = 4
	typePubrec      byte = 5
	typePubrel      byte = 6
	typePubcomp     byte = 7
	typeSubscribe   byte = 8
	typeSuback      byte = 9
	typeUnsubscribe byte = 10
	typeUnsuback    byte = 11
	typePingreq     byte = 12
	typePingresp    byte = 13
	typeDisconnect  byte = 14
)

// maxRemainingLength is the largest remaining length a 4-byte variable byte integer encodes.
const maxRemainingLength = 268_435_455

var typeNames = [16]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "RESERVED"}

func typeName(t byte) string { return typeNames[t&0x0f] }

// packet is one decoded incoming control packet. Only the fields of its type are set.
type packet struct {
	typ    byte
	flags  byte   // low nibble of the fixed header
	id     uint16 // packet identifier (PUBLISH qos>0, PUBACK, SUBACK, UNSUBACK)
	topic  string // PUBLISH
	body   []byte // PUBLISH payload; SUBACK return codes
	qos    byte   // PUBLISH
	dup    bool   // PUBLISH
	retain bool   // PUBLISH
	// CONNACK
	sessionPresent bool
	code           byte
}

func (p *packet) String() string {
	switch p.typ {
	case typePublish:
		return fmt.Sprintf("PUBLISH(id=%d qos=%d dup=%t retain=%t topic=%q len=%d)", p.id, p.qos, p.dup, p.retain, p.topic, len(p.body))
	case typeConnack:
		return fmt.Sprintf("CONNACK(sp=%t rc=%d)", p.sessionPresent, p.code)
	case typePuback, typeUnsuback, typeSuback:
		return fmt.Sprintf("%s(id=%d)", typeName(p.typ), p.id)
	}
	return typeName(p.typ)
}

// ProtocolError reports a malformed or unexpected packet from the broker. The client resets the connection
// when it sees one; it is returned from Connect when it happens during the first connection.
type ProtocolError struct {
	Packet string // packet type name, "" when the fixed header itself was bad
	Reason string
}

func (e *ProtocolError) Error() string {
	if e.Packet == "" {
		return "mqttas: protocol error: " + e.Reason
	}
	return "mqttas: protocol error in " + e.Packet + ": " + e.Reason
}

// Is makes every *ProtocolError match ErrProtocol.
func (e *ProtocolError) Is(target error) bool { return target == ErrProtocol }

func protoErr(typ byte, format string, args ...any) error {
	return &ProtocolError{Packet: typeName(typ), Reason: fmt.Sprintf(format, args...)}
}

// readHeader reads a fixed header: the first byte and the remaining length. It rejects a remaining length
// over limit before anything is allocated for the body.
func readHeader(r io.ByteReader, limit int) (first byte, length int, err error) {
	first, err = r.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	mult := 1
	for i := 0; ; i++ {
		if i == 4 {
			return 0, 0, &ProtocolError{Reason: "remaining length longer than 4 bytes"}
		}
		b, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, 0, err
		}
		length += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		mult <<= 7
	}
	if length > limit {
		return 0, 0, &ProtocolError{Packet: typeName(first >> 4),
			Reason: fmt.Sprintf("remaining length %d over the limit of %d bytes", length, limit)}
	}
	return first, length, nil
}

// readPacket reads one whole packet from r. buf is scratch space that may be reused for the body of packets
// whose contents are not retained; the returned packet never aliases it for a PUBLISH payload.
// packetReader is what packets are read from: the session's rxBuffer, or a bufio.Reader in tests.
type packetReader interface {
	io.Reader
	io.ByteReader
}

func readPacket(r packetReader, limit int, buf []byte) (packet, []byte, error) {
	first, n, err := readHeader(r, limit)
	if err != nil {
		return packet{}, buf, err
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	body := buf[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return packet{}, buf, err
	}
	p, err := decode(first, body)
	return p, buf, err
}

// decode parses the packet whose fixed header byte is first and whose variable header and payload are
// body. It copies what it keeps: the result never aliases body.
func decode(first byte, body []byte) (packet, error) {
	p := packet{typ: first >> 4, flags: first & 0x0f}
	switch p.typ {
	case typeConnack:
		if p.flags != 0 || len(body) != 2 {
			return p, protoErr(p.typ, "want flags 0 and length 2, got flags %#x and length %d", p.flags, len(body))
		}
		if body[0]&^1 != 0 {
			return p, protoErr(p.typ, "reserved acknowledge flags set: %#x", body[0])
		}
		p.sessionPresent = body[0]&1 == 1
		p.code = body[1]
	case typePublish:
		p.qos = (p.flags >> 1) & 3
		p.dup = p.flags&8 != 0
		p.retain = p.flags&1 != 0
		if p.qos == 3 {
			return p, protoErr(p.typ, "qos 3 is not a qos")
		}
		if len(body) < 2 {
			return p, protoErr(p.typ, "too short for a topic")
		}
		tl := int(binary.BigEndian.Uint16(body))
		rest := body[2:]
		if tl > len(rest) {
			return p, protoErr(p.typ, "topic length %d over the %d bytes left", tl, len(rest))
		}
		p.topic = string(rest[:tl])
		rest = rest[tl:]
		if p.qos > 0 {
			if len(rest) < 2 {
				return p, protoErr(p.typ, "qos %d without a packet identifier", p.qos)
			}
			p.id = binary.BigEndian.Uint16(rest)
			if p.id == 0 {
				return p, protoErr(p.typ, "packet identifier 0")
			}
			rest = rest[2:]
		}
		if err := CheckTopic(p.topic); err != nil {
			return p, protoErr(p.typ, "%v", err)
		}
		p.body = append(make([]byte, 0, len(rest)), rest...)
	case typePuback, typeUnsuback, typePubrec, typePubcomp, typePubrel:
		want := byte(0)
		if p.typ == typePubrel {
			want = 2
		}
		if p.flags != want || len(body) != 2 {
			return p, protoErr(p.typ, "want flags %#x and length 2, got flags %#x and length %d", want, p.flags, len(body))
		}
		p.id = binary.BigEndian.Uint16(body)
	case typeSuback:
		if p.flags != 0 || len(body) < 3 {
			return p, protoErr(p.typ, "want flags 0 and length ≥ 3, got flags %#x and length %d", p.flags, len(body))
		}
		p.id = binary.BigEndian.Uint16(body)
		p.body = append([]byte(nil), body[2:]...)
		for _, c := range p.body {
			if c > 2 && c != 0x80 {
				return p, protoErr(p.typ, "return code %#x is not 0, 1, 2 or 0x80", c)
			}
		}
	case typePingresp:
		if p.flags != 0 || len(body) != 0 {
			return p, protoErr(p.typ, "want flags 0 and length 0, got flags %#x and length %d", p.flags, len(body))
		}
	default:
		// CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ and DISCONNECT go client→server only; 0 and 15 are reserved.
		return p, protoErr(p.typ, "a server never sends this packet type")
	}
	return p, nil
}

// appendVarint appends n as an MQTT variable byte integer.
func appendVarint(b []byte, n int) []byte {
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, s []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// connectFields is what a CONNECT carries.
type connectFields struct {
	clientID  string
	clean     bool
	keepAlive uint16 // seconds
	will      *Message
	user      string
	password  string
}

func appendConnect(b []byte, f connectFields) []byte {
	flags := byte(0)
	if f.clean {
		flags |= 0x02
	}
	n := 10 + 2 + len(f.clientID)
	if f.will != nil {
		flags |= 0x04 | f.will.QoS<<3
		if f.will.Retain {
			flags |= 0x20
		}
		n += 2 + len(f.will.Topic) + 2 + len(f.will.Payload)
	}
	// mqtt_as sets the password flag only with a user name; a password alone is not allowed by MQTT 3.1.1.
	if f.user != "" {
		flags |= 0xC0
		n += 2 + len(f.user) + 2 + len(f.password)
	}
	b = append(b, typeConnect<<4)
	b = appendVarint(b, n)
	b = append(b, 0, 4, 'M', 'Q', 'T', 'T', 4, flags)
	b = binary.BigEndian.AppendUint16(b, f.keepAlive)
	b = appendString(b, f.clientID)
	if f.will != nil {
		b = appendString(b, f.will.Topic)
		b = appendBytes(b, f.will.Payload)
	}
	if f.user != "" {
		b = appendString(b, f.user)
		b = appendString(b, f.password)
	}
	return b
}

// publishLength is the remaining length of a PUBLISH.
func publishLength(topic string, payload []byte, qos byte) int {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	return n
}

func appendPublish(b []byte, topic string, payload []byte, qos byte, retain, dup bool, id uint16) []byte {
	h := typePublish<<4 | qos<<1
	if dup {
		h |= 0x08
	}
	if retain {
		h |= 0x01
	}
	b = append(b, h)
	b = appendVarint(b, publishLength(topic, payload, qos))
	b = appendString(b, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	return append(b, payload...)
}

// appendSubscribe writes a SUBSCRIBE with exactly one topic filter, as mqtt_as does.
func appendSubscribe(b []byte, id uint16, filter string, qos byte) []byte {
	b = append(b, typeSubscribe<<4|0x02)
	b = appendVarint(b, 2+2+len(filter)+1)
	b = binary.BigEndian.AppendUint16(b, id)
	b = appendString(b, filter)
	return append(b, qos)
}

func appendUnsubscribe(b []byte, id uint16, filter string) []byte {
	b = append(b, typeUnsubscribe<<4|0x02)
	b = appendVarint(b, 2+2+len(filter))
	b = binary.BigEndian.AppendUint16(b, id)
	return appendString(b, filter)
}

func appendPuback(b []byte, id uint16) []byte {
	return append(b, typePuback<<4, 2, byte(id>>8), byte(id))
}

var (
	pingreqBytes    = []byte{typePingreq << 4, 0}
	disconnectBytes = []byte{typeDisconnect << 4, 0}
)
