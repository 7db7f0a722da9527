// Package mqttwire encodes and decodes MQTT 3.1.1 control packets for
// everything outside the client that speaks MQTT with exact bytes: readiness
// probes, fake brokers, raw test clients, the bench's floor and the tap's
// framer. It is the one such codec of the repository; the client (its own
// module, standard library only) keeps its own.
//
// Decode and Read frame a packet by its fixed header and accept any flags;
// the typed accessors (Packet.Connect, Packet.Publish, …) check what MQTT
// 3.1.1 requires of that packet type's fixed flags and variable header.
package mqttwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Type is an MQTT control packet type (the high nibble of the first byte).
type Type byte

// MQTT 3.1.1 control packet types (§2.2.1).
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
)

var typeNames = [...]string{
	"RESERVED0", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "RESERVED15",
}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", byte(t))
}

// Valid reports whether t is a packet type MQTT 3.1.1 defines.
func (t Type) Valid() bool { return t >= CONNECT && t <= DISCONNECT }

// MaxRemaining is the largest remaining length four length bytes can encode.
const MaxRemaining = 268_435_455

// Errors, usable with errors.Is.
var (
	// ErrShort: the bytes end inside the packet.
	ErrShort = errors.New("mqttwire: incomplete packet")
	// ErrReservedType: the packet type is 0 or 15.
	ErrReservedType = errors.New("mqttwire: reserved packet type")
	// ErrLength: the remaining length does not end within four bytes.
	ErrLength = errors.New("mqttwire: remaining length longer than 4 bytes")
	// ErrMalformed: the packet breaks MQTT 3.1.1 for its type.
	ErrMalformed = errors.New("mqttwire: malformed packet")
	// ErrUnsupported: a valid packet this codec does not decode (a CONNECT
	// with a will, user name or password, a protocol other than 3.1.1).
	ErrUnsupported = errors.New("mqttwire: unsupported packet")
)

// Packet is one control packet: its type, the low nibble of its first byte,
// and the bytes after the remaining length.
type Packet struct {
	Type  Type
	Flags byte
	Body  []byte
}

// Append appends the packet as it goes on the wire: first byte, remaining
// length (shortest form), body.
func (p Packet) Append(b []byte) []byte {
	b = append(b, byte(p.Type)<<4|p.Flags&0x0f)
	b = AppendLength(b, len(p.Body))
	return append(b, p.Body...)
}

// Bytes is the packet as it goes on the wire.
func (p Packet) Bytes() []byte { return p.Append(make([]byte, 0, 5+len(p.Body))) }

// String is the type, and the packet identifier where there is one.
func (p Packet) String() string {
	if id := p.ID(); id != 0 {
		return fmt.Sprintf("%v(id %d)", p.Type, id)
	}
	return p.Type.String()
}

// ID is the packet identifier, or 0 for a packet without one (MQTT never
// uses 0) or too short to hold it: PUBLISH at QoS 1 and 2, the
// acknowledgements, SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK.
func (p Packet) ID() uint16 {
	switch p.Type {
	case PUBLISH:
		if p.Flags>>1&3 == 0 || len(p.Body) < 2 {
			return 0
		}
		tl := int(binary.BigEndian.Uint16(p.Body))
		if len(p.Body) < 4+tl {
			return 0
		}
		return binary.BigEndian.Uint16(p.Body[2+tl:])
	case PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK:
		if len(p.Body) < 2 {
			return 0
		}
		return binary.BigEndian.Uint16(p.Body)
	}
	return 0
}

// AppendLength appends n in MQTT's variable-length encoding. n must be in
// [0, MaxRemaining].
func AppendLength(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// AppendString appends s as an MQTT UTF-8 string: a two-byte length, then
// the bytes.
func AppendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// Decode decodes the packet at the start of b and returns it with its size on
// the wire. The Body aliases b. It fails with ErrShort when b ends inside the
// packet (more bytes may complete it), ErrReservedType or ErrLength.
func Decode(b []byte) (Packet, int, error) {
	if len(b) == 0 {
		return Packet{}, 0, ErrShort
	}
	t := Type(b[0] >> 4)
	if !t.Valid() {
		return Packet{}, 0, fmt.Errorf("%w %d", ErrReservedType, byte(t))
	}
	n, mult := 0, 1
	for i := 1; ; i++ {
		if i == 5 {
			return Packet{}, 0, ErrLength
		}
		if i >= len(b) {
			return Packet{}, 0, ErrShort
		}
		n += int(b[i]&0x7f) * mult
		mult *= 128
		if b[i]&0x80 == 0 {
			end := i + 1 + n
			if end > len(b) {
				return Packet{}, 0, ErrShort
			}
			return Packet{Type: t, Flags: b[0] & 0x0f, Body: b[i+1 : end]}, end, nil
		}
	}
}

// Reader is what Read reads from; *bufio.Reader is one.
type Reader interface {
	io.Reader
	io.ByteReader
}

// Read reads one packet from r into a fresh Body. Bytes that end inside the
// packet fail with an error matching both ErrShort and io.ErrUnexpectedEOF;
// io.EOF before the first byte is returned as it is.
func Read(r Reader) (Packet, error) { return ReadInto(r, nil) }

// ReadInto is Read with the Body in buf when it fits (buf[:len(Body)]), so
// that a loop reading packets one at a time need not allocate: the Body is
// then valid only until buf is used again.
func ReadInto(r Reader, buf []byte) (Packet, error) {
	first, err := r.ReadByte()
	if err != nil {
		return Packet{}, err
	}
	t := Type(first >> 4)
	if !t.Valid() {
		return Packet{}, fmt.Errorf("%w %d", ErrReservedType, byte(t))
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return Packet{}, ErrLength
		}
		d, err := r.ReadByte()
		if err != nil {
			return Packet{}, short(err)
		}
		n += int(d&0x7f) * mult
		mult *= 128
		if d&0x80 == 0 {
			break
		}
	}
	body := buf[:0]
	if cap(body) < n {
		body = make([]byte, n)
	}
	body = body[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return Packet{}, short(err)
	}
	return Packet{Type: t, Flags: first & 0x0f, Body: body}, nil
}

func short(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrShort, io.ErrUnexpectedEOF)
	}
	return err
}

// malformed reports a packet of type t that breaks the rules.
func malformed(t Type, format string, args ...any) error {
	return fmt.Errorf("%w: %v: %s", ErrMalformed, t, fmt.Sprintf(format, args...))
}

// reader takes MQTT fields off a packet body.
type reader struct {
	b   []byte
	t   Type
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = malformed(r.t, "%s", what)
	}
}

func (r *reader) u8(what string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail("no " + what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16(what string) uint16 {
	if r.err != nil || len(r.b) < 2 {
		r.fail("no " + what)
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) str(what string) string {
	n := int(r.u16(what + " length"))
	if r.err != nil || len(r.b) < n {
		r.fail(what + " longer than the packet")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d bytes after the end", len(r.b)))
	}
	return r.err
}

// expect checks p's type and its fixed flags.
func (p Packet) expect(t Type, flags byte) error {
	if p.Type != t {
		return fmt.Errorf("%w: %v is not a %v", ErrMalformed, p.Type, t)
	}
	if p.Flags != flags {
		return malformed(t, "flags %#x, want %#x", p.Flags, flags)
	}
	return nil
}

// fixedFlags is what MQTT 3.1.1 requires of the first byte's low nibble.
func fixedFlags(t Type) byte {
	switch t {
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		return 0x02
	}
	return 0
}
