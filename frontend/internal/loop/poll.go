//go:build linux

package loop

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/aksml/aksml/internal/rawsys"
)

// The poller is a loop's epoll set and the goroutine that serves it. It
// exists for the runtime's sake, not the kernel's: the system calls per
// request are the ones a C event loop makes, but none of them is a blocking
// system call as the Go runtime sees it.
//
//   - Reads, writes and the epoll_wait that looks for events are made
//     directly (package rawsys, epoll_wait with a zero timeout), without
//     the runtime's bookkeeping for a system call that might block. A
//     processor in such a call is one the runtime's monitor (sysmon) may
//     take away, hand to a new thread and give back: at the closed loop's
//     rate that kept the monitor polling every 20 µs and cost the router
//     half a context switch per request.
//   - When epoll_wait finds nothing, the goroutine parks in the runtime's
//     own network poller, on the epoll descriptor itself (it turns
//     readable when one of its descriptors has an event), instead of
//     blocking in epoll_wait. Its processor is then idle, and the thread
//     waiting in the runtime's poller holds none, so the monitor has none
//     to take; when nothing at all runs it sleeps.
//
// Connections are level-triggered for reading; writing is watched only
// while a connection has bytes the socket did not take.

// action is what a connection's handler asks for after its traffic.
type action uint8

const (
	actNone  action = iota // keep the connection
	actClose               // close it
)

// readBufSize is how much one read takes from a socket.
const readBufSize = 64 << 10

// keepBufSize is the largest read or write buffer a connection keeps
// once it is empty.
const keepBufSize = 4 << 10

// maxSpareOut is how many large write buffers a loop keeps for reuse.
const maxSpareOut = 4

// handler is what a poller reports to (the loop).
type handler interface {
	OnOpen(c *fdConn)
	OnClose(c *fdConn, err error)
	OnTraffic(c *fdConn) action
}

// poller is one event loop's epoll set.
type poller struct {
	epfd   int
	efd    int      // eventfd: tasks are waiting
	park   *os.File // a duplicate of epfd, in the runtime's poller
	parkRC syscall.RawConn
	waitFn func(uintptr) bool // p.check, made once
	// waitN, waitE: what check's epoll_wait returned.
	waitN int
	waitE syscall.Errno
	// beforePark, when set (tests only), runs between a look that found
	// nothing and parking.
	beforePark func()
	h          handler
	buf        []byte
	events     []unix.EpollEvent
	conns      map[int]*fdConn
	// closing: connections whose Close was called, closed once the
	// events in hand are handled (so a handler never sees OnClose run
	// from inside its own call to Close).
	closing []*fdConn
	// spareOut: buffers of answers that waited for slow callers, kept
	// for the next (at most maxSpareOut).
	spareOut [][]byte

	stopped bool // the loop goroutine's: stop's task ran

	mu    sync.Mutex
	tasks []func()
	spare []func()
	adds  []*fdConn // connections enrolled, to register in the loop
	woken bool      // efd was written and not yet read
	// exited: the loop goroutine is ending, takes no more work, and
	// has closed (or is closing) efd.
	exited bool
	done   chan struct{} // closed when the loop goroutine ended
}

// fdConn is a socket served by a poller.
type fdConn struct {
	fd    int
	p     *poller
	ctx   any
	raddr net.Addr
	open  bool
	// in holds input not consumed: in[inOff:], then cur, the bytes of
	// the read being handled (in the poller's buffer).
	in    []byte
	inOff int
	cur   []byte
	// out[outOff:] is what the socket did not take yet.
	out    []byte
	outOff int
	outOn  bool // watched for writability
	// closeQ: Close was called (see poller.closing).
	closeQ bool
}

var errPollerClosed = errors.New("frontend: event loop stopped")

// newPoller makes a poller for h and starts its goroutine.
func newPoller(h handler) (*poller, error) {
	p, err := makePoller(h)
	if err != nil {
		return nil, err
	}
	go p.run()
	return p, nil
}

// makePoller makes a poller for h; its goroutine is p.run.
func makePoller(h handler) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	p := &poller{epfd: epfd, efd: -1, h: h, buf: make([]byte, readBufSize),
		events: make([]unix.EpollEvent, 128), conns: map[int]*fdConn{}, done: make(chan struct{})}
	fail := func(op string, err error) (*poller, error) {
		if p.park != nil {
			p.park.Close()
		}
		if p.efd >= 0 {
			unix.Close(p.efd)
		}
		unix.Close(epfd)
		return nil, os.NewSyscallError(op, err)
	}
	if p.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return fail("eventfd", err)
	}
	if err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, p.efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(p.efd)}); err != nil {
		return fail("epoll_ctl", err)
	}
	dup, err := unix.FcntlInt(uintptr(epfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fail("fcntl", err)
	}
	if err = unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return fail("fcntl", err)
	}
	p.park = os.NewFile(uintptr(dup), "epoll") // non-blocking: in the runtime's poller
	if p.parkRC, err = p.park.SyscallConn(); err != nil {
		return fail("epoll", err)
	}
	p.waitFn = p.check
	return p, nil
}

