//go:build !linux

package scoring

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// killProcess kills p.
func killProcess(p *os.Process) { _ = p.Kill() }
