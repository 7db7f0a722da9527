package soak

import (
	"syscall"
	"time"
)

// staUnsync is the kernel's STA_UNSYNC status bit: the clock is not synchronised.
const staUnsync = 0x0040

// clockSync asks the kernel (adjtimex, reading only) whether the clock is synchronised and its
// maximum error.
func clockSync() (synced bool, maxErr time.Duration, known bool) {
	var tx syscall.Timex
	state, err := syscall.Adjtimex(&tx)
	if err != nil {
		return false, 0, false
	}
	const timeError = 5 // TIME_ERROR: the clock is not synchronised
	synced = state != timeError && tx.Status&staUnsync == 0
	return synced, time.Duration(tx.Maxerror) * time.Microsecond, true
}
