package main

import (
	"os"
	"syscall"

	"golang.org/x/sys/windows"

	"github.com/aksml/aksml/compute"
)

// alive reports whether process pid runs.
func alive(pid int) bool {
	return pid > 0 && (&compute.Owner{PID: pid}).Alive()
}

// detachedAttr starts the local cluster in a process group of its own, so
// that the console's Ctrl+C does not reach it.
func detachedAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: windows.CREATE_NEW_PROCESS_GROUP}
}

// terminate stops process pid. Windows has no SIGTERM to send to another
// process's group from here: the process is killed.
func terminate(pid int) { killSession(pid) }

// killSession kills process pid.
func killSession(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}
