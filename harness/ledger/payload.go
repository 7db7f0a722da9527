package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"
)

// ID names one message: the Seq-th message of Publisher on Topic. Publishers
// number their messages in publish order, per topic or across topics; the
// ordering check relies on seq increasing with publish order per (publisher,
// topic).
type ID struct {
	Publisher string `json:"publisher"`
	Topic     string `json:"topic"`
	Seq       uint64 `json:"seq"`
}

// String renders the ID as "publisher topic#seq".
func (id ID) String() string {
	return id.Publisher + " " + id.Topic + "#" + strconv.FormatUint(id.Seq, 10)
}

// Errors returned by Decode, usable with errors.Is.
var (
	// ErrForeign means the payload was not written by Encode.
	ErrForeign = errors.New("ledger: not a ledger payload")
	// ErrCorrupt means the payload looks like a ledger payload but does not
	// parse or fails its checksum: truncated, altered or mixed up.
	ErrCorrupt = errors.New("ledger: corrupt ledger payload")
)

// The payload format is text, so it stays readable in mosquitto_sub and broker
// logs:
//
//	M1|<publisher>|<topic>|<seq>|<send unix ns>|<padding dots>|<crc32 hex>
//
// Publisher and topic are percent-escaped for '|', '%' and control bytes.
// The CRC-32 (IEEE) covers every byte before the last '|', padding included,
// so a truncated or altered payload is reported as corrupt instead of being
// mistaken for another message.
const (
	magic     = "M1|"
	crcSuffix = 9 // "|" + 8 hex digits
)

// Encode returns the payload for id sent at sent.
func Encode(id ID, sent time.Time) []byte {
	return AppendEncode(nil, id, sent, 0)
}

// AppendEncode appends the payload for id sent at sent to dst and returns the
// extended slice. If size is larger than the encoded length, the payload is
// padded to exactly size bytes, so benchmarks can choose a payload size.
func AppendEncode(dst []byte, id ID, sent time.Time, size int) []byte {
	start := len(dst)
	dst = append(dst, magic...)
	dst = appendEscaped(dst, id.Publisher)
	dst = append(dst, '|')
	dst = appendEscaped(dst, id.Topic)
	dst = append(dst, '|')
	dst = strconv.AppendUint(dst, id.Seq, 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, sent.UnixNano(), 10)
	dst = append(dst, '|')
	for pad := size - (len(dst) - start) - crcSuffix; pad > 0; pad-- {
		dst = append(dst, '.')
	}
	sum := crc32.ChecksumIEEE(dst[start:])
	dst = append(dst, '|')
	const hexdigits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		dst = append(dst, hexdigits[(sum>>uint(shift))&0xf])
	}
	return dst
}

// Decode parses a payload written by Encode. It returns an error wrapping
// ErrForeign or ErrCorrupt if b is not a valid ledger payload.
func Decode(b []byte) (id ID, sent time.Time, err error) {
	pub, topic, seq, ns, err := decode(b)
	if err != nil {
		return ID{}, time.Time{}, err
	}
	return ID{Publisher: unescape(pub), Topic: unescape(topic), Seq: seq}, time.Unix(0, ns), nil
}

// decode parses b without allocating; pub and topic are still escaped and
// alias b.
func decode(b []byte) (pub, topic []byte, seq uint64, ns int64, err error) {
	if len(b) < len(magic) || string(b[:len(magic)]) != magic {
		return nil, nil, 0, 0, ErrForeign
	}
	if len(b) < len(magic)+crcSuffix || b[len(b)-crcSuffix] != '|' {
		return nil, nil, 0, 0, fmt.Errorf("%w: no checksum", ErrCorrupt)
	}
	body := b[:len(b)-crcSuffix]
	want, ok := parseHex32(b[len(b)-crcSuffix+1:])
	if !ok || crc32.ChecksumIEEE(body) != want {
		return nil, nil, 0, 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	var fields [5][]byte
	rest := body[len(magic):]
	for i := range fields {
		j := bytes.IndexByte(rest, '|')
		if i == len(fields)-1 {
			if j >= 0 {
				return nil, nil, 0, 0, fmt.Errorf("%w: too many fields", ErrCorrupt)
			}
			fields[i] = rest
			break
		}
		if j < 0 {
			return nil, nil, 0, 0, fmt.Errorf("%w: too few fields", ErrCorrupt)
		}
		fields[i], rest = rest[:j], rest[j+1:]
	}
	for _, c := range fields[4] {
		if c != '.' {
			return nil, nil, 0, 0, fmt.Errorf("%w: bad padding", ErrCorrupt)
		}
	}
	seq, ok = parseUint(fields[2])
	if !ok {
		return nil, nil, 0, 0, fmt.Errorf("%w: bad seq", ErrCorrupt)
	}
	neg := len(fields[3]) > 0 && fields[3][0] == '-'
	digits := fields[3]
	if neg {
		digits = digits[1:]
	}
	u, ok := parseUint(digits)
	if !ok || u > 1<<63 || (u == 1<<63 && !neg) {
		return nil, nil, 0, 0, fmt.Errorf("%w: bad send time", ErrCorrupt)
	}
	ns = int64(u)
	if neg {
		ns = -ns
	}
	return fields[0], fields[1], seq, ns, nil
}

func needsEscape(c byte) bool { return c == '|' || c == '%' || c < 0x20 || c == 0x7f }

func appendEscaped(dst []byte, s string) []byte {
	const hexdigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			dst = append(dst, '%', hexdigits[c>>4], hexdigits[c&0xf])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// unescape reverses appendEscaped; the checksum has already vouched for the
// bytes, so a stray '%' is kept as is rather than rejected.
func unescape(b []byte) string {
	if bytes.IndexByte(b, '%') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '%' && i+2 < len(b) {
			if hi, ok := unhex(b[i+1]); ok {
				if lo, ok := unhex(b[i+2]); ok {
					out = append(out, hi<<4|lo)
					i += 2
					continue
				}
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}

func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func parseHex32(b []byte) (uint32, bool) {
	if len(b) != 8 {
		return 0, false
	}
	var n uint32
	for _, c := range b {
		d, ok := unhex(c)
		if !ok {
			return 0, false
		}
		n = n<<4 | uint32(d)
	}
	return n, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
