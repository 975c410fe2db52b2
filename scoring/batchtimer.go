package scoring

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// batchTimer wakes the dispatcher when the oldest queued request of a
// partial batch has waited the delay. A fire may be stale (from an earlier
// arming): the dispatcher checks the queue again each time, so a stale
// fire costs one look at the queue.
type batchTimer interface {
	// arm makes the timer fire once, d from now, replacing any earlier
	// arming.
	arm(d time.Duration)
	// disarm cancels the arming, if any.
	disarm()
	// fired receives a value when the timer fires.
	fired() <-chan struct{}
	// close releases the timer; it never fires again.
	close()
}

// newBatchTimer returns a timer on clk. With the real clock on Linux it is
// a timerfd in the runtime's poller, which wakes the process within
// microseconds of the deadline: the runtime's own timers, when the process
// is idle, sleep in whole milliseconds (epoll_wait's timeout), so a 2 ms
// wait of the batcher ended 0.1 to 0.3 ms late. Any other clock (a fake
// one, in tests), or a timerfd that cannot be made, gives a clock timer.
func newBatchTimer(clk clock.WithDelayedExecution) batchTimer {
	if _, real := clk.(clock.RealClock); real {
		if t := newPreciseTimer(); t != nil {
			return t
		}
	}
	return &clockTimer{clk: clk, ch: make(chan struct{}, 1)}
}

// clockTimer is a batchTimer on a clock's AfterFunc.
type clockTimer struct {
	clk clock.WithDelayedExecution
	ch  chan struct{}

	mu sync.Mutex
	t  clock.Timer
}

func (c *clockTimer) arm(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t != nil {
		c.t.Stop()
	}
	c.t = c.clk.AfterFunc(d, func() {
		select {
		case c.ch <- struct{}{}:
		default:
		}
	})
}

func (c *clockTimer) disarm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t != nil {
		c.t.Stop()
		c.t = nil
	}
}

func (c *clockTimer) fired() <-chan struct{} { return c.ch }

func (c *clockTimer) close() { c.disarm() }
