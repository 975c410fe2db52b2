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

// killGroup kills what is left of the process group pgid (the processes a
// worker forked) after the worker itself has exited. The kernel does not
// reuse a pid while it names a live process group, so this cannot hit an
// unrelated group.
func killGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}
