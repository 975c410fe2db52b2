//go:build !linux

package scoring

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// killProcess kills p.
func killProcess(p *os.Process) { _ = p.Kill() }

// killGroup does nothing outside Linux: workers do not get their own group.
func killGroup(int) {}
