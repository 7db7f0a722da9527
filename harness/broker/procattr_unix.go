//go:build unix && !linux

package broker

import "syscall"

// sysProcAttr puts mosquitto in its own process group so that signals reach
// only it. (Only Linux can also tie its life to ours: Pdeathsig.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
