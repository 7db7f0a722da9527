//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package mqttas

import (
	"errors"
	"io"
	"os"
	"strings"
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

// diskFull reports whether err means the device is full, by its text: "no space left on device" (Plan 9,
// WASI), "There is not enough space on the disk" (Windows ERROR_DISK_FULL).
func diskFull(err error) bool { return strings.Contains(strings.ToLower(err.Error()), "space") }
