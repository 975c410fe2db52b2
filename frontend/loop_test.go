package frontend

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawConn dials the router's address from base ("http://HOST:PORT").
func rawConn(t *testing.T, base string) net.Conn {
	t.Helper()
	c, err := dialBase(base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialBase connects to a base URL of serve: TCP for http://, TLS (the
// handshake done) for https://.
func dialBase(base string) (net.Conn, error) {
	if addr, ok := strings.CutPrefix(base, "https://"); ok {
		return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, engineClientTLS())
	}
	return net.Dial("tcp", strings.TrimPrefix(base, "http://"))
}

// tcpConn is the TCP connection under c.
func tcpConn(c net.Conn) *net.TCPConn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn().(*net.TCPConn)
	}
	return c.(*net.TCPConn)
}

// TestEventLoopPipelining writes several requests at once on one
// connection — lean ones, a chunked one (general path), one that must queue
// for a slot (slow path), a refused one — and reads the answers back in
// order, each with its own request id. The lean TLS engine runs it too (it
// hands the connection to net/http at the chunked request).
func TestEventLoopPipelining(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{"eventloop", "tls"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			testPipelining(t, engine)
		})
	}
}

func testPipelining(t *testing.T, engine string) {
	echo := startReplica(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(append([]byte(r.Method+" "+r.URL.RequestURI()+" "), b...))
	})
	rt := New(nil)
	base := serve(t, rt, engine)
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", MaxConcurrentPerReplica: 1, Replicas: []Replica{echo.replica("e", true)}}}})
	c := rawConn(t, base)
	msgs := "POST /api/v1/service/svc/score?n=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none" +
		"POST /api/v1/service/svc/score?n=2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n" +
		"GET /api/v1/service/svc/score?n=3 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"PUT /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" +
		"POST /api/v1/service/nope/score HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" +
		"POST /api/v1/service/svc/score?n=6 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nsix"
	if _, err := io.WriteString(c, msgs); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	want := []struct {
		code int
		body string
	}{{200, "POST /score?n=1 one"}, {200, "POST /score?n=2 two"}, {200, "GET /score?n=3 "}, {405, "Method PUT is not allowed; use GET or POST"},
		{404, "Service nope not found"}, {200, "POST /score?n=6 six"}}
	ids := map[string]bool{}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i, w := range want {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != w.code || string(b) != w.body {
			t.Errorf("answer %d: %d %q, want %d %q", i+1, resp.StatusCode, b, w.code, w.body)
		}
		id := resp.Header.Get(HeaderRequestID)
		if id == "" || ids[id] {
			t.Errorf("answer %d: request id %q missing or repeated", i+1, id)
		}
		ids[id] = true
		if w.code == 200 && resp.Header.Get(HeaderServedBy) != "v" {
			t.Errorf("answer %d: served by %q", i+1, resp.Header.Get(HeaderServedBy))
		}
	}
}

// TestEventLoopConnectionHandling covers Expect: 100-continue, a caller's
// Connection: close, HTTP/1.0, and the 413 and 400 answers that close the
// connection.
func TestEventLoopConnectionHandling(t *testing.T) {
	t.Parallel()
	echo := startReplica(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	rt := New(&Options{MaxBodyBytes: 64})
	base := serve(t, rt, "eventloop")
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{echo.replica("e", true)}}}})

	t.Run("expect 100-continue", func(t *testing.T) {
		c := rawConn(t, base)
		io.WriteString(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		br := bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("interim answer %q, %v", line, err)
		}
		br.ReadString('\n') // the blank line
		io.WriteString(c, "hello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "hello" {
			t.Errorf("got %d %q", resp.StatusCode, b)
		}
	})
	closes := func(t *testing.T, msg string, code int) {
		t.Helper()
		c := rawConn(t, base)
		io.WriteString(c, msg)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		if resp.StatusCode != code {
			t.Errorf("got %d, want %d", resp.StatusCode, code)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("connection still open after the answer (%v)", err)
		}
	}
	t.Run("connection close", func(t *testing.T) {
		closes(t, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi", 200)
	})
	t.Run("HTTP/1.0", func(t *testing.T) {
		closes(t, "POST /api/v1/service/svc/score HTTP/1.0\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", 200)
	})
	t.Run("too large", func(t *testing.T) {
		closes(t, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n", 413)
	})
	t.Run("malformed", func(t *testing.T) {
		closes(t, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", 400)
	})
}

// TestEventLoopCallerLeaves: callers that hang up while their request is
// at a replica leave no slot taken, and the router keeps serving.
func TestEventLoopCallerLeaves(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var arrived sync.WaitGroup
	arrived.Add(4)
	var n atomic.Int32
	slow := startReplica(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		if n.Add(1) <= 4 {
			arrived.Done()
		}
		<-release
		io.WriteString(w, "late")
	})
	rt := New(nil)
	base := serve(t, rt, "eventloop")
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", MaxConcurrentPerReplica: 4, Replicas: []Replica{slow.replica("s", true)}}}})
	var conns []net.Conn
	for i := 0; i < 4; i++ {
		c := rawConn(t, base)
		io.WriteString(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
		conns = append(conns, c)
	}
	arrived.Wait()
	// Hang up all four, then let the replica answer.
	for _, c := range conns {
		c.Close()
	}
	close(release)
	waitFor(t, "the slots to be released", func() bool {
		l, _ := rt.Load("svc")
		return l[0].InFlight == 0
	})
	if got := do(t, "POST", base+"/api/v1/service/svc/score", "{}"); got.code != 200 || got.body != "late" {
		t.Errorf("after the callers left: %d %q", got.code, got.body)
	}
}

// TestEventLoopShutdown: Shutdown waits for a request in progress, which
// gets its answer, and leaves no goroutine of the engine behind.
func TestEventLoopShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slow := startReplica(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		started <- struct{}{}
		<-release
		io.WriteString(w, "done")
	})
	rt := New(nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- rt.Serve(ln) }()
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{slow.replica("s", true)}}}})
	base := "http://" + ln.Addr().String()
	got := make(chan result, 1)
	go func() { got <- do(t, "POST", base+"/api/v1/service/svc/score", "{}") }()
	<-started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- rt.Shutdown(ctx)
	}()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in progress", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if r := <-got; r.code != 200 || r.body != "done" {
		t.Errorf("request in progress at Shutdown: %d %q", r.code, r.body)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	client.CloseIdleConnections()
	waitFor(t, "the engine's goroutines to end", func() bool {
		buf := make([]byte, 1<<20)
		s := string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(s, "internal/loop.") && !strings.Contains(s, "frontend.loopServer")
	})
}
