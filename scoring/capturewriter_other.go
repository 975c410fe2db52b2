//go:build !linux

package scoring

import "os"

// setIdlePriority is a no-op here: the capture writer process runs at the
// normal priority.
func setIdlePriority(bool) {}

// setPipeSize is a no-op here.
func setPipeSize(*os.File, int) {}
