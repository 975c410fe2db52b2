package scoring

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setIdlePriority puts every thread of this process at the kernel's idle
// priority (SCHED_IDLE: run only when a core would otherwise idle), or back
// at the normal one. Threads started later inherit it from the threads
// that start them.
func setIdlePriority(idle bool) {
	policy := uint32(unix.SCHED_IDLE)
	if !idle {
		policy = unix.SCHED_NORMAL
	}
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		_ = unix.SchedSetAttr(0, attr, 0)
		return
	}
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			_ = unix.SchedSetAttr(tid, attr, 0)
		}
	}
}

// setPipeSize asks for a pipe buffer of size bytes (best effort: the
// kernel may cap it).
func setPipeSize(f *os.File, size int) {
	if sc, err := f.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) {
			_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size)
		})
	}
}