// check is the parking read's look at the epoll set: epoll_wait with a zero
// timeout, "ready" when it returned events (or failed).
func (p *poller) check(uintptr) bool {
	p.waitN, p.waitE = p.epollWait()
	return p.waitN != 0 || p.waitE != 0
}

// epollWait is epoll_wait(2) with a zero timeout, made directly.
func (p *poller) epollWait() (int, syscall.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(p.epfd), uintptr(unsafe.Pointer(&p.events[0])),
		uintptr(len(p.events)), 0, 0, 0)
	return int(n), e
}

func (p *poller) run() {
	for !p.stopped {
		n, e := p.epollWait()
		if n == 0 && e == 0 {
			n, e = p.wait()
		}
		if e != 0 || n == 0 {
			if e != 0 && e != syscall.EINTR {
				break // the epoll set is unusable: nothing left to serve
			}
			continue
		}
		for i := 0; i < n && !p.stopped; i++ {
			ev := &p.events[i]
			fd := int(ev.Fd)
			if fd == p.efd {
				p.runTasks()
				continue
			}
			c := p.conns[fd]
			if c == nil {
				continue
			}
			if ev.Events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 && c.outOff < len(c.out) {
				c.flush()
			}
			if c.open && ev.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 {
				p.read(c)
			}
		}
		p.closeQueued()
		if n == len(p.events) && n < 4096 {
			p.events = make([]unix.EpollEvent, 2*n)
		}
	}
	p.closeAll()
	p.mu.Lock()
	p.exited = true
	adds := p.adds
	p.adds, p.tasks = nil, nil
	p.mu.Unlock()
	for _, c := range adds {
		unix.Close(c.fd) // enrolled too late
	}
	p.park.Close()
	unix.Close(p.efd)
	unix.Close(p.epfd)
	close(p.done)
}

// closeQueued closes the connections whose Close was called.
func (p *poller) closeQueued() {
	for i := 0; i < len(p.closing); i++ {
		p.close(p.closing[i], nil)
		p.closing[i] = nil
	}
	p.closing = p.closing[:0]
}

// wait parks the loop's goroutine in the runtime's poller until the epoll
// set has events, and returns them as epollWait does (or, should parking
// fail, blocks in epoll_wait for at most 10 ms).
//
// The look that decides to park runs inside the parking read, after the
// runtime has forgotten any earlier readiness of the epoll descriptor:
// the runtime watches it edge-triggered, so an event that arrived between
// an earlier empty look and the read would have woken nobody, and the loop
// would sleep with a task or a replica's answer waiting (until some other
// event came: a caller's timeout, a minute later).
func (p *poller) wait() (int, syscall.Errno) {
	if p.beforePark != nil {
		p.beforePark()
	}
	if p.parkRC.Read(p.waitFn) != nil {
		n, err := unix.EpollWait(p.epfd, p.events, 10)
		if err != nil {
			var en syscall.Errno
			if !errors.As(err, &en) {
				en = syscall.EINVAL
			}
			return 0, en
		}
		return n, 0
	}
	return p.waitN, p.waitE
}

// read reads what c's socket has and hands it to the handler.
func (p *poller) read(c *fdConn) {
	n, e := rawsys.Read(uintptr(c.fd), p.buf)
	switch {
	case e == syscall.EAGAIN || e == syscall.EINTR:
		return
	case e != 0:
		p.close(c, os.NewSyscallError("read", e))
		return
	case n == 0:
		p.close(c, os.NewSyscallError("read", io.EOF))
		return
	}
	c.cur = p.buf[:n]
	act := p.h.OnTraffic(c)
	if !c.open {
		c.cur = nil
		return
	}
	if act == actClose {
		c.cur = nil
		p.close(c, nil)
		return
	}
	if len(c.cur) > 0 {
		c.keep()
	}
}

