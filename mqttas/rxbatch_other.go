//go:build !linux

package mqttas

import (
	"errors"
	"net"
	"syscall"
)

// batchSocket returns nil: read batching relies on Linux's SO_RCVLOWAT wakeup semantics.
func batchSocket(net.Conn) syscall.RawConn { return nil }

func setRcvLowat(syscall.RawConn, int) error { return errors.ErrUnsupported }

func readNoWait(syscall.RawConn, []byte) (int, error) { return 0, nil }
