//go:build !linux

package scoring

import "os"

// setIdlePriority is a no-op here: the capture writer process runs at the
// normal priority.
func setIdlePriority(bool) {}

// hurry is a no-op here.
func hurry(int) {}

// setPipeSize leaves the pipe as it is: 64 KiB assumed.
func setPipeSize(*os.File, int) int { return 64 << 10 }

// pipeQueued is unknown here: 0. A write of a batch may then wait for the
// process.
func pipeQueued(*os.File) int { return 0 }
