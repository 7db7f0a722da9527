//go:build !linux

package soak

import "time"

// clockSync is unknown off Linux.
func clockSync() (synced bool, maxErr time.Duration, known bool) { return false, 0, false }
