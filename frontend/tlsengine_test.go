package frontend

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTLSEngineStaysHTTPS: while the plain engines redirect to HTTPS, every
// request over ServeTLS is served, on the lean path and after the
// connection was handed to net/http (a chunked request): none gets 308.
// A replica's chunked answer (read by the general answer path) reaches the
// caller whole.
func TestTLSEngineStaysHTTPS(t *testing.T) {
	t.Parallel()
	rep := startReplica(t, "r", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) == "chunked answer" {
			w.(http.Flusher).Flush() // no Content-Length: chunked
		}
		io.WriteString(w, "got "+string(b))
	})
	rt := New(nil)
	base := serve(t, rt, "tls")
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
	rt.SetHTTPSRedirect("https://svc.aksml.test")
	c := rawConn(t, base)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	const path = "/api/v1/service/svc/score"
	io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\nchunked answer"+
		"POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nlean"+
		"POST "+path+" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnext\r\n0\r\n\r\n"+
		"POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nafter")
	br := bufio.NewReader(c)
	for i, want := range []string{"got chunked answer", "got lean", "got next", "got after"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want || resp.Header.Get(HeaderServedBy) != "v" || resp.Header.Get(HeaderRequestID) == "" {
			t.Errorf("answer %d: %d %q (served by %q, id %q), want 200 %q", i+1, resp.StatusCode, b,
				resp.Header.Get(HeaderServedBy), resp.Header.Get(HeaderRequestID), want)
		}
	}
	if n := rep.hits.Load(); n != 4 {
		t.Errorf("the replica got %d requests, want 4", n)
	}
}

// TestTLSEngineShutdown: Shutdown closes idle connections, the lean
// engine's and those handed to net/http, waits for a request in progress,
// which gets its answer, and leaves no goroutine of the engine behind.
func TestTLSEngineShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	rep := startReplica(t, "r", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) == "slow" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "done")
	})
	rt := New(nil)
	rt.SetCertificate(engineCert())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- rt.ServeTLS(ln) }()
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
	base := "https://" + ln.Addr().String()
	const path = "/api/v1/service/svc/score"
	// Two idle connections, one on each path, after one request each.
	var idle []*bufio.Reader
	for _, req := range []string{
		"POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na",
		"POST " + path + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n",
	} {
		c := rawConn(t, base)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, req)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		idle = append(idle, br)
	}
	busy := rawConn(t, base)
	busy.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(busy, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nslow")
	<-started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- rt.Shutdown(ctx)
	}()
	for i, br := range idle {
		if _, err := br.ReadByte(); err == nil || isTimeoutErr(err) {
			t.Errorf("idle connection %d still open at Shutdown (%v)", i, err)
		}
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in progress", err)
	default:
	}
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("request in progress at Shutdown: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "done" {
		t.Errorf("request in progress at Shutdown: %d %q", resp.StatusCode, b)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("ServeTLS: %v", err)
	}
	if _, err := (&net.Dialer{Timeout: time.Second}).Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the listener still accepts after Shutdown")
	}
	waitFor(t, "the engine's goroutines to end", func() bool {
		buf := make([]byte, 1<<20)
		s := string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(s, "frontend.(*tlsConn)") && !strings.Contains(s, "serveTLSLean")
	})
}

// TestTLSEngineHTTPOnHTTPSPort: a plain HTTP request on the HTTPS port is
// answered 400 in clear text, as net/http's server answers it.
func TestTLSEngineHTTPOnHTTPSPort(t *testing.T) {
	t.Parallel()
	rt := New(nil)
	base := serve(t, rt, "tls")
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\n\r\n")
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "HTTP/1.0 400 Bad Request") || !strings.Contains(string(b), "HTTP request to an HTTPS server") {
		t.Errorf("plain HTTP on the HTTPS port: %q", b)
	}
}

// TestTLSCallerThatDoesNotReadIsClosed: a caller that pipelines requests
// over HTTPS and never reads the answers does not hold its connection (and
// its goroutine) for good: once a write of its answers has made no
// progress for BodyReadTimeout, the connection closes.
func TestTLSCallerThatDoesNotReadIsClosed(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("z", 64<<10)
	rep := startReplica(t, "r", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, big)
	})
	rt := New(&Options{BodyReadTimeout: 300 * time.Millisecond})
	base := serve(t, rt, "tls")
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := tls.DialWithDialer(&d, "tcp", strings.TrimPrefix(base, "https://"), engineClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 2000
	c.SetDeadline(time.Now().Add(20 * time.Second))
	go io.WriteString(c, strings.Repeat("GET /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\n\r\n", n))
	var e *tlsEngine
	rt.mu.Lock()
	for _, x := range rt.engines {
		if te, ok := x.(*tlsEngine); ok {
			e = te
		}
	}
	rt.mu.Unlock()
	waitFor(t, "the connection of a caller that reads nothing closed", func() bool {
		return e.conns.Len() == 0 && rep.hits.Load() > 0
	})
	answers := 0
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		io.Copy(io.Discard, resp.Body)
		answers++
	}
	if answers >= n {
		t.Errorf("all %d pipelined requests were answered to a caller that read nothing", n)
	}
}
