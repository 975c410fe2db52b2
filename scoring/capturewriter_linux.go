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
func setIdlePriority(idle bool) { setPriorityOf("self", idle) }

// setPriorityOf is setIdlePriority for the threads of process pid ("self"
// or a number).
func setPriorityOf(pid string, idle bool) {
	policy := uint32(unix.SCHED_IDLE)
	if !idle {
		policy = unix.SCHED_NORMAL
	}
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy}
	tasks, err := os.ReadDir("/proc/" + pid + "/task")
	if err != nil {
		return
	}
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			_ = unix.SchedSetAttr(tid, attr, 0)
		}
	}
}

// hurry gives the threads of process pid the normal priority back.
func hurry(pid int) { setPriorityOf(strconv.Itoa(pid), false) }

// setPipeSize asks for a pipe buffer of size bytes and returns the size
// the pipe has (the kernel may cap it; 64 KiB by default).
func setPipeSize(f *os.File, size int) int {
	got := 64 << 10
	if sc, err := f.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) {
			_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size)
			if n, err := unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0); err == nil {
				got = n
			}
		})
	}
	return got
}

// pipeQueued is how many bytes wait in pipe f (written, not yet read).
func pipeQueued(f *os.File) int {
	n := 0
	if sc, err := f.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) {
			n, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) // FIONREAD
		})
	}
	return n
}
