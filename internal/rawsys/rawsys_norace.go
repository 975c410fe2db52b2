//go:build unix && !race

package rawsys

import (
	"syscall"
	"unsafe"
)

// Read is read(2) on the non-blocking descriptor fd; p must not be empty.
// On an error n is 0.
func Read(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// Write is write(2) on the non-blocking descriptor fd; p must not be
// empty. On an error n is 0.
func Write(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}
