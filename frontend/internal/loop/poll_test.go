//go:build linux

package loop

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The poller on its own: a handler that records what it is told, over
// loopback connections.

type pollHandler struct {
	opened  chan *fdConn
	closed  chan error
	traffic func(c *fdConn) action
}

func newPollHandler(traffic func(c *fdConn) action) *pollHandler {
	return &pollHandler{opened: make(chan *fdConn, 4), closed: make(chan error, 4), traffic: traffic}
}

func (h *pollHandler) OnOpen(c *fdConn)             { h.opened <- c }
func (h *pollHandler) OnClose(c *fdConn, err error) { h.closed <- err }
func (h *pollHandler) OnTraffic(c *fdConn) action   { return h.traffic(c) }

// loopbackPair returns both ends of a new loopback connection.
func loopbackPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	client.SetDeadline(time.Now().Add(20 * time.Second))
	return client, server
}

// pollPair enrolls the server side of a new loopback connection in p and
// returns the client side.
func pollPair(t *testing.T, p *poller) net.Conn {
	t.Helper()
	client, server := loopbackPair(t)
	if err := p.enroll(server, "ctx"); err != nil {
		t.Fatal(err)
	}
	return client
}

func startPoller(t *testing.T, h handler) *poller {
	t.Helper()
	p, err := newPoller(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	return p
}

func recv[T any](t *testing.T, ch chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

// TestPollerBackpressure: what the socket does not take waits in the
// connection and goes out, in order, as the peer reads; Peek and Discard
// see input that arrived over several reads as one.
func TestPollerBackpressure(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	queued := make(chan int, 1)
	partial := make(chan []byte, 1)
	h := newPollHandler(func(c *fdConn) action {
		if b, _ := c.Peek(-1); len(b) < len("go\n") {
			partial <- append([]byte(nil), b...)
			return actNone // the rest later
		}
		c.Discard(3)
		c.Write(big)
		c.Write([]byte("end"))
		queued <- c.OutboundBuffered()
		return actNone
	})
	p := startPoller(t, h)
	client := pollPair(t, p)
	c := recv(t, h.opened, "OnOpen")
	if c.Context() != "ctx" {
		t.Errorf("context %v", c.Context())
	}
	client.Write([]byte("g"))
	if b := recv(t, partial, "the first byte"); string(b) != "g" {
		t.Fatalf("Peek after the first read: %q", b)
	}
	client.Write([]byte("o\n"))
	if n := recv(t, queued, "the answer"); n == 0 {
		t.Error("8 MiB written to a peer that read nothing: nothing waits in the connection")
	}
	got, err := io.ReadAll(io.LimitReader(client, int64(len(big)+3)))
	if err != nil || !bytes.Equal(got[:len(big)], big) || string(got[len(big):]) != "end" {
		t.Fatalf("read %d bytes (%v), want the 8 MiB then \"end\"", len(got), err)
	}
	left := make(chan int, 1)
	if !p.exec(func() { left <- c.OutboundBuffered() }) {
		t.Fatal("exec refused on a running loop")
	}
	if n := recv(t, left, "OutboundBuffered"); n != 0 {
		t.Errorf("%d bytes wait after the peer read everything", n)
	}
}

// TestPollerCloseLater: Close from a handler closes the connection after
// the handler returns (its OnClose does not run inside the call), and the
// peer reads what was written before it.
func TestPollerCloseLater(t *testing.T) {
	var h *pollHandler
	inside := make(chan bool, 1)
	h = newPollHandler(func(c *fdConn) action {
		c.Write([]byte("bye"))
		c.Close()
		inside <- len(h.closed) > 0
		return actNone
	})
	p := startPoller(t, h)
	client := pollPair(t, p)
	client.Write([]byte("x"))
	if recv(t, inside, "the handler") {
		t.Error("OnClose ran inside Close")
	}
	if err := recv(t, h.closed, "OnClose"); err != nil {
		t.Errorf("OnClose after Close: %v, want nil", err)
	}
	got, err := io.ReadAll(client)
	if string(got) != "bye" || err != nil {
		t.Errorf("peer read %q, %v; want \"bye\" then EOF", got, err)
	}
}

// TestPollerPeerCloses: a peer that closes makes OnClose run with an
// error; actClose closes at once, with none.
func TestPollerPeerCloses(t *testing.T) {
	h := newPollHandler(func(c *fdConn) action {
		c.Discard(-1)
		return actClose
	})
	p := startPoller(t, h)
	client := pollPair(t, p)
	client.Close()
	if err := recv(t, h.closed, "OnClose"); !errors.Is(err, io.EOF) {
		t.Errorf("OnClose after the peer closed: %v, want EOF", err)
	}
	client = pollPair(t, p)
	client.Write([]byte("x"))
	if err := recv(t, h.closed, "OnClose"); err != nil {
		t.Errorf("OnClose after actClose: %v, want nil", err)
	}
	if n, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("peer read %d, %v; want EOF", n, err)
	}
}

// TestPollerStop: stop closes every connection (OnClose runs for each) and
// ends the loop; it then takes no connection and no task.
func TestPollerStop(t *testing.T) {
	h := newPollHandler(func(c *fdConn) action { return actNone })
	p := startPoller(t, h)
	client := pollPair(t, p)
	recv(t, h.opened, "OnOpen")
	p.stop()
	if err := recv(t, h.closed, "OnClose"); err != nil {
		t.Errorf("OnClose at stop: %v", err)
	}
	if n, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("peer read %d, %v; want EOF", n, err)
	}
	if p.exec(func() {}) {
		t.Error("exec accepted a task after stop")
	}
	_, c := loopbackPair(t)
	if err := p.enroll(c, nil); !errors.Is(err, errPollerClosed) {
		t.Errorf("enroll after stop: %v", err)
	}
	p.stop() // again: returns
}

// TestPollerTaskBeforeParking: a task handed to the loop just as it is
// about to park (its look at the epoll set found nothing) runs at once. The
// runtime watches the epoll descriptor edge-triggered: had the loop parked
// without looking again, the eventfd's readiness, already seen by the
// runtime, would have woken nobody, and the task would wait for the next
// event on any of the loop's connections.
func TestPollerTaskBeforeParking(t *testing.T) {
	p, err := makePoller(newPollHandler(func(*fdConn) action { return actNone }))
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{})
	first := true
	p.beforePark = func() { // in the loop's goroutine
		if !first {
			return
		}
		first = false
		p.exec(func() { close(ran) })
		// Long enough for the runtime's poller (sysmon looks every 10 ms)
		// to see the epoll descriptor turn readable before the loop parks.
		time.Sleep(50 * time.Millisecond)
	}
	go p.run()
	t.Cleanup(p.stop)
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		// Wake the loop (a fresh write to the eventfd is a new edge) so
		// that stop can end it.
		one := [8]byte{1}
		_, _ = unix.Write(p.efd, one[:])
		t.Fatal("the task handed over before parking did not run")
	}
}
