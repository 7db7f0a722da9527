//go:build linux && !amd64 && !386

package mqttas

import "syscall"

// sysSetns is setns(2)'s number, from package syscall (which lacks it only on amd64 and 386).
const sysSetns = syscall.SYS_SETNS
