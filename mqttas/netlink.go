package mqttas

// rtnetlink messages, as InterfaceLink reads them: a defensive parser for what the kernel multicasts and
// dumps about links and addresses, the requests that ask for a dump, and the state they add up to for one
// interface. Everything here is plain byte handling (Linux's ABI in native byte order) with no system
// calls, so it builds, is tested and is fuzzed on every platform.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Values from linux/netlink.h, linux/rtnetlink.h, linux/if.h, linux/if_addr.h and linux/if_link.h.
const (
	nlmsgHdrLen = 16 // struct nlmsghdr: len u32, type u16, flags u16, seq u32, pid u32

	nlmsgError   = 2
	nlmsgDone    = 3
	nlmsgOverrun = 4

	nlmFRequest  = 0x1
	nlmFDumpIntr = 0x10 // the dump changed while it was read: read it again
	nlmFDump     = 0x300

	rtmNewLink = 16
	rtmDelLink = 17
	rtmGetLink = 18
	rtmNewAddr = 20
	rtmDelAddr = 21
	rtmGetAddr = 22

	rtmgrpLink       = 0x1
	rtmgrpIPv4IfAddr = 0x10
	rtmgrpIPv6IfAddr = 0x100

	ifinfomsgLen = 16 // family u8, pad u8, type u16, index i32, flags u32, change u32
	ifaddrmsgLen = 8  // family u8, prefixlen u8, flags u8, scope u8, index u32

	iflaIfname    = 3
	iflaOperstate = 16

	ifaAddress = 1
	ifaLocal   = 2
	ifaFlags   = 8

	iffUp      = 0x1
	iffRunning = 0x40

	ifaFDadFailed = 0x08
	ifaFTentative = 0x40

	rtScopeLink = 253 // link-local (fe80::/10, 169.254/16); host scope (254) is loopback

	operUnknown = 0
	operUp      = 6

	ifNameMax = 15 // IFNAMSIZ less the terminating NUL
)

// errNetlinkMalformed: a datagram that does not frame into netlink messages.
var errNetlinkMalformed = errors.New("malformed netlink datagram")

// nlMsg is one netlink message, decoded as far as InterfaceLink needs it.
type nlMsg struct {
	typ   uint16
	flags uint16
	seq   uint32

	errno int32 // NLMSG_ERROR: the (negated) errno, 0 for an acknowledgement; NLMSG_DONE: a dump's error

	// RTM_NEWLINK, RTM_DELLINK
	index     int32
	name      string // "" when the message carries none
	ifFlags   uint32
	operstate uint8
	hasOper   bool

	// RTM_NEWADDR, RTM_DELADDR (index as above)
	family    uint8
	prefixLen uint8
	scope     uint8
	addrFlags uint32 // IFA_FLAGS when present, else the header's 8 bits
	addr      [16]byte
	addrLen   int // 0 when the message carries no address
}

// parseNetlink appends the messages of one datagram to out. A datagram whose framing is broken (a length
// under the header or past the end) fails as a whole with errNetlinkMalformed: nothing in it can be
// trusted, and the caller reads the state again. A well-framed message whose body InterfaceLink cannot
// use (too short, a bad attribute) is dropped on its own; message types it does not know are skipped.
func parseNetlink(b []byte, out []nlMsg) ([]nlMsg, error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return out, fmt.Errorf("%w: %d bytes left, under a header", errNetlinkMalformed, len(b))
		}
		n := ne.Uint32(b)
		if n < nlmsgHdrLen || n > uint32(len(b)) {
			return out, fmt.Errorf("%w: message length %d with %d bytes left", errNetlinkMalformed, n, len(b))
		}
		m := nlMsg{typ: ne.Uint16(b[4:]), flags: ne.Uint16(b[6:]), seq: ne.Uint32(b[8:])}
		body := b[nlmsgHdrLen:n]
		if ok := m.decodeBody(body); ok {
			out = append(out, m)
		}
		// Messages are padded to 4 bytes; the last one may omit its padding.
		next := min(int(nlAlign(n)), len(b))
		b = b[next:]
	}
	return out, nil
}

// decodeBody decodes what InterfaceLink uses of m's body and reports whether m is one to act on.
func (m *nlMsg) decodeBody(body []byte) bool {
	ne := binary.NativeEndian
	switch m.typ {
	case nlmsgError, nlmsgDone:
		// NLMSG_DONE of a dump may carry no error code (older kernels).
		if len(body) >= 4 {
			m.errno = int32(ne.Uint32(body))
		} else if m.typ == nlmsgError {
			return false
		}
		return true
	case nlmsgOverrun:
		return true
	case rtmNewLink, rtmDelLink:
		if len(body) < ifinfomsgLen {
			return false
		}
		m.index = int32(ne.Uint32(body[4:]))
		m.ifFlags = ne.Uint32(body[8:])
		return forAttrs(body[ifinfomsgLen:], func(typ uint16, v []byte) bool {
			switch typ {
			case iflaIfname:
				name, _, _ := strings.Cut(string(v), "\x00")
				if name == "" || len(name) > ifNameMax {
					return false
				}
				m.name = name
			case iflaOperstate:
				if len(v) < 1 {
					return false
				}
				m.operstate, m.hasOper = v[0], true
			}
			return true
		})
	case rtmNewAddr, rtmDelAddr:
		if len(body) < ifaddrmsgLen {
			return false
		}
		m.family, m.prefixLen, m.scope = body[0], body[1], body[3]
		m.addrFlags = uint32(body[2])
		m.index = int32(ne.Uint32(body[4:]))
		var local, address []byte
		ok := forAttrs(body[ifaddrmsgLen:], func(typ uint16, v []byte) bool {
			switch typ {
			case ifaLocal:
				local = v
			case ifaAddress:
				address = v
			case ifaFlags:
				if len(v) < 4 {
					return false
				}
				m.addrFlags = ne.Uint32(v)
			}
			return true
		})
		if !ok {
			return false
		}
		// IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on a point-to-point link
		// (and the same as IFA_LOCAL otherwise; IPv6 sends only IFA_ADDRESS).
		a := local
		if a == nil {
			a = address
		}
		if len(a) != 4 && len(a) != 16 {
			return false
		}
		m.addrLen = copy(m.addr[:], a)
		return true
	}
	return false // NLMSG_NOOP and types InterfaceLink does not use
}

