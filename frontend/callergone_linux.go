package frontend

import "golang.org/x/sys/unix"

// callerGone reports whether the caller closed its side of the connection
// or reset it, from the kernel's TCP state of its socket (TCP_INFO).
func (c *tlsConn) callerGone() bool {
	if c.sock == nil {
		return false
	}
	gone := false
	_ = c.sock.RawConn().Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		gone = err != nil || info.State == unix.BPF_TCP_CLOSE || info.State == unix.BPF_TCP_CLOSE_WAIT
	})
	return gone
}
