//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package mqttas

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

var (
	errNotDir = syscall.ENOTDIR
	errIsDir  = syscall.EISDIR
)

// lockDir takes an exclusive flock on path (created if needed). flock locks belong to the open file, so a
// second FileStore on the same directory fails, in this process or another, and the lock goes with the
// process however it ends.
func lockDir(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mqttas: store lock: %w", err)
	}
	raw, err := f.SyscallConn()
	if err == nil {
		cerr := raw.Control(func(fd uintptr) {
			for {
				err = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
				if err != syscall.EINTR {
					return
				}
			}
		})
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by another FileStore (this process or another)", ErrStoreLocked, path)
		}
		return nil, fmt.Errorf("mqttas: store lock %s: %w", path, err)
	}
	return f, nil
}

// diskFull reports whether err means the device or the quota is full.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
