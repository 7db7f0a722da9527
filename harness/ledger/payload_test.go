package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
	"time"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	sent := time.Unix(1_700_000_000, 123456789)
	cases := []ID{
		{Publisher: "p1", Topic: "soak/a", Seq: 0},
		{Publisher: "pub|with%odd\nbytes", Topic: "t/|/%/x", Seq: 1<<64 - 1},
		{Publisher: "", Topic: "", Seq: 42},
		{Publisher: "ünï", Topic: "höhe/+/温度", Seq: 7},
	}
	for _, id := range cases {
		b := Encode(id, sent)
		got, gotSent, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(%q)) = %v", id, err)
		}
		if got != id || !gotSent.Equal(sent) {
			t.Fatalf("round trip of %#v at %v gave %#v at %v", id, sent, got, gotSent)
		}
	}
}

func TestAppendEncodePadsToSize(t *testing.T) {
	id := ID{Publisher: "p", Topic: "t", Seq: 3}
	prefix := []byte("keep")
	for _, size := range []int{0, 10, 64, 1000} {
		b := AppendEncode(append([]byte(nil), prefix...), id, time.Unix(0, 5), size)
		if !bytes.HasPrefix(b, prefix) {
			t.Fatalf("size %d: prefix clobbered: %q", size, b)
		}
		payload := b[len(prefix):]
		if min := len(Encode(id, time.Unix(0, 5))); size > min && len(payload) != size {
			t.Fatalf("size %d: got %d bytes", size, len(payload))
		}
		if got, _, err := Decode(payload); err != nil || got != id {
			t.Fatalf("size %d: Decode = %v, %v", size, got, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good := Encode(ID{Publisher: "p", Topic: "t", Seq: 9}, time.Unix(0, 1))
	flipped := bytes.Clone(good)
	flipped[4] ^= 1 // inside the publisher name
	cases := []struct {
		name    string
		payload []byte
		want    error
	}{
		{"empty", nil, ErrForeign},
		{"text", []byte("hello"), ErrForeign},
		{"truncated", good[:len(good)-3], ErrCorrupt},
		{"altered", flipped, ErrCorrupt},
		{"magic only", []byte(magic), ErrCorrupt},
		{"missing fields", withCRC("M1|p|t|1|"), ErrCorrupt},
		{"bad seq", withCRC("M1|p|t|x1|5|"), ErrCorrupt},
		{"bad pad", withCRC("M1|p|t|1|5|ab"), ErrCorrupt},
		{"extra field", withCRC("M1|p|t|1|5||x"), ErrCorrupt},
		{"seq overflow", withCRC("M1|p|t|18446744073709551616|5|"), ErrCorrupt},
	}
	for _, c := range cases {
		_, _, err := Decode(c.payload)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Decode(%q) = %v, want %v", c.name, c.payload, err, c.want)
		}
	}
}

// withCRC adds a valid checksum to an arbitrary body, to reach the parser's
// checks behind the checksum.
func withCRC(body string) []byte {
	return fmt.Appendf([]byte(body), "|%08x", crc32.ChecksumIEEE([]byte(body)))
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(ID{Publisher: "p", Topic: "a/b", Seq: 1}, time.Unix(0, 99)))
	f.Add([]byte("M1|p|t|1|5||00000000"))
	f.Add([]byte("hello"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, sent, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to a payload naming the same message.
		id2, sent2, err := Decode(Encode(id, sent))
		if err != nil || id2 != id || !sent2.Equal(sent) {
			t.Fatalf("re-encode of %#v: %#v %v", id, id2, err)
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add("p", "a/b", uint64(1), int64(5), 0)
	f.Add("|%", "\x00/\x7f", uint64(1<<63), int64(-7), 200)
	f.Fuzz(func(t *testing.T, pub, topic string, seq uint64, ns int64, size int) {
		id := ID{Publisher: pub, Topic: topic, Seq: seq}
		got, sent, err := Decode(AppendEncode(nil, id, time.Unix(0, ns), size%4096))
		if err != nil || got != id || sent.UnixNano() != ns {
			t.Fatalf("round trip of %#v at %d: %#v at %d, %v", id, ns, got, sent.UnixNano(), err)
		}
	})
}
