//go:build !race

package sock

import (
	"syscall"
	"unsafe"
)

// Read and Write are read(2) and write(2) on a non-blocking socket,
// made without the runtime's system-call bookkeeping: such a call never
// blocks, and entering the runtime's system-call state would wake its
// sysmon thread whenever every processor was idle (which then polls every
// 20 µs while the process is busy), or let sysmon hand the processor to
// another thread during a long write. p must not be empty. Under the race
// detector (io_race.go) they are syscall.Read and syscall.Write, which
// tell the detector about the ordering that I/O implies.
func Read(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

func Write(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}
