//go:build !linux

package childproc

import (
	"os"
	"syscall"
)

// Attr is nil outside Linux: the child shares this process's group and is
// not killed with it.
func Attr() *syscall.SysProcAttr { return nil }

// KillGroup kills p.
func KillGroup(p *os.Process) { _ = p.Kill() }
