package local

import "syscall"

// childAttr has the kernel kill a container's process if this process dies
// first.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
