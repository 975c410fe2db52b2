package frontend

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Answers are forwarded as they arrive on every engine: the event loop
// (package frontend/internal/loop), the http.Handler path and the HTTPS engine (relay.go).

// streamRoute serves svc on engine from one replica running h.
func streamRoute(t *testing.T, engine string, opts *Options, h http.HandlerFunc) (*Router, string, *testReplica) {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	if opts.BodySpillDir == "" {
		opts.BodySpillDir = t.TempDir()
	}
	rep := startReplica(t, "r", h)
	rt := New(opts)
	base := serve(t, rt, engine)
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", MaxConcurrentPerReplica: 1, Replicas: []Replica{rep.replica("r", true)}}}})
	return rt, base, rep
}

// waitChan waits for ch, failing the test after d.
func waitChan(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: not within %v", what, d)
	}
}

// inFlight is svc's in-flight count at the router.
func inFlight(t *testing.T, rt *Router) int {
	t.Helper()
	ld, err := rt.Load("svc")
	if err != nil {
		t.Fatal(err)
	}
	return ld[0].InFlight
}

// TestAnswersStream: the first part of an answer reaches the caller while
// the replica is still producing the rest, for a chunked answer (a
// streaming AMLResponse) and for a large one with a Content-Length; the
// connection then serves the next request.
func TestAnswersStream(t *testing.T) {
	first := strings.Repeat("a", 1<<20)
	for _, engine := range engines {
		for _, chunked := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/chunked=%v", engine, chunked), func(t *testing.T) {
				testAnswerStreams(t, engine, chunked, first)
			})
		}
	}
}

func testAnswerStreams(t *testing.T, engine string, chunked bool, first string) {
	release := make(chan struct{})
	rt, base, _ := streamRoute(t, engine, nil, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("n") == "2" {
			io.WriteString(w, "second request")
			return
		}
		if !chunked {
			w.Header().Set("Content-Length", fmt.Sprint(2*len(first)))
		}
		w.Header().Set("X-Model", "m1")
		io.WriteString(w, first)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, strings.ToUpper(first))
	})
	c := rawConn(t, base)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	// The head and the first part must arrive while the replica holds
	// the rest back.
	br := bufio.NewReader(c)
	var resp *http.Response
	got := make([]byte, len(first))
	read := make(chan error, 1)
	go func() {
		var err error
		resp, err = http.ReadResponse(br, nil)
		if err == nil {
			_, err = io.ReadFull(resp.Body, got)
		}
		read <- err
	}()
	select {
	case err := <-read:
		if err != nil || string(got) != first {
			close(release)
			t.Fatalf("head and first part: %v", err)
		}
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("the head and first part of the answer did not reach the caller while the replica was still answering")
	}
	if resp.StatusCode != 200 || resp.Header.Get("X-Model") != "m1" || resp.Header.Get(HeaderRequestID) == "" || resp.Header.Get(HeaderServedBy) != "v" {
		t.Errorf("head: %d %v", resp.StatusCode, resp.Header)
	}
	if chunked && (len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked") {
		t.Errorf("a chunked answer went out as %v, length %d", resp.TransferEncoding, resp.ContentLength)
	}
	if !chunked && resp.ContentLength != int64(2*len(first)) {
		t.Errorf("Content-Length %d, want %d", resp.ContentLength, 2*len(first))
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != strings.ToUpper(first) {
		t.Fatalf("rest: %d bytes, %v", len(rest), err)
	}
	io.WriteString(c, "POST /api/v1/service/svc/score?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "second request" {
		t.Errorf("next request on the connection: %d %q", resp.StatusCode, b)
	}
	if n := inFlight(t, rt); n != 0 {
		t.Errorf("in flight after both answers: %d", n)
	}
}

// pattern fills the answer bodies of the memory tests.
var pattern = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte(i * 7 / 5)
	}
	return b
}()

// TestStreamedAnswersBoundedMemory: 64 MB answers, chunked or with a
// length, cost the router a few MB, and a caller that reads nothing until
// the replica is done does not hold the replica: the answer waits in a
// file and arrives whole.
func TestStreamedAnswersBoundedMemory(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) { testStreamedAnswersBoundedMemory(t, engine) })
	}
}

func testStreamedAnswersBoundedMemory(t *testing.T, engine string) {
	const size = 64 << 20
	done := make(chan struct{}, 1)
	rt, base, _ := streamRoute(t, engine, nil, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", fmt.Sprint(size))
		}
		for off := 0; off < size; off += len(pattern) {
			w.Write(pattern)
		}
		if r.URL.Query().Get("slow") != "" {
			done <- struct{}{}
		}
	})
	h := sha256.New()
	for off := 0; off < size; off += len(pattern) {
		h.Write(pattern)
	}
	want := fmt.Sprintf("%x", h.Sum(nil))
	get := func(query string, wait bool) {
		t.Helper()
		c := rawConn(t, base)
		c.SetDeadline(time.Now().Add(60 * time.Second))
		io.WriteString(c, "GET /api/v1/service/svc/score?"+query+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if wait {
			// The caller reads nothing until the replica has sent it all.
			waitChan(t, done, 30*time.Second, "the replica finishing an answer nobody reads yet")
			waitFor(t, "the replica's slot freed while the caller lags", func() bool { return inFlight(t, rt) == 0 })
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil || n != size || fmt.Sprintf("%x", h.Sum(nil)) != want {
			t.Errorf("%s: %d bytes, %v", query, n, err)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	get("chunked=1", false)
	get("length=1", false)
	runtime.ReadMemStats(&after)
	// The replica (net/http) and the caller count here too.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Errorf("two 64 MB answers allocated %d MB", grew>>20)
	}
	t.Logf("two 64 MB answers allocated %.1f MB", float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
	if engine != "eventloop" {
		// The engines that serve a caller from a goroutine hold the
		// replica while the caller lags (relay.go): the replica cannot
		// finish before the caller reads.
		return
	}
	get("chunked=1&slow=1", true)
	get("length=1&slow=1", true)
	if used := rt.spill.Used(); used != 0 {
		t.Errorf("%d bytes of the spill allowance held after the answers", used)
	}
}

// TestStreamedAnswerBreaksOff: a replica that dies in the middle of a
// streamed answer closes the caller's connection before the answer's end
// (never a complete-looking answer), frees its slot, and counts a 502; a
// malformed chunk does the same.
func TestStreamedAnswerBreaksOff(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) { testStreamedAnswerBreaksOff(t, engine) })
	}
}

