package mqttframe

import (
	"bytes"
	"fmt"
)

type state uint8

const (
	stHead state = iota // at or inside a packet's head
	stBody              // inside a packet, after its head
	stLost              // framing lost: pass everything through
)

// Framer frames one direction of one MQTT connection. Feed it the stream's
// chunks in order; it returns the Ops that forward them. The zero value
// forwards everything and records nothing. A Framer is not safe for
// concurrent use.
type Framer struct {
	// Decide, if set, is called once per packet when its head is complete and
	// before any of its bytes are forwarded. The Header is valid only during
	// the call.
	Decide func(*Header) Verdict
	// First, if non-zero, is the type the stream must start with (CONNECT
	// from a client, CONNACK from a broker). Any other first byte means the
	// stream is not MQTT: it is passed through unparsed.
	First Type

	st      state
	packets int    // packets decided so far
	head    []byte // head bytes held from earlier chunks
	need    int    // head bytes needed before parsing again
	body    int    // bytes of the current packet after its head
	drop    bool   // the current packet is being dropped
	hdr     Header
	err     error
}

// Err returns why framing was lost, or nil while the stream is framed.
func (f *Framer) Err() error { return f.err }

// Packets returns how many packets have been decided.
func (f *Framer) Packets() int { return f.packets }

// Feed frames p and appends to ops the steps that forward it. Data in the
// returned ops aliases p, or is a fresh copy for head bytes held from an
// earlier chunk; it never aliases the framer's own buffers.
func (f *Framer) Feed(ops []Op, p []byte) []Op {
	run := 0 // start of the bytes of p to forward that are not yet in ops
	i := 0
	for i < len(p) {
		switch f.st {
		case stLost:
			i = len(p)

		case stBody:
			n := min(f.body, len(p)-i)
			i += n
			if f.drop {
				run = i
			}
			f.body -= n
			if f.body == 0 {
				f.st, f.drop = stHead, false
			}

		case stHead:
			if len(f.head) == 0 {
				// The packet starts at p[i]: parse in place, no copy.
				start := i
				need, err := f.parse(p[i:])
				switch {
				case err != nil:
					f.lose(err)
				case need <= len(p)-i:
					i += need
					v := f.decide()
					switch v.Action {
					case Drop:
						ops = appendData(ops, p[run:start])
						run = i
					case Delay:
						ops = appendData(ops, p[run:start])
						ops = append(ops, Op{Wait: v.Delay})
						run = start
					}
				default:
					// Hold the partial head until the rest arrives.
					ops = appendData(ops, p[run:start])
					f.head = append(f.head[:0], p[i:]...)
					f.need = need
					i = len(p)
					run = i
				}
				continue
			}
			// Continue a head held from earlier chunks. run == i here: only
			// the first bytes of a chunk can continue a held head.
			k := min(f.need-len(f.head), len(p)-i)
			f.head = append(f.head, p[i:i+k]...)
			i += k
			run = i
			if len(f.head) < f.need {
				continue
			}
			need, err := f.parse(f.head)
			switch {
			case err != nil:
				ops = appendData(ops, bytes.Clone(f.head))
				f.head = f.head[:0]
				f.lose(err)
			case need <= len(f.head):
				v := f.decide()
				switch v.Action {
				case Forward:
					ops = appendData(ops, bytes.Clone(f.head))
				case Delay:
					ops = append(ops, Op{Wait: v.Delay})
					ops = appendData(ops, bytes.Clone(f.head))
				}
				f.head = f.head[:0]
			default:
				f.need = need
			}
		}
	}
	return appendData(ops, p[run:])
}

// Flush ends the stream: it hands back head bytes still held (a packet cut
// short by the end of the stream), so that nothing that arrived is lost.
func (f *Framer) Flush(ops []Op) []Op {
	if len(f.head) > 0 {
		ops = appendData(ops, bytes.Clone(f.head))
		f.head = f.head[:0]
	}
	return ops
}

func appendData(ops []Op, b []byte) []Op {
	if len(b) == 0 {
		return ops
	}
	return append(ops, Op{Data: b})
}

func (f *Framer) lose(err error) {
	f.st, f.err = stLost, err
	f.head = nil
}

