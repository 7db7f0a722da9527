package mqttas

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// Encoders for the kernel's side of rtnetlink, for the parser's tests, the fake kernel and the fuzz target.

func nlTestMsg(typ, flags uint16, seq uint32, body []byte) []byte {
	ne := binary.NativeEndian
	b := ne.AppendUint32(nil, uint32(nlmsgHdrLen+len(body)))
	b = ne.AppendUint16(b, typ)
	b = ne.AppendUint16(b, flags)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0)
	b = append(b, body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func nlTestAttr(b []byte, typ uint16, v []byte) []byte {
	ne := binary.NativeEndian
	b = ne.AppendUint16(b, uint16(4+len(v)))
	b = ne.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// nlTestLink encodes RTM_NEWLINK or RTM_DELLINK; name "" sends no IFLA_IFNAME, oper < 0 no IFLA_OPERSTATE.
func nlTestLink(typ, flags uint16, seq uint32, index int32, name string, ifFlags uint32, oper int) []byte {
	ne := binary.NativeEndian
	body := make([]byte, ifinfomsgLen)
	ne.PutUint32(body[4:], uint32(index))
	ne.PutUint32(body[8:], ifFlags)
	if name != "" {
		body = nlTestAttr(body, iflaIfname, append([]byte(name), 0))
	}
	if oper >= 0 {
		body = nlTestAttr(body, iflaOperstate, []byte{byte(oper)})
	}
	return nlTestMsg(typ, flags, seq, body)
}

// nlTestAddr encodes RTM_NEWADDR or RTM_DELADDR with IFA_LOCAL (when addr is set) and IFA_FLAGS.
func nlTestAddr(typ, flags uint16, seq uint32, index int32, family, prefixLen, scope uint8, addrFlags uint32, addr []byte) []byte {
	ne := binary.NativeEndian
	body := []byte{family, prefixLen, byte(addrFlags), scope}
	body = ne.AppendUint32(body, uint32(index))
	if addr != nil {
		body = nlTestAttr(body, ifaLocal, addr)
	}
	body = nlTestAttr(body, ifaFlags, ne.AppendUint32(nil, addrFlags))
	return nlTestMsg(typ, flags, seq, body)
}

func nlTestDone(seq uint32, errno int32) []byte {
	return nlTestMsg(nlmsgDone, 0x2, seq, binary.NativeEndian.AppendUint32(nil, uint32(errno)))
}

func nlTestError(seq uint32, errno int32) []byte {
	return nlTestMsg(nlmsgError, 0, seq, append(binary.NativeEndian.AppendUint32(nil, uint32(errno)), make([]byte, nlmsgHdrLen)...))
}

const (
	afInet  = 2
	afInet6 = 10
)

var (
	nlTestIPv4     = []byte{198, 18, 0, 1}
	nlTestIPv6     = []byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	nlTestIPv6Link = []byte{0xfe, 0x80, 15: 1}
)

func TestInterfaceLinkParseMessages(t *testing.T) {
	var d []byte
	d = append(d, nlTestLink(rtmNewLink, 0, 7, 3, "wlan0", iffUp|iffRunning, operUp)...)
	d = append(d, nlTestAddr(rtmNewAddr, 0, 7, 3, afInet, 24, 0, 0x80, nlTestIPv4)...)
	d = append(d, nlTestMsg(99, 0, 7, []byte{1, 2, 3})...) // a type InterfaceLink does not use
	d = append(d, nlTestAddr(rtmDelAddr, 0, 0, 3, afInet6, 64, 0, ifaFTentative, nlTestIPv6)...)
	d = append(d, nlTestLink(rtmDelLink, 0, 0, 3, "", 0, -1)...)
	d = append(d, nlTestDone(7, 0)...)
	msgs, err := parseNetlink(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 5 {
		t.Fatalf("%d messages, want 5: %+v", len(msgs), msgs)
	}
	if m := msgs[0]; m.typ != rtmNewLink || m.seq != 7 || m.index != 3 || m.name != "wlan0" || m.ifFlags != iffUp|iffRunning || !m.hasOper || m.operstate != operUp {
		t.Errorf("link: %+v", m)
	}
	if m := msgs[1]; m.typ != rtmNewAddr || m.index != 3 || m.family != afInet || m.prefixLen != 24 || m.addrLen != 4 || [4]byte(m.addr[:4]) != [4]byte(nlTestIPv4) || m.addrFlags != 0x80 {
		t.Errorf("IPv4 address: %+v", m)
	}
	if m := msgs[2]; m.typ != rtmDelAddr || m.family != afInet6 || m.addrLen != 16 || m.addrFlags != ifaFTentative {
		t.Errorf("IPv6 address: %+v", m)
	}
	if m := msgs[3]; m.typ != rtmDelLink || m.index != 3 || m.name != "" || m.hasOper {
		t.Errorf("deleted link: %+v", m)
	}
	if m := msgs[4]; m.typ != nlmsgDone || m.seq != 7 || m.errno != 0 {
		t.Errorf("done: %+v", m)
	}

	// IFA_LOCAL wins over IFA_ADDRESS (the peer, on a point-to-point link); the header's flags stand in
	// when IFA_FLAGS is missing; the last message may omit its padding.
	body := []byte{afInet, 32, ifaFDadFailed, 0, 5, 0, 0, 0}
	body = nlTestAttr(body, ifaAddress, []byte{10, 0, 0, 2})
	body = nlTestAttr(body, ifaLocal, []byte{10, 0, 0, 1})
	p2p := nlTestMsg(rtmNewAddr, 0, 0, body)
	link := nlTestLink(rtmNewLink, 0, 0, 5, "ppp0", iffUp, -1)
	unpadded := nlTestMsg(rtmNewLink, 0, 0, append(make([]byte, ifinfomsgLen), 5, 0, iflaIfname, 0, 'x'))
	msgs, err = parseNetlink(append(append(p2p, link...), unpadded[:len(unpadded)-3]...), nil)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("%v, %+v", err, msgs)
	}
	if m := msgs[0]; [4]byte(m.addr[:4]) != [4]byte{10, 0, 0, 1} || m.addrFlags != ifaFDadFailed || binary.NativeEndian.Uint32(body[4:]) != uint32(m.index) {
		t.Errorf("point-to-point address: %+v", m)
	}
	if m := msgs[2]; m.name != "x" {
		t.Errorf("unpadded last message: %+v", m)
	}
}

func TestInterfaceLinkParseDefensive(t *testing.T) {
	good := nlTestLink(rtmNewLink, 0, 0, 2, "eth0", iffUp|iffRunning, operUp)
	for _, tc := range []struct {
		what string
		data []byte
	}{
		{"a header cut short", good[:10]},
		{"a length under the header", append([]byte{8, 0, 0, 0}, good[4:]...)},
		{"a length past the end", append([]byte{200, 0, 0, 0}, good[4:]...)},
		{"a good message, then garbage", append(append([]byte(nil), good...), 1, 2, 3)},
	} {
		if _, err := parseNetlink(tc.data, nil); !errors.Is(err, errNetlinkMalformed) {
			t.Errorf("%s: err = %v, want errNetlinkMalformed", tc.what, err)
		}
	}
	// Well framed but unusable bodies are dropped one by one; the messages around them still count.
	bad := [][]byte{
		nlTestMsg(rtmNewLink, 0, 0, make([]byte, 8)),                                                  // short ifinfomsg
		nlTestMsg(rtmNewAddr, 0, 0, make([]byte, 4)),                                                  // short ifaddrmsg
		nlTestMsg(rtmNewLink, 0, 0, append(make([]byte, ifinfomsgLen), 40, 0, iflaIfname, 0, 'a', 0)), // attribute past the end
		nlTestMsg(rtmNewLink, 0, 0, append(make([]byte, ifinfomsgLen), 2, 0, iflaIfname, 0)),          // attribute under 4 bytes
		nlTestLink(rtmNewLink, 0, 0, 2, strings.Repeat("n", 16), iffUp, -1),                           // name over IFNAMSIZ
		nlTestMsg(rtmNewLink, 0, 0, nlTestAttr(make([]byte, ifinfomsgLen), iflaIfname, []byte{0})),    // empty name
		nlTestMsg(rtmNewLink, 0, 0, nlTestAttr(make([]byte, ifinfomsgLen), iflaOperstate, nil)),       // empty operstate
		nlTestAddr(rtmNewAddr, 0, 0, 2, afInet, 24, 0, 0, []byte{1, 2, 3}),                            // 3-byte address
		nlTestAddr(rtmNewAddr, 0, 0, 2, afInet, 24, 0, 0, nil),                                        // no address
		nlTestMsg(nlmsgError, 0, 0, []byte{1}),                                                        // error without its code
	}
	var d []byte
	for _, b := range bad {
		d = append(d, good...)
		d = append(d, b...)
	}
	d = append(d, good...)
	msgs, err := parseNetlink(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(bad)+1 {
		t.Fatalf("%d messages, want the %d good ones: %+v", len(msgs), len(bad)+1, msgs)
	}
	for _, m := range msgs {
		if m.name != "eth0" {
			t.Errorf("a bad message was kept: %+v", m)
		}
	}
}

// The interface is usable only when it exists, is up, has a carrier and has an address beyond the link.
func TestInterfaceLinkStateRules(t *testing.T) {
	const up = iffUp | iffRunning
	link := func(index int32, name string, flags uint32, oper int) []byte {
		return nlTestLink(rtmNewLink, 0, 0, index, name, flags, oper)
	}
	addr := func(typ uint16, index int32, family, scope uint8, flags uint32, a []byte) []byte {
		return nlTestAddr(typ, 0, 0, index, family, 24, scope, flags, a)
	}
	for _, tc := range []struct {
		what string
		msgs [][]byte
		want string // "" for usable, else a part of the reason
	}{
		{"nothing known", nil, "no interface"},
		{"another interface", [][]byte{link(2, "eth0", up, operUp), addr(rtmNewAddr, 2, afInet, 0, 0, nlTestIPv4)}, "no interface"},
		{"up with an address", [][]byte{link(3, "wlan0", up, operUp), addr(rtmNewAddr, 3, afInet, 0, 0, nlTestIPv4)}, ""},
		{"the address before the link", [][]byte{addr(rtmNewAddr, 3, afInet6, 0, 0, nlTestIPv6), link(3, "wlan0", up, operUp)}, ""},
		{"operstate unknown (ppp, tun)", [][]byte{link(3, "wlan0", up, operUnknown), addr(rtmNewAddr, 3, afInet, 0, 0, nlTestIPv4)}, ""},
		{"no operstate", [][]byte{link(3, "wlan0", up, -1), addr(rtmNewAddr, 3, afInet, 0, 0, nlTestIPv4)}, ""},
		{"site scope", [][]byte{link(3, "wlan0", up, operUp), addr(rtmNewAddr, 3, afInet6, 200, 0, nlTestIPv6)}, ""},
		{"admin down", [][]byte{link(3, "wlan0", iffRunning, operUp), addr(rtmNewAddr, 3, afInet, 0, 0, nlTestIPv4)}, "administratively down"},
		{"no carrier", [][]byte{link(3, "wlan0", iffUp, 2), addr(rtmNewAddr, 3, afInet, 0, 0, nlTestIPv4)}, "no carrier"},
		{"dormant (WiFi not associated)", [][]byte{link(3, "wlan0", up, 5), addr(rtmNewAddr, 3, afInet, 0, 0, nlTestIPv4)}, "no carrier"},
		{"no address", [][]byte{link(3, "wlan0", up, operUp)}, "no address"},
		{"link-local only", [][]byte{link(3, "wlan0", up, operUp), addr(rtmNewAddr, 3, afInet6, rtScopeLink, 0, nlTestIPv6Link)}, "no address"},
		{"loopback scope only", [][]byte{link(3, "wlan0", up, operUp), addr(rtmNewAddr, 3, afInet, 254, 0, []byte{127, 0, 0, 1})}, "no address"},
		{"tentative", [][]byte{link(3, "wlan0", up, operUp), addr(rtmNewAddr, 3, afInet6, 0, ifaFTentative, nlTestIPv6)}, "no address"},
		{"tentative, then through DAD", [][]byte{link(3, "wlan0", up, operUp), addr(rtmNewAddr, 3, afInet6, 0, ifaFTentative, nlTestIPv6), addr(rtmNewAddr, 3, afInet6, 0, 0, nlTestIPv6)}, ""},
		{"through DAD, then failed", [][]byte{link(3, "wlan0", up, operUp), addr(rtmNewAddr, 3, afInet6, 0, 0, nlTestIPv6), addr(rtmNewAddr, 3, afInet6, 0, ifaFDadFailed, nlTestIPv6)}, "no address"},
		{"the last address deleted", [][]byte{link(3, "wlan0", up, operUp), addr(rtmNewAddr, 3, afInet, 0, 0, nlTestIPv4), addr(rtmDelAddr, 3, afInet, 0, 0, nlTestIPv4)}, "no address"},
		{"one of two addresses deleted", [][]byte{link(3, "wlan0", up, operUp), addr(rtmNewAddr, 3, afInet, 0, 0, nlTestIPv4), addr(rtmNewAddr, 3, afInet6, 0, 0, nlTestIPv6), addr(rtmDelAddr, 3, afInet, 0, 0, nlTestIPv4)}, ""},
		{"the address is another interface's", [][]byte{link(3, "wlan0", up, operUp), addr(rtmNewAddr, 4, afInet, 0, 0, nlTestIPv4)}, "no address"},
		{"removed", [][]byte{link(3, "wlan0", up, operUp), addr(rtmNewAddr, 3, afInet, 0, 0, nlTestIPv4), nlTestLink(rtmDelLink, 0, 0, 3, "wlan0", 0, -1)}, "no interface"},
		{"renamed", [][]byte{link(3, "wlan0", up, operUp), addr(rtmNewAddr, 3, afInet, 0, 0, nlTestIPv4), link(3, "wlan9", up, operUp)}, "no interface"},
		{"a change without the name", [][]byte{link(3, "wlan0", up, operUp), addr(rtmNewAddr, 3, afInet, 0, 0, nlTestIPv4), link(3, "", iffUp, 2)}, "no carrier"},
		{"removed and created again: the old addresses are gone", [][]byte{link(3, "wlan0", up, operUp), addr(rtmNewAddr, 3, afInet, 0, 0, nlTestIPv4), nlTestLink(rtmDelLink, 0, 0, 3, "wlan0", 0, -1), link(9, "wlan0", up, operUp)}, "no address"},
		{"created again with an address", [][]byte{link(3, "wlan0", up, operUp), nlTestLink(rtmDelLink, 0, 0, 3, "wlan0", 0, -1), link(9, "wlan0", up, operUp), addr(rtmNewAddr, 9, afInet, 0, 0, nlTestIPv4)}, ""},
	} {
		st := newIfaceState("wlan0")
		for _, b := range tc.msgs {
			msgs, err := parseNetlink(b, nil)
			if err != nil || len(msgs) != 1 {
				t.Fatalf("%s: test message does not parse: %v %+v", tc.what, err, msgs)
			}
			st.apply(&msgs[0])
		}
		got := st.down()
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: down() = %q, want %q", tc.what, got, tc.want)
		}
	}
}

// FuzzNetlink feeds arbitrary datagrams to the netlink parser and the interface state. It must never
// panic; every message it accepts re-encodes to one that decodes the same; the state it builds judges the
// interface usable only with the interface known, up, running and holding an address.
func FuzzNetlink(f *testing.F) {
	const up = iffUp | iffRunning
	f.Add(nlTestLink(rtmNewLink, 0, 1, 3, "wlan0", up, operUp))
	f.Add(append(nlTestLink(rtmNewLink, 0, 1, 3, "wlan0", up, operUp), nlTestAddr(rtmNewAddr, 0, 1, 3, afInet, 24, 0, 0, nlTestIPv4)...))
	f.Add(append(nlTestAddr(rtmNewAddr, 0, 0, 3, afInet6, 64, 0, ifaFTentative, nlTestIPv6), nlTestAddr(rtmDelAddr, 0, 0, 3, afInet6, 64, 0, 0, nlTestIPv6)...))
	f.Add(append(nlTestLink(rtmDelLink, 0, 0, 3, "wlan0", 0, -1), nlTestDone(1, 0)...))
	f.Add(nlTestError(2, -1))
	f.Add(nlTestMsg(nlmsgOverrun, 0, 0, nil))
	f.Add([]byte{16, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, err := parseNetlink(data, nil)
		if err != nil && !errors.Is(err, errNetlinkMalformed) {
			t.Fatalf("unexpected error %v", err)
		}
		if len(msgs) > len(data)/nlmsgHdrLen {
			t.Fatalf("%d messages from %d bytes", len(msgs), len(data))
		}
		st := newIfaceState("wlan0")
		for i := range msgs {
			m := msgs[i]
			st.apply(&m)
			var re []byte
			switch m.typ {
			case rtmNewLink, rtmDelLink:
				oper := -1
				if m.hasOper {
					oper = int(m.operstate)
				}
				re = nlTestLink(m.typ, m.flags, m.seq, m.index, m.name, m.ifFlags, oper)
			case rtmNewAddr, rtmDelAddr:
				re = nlTestAddr(m.typ, m.flags, m.seq, m.index, m.family, m.prefixLen, m.scope, m.addrFlags, m.addr[:m.addrLen])
			default:
				continue
			}
			back, err := parseNetlink(re, nil)
			if err != nil || len(back) != 1 || back[0] != m {
				t.Fatalf("%+v re-encodes to %x, which decodes to %+v, %v", m, re, back, err)
			}
		}
		if st.down() == "" && (st.index == 0 || st.ifFlags&up != up || len(st.usable[st.index]) == 0) {
			t.Fatalf("usable without the interface, its flags or an address: %+v", st)
		}
	})
}