func testStreamedAnswerBreaksOff(t *testing.T, engine string) {
	for _, tc := range []struct{ name, answer string }{
		{"replica dies", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"},
		{"replica dies with a length", "HTTP/1.1 200 OK\r\nContent-Length: 9999999\r\n\r\n" + strings.Repeat("x", 300<<10)},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, base, _ := streamRoute(t, engine, nil, func(w http.ResponseWriter, r *http.Request) {
				conn, bw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				bw.WriteString(tc.answer)
				bw.Flush()
				conn.Close()
			})
			c := rawConn(t, base)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("read %d bytes of the answer, then %v; want io.ErrUnexpectedEOF", len(b), err)
			}
			if n := inFlight(t, rt); n != 0 {
				t.Errorf("in flight: %d", n)
			}
			st, _ := rt.Stats("svc")
			if got := st.Versions[0].Responses[502]; got != 1 {
				t.Errorf("502s counted: %d (%v)", got, st.Versions[0].Responses)
			}
		})
	}
}

// TestStreamedAnswerStalls: a replica that stops sending in the middle of
// an answer is cut off after BodyReadTimeout, however long the scoring
// timeout, and the caller's connection closes.
func TestStreamedAnswerStalls(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) { testStreamedAnswerStalls(t, engine) })
	}
}

func testStreamedAnswerStalls(t *testing.T, engine string) {
	stop := make(chan struct{})
	defer close(stop)
	rt, base, _ := streamRoute(t, engine, &Options{BodyReadTimeout: 300 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part")
		w.(http.Flusher).Flush()
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	})
	c := rawConn(t, base)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b, err := io.ReadAll(resp.Body)
	var ne net.Error
	if string(b) != "part" || !errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("got %q, %v after %v; want the first part, then the connection closed", b, err, time.Since(start))
	}
	if n := inFlight(t, rt); n != 0 {
		t.Errorf("in flight: %d", n)
	}
	st, _ := rt.Stats("svc")
	if got := st.Versions[0].Responses[502]; got != 1 {
		t.Errorf("502s counted: %d (%v)", got, st.Versions[0].Responses)
	}
}

// TestCallerThatDoesNotReadIsCutOff: a caller that reads nothing of a
// large answer is cut off after BodyReadTimeout instead of holding its
// connection (and on the HTTPS engine a goroutine and the replica's slot)
// for good: the event loop keeps what the caller does not take in a file
// and closes the connection when the caller has read nothing for that
// long; the HTTPS engine's write to the caller times out, on its lean
// path and on a connection handed to net/http (a chunked request). The
// caller then gets less than the whole answer. (On the http.Handler path
// this is the http.Server's WriteTimeout.)
func TestCallerThatDoesNotReadIsCutOff(t *testing.T) {
	for _, engine := range []string{"eventloop", "tls", "tls/handed-over"} {
		t.Run(engine, func(t *testing.T) {
			req := "GET /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\n\r\n"
			if engine == "tls/handed-over" {
				engine = "tls"
				req = "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
			}
			const size = 64 << 20
			rt, base, _ := streamRoute(t, engine, &Options{BodyReadTimeout: 300 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", fmt.Sprint(size))
				for off := 0; off < size; off += len(pattern) {
					if _, err := w.Write(pattern); err != nil {
						return
					}
				}
			})
			c := rawConn(t, base)
			c.SetDeadline(time.Now().Add(20 * time.Second))
			io.WriteString(c, req)
			// The caller reads nothing until the router has given up on it.
			waitFor(t, "the caller cut off", func() bool {
				st, _ := rt.Stats("svc")
				return engine == "eventloop" && rt.spill.Used() == 0 && st.Versions[0].Responses[200] == 1 ||
					st.Versions[0].Responses[499] == 1
			})
			n, err := io.Copy(io.Discard, c)
			var ne net.Error
			if n >= size || errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("the caller read %d bytes, then %v; want fewer than %d, then the connection closed", n, err, size)
			}
		})
	}
}

// TestStreamedAnswerCallerLeaves: a caller that hangs up in the middle of
// a streamed answer, while the replica is producing the rest, ends the
// replica's work (its handler's context) and frees the slot at once,
// counted as 499.
func TestStreamedAnswerCallerLeaves(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			ended := make(chan struct{})
			rt, base, _ := streamRoute(t, engine, nil, func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "part")
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					close(ended)
				case <-time.After(20 * time.Second):
				}
			})
			c := rawConn(t, base)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 4)
			if _, err := io.ReadFull(resp.Body, b); err != nil || string(b) != "part" {
				t.Fatalf("first part: %q, %v", b, err)
			}
			c.Close()
			waitChan(t, ended, 5*time.Second, "the replica's handler told that the caller left")
			waitFor(t, "the slot freed and the request counted as 499", func() bool {
				st, _ := rt.Stats("svc")
				return inFlight(t, rt) == 0 && st.Versions[0].Responses[499] == 1
			})
		})
	}
}
