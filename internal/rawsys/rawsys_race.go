//go:build unix && race

package rawsys

import "syscall"

// Read is read(2) on the non-blocking descriptor fd; p must not be empty.
// On an error n is 0.
func Read(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return max(n, 0), errno(err)
}

// Write is write(2) on the non-blocking descriptor fd; p must not be
// empty. On an error n is 0.
func Write(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return max(n, 0), errno(err)
}

func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	return err.(syscall.Errno)
}
