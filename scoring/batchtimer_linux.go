package scoring

import (
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// preciseTimer is a batchTimer on a Linux timerfd (CLOCK_MONOTONIC, non-
// blocking), read through the runtime's poller by one goroutine. The
// kernel's high-resolution timer makes the fd readable at the deadline,
// which ends the runtime's epoll_wait at once, whatever its millisecond
// timeout.
type preciseTimer struct {
	f    *os.File
	rf   fileIO // f, read with raw system calls
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
	f := os.NewFile(uintptr(fd), "batch-timerfd")
	t := &preciseTimer{f: f, rf: newFileIO(f), fd: fd, ch: make(chan struct{}, 1)}
	t.done.Add(1)
	go t.loop()
	return t
}

// loop forwards each expiry to ch until the fd is closed.
func (t *preciseTimer) loop() {
	defer t.done.Done()
	var b [8]byte
	for {
		if _, err := t.rf.Read(b[:]); err != nil {
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
	t.settime(unix.ItimerSpec{Value: unix.NsecToTimespec(int64(max(d, 1)))})
}

func (t *preciseTimer) disarm() { t.settime(unix.ItimerSpec{}) }

// settime is timerfd_settime as a raw system call: it never blocks, so it
// need not wake the runtime's sysmon (see rawio_linux.go). On a closed fd it
// fails with EBADF; the timer is then over.
func (t *preciseTimer) settime(spec unix.ItimerSpec) {
	unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(t.fd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
}

func (t *preciseTimer) fired() <-chan struct{} { return t.ch }

func (t *preciseTimer) close() {
	_ = t.f.Close()
	t.done.Wait()
}
