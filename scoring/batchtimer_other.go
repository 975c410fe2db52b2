//go:build !linux

package scoring

// newPreciseTimer: only Linux has a timerfd; elsewhere the batcher uses
// the clock's timers.
func newPreciseTimer() batchTimer { return nil }
