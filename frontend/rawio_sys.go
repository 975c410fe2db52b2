package frontend

import (
	"syscall"

	"github.com/aksml/aksml/internal/rawsys"
)

// sysRead and sysWrite are read(2) and write(2) on a non-blocking socket,
// made without the runtime's system-call bookkeeping (see sockConn and
// package rawsys, which under the race detector makes them syscall.Read
// and syscall.Write).
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) { return rawsys.Read(fd, p) }

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) { return rawsys.Write(fd, p) }
