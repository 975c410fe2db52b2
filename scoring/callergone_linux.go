package scoring

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// callerGone reports whether the caller closed its side of the connection
// or reset it, from the kernel's TCP state of its socket (TCP_INFO).
func callerGone(c net.Conn) bool {
	var rc syscall.RawConn
	switch c := c.(type) {
	case interface{ RawConn() syscall.RawConn }:
		rc = c.RawConn()
	case syscall.Conn:
		var err error
		if rc, err = c.SyscallConn(); err != nil {
			return false
		}
	default:
		return false
	}
	gone := false
	err := rc.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		gone = err != nil || info.State == unix.BPF_TCP_CLOSE || info.State == unix.BPF_TCP_CLOSE_WAIT
	})
	return gone || err != nil
}
