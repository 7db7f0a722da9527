//go:build !linux

package mqttas

import (
	"errors"
	"net"
	"syscall"
)

// kernelSocket returns nil: read batching relies on Linux's SO_RCVLOWAT wakeup semantics, and waiting
// without a buffer on MSG_PEEK.
func kernelSocket(net.Conn) syscall.RawConn { return nil }

func setRcvLowat(syscall.RawConn, int) error { return errors.ErrUnsupported }

func readNoWait(syscall.RawConn, []byte) (int, error) { return 0, nil }

func waitReadable(syscall.RawConn) error { return nil }

// queueSocket returns nil: counting the bytes waiting in a socket (SIOCINQ) is implemented for Linux only.
func queueSocket(net.Conn) syscall.RawConn { return nil }

func socketQueued(syscall.RawConn) (int, bool) { return 0, false }
