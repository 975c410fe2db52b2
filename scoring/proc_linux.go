package scoring

import (
	"os"
	"syscall"
)

// sysProcAttr puts a worker in its own process group (so a kill reaches the
// processes it starts) and has the kernel kill it if the server dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killProcess kills p's process group and p.
func killProcess(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
}
