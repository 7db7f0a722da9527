package mqttwire

import (
	"encoding/binary"
	"fmt"
)

// Connect is a CONNECT for protocol "MQTT" level 4 (3.1.1), without will,
// user name or password.
type Connect struct {
	ClientID     string
	CleanSession bool
	KeepAlive    uint16 // seconds; 0 turns keepalive off
}

// Packet encodes c.
func (c Connect) Packet() Packet {
	flags := byte(0)
	if c.CleanSession {
		flags = 0x02
	}
	body := AppendString(make([]byte, 0, 12+len(c.ClientID)), "MQTT")
	body = append(body, 4, flags)
	body = binary.BigEndian.AppendUint16(body, c.KeepAlive)
	return Packet{Type: CONNECT, Body: AppendString(body, c.ClientID)}
}

// Bytes is c on the wire.
func (c Connect) Bytes() []byte { return c.Packet().Bytes() }

// Connect decodes a CONNECT. A will, user name or password, or a protocol
// other than MQTT 3.1.1, fails with ErrUnsupported.
func (p Packet) Connect() (Connect, error) {
	if err := p.expect(CONNECT, 0); err != nil {
		return Connect{}, err
	}
	r := reader{b: p.Body, t: CONNECT}
	name, level, flags := r.str("protocol name"), r.u8("protocol level"), r.u8("connect flags")
	ka := r.u16("keepalive")
	if r.err != nil {
		return Connect{}, r.err
	}
	if name != "MQTT" || level != 4 {
		return Connect{}, fmt.Errorf("%w: protocol %q level %d", ErrUnsupported, name, level)
	}
	if flags&0x01 != 0 {
		return Connect{}, malformed(CONNECT, "reserved connect flag set")
	}
	if flags&^0x02 != 0 {
		return Connect{}, fmt.Errorf("%w: connect flags %#x (will, user name or password)", ErrUnsupported, flags)
	}
	c := Connect{CleanSession: flags&0x02 != 0, KeepAlive: ka, ClientID: r.str("client identifier")}
	return c, r.end()
}

// Connack is a CONNACK.
type Connack struct {
	SessionPresent bool
	Code           byte // return code: 0 accepted, 1..5 refused
}

// Packet encodes c.
func (c Connack) Packet() Packet {
	sp := byte(0)
	if c.SessionPresent {
		sp = 1
	}
	return Packet{Type: CONNACK, Body: []byte{sp, c.Code}}
}

// Bytes is c on the wire.
func (c Connack) Bytes() []byte { return c.Packet().Bytes() }

// Connack decodes a CONNACK.
func (p Packet) Connack() (Connack, error) {
	if err := p.expect(CONNACK, 0); err != nil {
		return Connack{}, err
	}
	r := reader{b: p.Body, t: CONNACK}
	sp, code := r.u8("acknowledge flags"), r.u8("return code")
	if err := r.end(); err != nil {
		return Connack{}, err
	}
	if sp&^1 != 0 {
		return Connack{}, malformed(CONNACK, "acknowledge flags %#x", sp)
	}
	return Connack{SessionPresent: sp == 1, Code: code}, nil
}

// Publish is a PUBLISH.
type Publish struct {
	Topic   string
	QoS     byte   // 0, 1 or 2
	DUP     bool   // redelivery
	Retain  bool   //
	ID      uint16 // packet identifier, at QoS 1 and 2
	Payload []byte
}

// Packet encodes m.
func (m Publish) Packet() Packet {
	flags := m.QoS << 1
	if m.DUP {
		flags |= 0x08
	}
	if m.Retain {
		flags |= 0x01
	}
	body := AppendString(make([]byte, 0, 4+len(m.Topic)+len(m.Payload)), m.Topic)
	if m.QoS > 0 {
		body = binary.BigEndian.AppendUint16(body, m.ID)
	}
	return Packet{Type: PUBLISH, Flags: flags, Body: append(body, m.Payload...)}
}

// Bytes is m on the wire.
func (m Publish) Bytes() []byte { return m.Packet().Bytes() }

// Publish decodes a PUBLISH. The Payload aliases p.Body.
func (p Packet) Publish() (Publish, error) {
	if p.Type != PUBLISH {
		return Publish{}, fmt.Errorf("%w: %v is not a %v", ErrMalformed, p.Type, PUBLISH)
	}
	m := Publish{QoS: p.Flags >> 1 & 3, DUP: p.Flags&0x08 != 0, Retain: p.Flags&0x01 != 0}
	if m.QoS == 3 {
		return Publish{}, malformed(PUBLISH, "QoS 3")
	}
	if m.QoS == 0 && m.DUP {
		return Publish{}, malformed(PUBLISH, "DUP at QoS 0")
	}
	r := reader{b: p.Body, t: PUBLISH}
	m.Topic = r.str("topic")
	if m.QoS > 0 {
		m.ID = r.u16("packet identifier")
	}
	if r.err != nil {
		return Publish{}, r.err
	}
	m.Payload = r.b
	return m, nil
}

