package connq

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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

type testConn struct{ woken, killed atomic.Bool }

func TestSetShutdown(t *testing.T) {
	var s Set[*testConn]
	idle, busy := &testConn{}, &testConn{}
	if !s.Add(idle) || !s.Add(busy) {
		t.Fatal("Add on an open set reported false")
	}
	wake := func(c *testConn) {
		c.woken.Store(true)
		if c == idle {
			go s.Remove(c) // an idle connection ends when woken
		}
	}
	kill := func(c *testConn) { c.killed.Store(true) }
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx, wake, kill); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a connection that stays: %v, want the context's error", err)
	}
	if !idle.woken.Load() || idle.killed.Load() || !busy.killed.Load() {
		t.Errorf("idle woken %v killed %v, busy killed %v; want the idle one woken and ended, the busy one killed",
			idle.woken.Load(), idle.killed.Load(), busy.killed.Load())
	}
	if s.Add(&testConn{}) {
		t.Error("Add after Shutdown reported true")
	}
	if n := s.Len(); n != 1 {
		t.Errorf("Len %d, want 1 (the busy connection)", n)
	}
	s.Remove(busy)
	s.Wait()
}

func TestRetry(t *testing.T) {
	var b time.Duration
	if Retry(errors.New("listener closed"), &b) || b != 0 {
		t.Errorf("a permanent error is retried (backoff %v)", b)
	}
	if !Retry(syscall.EMFILE, &b) || b != 5*time.Millisecond {
		t.Errorf("EMFILE: backoff %v, want 5ms and a retry", b)
	}
	if !Retry(syscall.ECONNABORTED, &b) || b != 10*time.Millisecond {
		t.Errorf("second retry: backoff %v, want 10ms", b)
	}
}

func TestBuffer(t *testing.T) {
	var b Buffer
	b.Reset(8)
	r := strings.NewReader("POST / x\r\n\r\nGET")
	if n, err := b.ReadOnce(r); n != 8 || err != nil || string(b.Bytes()) != "POST / x" {
		t.Fatalf("ReadOnce: %d %v %q", n, err, b.Bytes())
	}
	b.Consume(8)
	b.SkipCRLF(4)
	if got := b.Next(); len(got) != 0 {
		t.Fatalf("Next of an empty buffer: %q", got)
	}
	b.Ensure(1)
	_, _ = b.ReadOnce(r)
	if got := string(b.Next()); got != "GET" {
		t.Fatalf("after skipping the CRLFs: %q, want GET", got)
	}
	b.Ensure(100)
	if b.Size() < 100 || string(b.Bytes()) != "GET" {
		t.Fatalf("Ensure(100): size %d, bytes %q", b.Size(), b.Bytes())
	}
	b.Shrink(64, 8)
	if b.Size() != 8 || string(b.Bytes()) != "GET" {
		t.Fatalf("Shrink: size %d, bytes %q", b.Size(), b.Bytes())
	}
}
