package main

import (
	"os"
	"syscall"

	"golang.org/x/sys/windows"
)

// alive reports whether process pid runs: it can be opened and has not
// exited.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return err == windows.ERROR_ACCESS_DENIED
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return true
	}
	const stillActive = 259 // STILL_ACTIVE
	return code == stillActive
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
