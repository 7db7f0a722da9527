package mqttas

import (
	"errors"
	"net"
	"syscall"
	"unsafe"
)

// kernelSocket returns the kernel socket under conn when it is a plain TCP connection (not TLS, whose
// records a low-water mark would count).
func kernelSocket(conn net.Conn) syscall.RawConn {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

func setRcvLowat(rc syscall.RawConn, n int) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
	}); err != nil {
		return err
	}
	return serr
}

// readNoWait reads what is waiting on the socket into p without waiting: 0 bytes and no error when
// nothing is (or at the end of the stream, which the caller's next ordinary read reports).
func readNoWait(rc syscall.RawConn, p []byte) (int, error) {
	var n int
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = syscall.Read(int(fd), p)
			if !errors.Is(rerr, syscall.EINTR) {
				return true // never wait here: the caller's ordinary read does that
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errors.Is(rerr, syscall.EAGAIN):
		return 0, nil
	case rerr != nil:
		return 0, rerr
	}
	return max(n, 0), nil
}

// waitReadable waits until the socket has bytes to read (or an error or end of stream to report),
// without reading them. It runs on the reader's stack while an idle client waits, so it keeps that
// stack small: a bare recvfrom(MSG_PEEK), no Sockaddr decoding.
func waitReadable(rc syscall.RawConn) error {
	return rc.Read(peekReadable)
}

func peekReadable(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e != syscall.EINTR {
			return e != syscall.EAGAIN
		}
	}
}

// queueSocket returns the kernel socket under conn, looking through TLS and other wrappers that expose
// their connection (NetConn), so that the bytes waiting in it can be counted; nil where there is none.
func queueSocket(conn net.Conn) syscall.RawConn {
	for {
		u, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		conn = u.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	if _, ok := socketQueued(rc); !ok {
		return nil
	}
	return rc
}

// socketQueued returns how many received bytes wait in the socket, unread (SIOCINQ).
func socketQueued(rc syscall.RawConn) (int, bool) {
	var n int32
	var e syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, e = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil || e != 0 {
		return 0, false
	}
	return int(n), true
}
