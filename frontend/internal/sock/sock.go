//go:build unix

// Package sock holds the system calls on sockets that the router's engines
// share beyond what package net offers.
package sock

import (
	"syscall"
	"unsafe"
)

// PeerQuiet reports whether an idle kept-alive connection is still open
// and has nothing to read: a peek that finds no data. A replica that
// closed the connection (or sent something unasked) makes it false, and the
// connection must not carry a request: one sent on it could be lost after
// the replica read it, or never read at all, with no way to tell.
func PeerQuiet(fd uintptr) bool {
	var b [1]byte
	_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return e == syscall.EAGAIN
}
