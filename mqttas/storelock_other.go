//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package mqttas

import (
	"errors"
	"io"
	"os"
	"syscall"
)

var (
	errNotDir = errors.New("not a directory")
	errIsDir  = errors.New("is a directory")
)

// lockDir only creates the lock file: on this system FileStore does not lock its directory, so the
// application must not open one directory twice.
func lockDir(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// diskFull reports whether err means the device is full.
func diskFull(err error) bool { return errors.Is(err, syscall.ENOSPC) }
