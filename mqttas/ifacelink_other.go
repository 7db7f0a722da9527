//go:build !linux

package mqttas

import (
	"errors"
	"fmt"
	"runtime"
)

// dialNetlink fails: InterfaceLink reads Linux's rtnetlink, which other systems do not have.
func dialNetlink() (nlConn, error) {
	return nil, fmt.Errorf("InterfaceLink watches interfaces through Linux's rtnetlink, not available on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func nlErrno(e int32) error { return fmt.Errorf("errno %d", -e) }
