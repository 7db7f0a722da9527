package mqttframe

import (
	"bytes"
	"reflect"
	"testing"
)

// chunked cuts data into chunks whose sizes come from sizes (cycled; 0 → 1).
func chunked(data, sizes []byte) [][]byte {
	if len(sizes) == 0 {
		return [][]byte{data}
	}
	var chunks [][]byte
	for i, k := 0, 0; i < len(data); k++ {
		n := max(1, int(sizes[k%len(sizes)]))
		chunks = append(chunks, data[i:min(i+n, len(data))])
		i += n
	}
	return chunks
}

// FuzzFramer checks, for any bytes and any chunking, that the framer never
// panics, forwards the stream unchanged when it drops nothing, sees the same
// packets however the stream is cut, and that dropping packets leaves a
// stream that frames into exactly the packets it kept.
func FuzzFramer(f *testing.F) {
	stream, _ := session()
	f.Add(stream, []byte{1})
	f.Add(stream, []byte{3, 7, 1, 200})
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}, []byte{2})
	f.Add([]byte{0xc0, 0x00, 0x00, 0x01}, []byte{})
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		whole, wantRecs, _, wf := run([][]byte{data}, 0, nil)
		if !bytes.Equal(whole, data) {
			t.Fatal("forwarding everything changed the stream")
		}
		out, recs, _, cf := run(chunked(data, sizes), 0, nil)
		if !bytes.Equal(out, data) {
			t.Fatal("chunked: forwarding everything changed the stream")
		}
		if !reflect.DeepEqual(recs, wantRecs) || (wf.Err() == nil) != (cf.Err() == nil) {
			t.Fatalf("chunking changed what was seen:\n got %+v (err %v)\nwant %+v (err %v)", recs, cf.Err(), wantRecs, wf.Err())
		}

		// Drop one packet type, chosen by the input.
		victim := PUBLISH
		if len(sizes) > 0 {
			victim = Type(sizes[0]%14 + 1)
		}
		dropped, recs, _, df := run(chunked(data, sizes), 0, dropType(victim))
		if df.Err() != nil {
			return // unframed bytes pass through; nothing more to check
		}
		var kept []rec
		for _, r := range recs {
			if r.Type != victim {
				kept = append(kept, r)
			}
		}
		_, again, _, af := run([][]byte{dropped}, 0, nil)
		if af.Err() != nil || !reflect.DeepEqual(again, kept) {
			t.Fatalf("after dropping %v the stream frames differently (err %v):\n got %+v\nwant %+v", victim, af.Err(), again, kept)
		}
	})
}
