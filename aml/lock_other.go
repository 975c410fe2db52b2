//go:build !unix

package aml

import "os"

// tryLock always succeeds where flock is not available: the workspace then
// relies on bbolt's own file lock (which polls every 50 ms) for exclusion
// between processes.
func tryLock(f *os.File, exclusive bool) (bool, error) { return true, nil }

func unlock(f *os.File) error { return nil }

func isNoSpace(err error) bool { return false }
