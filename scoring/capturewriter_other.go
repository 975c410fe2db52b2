//go:build !linux

package scoring

import "os"

// setIdlePriority is a no-op here: the capture writer process runs at the
// normal priority.
func setIdlePriority(bool) {}

// hurry is a no-op here.
func hurry(int) {}

// setPipeSize is a no-op here.
func setPipeSize(*os.File, int) {}
