package mqttas

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// InterfaceLink is a Link that watches a network interface of the machine (a WiFi station such as wlan0,
// an LTE modem's wwan0 or ppp0, an Ethernet port) through Linux's rtnetlink, so that a client declares an
// outage the moment the interface loses its carrier or its last address, instead of after 4 ping intervals
// of silence. It only watches: the operating system (wpa_supplicant, NetworkManager, ModemManager, a DHCP
// client) joins the network and owns the interface, and InterfaceLink never changes it.
//
// How it maps onto Link:
//   - Connect opens a netlink socket subscribed to link and address changes (RTM_NEWLINK, RTM_DELLINK,
//     RTM_NEWADDR, RTM_DELADDR), reads the current state, and returns once the interface is usable, or when
//     ctx ends. Usable means: it exists, is up, has a carrier (IFF_RUNNING, which the kernel derives from
//     the operational state) and has an address beyond the link (not link-local, not loopback, not an IPv6
//     address still in duplicate address detection). An interface that does not exist yet (ppp0 before
//     the modem dials) is waited for.
//   - Lost is closed as soon as, after Connect, the interface stops being usable: set down, its carrier
//     lost, renamed, removed, or its last usable address gone. The client ends the session at once.
//   - Disconnect stops the watch and closes the socket; it does not take the interface down. The client
//     disconnects and connects its Link after every outage, so each connection starts a fresh watch.
//
// Client.Close calls Disconnect, so a client with an InterfaceLink leaves no goroutine or socket behind.
// Create it with NewInterfaceLink, and use one per Client. It needs Linux; elsewhere NewInterfaceLink returns an error that
// matches errors.ErrUnsupported.
type InterfaceLink struct {
	name   string
	dial   func() (nlConn, error)
	downCh chan struct{} // closed: what Lost returns while the link is down

	mu sync.Mutex
	w  *ifaceWatch // the current watch; nil while disconnected
}

// nlConn is a netlink route socket subscribed to link and address changes.
type nlConn interface {
	// recv reads one datagram from the kernel. An error matching errNetlinkOverrun means messages were
	// lost (the socket's buffer overran, or a datagram was larger than b): the state must be read again.
	recv(b []byte) (int, error)
	// send sends a request to the kernel.
	send(b []byte) error
	// close closes the socket; a recv in progress returns an error.
	close() error
}

// errNetlinkOverrun: the kernel dropped messages for this socket.
var errNetlinkOverrun = errors.New("netlink messages lost")

// NewInterfaceLink returns a Link that watches the network interface called name (see InterfaceLink). The
// interface need not exist yet. It checks the name and that netlink can be used, and starts nothing: a
// name the kernel cannot have is an error matching ErrInvalidConfig, and a system without netlink one
// matching errors.ErrUnsupported (or the socket's own error).
func NewInterfaceLink(name string) (*InterfaceLink, error) {
	if err := checkIfName(name); err != nil {
		return nil, fmt.Errorf("%w: interface name %q: %v", ErrInvalidConfig, name, err)
	}
	conn, err := dialNetlink()
	if err != nil {
		return nil, fmt.Errorf("mqttas: watching interface %s: %w", name, err)
	}
	_ = conn.close()
	return newInterfaceLink(name, dialNetlink), nil
}

func newInterfaceLink(name string, dial func() (nlConn, error)) *InterfaceLink {
	down := make(chan struct{})
	close(down)
	return &InterfaceLink{name: name, dial: dial, downCh: down}
}

// Name returns the name of the interface the link watches.
func (l *InterfaceLink) Name() string { return l.name }

// Connect starts watching the interface and returns when it is usable, with nil; when ctx ends, with ctx's
// error; or when watching fails (the netlink socket, a dump the kernel refuses), with that error. In the
// two error cases the watch is stopped. While a watch that has not lost the interface runs, Connect waits
// on it instead of starting another.
func (l *InterfaceLink) Connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	w := l.w
	if w == nil || w.ended() {
		// An ended watch has closed its socket and is returning on its own.
		conn, err := l.dial()
		if err != nil {
			l.mu.Unlock()
			return fmt.Errorf("mqttas: watching interface %s: %w", l.name, err)
		}
		w = newIfaceWatch(conn)
		l.w = w
		go w.run(l.name)
	}
	l.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-w.lost:
		l.drop(w)
		return w.err
	case <-ctx.Done():
		l.drop(w)
		return ctx.Err()
	}
}

// Disconnect stops the watch, if one runs, and returns once its goroutine has returned and its socket is
// closed. It leaves the interface as it is. It may be called at any time, also while a Connect waits
// (which then returns an error).
func (l *InterfaceLink) Disconnect() error {
	l.mu.Lock()
	w := l.w
	l.w = nil
	l.mu.Unlock()
	if w != nil {
		w.stop()
	}
	return nil
}

// Lost returns a channel that is closed when the interface stops being usable; while the link is down (not
// connected, or Connect still waiting) it returns a closed channel.
func (l *InterfaceLink) Lost() <-chan struct{} {
	l.mu.Lock()
	w := l.w
	l.mu.Unlock()
	if w == nil {
		return l.downCh
	}
	select {
	case <-w.ready:
		return w.lost
	default:
		return l.downCh
	}
}

