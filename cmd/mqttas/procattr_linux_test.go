package main

import "syscall"

// childAttr puts a child (mosquitto, the mqttas binary) in its own process group and has the kernel kill
// it if the test binary dies without cleaning up (a panic, a timeout). Pdeathsig follows the forking OS
// thread, which Go keeps alive unless a goroutine exits while locked to it: good enough for a safety net.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