// runTasks registers the connections enrolled and runs the tasks handed
// to the loop.
func (p *poller) runTasks() {
	var b [8]byte
	_, _ = rawsys.Read(uintptr(p.efd), b[:])
	p.mu.Lock()
	p.woken = false
	tasks, adds := p.tasks, p.adds
	p.tasks, p.adds = p.spare[:0], nil
	p.mu.Unlock()
	for _, c := range adds {
		p.add(c)
	}
	for i, f := range tasks {
		f()
		tasks[i] = nil
	}
	p.mu.Lock()
	if p.spare = tasks[:0]; cap(p.spare) > 1024 {
		p.spare = nil
	}
	p.mu.Unlock()
}

// exec runs f in the loop's goroutine, soon; false when the loop ended.
func (p *poller) exec(f func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return false
	}
	p.tasks = append(p.tasks, f)
	p.wakeLocked()
	return true
}

// wakeLocked makes the loop look at its tasks (p.mu held, so efd is open).
func (p *poller) wakeLocked() {
	if !p.woken {
		p.woken = true
		one := [8]byte{1}
		_, _ = rawsys.Write(uintptr(p.efd), one[:])
	}
}

// stop closes every connection (each reported to OnClose) and ends the
// loop's goroutine; it returns once the goroutine ended.
func (p *poller) stop() {
	p.exec(func() { p.stopped = true })
	<-p.done
}

func (p *poller) closeAll() {
	for _, c := range p.conns {
		p.close(c, nil)
	}
}

// enroll hands nc's socket to the loop (its OnOpen runs there) with ctx as
// its context; nc itself is closed. It may be called from any goroutine.
func (p *poller) enroll(nc net.Conn, ctx any) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return errors.New("frontend: connection without a descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return err
	}
	if derr != nil {
		return os.NewSyscallError("fcntl", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return os.NewSyscallError("fcntl", err)
	}
	c := &fdConn{fd: fd, p: p, ctx: ctx, raddr: nc.RemoteAddr()}
	nc.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		unix.Close(fd)
		return errPollerClosed
	}
	p.adds = append(p.adds, c)
	p.wakeLocked()
	return nil
}

// add registers c in the loop and opens it.
func (p *poller) add(c *fdConn) {
	if p.stopped {
		unix.Close(c.fd)
		return
	}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}); err != nil {
		unix.Close(c.fd)
		return
	}
	c.open = true
	p.conns[c.fd] = c
	p.h.OnOpen(c)
}

// close closes c: the handler's OnClose runs first, then what c still has
// to send goes out if the socket takes it at once.
func (p *poller) close(c *fdConn, err error) {
	if !c.open {
		return
	}
	c.open = false
	delete(p.conns, c.fd)
	p.h.OnClose(c, err)
	for c.outOff < len(c.out) {
		n, e := rawsys.Write(uintptr(c.fd), c.out[c.outOff:])
		if e != 0 {
			break
		}
		c.outOff += n
	}
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	unix.Close(c.fd)
	c.in, c.cur, c.out = nil, nil, nil
}

// ---- the connection, as the loop uses it (in the loop's goroutine) ----

// Context is what enroll was given.
func (c *fdConn) Context() any { return c.ctx }

// Fd is the socket's descriptor.
func (c *fdConn) Fd() int { return c.fd }

// RemoteAddr is the peer's address.
func (c *fdConn) RemoteAddr() net.Addr { return c.raddr }

// keep moves the unconsumed part of the read being handled into c's own
// buffer (the poller's is reused by the next read).
func (c *fdConn) keep() {
	if c.inOff > 0 && len(c.in)+len(c.cur) > cap(c.in) {
		n := copy(c.in, c.in[c.inOff:])
		c.in, c.inOff = c.in[:n], 0
	}
	c.in = append(c.in, c.cur...)
	c.cur = nil
}

// InboundBuffered is how many bytes were read and not consumed.
func (c *fdConn) InboundBuffered() int { return len(c.in) - c.inOff + len(c.cur) }

// Peek returns the first n bytes read and not consumed (all of them when
// n < 0 or fewer are there), without consuming them.
func (c *fdConn) Peek(n int) ([]byte, error) {
	var b []byte
	switch {
	case len(c.in) == c.inOff:
		b = c.cur
	case len(c.cur) == 0:
		b = c.in[c.inOff:]
	default:
		c.keep()
		b = c.in[c.inOff:]
	}
	if n >= 0 && n < len(b) {
		b = b[:n]
	}
	return b, nil
}

// Next returns and consumes the first n bytes (all when n < 0). The bytes
// stay valid until the next read is handled.
func (c *fdConn) Next(n int) ([]byte, error) {
	b, _ := c.Peek(n)
	c.Discard(len(b))
	return b, nil
}