// Ack is PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK with its packet
// identifier; PUBREL gets its required flags.
func Ack(t Type, id uint16) Packet {
	return Packet{Type: t, Flags: fixedFlags(t), Body: binary.BigEndian.AppendUint16(nil, id)}
}

// Ack decodes PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK and returns the
// packet identifier.
func (p Packet) Ack() (uint16, error) {
	switch p.Type {
	case PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK:
	default:
		return 0, fmt.Errorf("%w: %v is not an acknowledgement", ErrMalformed, p.Type)
	}
	if err := p.expect(p.Type, fixedFlags(p.Type)); err != nil {
		return 0, err
	}
	r := reader{b: p.Body, t: p.Type}
	id := r.u16("packet identifier")
	return id, r.end()
}

// Subscription is one topic filter of a SUBSCRIBE with its requested QoS.
type Subscription struct {
	Filter string
	QoS    byte
}

// Subscribe is a SUBSCRIBE.
type Subscribe struct {
	ID      uint16
	Filters []Subscription
}

// Packet encodes s.
func (s Subscribe) Packet() Packet {
	body := binary.BigEndian.AppendUint16(nil, s.ID)
	for _, f := range s.Filters {
		body = append(AppendString(body, f.Filter), f.QoS)
	}
	return Packet{Type: SUBSCRIBE, Flags: fixedFlags(SUBSCRIBE), Body: body}
}

// Bytes is s on the wire.
func (s Subscribe) Bytes() []byte { return s.Packet().Bytes() }

// Subscribe decodes a SUBSCRIBE.
func (p Packet) Subscribe() (Subscribe, error) {
	if err := p.expect(SUBSCRIBE, fixedFlags(SUBSCRIBE)); err != nil {
		return Subscribe{}, err
	}
	r := reader{b: p.Body, t: SUBSCRIBE}
	s := Subscribe{ID: r.u16("packet identifier")}
	for r.err == nil && len(r.b) > 0 {
		f := Subscription{Filter: r.str("topic filter"), QoS: r.u8("requested QoS")}
		if r.err == nil && f.QoS > 2 {
			r.fail(fmt.Sprintf("requested QoS byte %#x", f.QoS))
		}
		s.Filters = append(s.Filters, f)
	}
	if r.err == nil && len(s.Filters) == 0 {
		r.fail("no topic filter")
	}
	if r.err != nil {
		return Subscribe{}, r.err
	}
	return s, nil
}

// Suback is a SUBACK: a return code (0, 1, 2 granted QoS, 0x80 failure) per
// filter of the SUBSCRIBE it answers.
type Suback struct {
	ID    uint16
	Codes []byte
}

// Packet encodes s.
func (s Suback) Packet() Packet {
	return Packet{Type: SUBACK, Body: append(binary.BigEndian.AppendUint16(nil, s.ID), s.Codes...)}
}

// Bytes is s on the wire.
func (s Suback) Bytes() []byte { return s.Packet().Bytes() }

// Suback decodes a SUBACK. Codes aliases p.Body.
func (p Packet) Suback() (Suback, error) {
	if err := p.expect(SUBACK, 0); err != nil {
		return Suback{}, err
	}
	r := reader{b: p.Body, t: SUBACK}
	s := Suback{ID: r.u16("packet identifier"), Codes: r.b}
	if r.err == nil && len(s.Codes) == 0 {
		r.fail("no return code")
	}
	if r.err != nil {
		return Suback{}, r.err
	}
	return s, nil
}

// Unsubscribe is an UNSUBSCRIBE.
type Unsubscribe struct {
	ID      uint16
	Filters []string
}

// Packet encodes u.
func (u Unsubscribe) Packet() Packet {
	body := binary.BigEndian.AppendUint16(nil, u.ID)
	for _, f := range u.Filters {
		body = AppendString(body, f)
	}
	return Packet{Type: UNSUBSCRIBE, Flags: fixedFlags(UNSUBSCRIBE), Body: body}
}

// Bytes is u on the wire.
func (u Unsubscribe) Bytes() []byte { return u.Packet().Bytes() }

// Unsubscribe decodes an UNSUBSCRIBE.
func (p Packet) Unsubscribe() (Unsubscribe, error) {
	if err := p.expect(UNSUBSCRIBE, fixedFlags(UNSUBSCRIBE)); err != nil {
		return Unsubscribe{}, err
	}
	r := reader{b: p.Body, t: UNSUBSCRIBE}
	u := Unsubscribe{ID: r.u16("packet identifier")}
	for r.err == nil && len(r.b) > 0 {
		u.Filters = append(u.Filters, r.str("topic filter"))
	}
	if r.err == nil && len(u.Filters) == 0 {
		r.fail("no topic filter")
	}
	if r.err != nil {
		return Unsubscribe{}, r.err
	}
	return u, nil
}

// Empty is a packet with no body: PINGREQ, PINGRESP or DISCONNECT.
func Empty(t Type) Packet { return Packet{Type: t} }
