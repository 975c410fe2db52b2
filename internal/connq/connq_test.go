package connq

import (
	"errors"
	"io"
	"net"
	"testing"
)

func TestQueue(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	q := New(a.LocalAddr())
	got := make(chan net.Conn, 1)
	go func() {
		c, err := q.Accept()
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	if !q.Put(a) {
		t.Fatal("Put on an open queue reported false")
	}
	if c := <-got; c != a {
		t.Fatalf("Accept returned %v, want the connection put", c)
	}
	q.Close()
	if q.Put(b) {
		t.Error("Put on a closed queue reported true")
	}
	if _, err := q.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed queue: %v, want net.ErrClosed", err)
	}
	if q.Addr() != a.LocalAddr() {
		t.Errorf("Addr %v", q.Addr())
	}
}

func TestReplayConn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	go func() { _, _ = b.Write([]byte(" world")); b.Close() }()
	rc := &ReplayConn{Conn: a, Rest: []byte("hello")}
	out, err := io.ReadAll(rc)
	if err != nil || string(out) != "hello world" {
		t.Fatalf("read %q, %v; want the bytes read before, then the connection's", out, err)
	}
}

func ExampleQueue() {
	q := New(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080})
	defer q.Close()
	// An engine that reads a connection's first bytes hands it on with
	// them:  q.Put(&ReplayConn{Conn: c, Rest: alreadyRead})
	// while a net/http server serves q:  srv.Serve(q)
	_ = q.Addr()
	// Output:
}
