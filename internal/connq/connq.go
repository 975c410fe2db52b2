// Package connq is what the engines that serve common requests themselves
// and hand every other connection to net/http share: a net.Listener fed
// with connections accepted elsewhere (Queue), the connection that replays
// what was already read from it (ReplayConn), the net/http server on the
// queue (Fallback), the set of the engine's own connections for its
// shutdown (Set), and net/http's rule for retrying Accept (Retry).
package connq

import (
	"net"
	"sync"
)

// Queue is a net.Listener whose Accept returns the connections given to
// Put. Its zero value is not usable; New makes one.
type Queue struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

// New returns an open queue that reports addr as its address.
func New(addr net.Addr) *Queue {
	return &Queue{ch: make(chan net.Conn), done: make(chan struct{}), addr: addr}
}

// Put waits until the server accepts c and reports true, or until the
// queue is closed and reports false (c is then the caller's to close).
func (q *Queue) Put(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

// Accept implements net.Listener.
func (q *Queue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: Accept and Put return at once from now on.
func (q *Queue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

// Addr implements net.Listener.
func (q *Queue) Addr() net.Addr { return q.addr }

// ReplayConn is a connection whose reads give Rest, the bytes already read
// from it, before reading it further.
type ReplayConn struct {
	net.Conn
	Rest []byte
}

// Read implements net.Conn.
func (r *ReplayConn) Read(p []byte) (int, error) {
	if len(r.Rest) > 0 {
		n := copy(p, r.Rest)
		r.Rest = r.Rest[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}
