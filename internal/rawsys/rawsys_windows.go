package rawsys

import (
	"net"
	"syscall"
)

// On Windows the runtime's poller completes overlapped I/O instead of
// reporting readiness, so there is no non-blocking read or write to make
// directly: Conn reads and writes through its *net.TCPConn, and Read and
// Write only say "would block", which sends their callers to the
// connection's own methods.

// Conn is a TCP connection read and written through the embedded
// *net.TCPConn (deadlines, Close and errors are its own).
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn
}

// NewConn returns tc as a Conn.
func NewConn(tc *net.TCPConn) (*Conn, error) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &Conn{TCPConn: tc, rc: rc}, nil
}

// RawConn is the connection's descriptor, for socket options.
func (c *Conn) RawConn() syscall.RawConn { return c.rc }

// Read reads nothing and reports EAGAIN: read through Conn instead.
func Read(fd uintptr, p []byte) (int, syscall.Errno) { return 0, syscall.EAGAIN }

// Write writes nothing and reports EAGAIN: write through Conn instead.
func Write(fd uintptr, p []byte) (int, syscall.Errno) { return 0, syscall.EAGAIN }
