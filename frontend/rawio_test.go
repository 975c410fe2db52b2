package frontend

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// tcpPair returns a sockConn and the plain TCP connection at its other end.
func tcpPair(t *testing.T) (*sockConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := sockListener{Listener: ln}.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := <-accepted
	sc, ok := c.(*sockConn)
	if !ok {
		t.Fatalf("sockListener accepted a %T", c)
	}
	t.Cleanup(func() { sc.Close(); peer.Close() })
	return sc, peer
}

// TestSockConn moves more data than the socket buffers hold both ways (so
// reads and writes wait for the poller), and checks deadlines, EOF and
// Close.
func TestSockConn(t *testing.T) {
	t.Parallel()
	sc, peer := tcpPair(t)
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}

	// sockConn writes, the peer reads slowly at first. (The pauses in this
	// test make the waiting paths likelier; the results do not depend on
	// them.)
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		b := make([]byte, len(data))
		_, err := io.ReadFull(peer, b)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	if n, err := sc.Write(data); n != len(data) || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if !bytes.Equal(<-got, data) {
		t.Fatal("the peer read other bytes than were written")
	}

	// The peer writes, sockConn reads.
	go func() {
		if _, err := peer.Write(data); err != nil {
			t.Error(err)
		}
	}()
	b := make([]byte, len(data))
	if _, err := io.ReadFull(sc, b); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("ReadFull: %v (equal %v)", err, bytes.Equal(b, data))
	}

	// A read deadline gives a timeout error.
	sc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	var ne net.Error
	if _, err := sc.Read(b); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline: %v, want a timeout", err)
	}
	sc.SetReadDeadline(time.Time{})

	// The peer closing gives io.EOF after the last bytes.
	peer.Write([]byte("last"))
	peer.Close()
	if b, err := io.ReadAll(sc); string(b) != "last" || err != nil {
		t.Fatalf("ReadAll after the peer closed: %q, %v", b, err)
	}
	if n, err := sc.Read(b); n != 0 || err != io.EOF {
		t.Fatalf("Read at EOF: %d, %v", n, err)
	}

	// Writing to a connection the peer closed fails.
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = sc.Write(data[:64<<10])
	}
	if werr == nil {
		t.Fatal("writes to a closed peer kept succeeding")
	}

	// Close interrupts a waiting Read.
	sc2, _ := tcpPair(t)
	done := make(chan error, 1)
	go func() { _, err := sc2.Read(make([]byte, 10)); done <- err }()
	time.Sleep(20 * time.Millisecond)
	sc2.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read interrupted by Close: %v, want net.ErrClosed", err)
	}
}
