package mqttas

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// nlSocket is a NETLINK_ROUTE socket in non-blocking mode, read through the runtime's poller, so that
// closing it ends a read in progress.
type nlSocket struct {
	f  *os.File
	rc syscall.RawConn
}

// dialNetlink opens a route socket subscribed to link and IPv4 and IPv6 address changes.
func dialNetlink() (nlConn, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, syscall.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	// A larger buffer makes an overrun (and a fresh read of the state) rarer when many interfaces change
	// at once; the kernel caps it at net.core.rmem_max, which is fine.
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1<<20)
	sa := &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK, Groups: rtmgrpLink | rtmgrpIPv4IfAddr | rtmgrpIPv6IfAddr}
	if err := syscall.Bind(fd, sa); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	f := os.NewFile(uintptr(fd), "netlink-route")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	return &nlSocket{f: f, rc: rc}, nil
}

func (s *nlSocket) recv(b []byte) (int, error) {
	for {
		var (
			n    int
			from syscall.Sockaddr
			rerr error
		)
		err := s.rc.Read(func(fd uintptr) bool {
			// MSG_TRUNC makes a datagram larger than b report its whole length, so a cut one is noticed.
			n, from, rerr = syscall.Recvfrom(int(fd), b, syscall.MSG_TRUNC)
			return rerr != syscall.EAGAIN && rerr != syscall.EINTR
		})
		switch {
		case err != nil:
			return 0, err
		case errors.Is(rerr, syscall.ENOBUFS):
			return 0, fmt.Errorf("%w: %w", errNetlinkOverrun, rerr)
		case rerr != nil:
			return 0, rerr
		case n > len(b):
			return 0, fmt.Errorf("%w: a %d-byte datagram cut to %d", errNetlinkOverrun, n, len(b))
		}
		// Only the kernel (port 0) speaks for the interfaces; anything else is not read.
		if nl, ok := from.(*syscall.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue
		}
		return n, nil
	}
}

func (s *nlSocket) send(b []byte) error {
	var serr error
	err := s.rc.Write(func(fd uintptr) bool {
		serr = syscall.Sendto(int(fd), b, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK})
		return serr != syscall.EAGAIN && serr != syscall.EINTR
	})
	if err != nil {
		return err
	}
	return serr
}

func (s *nlSocket) close() error { return s.f.Close() }

func nlErrno(e int32) error { return syscall.Errno(-e) }
