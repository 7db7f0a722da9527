package mqttas

import (
	"errors"
	"fmt"
	"strings"
)

// Store keeps the qos 1 publications of PublishDurable until the broker acknowledges them, so that they
// survive a crash or a power cut of the process: a Client with Config.Store re-sends, at New and Connect,
// every stored publication not yet acknowledged. FileStore is one on a local disk. A Store serves one Client
// at a time; the application opens it before New and closes it after the Client's Close.
type Store interface {
	// Append stores m (its Topic, Payload and Retain) and returns once it is durable: once it would survive a
	// crash of the process or of the machine. Sequence numbers grow with every Append.
	Append(m Message) (seq uint64, err error)
	// Ack records that the broker acknowledged seq. It need not be durable at once: an Ack lost in a crash
	// (FileStore keeps them in memory until its next write) costs a duplicate after the next start, never a
	// loss. Acks of unknown sequence numbers are ignored.
	Ack(seq uint64) error
	// Pending returns every stored publication not acknowledged, in the order of Append.
	Pending() ([]StoredMessage, error)
}

// StoredMessage is a publication a Store holds, with its sequence number.
type StoredMessage struct {
	Seq uint64
	Message
}

// Errors of stores. Test with errors.Is; *RecoveryError also works with errors.As.
var (
	// ErrStoreFull: the disk (or the quota) is full. The publication was not stored, nothing stored before is
	// lost, and the store stays usable: a later Append succeeds once there is room.
	ErrStoreFull = errors.New("mqttas: store full: no space left on the device")
	// ErrStoreLocked: another FileStore, in this process or another, has the directory open.
	ErrStoreLocked = errors.New("mqttas: store directory in use")
	// ErrStoreClosed: the store was closed.
	ErrStoreClosed = errors.New("mqttas: store closed")
	// ErrStoreFailed: a write failed and could not be undone; the store refuses further Appends until it
	// is opened again (what was stored before the failure is recovered then).
	ErrStoreFailed = errors.New("mqttas: store failed")
	// ErrStoreDamaged: opening the store found damage and dropped records (see *RecoveryError).
	ErrStoreDamaged = errors.New("mqttas: store damaged")
)

// Damage is one stretch of a store's log that could not be read back.
type Damage struct {
	Offset int64  // where it starts in the log file
	Bytes  int64  // how long it is
	Reason string // why it was dropped: "torn or truncated record at the end", "checksum mismatch", ...
}

// RecoveryError reports what OpenFileStore dropped from a damaged log: a torn last record, a truncated file,
// a flipped bit, an unreadable file. Everything outside the damaged stretches is recovered; the store that
// OpenFileStore returns with it is usable, and its log has been rewritten without the damage, so the next
// open reports nothing. A message whose record was in a damaged stretch is lost (an acknowledgement lost
// there only makes its message be sent again).
type RecoveryError struct {
	Path      string   // the log file
	Recovered int      // publications recovered (not yet acknowledged)
	Damage    []Damage // what was dropped, in order of offset
	Saved     string   // where an unreadable file was moved, "" when none was
}

func (e *RecoveryError) Error() string {
	var b strings.Builder
	var n int64
	for _, d := range e.Damage {
		n += d.Bytes
	}
	fmt.Fprintf(&b, "mqttas: store %s damaged: dropped %d bytes in %d places, recovered %d publications", e.Path, n, len(e.Damage), e.Recovered)
	for i, d := range e.Damage {
		if i == 3 {
			fmt.Fprintf(&b, "; …")
			break
		}
		fmt.Fprintf(&b, "; %d bytes at %d: %s", d.Bytes, d.Offset, d.Reason)
	}
	if e.Saved != "" {
		fmt.Fprintf(&b, "; the unreadable file was moved to %s", e.Saved)
	}
	return b.String()
}

// Is makes every *RecoveryError match ErrStoreDamaged.
func (e *RecoveryError) Is(target error) bool { return target == ErrStoreDamaged }
