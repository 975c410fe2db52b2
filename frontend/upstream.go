package frontend

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aksml/aksml/frontend/internal/sock"
	"github.com/aksml/aksml/frontend/internal/wire"
	"github.com/aksml/aksml/internal/rawsys"
)

// Connections to replicas. Each replica has a LIFO pool of kept-alive
// HTTP/1.1 connections; a request takes one (or dials), is written, and its
// answer read with fasthttp's parser, then the connection goes back.
//
// A small request is written from inside the wait for its answer
// (syscall.RawConn.Read): the write goes out after the connection's
// readiness state was reset, so the answer's arrival always wakes the
// waiter, and the first read after waking finds the answer instead of
// failing with EAGAIN. That spares a system call and a trip through the
// network poller per request.

const (
	// idleConnTimeout closes connections idle this long: below common
	// keep-alive timeouts (gunicorn: 2 s), so the router rarely reuses a
	// connection the replica is about to close.
	idleConnTimeout = time.Second
	dialTimeout     = 2 * time.Second
	// inlineBodyMax is the largest request body written from inside the
	// wait for the answer (the request is serialized into a pooled buffer
	// first); a larger one is written straight to the socket, with a write
	// deadline, before waiting.
	inlineBodyMax = 32 << 10
	// upstreamReadBuffer bounds a replica's response header block.
	upstreamReadBuffer = 16 << 10
)

// upConn is one connection to a replica.
type upConn struct {
	*sockConn
	idleAt time.Time // when it was put back

	// State of the write done inside rc.Read (see onReadable). The
	// callback is a method value made once per connection, so a request
	// allocates nothing.
	out        []byte
	wrote      int
	sendErr    error
	started    bool
	onReadable func(fd uintptr) bool
}

func (c *upConn) writeThenWait(fd uintptr) bool {
	if c.started {
		return true // readable: the answer (or EOF) is there
	}
	c.started = true
	for c.wrote < len(c.out) {
		n, e := rawsys.Write(fd, c.out[c.wrote:])
		switch e {
		case 0:
			c.wrote += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return true // socket buffer full: finish with a blocking write
		default:
			c.sendErr = e
			return true
		}
	}
	return false // wait until the answer starts arriving
}

// connPool is a replica's set of idle connections.
type connPool struct {
	host string

	mu        sync.Mutex
	idle      []*upConn // most recently used last
	sweepSoon bool      // a sweep of idle connections is scheduled
	// control, when set, runs on each new socket before it connects (tests
	// shrink socket buffers with it).
	control func(network, address string, c syscall.RawConn) error
}

// get returns an idle connection that the replica has not closed, or
// dials one.
func (p *connPool) get(now time.Time) (c *upConn, err error) {
	for {
		c = nil
		var stale []*upConn
		p.mu.Lock()
		if n := len(p.idle); n > 0 {
			c = p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			if now.Sub(c.idleAt) >= idleConnTimeout {
				// The sweep is late; this one and every older one are stale.
				stale = append(p.idle, c)
				p.idle = nil
				c = nil
			}
		}
		p.mu.Unlock()
		for _, s := range stale {
			s.Close()
		}
		if c == nil {
			return p.dial()
		}
		quiet := false
		_ = c.RawConn().Control(func(fd uintptr) { quiet = sock.PeerQuiet(fd) })
		if quiet {
			return c, nil
		}
		c.Close() // closed by the replica: try the next one
	}
}

func (p *connPool) dial() (*upConn, error) {
	p.mu.Lock()
	d := net.Dialer{Timeout: dialTimeout, Control: p.control}
	p.mu.Unlock()
	conn, err := d.Dial("tcp", p.host)
	if err != nil {
		return nil, &dialError{err}
	}
	sc, err := newSockConn(conn.(*net.TCPConn))
	if err != nil {
		conn.Close()
		return nil, &dialError{err}
	}
	c := &upConn{sockConn: sc}
	c.onReadable = c.writeThenWait
	return c, nil
}

// put returns c to the pool at now.
func (p *connPool) put(c *upConn, now time.Time) {
	c.idleAt = now
	c.out = nil
	p.mu.Lock()
	p.idle = append(p.idle, c)
	arm := !p.sweepSoon
	p.sweepSoon = true
	p.mu.Unlock()
	if arm {
		time.AfterFunc(idleConnTimeout, p.sweep)
	}
}

// sweep closes connections idle for idleConnTimeout and schedules itself
// again while any stay idle.
func (p *connPool) sweep() {
	now := time.Now()
	p.mu.Lock()
	i := 0
	for i < len(p.idle) && now.Sub(p.idle[i].idleAt) >= idleConnTimeout {
		i++
	}
	stale := append([]*upConn(nil), p.idle[:i]...)
	p.idle = append(p.idle[:0], p.idle[i:]...)
	var next time.Duration
	if len(p.idle) > 0 {
		next = idleConnTimeout - now.Sub(p.idle[0].idleAt)
	} else {
		p.sweepSoon = false
	}
	p.mu.Unlock()
	for _, c := range stale {
		c.Close()
	}
	if next > 0 {
		time.AfterFunc(next, p.sweep)
	}
}

