package bench

import (
	"context"
	"errors"
	"net"
	"sync"
)

// relay is the plainest user-space TCP proxy: for each connection one goroutine per direction reading
// into a buffer and writing it on. It is the floor of any proxy hop on the machine (one more pass through
// the kernel's loopback and a thread woken per direction), so the link's figures can be read against it:
// what the link adds beyond the relay is Toxiproxy's and the tap's own.
type relay struct {
	ln       net.Listener
	upstream string
	ctx      context.Context
	cancel   context.CancelFunc
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

// startRelay listens on a loopback port and relays every connection to upstream.
func startRelay(ctx context.Context, upstream string) (*relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	r.ctx, r.cancel = context.WithCancel(ctx)
	r.wg.Go(r.accept)
	return r, nil
}

func (r *relay) Addr() string { return r.ln.Addr().String() }

func (r *relay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Go(func() { r.serve(c) })
	}
}

// track registers c so Close can end it; false once the relay is closing.
func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx.Err() != nil {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *relay) serve(down net.Conn) {
	var d net.Dialer
	up, err := d.DialContext(r.ctx, "tcp", r.upstream)
	if err != nil {
		_ = down.Close()
		return
	}
	if !r.track(down) || !r.track(up) {
		_ = down.Close()
		_ = up.Close()
		return
	}
	var pipes sync.WaitGroup
	pipes.Go(func() { pipe(up, down) })
	pipes.Go(func() { pipe(down, up) })
	pipes.Wait()
	r.mu.Lock()
	delete(r.conns, down)
	delete(r.conns, up)
	r.mu.Unlock()
}

// pipe copies src to dst through a buffer of its own (plain Read and Write: no splice, as a proxy that
// looks at the bytes must) until either side ends, then closes both so the other direction ends too.
func pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
}

// Close stops accepting, ends every relayed connection and waits for the relay's goroutines.
func (r *relay) Close() error {
	r.cancel()
	err := r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
