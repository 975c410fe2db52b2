//go:build unix

package rawsys

import (
	"io"
	"net"
	"os"
	"syscall"
)

// Conn is a TCP connection whose reads and writes are Read and Write on
// its non-blocking socket, waiting for readiness through the runtime's
// network poller (syscall.RawConn), so that deadlines and Close work as on
// the embedded *net.TCPConn. Errors are *net.OpError of op "read" or
// "write", as the connection's own: around the system call's error, or
// around the poller's (os.ErrDeadlineExceeded, net.ErrClosed). Like a
// net.Conn, one Read and one Write may run at once, not two of either.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// The calls in progress, kept here so that a Read or Write hands the
	// poller a method value made once, not a closure made per call.
	rbuf   []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	wbuf    []byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
}

// NewConn returns tc read and written with direct system calls.
func NewConn(tc *net.TCPConn) (*Conn, error) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &Conn{TCPConn: tc, rc: rc}
	c.readFn = c.readReady
	c.writeFn = c.writeReady
	return c, nil
}

// RawConn is the connection's descriptor, for socket options.
func (c *Conn) RawConn() syscall.RawConn { return c.rc }

// opError is err as net.Conn reports it: a system call's error, or the
// poller's (which RawConn wraps as op "raw-read"/"raw-write").
func (c *Conn) opError(op string, err error) error {
	switch e := err.(type) {
	case syscall.Errno:
		err = os.NewSyscallError(op, e)
	case *net.OpError:
		err = e.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Read reads like net.Conn.Read: io.EOF at the end of the stream.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.readFn)
	c.rbuf = nil
	if err != nil {
		return 0, c.opError("read", err) // deadline or closed
	}
	return c.rn, c.rerr
}

// readReady reads once; false means the socket had nothing (wait).
func (c *Conn) readReady(fd uintptr) bool {
	for {
		n, e := Read(fd, c.rbuf)
		switch e {
		case 0:
			if n == 0 {
				c.rerr = io.EOF
			}
			c.rn = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			c.rerr = c.opError("read", e)
			return true
		}
	}
}

// Write writes all of p like net.Conn.Write, waiting for room in the
// socket buffer as needed.
func (c *Conn) Write(p []byte) (int, error) {
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	n := c.wn
	c.wbuf = nil
	if err != nil {
		return n, c.opError("write", err) // deadline or closed
	}
	return n, c.werr
}

// writeReady writes what it can; false means the socket buffer is full
// (wait).
func (c *Conn) writeReady(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		n, e := Write(fd, c.wbuf[c.wn:])
		switch e {
		case 0:
			c.wn += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = c.opError("write", e)
			return true
		}
	}
	return true
}