// closeIdle closes every idle connection.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

var (
	upReaders sync.Pool // *bufio.Reader
	upWriters sync.Pool // *reqWriter
)

// reqWriter serializes a request into B.
type reqWriter struct {
	wire.Writer
	bw *bufio.Writer
}

// roundTrip sends req to the replica and reads the answer into resp, giving
// up at deadline, or when ctx ends (closing the connection, which tells a
// Go replica's handler through its context). now is the time the caller
// last read the clock; the connection's idle time starts from done, the
// time at which the answer was read (zero on error). An error that is a
// *dialError or *notSentError means the replica cannot have seen the
// request. noDefaultContentType is kept on resp (fasthttp's Reset clears
// it).
//
// With rel set, an answer whose body is chunked or large (see readHead) is
// not read whole: roundTrip returns with its head in resp, a zero done,
// and rel holding the connection, to relay the body from.
func (p *connPool) roundTrip(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, now, deadline time.Time, noDefaultContentType bool, rel *bodyRelay) (done time.Time, err error) {
	c, err := p.get(now)
	if err != nil {
		return done, err
	}
	if ctx != nil && ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
	}
	if err = p.send(c, req, deadline); err != nil {
		c.Close()
		return done, err
	}
	var br *bufio.Reader
	if x := upReaders.Get(); x != nil {
		br = x.(*bufio.Reader)
		br.Reset(c.sockConn)
	} else {
		br = bufio.NewReaderSize(c.sockConn, upstreamReadBuffer)
	}
	resp.Reset()
	resp.Header.DisableNormalizing()
	resp.Header.SetNoDefaultContentType(noDefaultContentType)
	streamed := false
	if rel == nil {
		err = resp.ReadLimitBody(br, 0)
	} else {
		streamed, err = readHead(resp, br, rel)
	}
	leftover := br.Buffered() > 0
	br.Reset(nil)
	upReaders.Put(br)
	if err != nil {
		c.Close()
		return done, err
	}
	if streamed {
		rel.uc, rel.pool = c, p
		return done, nil
	}
	done = time.Now()
	if leftover || resp.ConnectionClose() || resp.Header.ContentLength() == -2 {
		c.Close() // more than one answer, or a body delimited by closing
	} else {
		p.put(c, done)
	}
	return done, nil
}

// send writes req on c. A request with a body of up to inlineBodyMax bytes
// is written from inside the wait for the answer, which returns once the
// answer starts arriving (or at deadline).
func (p *connPool) send(c *upConn, req *fasthttp.Request, deadline time.Time) error {
	if req.IsBodyStream() || len(req.Body()) > inlineBodyMax {
		if err := c.SetReadDeadline(deadline); err != nil {
			return err
		}
		if err := c.SetWriteDeadline(deadline); err != nil {
			return err
		}
		cw := &countWriter{w: c.sockConn}
		bw := bufio.NewWriterSize(cw, 16<<10)
		err := req.Write(bw)
		if err == nil {
			err = bw.Flush()
		}
		if err != nil && cw.n == 0 {
			return &notSentError{err}
		}
		return err
	}
	var w *reqWriter
	if x := upWriters.Get(); x != nil {
		w = x.(*reqWriter)
	} else {
		w = &reqWriter{}
		w.bw = bufio.NewWriterSize(&w.Writer, 4<<10)
	}
	defer func() {
		if cap(w.B) <= 2*inlineBodyMax {
			w.B = w.B[:0]
			upWriters.Put(w)
		}
	}()
	w.B = w.B[:0]
	w.bw.Reset(&w.Writer)
	if err := req.Write(w.bw); err != nil {
		return err
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	return c.writeAndWait(w.B, deadline, deadline)
}

// writeAndWait writes out on c from inside the wait for its answer (see
// writeThenWait), with the read deadline until: it returns once the
// answer starts arriving, or at until, which is not an error (the wait
// goes on with the read of the answer). What the socket buffer did not
// take is then written the usual way, with the write deadline deadline.
// A *notSentError means no byte of out left the router. connPool.send
// and the HTTPS engine both send this way.
func (c *upConn) writeAndWait(out []byte, until, deadline time.Time) error {
	if err := c.SetReadDeadline(until); err != nil {
		return err
	}
	c.out, c.wrote, c.sendErr, c.started = out, 0, nil, false
	err := c.RawConn().Read(c.onReadable)
	c.out = nil
	switch {
	case c.sendErr != nil && c.wrote == 0:
		return &notSentError{c.sendErr}
	case c.sendErr != nil:
		return c.sendErr
	case c.wrote < len(out):
		if c.wrote == 0 && err != nil {
			return &notSentError{err}
		}
		// The socket buffer filled up: write the rest the usual way.
		if err := c.SetWriteDeadline(deadline); err != nil {
			return err
		}
		_, err := c.Write(out[c.wrote:])
		return err
	}
	if err != nil && !isTimeout(err) {
		return err
	}
	return nil // sent; a timeout here ends only the wait
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
