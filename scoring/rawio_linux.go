package scoring

import (
	"io"
	"net"
	"os"
	"syscall"

	"github.com/aksml/aksml/internal/rawsys"
	"golang.org/x/sys/unix"
)

// Reads and writes on the request path (the client's TCP connection and the
// workers' pipes) are raw system calls on the non-blocking descriptors
// (package rawsys), made through syscall.RawConn so that the runtime's
// poller still waits for readiness and honours deadlines and Close. A
// plain Read or Write enters the runtime's syscall state, and entering it
// wakes the sysmon thread whenever sysmon sleeps because every P was idle:
// with one P serving a request at a time, that was every request, and
// sysmon then polled every 20 µs until the P was idle again (about a tenth
// of the replica's CPU under load, in context switches). A read or write on
// a non-blocking descriptor never blocks, so it needs neither the syscall
// state nor sysmon.

// rawRead reads into p from the non-blocking descriptor of rc; zero bytes
// read from a non-empty p is io.EOF. A failed system call is its
// syscall.Errno; other errors are the poller's (a deadline, Close).
func rawRead(rc syscall.RawConn, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := rc.Read(func(fd uintptr) bool {
		for {
			r, e := rawsys.Read(fd, p)
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			case 0:
				n = r
			}
			errno = e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, errno
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// rawWrite writes all of p to the non-blocking descriptor of rc, waiting
// for room as needed. Errors are as rawRead's.
func rawWrite(rc syscall.RawConn, p []byte) (int, error) {
	done := 0
	var errno syscall.Errno
	err := rc.Write(func(fd uintptr) bool {
		for done < len(p) {
			r, e := rawsys.Write(fd, p[done:])
			switch e {
			case 0:
				done += r
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = errno
	}
	return done, err
}

// fileIO reads or writes a file registered with the poller (one end of a
// worker's pipe, the batcher's timerfd) with raw system calls (see above).
type fileIO struct {
	f  *os.File
	rc syscall.RawConn // nil: plain f.Read and f.Write
}

func newFileIO(f *os.File) fileIO {
	rc, err := f.SyscallConn()
	if err != nil {
		return fileIO{f: f}
	}
	return fileIO{f: f, rc: rc}
}

func (p fileIO) Read(b []byte) (int, error) {
	if p.rc == nil {
		return p.f.Read(b)
	}
	n, err := rawRead(p.rc, b)
	if err != nil && err != io.EOF {
		err = p.pathError("read", err)
	}
	return n, err
}

func (p fileIO) Write(b []byte) (int, error) {
	if p.rc == nil {
		return p.f.Write(b)
	}
	n, err := rawWrite(p.rc, b)
	if err != nil {
		err = p.pathError("write", err)
	}
	return n, err
}

// unread returns how many bytes written to the pipe of p have not been
// read from it (FIONREAD works on either end of a pipe), or -1 if that
// cannot be told.
func (p fileIO) unread() int64 {
	if p.rc == nil {
		return -1
	}
	n := -1
	if err := p.rc.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ); err == nil {
			n = v
		}
	}); err != nil {
		return -1
	}
	return int64(n)
}

// pathError is err as *os.File reports it: a *os.PathError around the
// system call's error, or around os.ErrClosed once the file is closed (the
// poller's only error on a file that has no deadline, as these have none).
func (p fileIO) pathError(op string, err error) error {
	if _, ok := err.(syscall.Errno); !ok {
		err = os.ErrClosed
	}
	return &os.PathError{Op: op, Path: p.f.Name(), Err: err}
}

// wrapListener hands out TCP connections whose Read and Write are raw
// system calls (rawsys.Conn, the router's too).
func wrapListener(ln net.Listener) net.Listener { return rawsys.Listener{Listener: ln} }
