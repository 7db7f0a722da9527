package procclient

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mqttas/mqttas-go/harness/clients"
)

// Sentinels for errors.Is. A *DriverError wraps exactly one of ErrProtocol,
// ErrDied and ErrHung, and matches ErrDriver and clients.ErrClientFailed too.
var (
	// ErrDriver matches every *DriverError: the driver, not the MQTT
	// library behind it, failed.
	ErrDriver = errors.New("procclient: driver failed")
	// ErrProtocol: the driver wrote a line that is not a protocol event, or
	// an event out of protocol (a result nobody asked for, a second answer).
	ErrProtocol = errors.New("procclient: driver broke the protocol")
	// ErrDied: the driver exited, or closed its stdout, before Close.
	ErrDied = errors.New("procclient: driver exited")
	// ErrHung: the driver stopped answering (a ping, hello or close) or
	// stopped reading its stdin, within Config.HangTimeout.
	ErrHung = errors.New("procclient: driver stopped answering")
	// ErrKilled: the harness killed the driver (Kill) while the request was
	// pending; its outcome is unknown.
	ErrKilled = errors.New("procclient: driver killed")
)

// DriverError is a failure of the driver process, with what is known about
// it. Once a driver has failed, every pending and later call returns the same
// *DriverError, and Close returns it too.
type DriverError struct {
	Driver string // Config.Name
	// Line is the 1-based number of the stdout line at fault: the malformed
	// or out-of-protocol line, or for ErrDied and ErrHung the last line read
	// (0 when the driver wrote none).
	Line int
	Text string // that line, cut to maxTextLen bytes
	// Stderr is the tail of what the driver wrote to its stderr.
	Stderr string
	Err    error // wraps ErrProtocol, ErrDied or ErrHung
}

const maxTextLen = 240

func (e *DriverError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "procclient: driver %s", e.Driver)
	if e.Line > 0 {
		fmt.Fprintf(&b, ": stdout line %d %q", e.Line, e.Text)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		fmt.Fprintf(&b, "\n--- stderr of driver %s (tail) ---\n%s", e.Driver, s)
	} else {
		b.WriteString(" (stderr empty)")
	}
	return b.String()
}

func (e *DriverError) Unwrap() error { return e.Err }

// Is makes every *DriverError match ErrDriver and clients.ErrClientFailed.
func (e *DriverError) Is(target error) bool {
	return target == ErrDriver || target == clients.ErrClientFailed
}

// RemoteError is an error the driver reported for one request: the MQTT
// library's own failure, as the driver relays it.
type RemoteError struct {
	Driver string
	Cmd    string // the request: connect, publish, ...
	Msg    string // the driver's error text
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("procclient: driver %s: %s: %s", e.Driver, e.Cmd, e.Msg)
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
