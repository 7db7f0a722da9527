package mqttas

import (
	"bytes"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestRxBufferQuietConnectionWaitsWithoutABuffer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("waiting without a buffer is Linux-only")
	}
	c, srv := tcpPair(t)
	rx := &rxConn{conn: c, rt: 5 * time.Second, sock: kernelSocket(c)}
	b := newRxBuffer(rx)
	var borrowedAt atomic.Int64
	b.onBorrow = func() { borrowedAt.Store(time.Now().UnixNano()) }
	var sentAt atomic.Int64
	go func() {
		time.Sleep(100 * time.Millisecond)
		sentAt.Store(time.Now().UnixNano())
		srv.Write([]byte{0xd0, 0}) // PINGRESP
	}()
	if err := b.waitQuiet(); err != nil {
		t.Fatal(err)
	}
	p, _, err := readPacket(b, 16, nil)
	if err != nil || p.typ != typePingresp {
		t.Fatalf("read %v, %v; want a PINGRESP", p, err)
	}
	if borrowedAt.Load() < sentAt.Load() {
		t.Errorf("the read buffer was borrowed %v before the bytes were sent: a quiet connection held it while waiting",
			time.Duration(sentAt.Load()-borrowedAt.Load()))
	}
	b.release()
	if b.buf != nil {
		t.Error("release kept the buffer although nothing was buffered")
	}
}

func TestRxBufferReadsWhatBufioWould(t *testing.T) {
	// Packets of every size class (smaller than the buffer, straddling it, larger than it) arrive in
	// arbitrary chunks with pauses, some long enough to make the connection quiet; each is read whole.
	c, srv := tcpPair(t)
	rx := &rxConn{conn: c, rt: 5 * time.Second, sock: kernelSocket(c)}
	b := newRxBuffer(rx)
	var want [][]byte
	var stream []byte
	for i := range 60 {
		size := []int{0, 1, 60, ioBufSize - 20, ioBufSize + 7, 3 * ioBufSize}[i%6]
		payload := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		want = append(want, payload)
		stream = append(stream, fbPublish(fmt.Sprintf("t/%d", i), payload, 0, false, false, 0)...)
	}
	go func() {
		for off, i := 0, 0; off < len(stream); i++ {
			n := min([]int{1, 7, 100, 1500, 5000}[i%5], len(stream)-off)
			if _, err := srv.Write(stream[off : off+n]); err != nil {
				return
			}
			off += n
			if i%9 == 0 {
				time.Sleep(15 * time.Millisecond) // longer than quietAfter
			}
		}
	}()
	for i, w := range want {
		if b.Buffered() == 0 {
			b.release()
			if err := b.waitQuiet(); err != nil {
				t.Fatal(err)
			}
		}
		p, _, err := readPacket(b, 1<<20, nil)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if p.topic != fmt.Sprintf("t/%d", i) || !bytes.Equal(p.body, w) {
			t.Fatalf("packet %d: topic %q, %d bytes; want t/%d, %d bytes", i, p.topic, len(p.body), i, len(w))
		}
	}
}
