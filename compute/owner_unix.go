//go:build unix

package compute

import "syscall"

// processExists reports whether a process with this pid exists (signal 0
// reaches it, or it exists and belongs to another user).
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
