package childproc

import (
	"os"
	"syscall"
)

// Attr puts the child in its own process group (so KillGroup reaches the
// processes it starts) and has the kernel kill it if this process dies.
func Attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// KillGroup kills the process group p leads, then p.
func KillGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
}