// decide finishes the current packet's head: it asks Decide and sets up the
// body that follows the head.
func (f *Framer) decide() Verdict {
	h := &f.hdr
	var v Verdict
	if f.Decide != nil {
		v = f.Decide(h)
	}
	f.packets++
	f.body = h.Size - f.need
	f.drop = v.Action == Drop
	if f.body > 0 {
		f.st = stBody
	} else {
		f.st, f.drop = stHead, false
	}
	return v
}

// parse parses the head of the packet starting at b[0]. It returns the head
// length when b holds the whole head (the result is then <= len(b), and
// f.hdr and f.need are set), otherwise a lower bound of the head length that
// is larger than len(b). Successive bounds never exceed the final length, so
// a caller can wait for exactly that many bytes.
func (f *Framer) parse(b []byte) (int, error) {
	t := Type(b[0] >> 4)
	if !t.Valid() {
		return 0, fmt.Errorf("%w %d (first byte %#02x)", ErrReservedType, byte(t), b[0])
	}
	if f.First != 0 && f.packets == 0 && t != f.First {
		return 0, fmt.Errorf("%w: %v, want %v", ErrUnexpectedFirst, t, f.First)
	}
	rl, mul, n := 0, 1, 1
	for {
		if n >= len(b) {
			return n + 1, nil
		}
		c := b[n]
		n++
		rl += int(c&0x7f) * mul
		if c&0x80 == 0 {
			break
		}
		if n == 5 {
			return 0, ErrLengthOverflow
		}
		mul *= 128
	}
	size := n + rl

	f.hdr = Header{Type: t, Flags: b[0] & 0x0f, Remaining: rl, Size: size}
	h := &f.hdr
	hp := headParser{v: b[n:], rl: rl}
	h.Malformed = !flagsValid(t, h.Flags)
	switch t {
	case CONNECT:
		hp.str() // protocol name
		h.ProtocolLevel = hp.byte1()
		h.ConnectFlags = hp.byte1()
		h.KeepAlive, _ = hp.u16()
		h.ClientID = hp.str()
	case CONNACK:
		h.SessionPresent = hp.byte1()&0x01 != 0
		h.ReturnCode = hp.byte1()
	case PUBLISH:
		h.Topic = hp.str()
		if h.QoS() > 0 {
			h.ID, h.HasID = hp.u16()
		}
	case PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK:
		h.ID, h.HasID = hp.u16()
	case SUBSCRIBE, UNSUBSCRIBE:
		h.ID, h.HasID = hp.u16()
		h.Topic = hp.str()
	case SUBACK:
		h.ID, h.HasID = hp.u16()
		h.ReturnCode = hp.byte1()
	}
	switch {
	case hp.more > 0:
		return n + hp.more, nil
	case hp.bad:
		// Fields run past the packet: the head is the whole packet.
		h.Malformed = true
		if size <= len(b) {
			f.need = size
		}
		return size, nil
	}
	if t == PUBLISH {
		h.PayloadSize = rl - hp.pos
	}
	f.need = n + hp.pos
	return f.need, nil
}

// flagsValid checks the fixed header flags MQTT 3.1.1 §2.2.2 fixes.
func flagsValid(t Type, flags byte) bool {
	switch t {
	case PUBLISH:
		return (flags>>1)&0x03 != 3
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		return flags == 0x02
	}
	return flags == 0
}

// headParser reads variable header fields. When a field is not yet
// available it records how many bytes are needed (more); when a field would
// run past the packet it marks the packet bad. Reads after either return zero.
type headParser struct {
	v    []byte // variable header bytes available
	rl   int    // remaining length: the end of the packet
	pos  int
	more int
	bad  bool
}

func (p *headParser) take(k int) []byte {
	if p.bad || p.more > 0 {
		return nil
	}
	if p.pos+k > p.rl {
		p.bad = true
		return nil
	}
	if p.pos+k > len(p.v) {
		p.more = p.pos + k
		return nil
	}
	b := p.v[p.pos : p.pos+k]
	p.pos += k
	return b
}

func (p *headParser) byte1() byte {
	if b := p.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (p *headParser) u16() (uint16, bool) {
	if b := p.take(2); b != nil {
		return uint16(b[0])<<8 | uint16(b[1]), true
	}
	return 0, false
}

// str reads a length-prefixed string; an empty string is a non-nil empty slice.
func (p *headParser) str() []byte {
	b := p.take(2)
	if b == nil {
		return nil
	}
	return p.take(int(b[0])<<8 | int(b[1]))
}
