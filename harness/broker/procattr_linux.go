package broker

import "syscall"

// sysProcAttr puts mosquitto in its own process group (signals reach only
// it) and has the kernel kill it if the test binary dies without Close.
// Pdeathsig follows the forking OS thread, which Go keeps alive unless a
// goroutine exits while locked to it: good enough for a safety net.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
