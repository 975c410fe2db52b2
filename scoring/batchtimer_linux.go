package scoring

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// preciseTimer is a batchTimer on a Linux timerfd (CLOCK_MONOTONIC, non-
// blocking), read through the runtime's poller by one goroutine. The
// kernel's high-resolution timer makes the fd readable at the deadline,
// which ends the runtime's epoll_wait at once, whatever its millisecond
// timeout.
type preciseTimer struct {
	f    *os.File
	fd   int
	ch   chan struct{}
	done sync.WaitGroup
}

// newPreciseTimer returns nil when the timerfd cannot be made.
func newPreciseTimer() *preciseTimer {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil
	}
	t := &preciseTimer{f: os.NewFile(uintptr(fd), "batch-timerfd"), fd: fd, ch: make(chan struct{}, 1)}
	t.done.Add(1)
	go t.loop()
	return t
}

// loop forwards each expiry to ch until the fd is closed.
func (t *preciseTimer) loop() {
	defer t.done.Done()
	var b [8]byte
	for {
		if _, err := t.f.Read(b[:]); err != nil {
			return
		}
		select {
		case t.ch <- struct{}{}:
		default:
		}
	}
}

func (t *preciseTimer) arm(d time.Duration) {
	// A zero it_value disarms: a deadline already past fires in 1 ns.
	d = max(d, 1)
	// Settime on a closed fd fails with EBADF; the timer is then over.
	_ = unix.TimerfdSettime(t.fd, 0, &unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}, nil)
}

func (t *preciseTimer) disarm() {
	_ = unix.TimerfdSettime(t.fd, 0, &unix.ItimerSpec{}, nil)
}

func (t *preciseTimer) fired() <-chan struct{} { return t.ch }

func (t *preciseTimer) close() {
	_ = t.f.Close()
	t.done.Wait()
}
