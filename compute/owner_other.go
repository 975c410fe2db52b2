//go:build !unix && !windows

package compute

// processExists cannot check a process on this system: the owner counts as
// running.
func processExists(int) bool { return true }