// drop stops w and forgets it, unless another watch has replaced it.
func (l *InterfaceLink) drop(w *ifaceWatch) {
	l.mu.Lock()
	if l.w == w {
		l.w = nil
	}
	l.mu.Unlock()
	w.stop()
}

// checkIfName accepts the names Linux's dev_valid_name accepts.
func checkIfName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) > ifNameMax:
		return fmt.Errorf("%d bytes, over the kernel's %d", len(name), ifNameMax)
	case name == "." || name == "..":
		return errors.New("not a name")
	case strings.ContainsAny(name, "/:"):
		return errors.New("holds '/' or ':'")
	}
	for i := range len(name) {
		if b := name[i]; b <= ' ' || b == 0x7f {
			return fmt.Errorf("holds byte %#x", b)
		}
	}
	return nil
}

// ifaceWatch is one watch of an interface: a netlink socket and the goroutine that reads it.
type ifaceWatch struct {
	conn      nlConn
	closeConn func()
	ready     chan struct{} // closed once the interface is usable
	lost      chan struct{} // closed when the watch ends: the interface lost after ready, an error, or stop
	done      chan struct{} // closed when run has returned
	err       error         // why the watch ended; written before lost is closed

	mu      sync.Mutex
	stopped bool
}

var errWatchStopped = errors.New("mqttas: interface watch stopped by Disconnect")

func newIfaceWatch(conn nlConn) *ifaceWatch {
	return &ifaceWatch{
		conn:      conn,
		closeConn: sync.OnceFunc(func() { _ = conn.close() }),
		ready:     make(chan struct{}),
		lost:      make(chan struct{}),
		done:      make(chan struct{}),
	}
}

func (w *ifaceWatch) ended() bool {
	select {
	case <-w.lost:
		return true
	default:
		return false
	}
}

// stop closes the socket, which ends run, and waits for run to return.
func (w *ifaceWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.closeConn()
	<-w.done
}

func (w *ifaceWatch) run(name string) {
	defer close(w.done)
	err := w.watch(name)
	w.closeConn()
	w.mu.Lock()
	if w.stopped {
		err = errWatchStopped
	}
	w.mu.Unlock()
	w.err = err
	close(w.lost)
}

// watch reads the interface's state (a dump of the links, then of the addresses) and the changes the
// kernel multicasts, until the interface, once usable, is not; or until an error. When the kernel drops
// messages (the socket's buffer overran) the state is read afresh; the interface is judged only on a
// complete state, never in the middle of a dump.
func (w *ifaceWatch) watch(name string) error {
	st := newIfaceState(name)
	buf := make([]byte, 64<<10) // over the kernel's largest netlink datagram (32 KiB dumps)
	var (
		msgs    []nlMsg
		seq     uint32
		dumping uint32   // the sequence number of the dump in progress; 0 for none
		intr    bool     // the dump in progress was interrupted by a change: read it again
		pending []uint16 // dumps still to request
		ready   bool
	)
	next := func() error {
		if dumping != 0 || len(pending) == 0 {
			return nil
		}
		seq++
		dumping, intr = seq, false
		typ := pending[0]
		pending = pending[1:]
		if err := w.conn.send(appendDumpRequest(nil, typ, seq)); err != nil {
			return fmt.Errorf("mqttas: interface %s: requesting its state: %w", name, err)
		}
		return nil
	}
	resync := func() error {
		st = newIfaceState(name)
		pending = []uint16{rtmGetLink, rtmGetAddr}
		return next() // after the dump in progress, if any, ends
	}
	if err := resync(); err != nil {
		return err
	}
	for {
		n, err := w.conn.recv(buf)
		if errors.Is(err, errNetlinkOverrun) {
			if err := resync(); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("mqttas: interface %s: reading netlink: %w", name, err)
		}
		msgs, err = parseNetlink(buf[:n], msgs[:0])
		if err != nil {
			// The kernel does not send these; a fresh watch (the client's next Connect) starts clean.
			return fmt.Errorf("mqttas: interface %s: %w", name, err)
		}
		for i := range msgs {
			m := &msgs[i]
			if dumping != 0 && m.seq == dumping && m.flags&nlmFDumpIntr != 0 {
				intr = true
			}
			switch m.typ {
			case nlmsgDone:
				if m.seq != dumping {
					continue
				}
				if m.errno < 0 {
					return fmt.Errorf("mqttas: interface %s: the kernel ended a dump with %w", name, nlErrno(m.errno))
				}
				dumping = 0
				if intr {
					err = resync()
				} else {
					err = next()
				}
				if err != nil {
					return err
				}
			case nlmsgError:
				if m.seq == dumping && m.errno < 0 {
					return fmt.Errorf("mqttas: interface %s: the kernel refused a dump: %w", name, nlErrno(m.errno))
				}
			case nlmsgOverrun:
				if err := resync(); err != nil {
					return err
				}
			default:
				st.apply(m)
			}
		}
		if dumping != 0 || len(pending) != 0 {
			continue
		}
		why := st.down()
		switch {
		case !ready && why == "":
			ready = true
			close(w.ready)
		case ready && why != "":
			return fmt.Errorf("mqttas: interface lost: %s", why)
		}
	}
}
