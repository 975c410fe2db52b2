package controlplane

import (
	"os"
	"syscall"
)

// childAttr gives a control-plane process its own process group (killGroup
// ends all of it) and has the kernel kill it if the test binary dies first.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// killGroup kills the process group p leads.
func killGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGKILL) }
