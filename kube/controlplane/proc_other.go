//go:build !linux

package controlplane

import (
	"os"
	"syscall"
)

// childAttr is nil outside Linux: the processes share the test binary's
// group and are not killed with it.
func childAttr() *syscall.SysProcAttr { return nil }

// killGroup kills p.
func killGroup(p *os.Process) { _ = p.Kill() }
