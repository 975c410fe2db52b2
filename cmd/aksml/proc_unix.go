//go:build unix

package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// alive reports whether process pid runs (and is not a zombie).
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// detachedAttr starts the local cluster in its own session: it outlives
// this command and the terminal's signals.
func detachedAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

// terminate asks process pid to stop (SIGTERM).
func terminate(pid int) { _ = syscall.Kill(pid, syscall.SIGTERM) }

// killSession kills the session pid leads: the cluster process and every
// child.
func killSession(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}