// forAttrs calls f with each route attribute's type and value; it stops and reports false when an
// attribute's length is broken or f returns false.
func forAttrs(b []byte, f func(typ uint16, v []byte) bool) bool {
	ne := binary.NativeEndian
	for len(b) >= 4 {
		n := ne.Uint16(b)
		if n < 4 || int(n) > len(b) {
			return false
		}
		if !f(ne.Uint16(b[2:])&0x3fff, b[4:n]) { // the top two bits are NLA_F_NESTED and NLA_F_NET_BYTEORDER
			return false
		}
		b = b[min(int(nlAlign(uint32(n))), len(b)):]
	}
	return len(b) == 0
}

func nlAlign(n uint32) uint32 { return (n + 3) &^ 3 }

// appendDumpRequest appends a request to dump every link (typ rtmGetLink) or every address (rtmGetAddr).
func appendDumpRequest(b []byte, typ uint16, seq uint32) []byte {
	bodyLen := ifinfomsgLen
	if typ == rtmGetAddr {
		bodyLen = ifaddrmsgLen
	}
	ne := binary.NativeEndian
	b = ne.AppendUint32(b, uint32(nlmsgHdrLen+bodyLen))
	b = ne.AppendUint16(b, typ)
	b = ne.AppendUint16(b, nlmFRequest|nlmFDump)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0)                  // the kernel fills in the port id
	return append(b, make([]byte, bodyLen)...) // family AF_UNSPEC: every family
}

// addrKey identifies an address of an interface.
type addrKey struct {
	family, prefixLen uint8
	addr              [16]byte
}

// ifaceState is what the messages read so far say about the interface named name.
type ifaceState struct {
	name      string
	index     int32 // 0 while no interface of that name is known
	ifFlags   uint32
	operstate uint8
	hasOper   bool
	// usable holds the addresses that count, of every interface: an address message can arrive before its
	// interface is known by name (a dump of addresses races a new link), and interfaces are few.
	usable map[int32]map[addrKey]struct{}
}

func newIfaceState(name string) *ifaceState {
	return &ifaceState{name: name, usable: make(map[int32]map[addrKey]struct{})}
}

// apply updates s with one link or address message; other messages leave it as it is.
func (s *ifaceState) apply(m *nlMsg) {
	switch m.typ {
	case rtmNewLink:
		switch {
		case m.name == s.name:
			s.index, s.ifFlags, s.operstate, s.hasOper = m.index, m.ifFlags, m.operstate, m.hasOper
		case m.index == s.index && m.name != "":
			s.index = 0 // renamed: the name now belongs to no interface (until one takes it)
		case m.index == s.index:
			s.ifFlags, s.operstate, s.hasOper = m.ifFlags, m.operstate, m.hasOper
		}
	case rtmDelLink:
		delete(s.usable, m.index)
		if m.index == s.index {
			s.index = 0
		}
	case rtmNewAddr, rtmDelAddr:
		if m.addrLen == 0 {
			return
		}
		k := addrKey{family: m.family, prefixLen: m.prefixLen}
		copy(k.addr[:], m.addr[:m.addrLen])
		if m.typ == rtmNewAddr && addrUsable(m) {
			set := s.usable[m.index]
			if set == nil {
				set = make(map[addrKey]struct{})
				s.usable[m.index] = set
			}
			set[k] = struct{}{}
			return
		}
		// Deleted, or updated to an address that does not count (still tentative, failed its DAD).
		if set := s.usable[m.index]; set != nil {
			delete(set, k)
			if len(set) == 0 {
				delete(s.usable, m.index)
			}
		}
	}
}

// addrUsable reports whether an address can carry a connection to a broker beyond the link: not
// link-local or loopback, and not an IPv6 address still in (or failed by) duplicate address detection.
func addrUsable(m *nlMsg) bool {
	return m.scope < rtScopeLink && m.addrFlags&(ifaFTentative|ifaFDadFailed) == 0
}

// down says why the interface cannot carry traffic, or "" when it can: it exists, is up, has a carrier
// (IFF_RUNNING, which the kernel sets from the operational state), and has an address beyond the link.
func (s *ifaceState) down() string {
	switch {
	case s.index == 0:
		return "no interface " + s.name
	case s.ifFlags&iffUp == 0:
		return s.name + " is administratively down"
	case s.ifFlags&iffRunning == 0 || s.hasOper && s.operstate != operUp && s.operstate != operUnknown:
		return s.name + " has no carrier"
	case len(s.usable[s.index]) == 0:
		return s.name + " has no address beyond the link"
	}
	return ""
}
