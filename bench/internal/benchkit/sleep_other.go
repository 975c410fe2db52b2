//go:build !linux

package benchkit

import "time"

// Sleeper waits until a time; on Linux it uses a timerfd (see
// sleep_linux.go), elsewhere time.Sleep.
type Sleeper struct{}

// NewSleeper returns a Sleeper.
func NewSleeper() *Sleeper { return &Sleeper{} }

// Until returns at t (at once when t has passed).
func (*Sleeper) Until(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}

// Close does nothing.
func (*Sleeper) Close() {}
