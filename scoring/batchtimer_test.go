package scoring

import (
	"testing"
	"time"

	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

// The batcher's timer on the real clock fires once per arming, not before
// the deadline, and a disarmed or re-armed deadline does not fire.
func TestBatchTimerRealClock(t *testing.T) {
	t.Parallel()
	bt := newBatchTimer(clock.RealClock{})
	defer bt.close()
	for _, d := range []time.Duration{0, 50 * time.Microsecond, 2 * time.Millisecond} {
		start := time.Now()
		bt.arm(d)
		<-bt.fired()
		if got := time.Since(start); got < d {
			t.Errorf("armed for %v, fired after %v", d, got)
		}
	}
	// Disarmed: an hour-long arming never fires; the next one does.
	bt.arm(time.Hour)
	bt.disarm()
	bt.arm(time.Hour) // re-armed, then replaced by a short one
	start := time.Now()
	bt.arm(3 * time.Millisecond)
	<-bt.fired()
	if got := time.Since(start); got < 3*time.Millisecond {
		t.Errorf("re-armed for 3ms, fired after %v", got)
	}
	select {
	case <-bt.fired():
		t.Error("a second fire for one arming")
	default:
	}
}

// close returns, on either clock, with an armed timer: for the timerfd it
// waits for its goroutine to end, so a hang here is a leaked reader.
func TestBatchTimerClose(t *testing.T) {
	t.Parallel()
	for _, clk := range []clock.WithDelayedExecution{clock.RealClock{}, clocktesting.NewFakeClock(time.Unix(1700000000, 0))} {
		bt := newBatchTimer(clk)
		bt.arm(time.Hour)
		bt.close()
	}
}

// On a fake clock the timer fires when the clock reaches the deadline.
func TestBatchTimerFakeClock(t *testing.T) {
	t.Parallel()
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	bt := newBatchTimer(fc)
	defer bt.close()
	bt.arm(10 * time.Millisecond)
	fc.Step(9 * time.Millisecond)
	select {
	case <-bt.fired():
		t.Fatal("fired before the deadline")
	default:
	}
	fc.Step(time.Millisecond)
	<-bt.fired()
	bt.arm(time.Second)
	bt.disarm()
	if fc.HasWaiters() {
		t.Error("a disarmed timer still waits on the clock")
	}
}