// Discard consumes the first n bytes (all when n < 0).
func (c *fdConn) Discard(n int) (int, error) {
	if n < 0 || n >= c.InboundBuffered() {
		n = c.InboundBuffered()
		c.in, c.inOff, c.cur = c.in[:0], 0, nil
		if cap(c.in) > keepBufSize {
			c.in = nil // an idle connection holds no large buffer
		}
		return n, nil
	}
	k := n
	if have := len(c.in) - c.inOff; have > 0 {
		d := min(k, have)
		c.inOff += d
		k -= d
	}
	c.cur = c.cur[k:]
	return n, nil
}

// OutboundBuffered is how many bytes wait for the socket to take them.
func (c *fdConn) OutboundBuffered() int { return len(c.out) - c.outOff }

// Write sends b, keeping what the socket does not take at once to send as
// it drains. A failure closes the connection (OnClose runs with the error
// before Write returns).
func (c *fdConn) Write(b []byte) (int, error) {
	if !c.open {
		return 0, net.ErrClosed
	}
	if c.outOff < len(c.out) {
		c.queueOut(b)
		return len(b), nil
	}
	sent := 0
	for sent < len(b) {
		n, e := rawsys.Write(uintptr(c.fd), b[sent:])
		switch e {
		case 0:
			sent += n
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
		default:
			err := os.NewSyscallError("write", e)
			c.p.close(c, err)
			return sent, err
		}
		break
	}
	if sent < len(b) {
		c.queueOut(b[sent:])
		c.watchOut(true)
	}
	return len(b), nil
}

// Writev writes the pieces of bs in order, as Write, with one writev(2)
// when nothing waits: a failure of that call sent no byte of any piece.
func (c *fdConn) Writev(bs [][]byte) (int, error) {
	if !c.open {
		return 0, net.ErrClosed
	}
	total := 0
	iov := make([]unix.Iovec, 0, len(bs))
	for _, b := range bs {
		if len(b) > 0 {
			iov = append(iov, unix.Iovec{Base: &b[0]})
			iov[len(iov)-1].SetLen(len(b))
			total += len(b)
		}
	}
	if c.outOff < len(c.out) || len(iov) == 0 {
		for _, b := range bs {
			c.queueOut(b)
		}
		return total, nil
	}
	var sent int
	for {
		n, _, e := unix.RawSyscall(unix.SYS_WRITEV, uintptr(c.fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 && e != syscall.EAGAIN {
			err := os.NewSyscallError("writev", e)
			c.p.close(c, err)
			return 0, err
		}
		if e == 0 {
			sent = int(n)
		}
		break
	}
	runtime.KeepAlive(bs)
	if sent < total {
		for _, b := range bs {
			k := min(sent, len(b))
			sent -= k
			if k < len(b) {
				c.queueOut(b[k:])
			}
		}
		c.watchOut(true)
	}
	return total, nil
}

// Close closes the connection once the events in hand are handled (its
// OnClose runs then, not from inside this call).
func (c *fdConn) Close() error {
	if c.open && !c.closeQ {
		c.closeQ = true
		c.p.closing = append(c.p.closing, c)
	}
	return nil
}

// queueOut keeps b to send after what waits, moving that to the buffer's
// start rather than growing it when there is room.
func (c *fdConn) queueOut(b []byte) {
	if c.outOff > 0 && len(c.out)+len(b) > cap(c.out) {
		n := copy(c.out, c.out[c.outOff:])
		c.out, c.outOff = c.out[:n], 0
	}
	if c.out == nil && len(c.p.spareOut) > 0 {
		last := len(c.p.spareOut) - 1
		c.out, c.p.spareOut[last] = c.p.spareOut[last], nil
		c.p.spareOut = c.p.spareOut[:last]
	}
	c.out = append(c.out, b...)
}

// flush writes what waits, and stops watching writability once all went.
func (c *fdConn) flush() {
	for c.outOff < len(c.out) {
		n, e := rawsys.Write(uintptr(c.fd), c.out[c.outOff:])
		switch e {
		case 0:
			c.outOff += n
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return
		default:
			c.p.close(c, os.NewSyscallError("write", e))
			return
		}
	}
	c.outOff = 0
	if cap(c.out) > keepBufSize {
		// A large buffer goes back to the loop's few spares rather
		// than stay with one connection.
		if len(c.p.spareOut) < maxSpareOut {
			c.p.spareOut = append(c.p.spareOut, c.out[:0])
		}
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
	c.watchOut(false)
}

// watchOut starts or stops watching c for writability.
func (c *fdConn) watchOut(on bool) {
	if c.outOn == on {
		return
	}
	c.outOn = on
	ev := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if on {
		ev |= unix.EPOLLOUT
	}
	_ = unix.EpollCtl(c.p.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: ev, Fd: int32(c.fd)})
}
