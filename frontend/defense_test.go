package frontend

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Regression tests for the router's defences against replicas and callers
// that misbehave: each runs on every engine (the http.Handler path under
// net/http and Serve's event loop), except where the defence belongs to the
// http.Server around the handler (timeouts, pipelining), where it runs on
// Serve alone.

// TestConcurrencyCapChunkedAnswers: a replica answering with chunked
// bodies keeps its slot count exact, so the per-replica cap still queues
// the second of two concurrent requests.
func TestConcurrencyCapChunkedAnswers(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			var cur, peak atomic.Int32
			hold := make(chan struct{})
			var holding atomic.Bool
			rep := startReplica(t, "chunked", func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				n := cur.Add(1)
				defer cur.Add(-1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				if holding.Load() {
					select {
					case <-hold:
					case <-r.Context().Done():
					}
				}
				io.WriteString(w, "a")
				w.(http.Flusher).Flush() // the answer goes out chunked
				io.WriteString(w, "b")
			})
			rt := New(nil)
			base := serve(t, rt, engine)
			mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", MaxConcurrentPerReplica: 1,
				MaxQueueWait: 20 * time.Second, Replicas: []Replica{rep.replica("r", true)}}}})
			for i := 0; i < 4; i++ {
				if got := do(t, "POST", base+"/api/v1/service/svc/score", "{}"); got.code != 200 || got.body != "ab" {
					t.Fatalf("request %d: %d %q", i, got.code, got.body)
				}
			}
			holding.Store(true)
			results := make(chan result, 2)
			go func() { results <- do(t, "POST", base+"/api/v1/service/svc/score", "{}") }()
			waitFor(t, "the first request to reach the replica", func() bool { return cur.Load() == 1 })
			go func() { results <- do(t, "POST", base+"/api/v1/service/svc/score", "{}") }()
			waitFor(t, "the second request to queue (or reach the replica)", func() bool {
				l, _ := rt.Load("svc")
				return l[0].Queued == 1 || cur.Load() == 2
			})
			close(hold)
			for i := 0; i < 2; i++ {
				if r := <-results; r.code != 200 {
					t.Errorf("concurrent request: %d %q", r.code, r.body)
				}
			}
			if p := peak.Load(); p != 1 {
				t.Errorf("replica with a cap of 1 ran %d requests at once", p)
			}
		})
	}
}

// TestPostDeliveredOnce: a replica that reads a request and drops the
// connection without answering (a crash, a poison input) gets it once, on a
// fresh connection or a kept-alive one; the caller gets 502.
func TestPostDeliveredOnce(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			var poison atomic.Int32
			rep := startReplica(t, "r", func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if string(b) != "poison" {
					io.WriteString(w, "ok")
					return
				}
				poison.Add(1)
				c, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					c.Close()
				}
			})
			rt := New(nil)
			base := serve(t, rt, engine)
			mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
			for i := 0; i < 3; i++ {
				if got := do(t, "POST", base+"/api/v1/service/svc/score", "warm"); got.code != 200 {
					t.Fatalf("warm-up: %d %q", got.code, got.body)
				}
				// The connection the warm-up left idle carries the poison.
				before := poison.Load()
				if got := do(t, "POST", base+"/api/v1/service/svc/score", "poison"); got.code != http.StatusBadGateway {
					t.Errorf("poison %d: %d %q, want 502", i, got.code, got.body)
				}
				if n := poison.Load() - before; n != 1 {
					t.Errorf("poison %d delivered %d times, want once", i, n)
				}
			}
		})
	}
}

// TestMalformedRequests: requests net/http refuses are refused with the
// same status on every engine, without reaching a replica, and the
// connection is closed after the answer.
func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	const path = "/api/v1/service/svc/score"
	cases := []struct {
		name, req string
		code      int
		loopOnly  bool // net/http accepts it; the event loop is stricter
	}{
		{"duplicate Host", "GET " + path + " HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, false},
		{"header name with a space", "GET " + path + " HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", 400, false},
		{"blank before colon", "GET " + path + " HTTP/1.1\r\nHost: x\r\nA : b\r\n\r\n", 400, false},
		{"control byte in a value", "GET " + path + " HTTP/1.1\r\nHost: x\r\nA: \x01\r\n\r\n", 400, false},
		{"unknown HTTP version", "GET " + path + " HTTP/9.9\r\nHost: x\r\n\r\n", 505, false},
		{"malformed HTTP version", "GET " + path + " HTTP/1.1x\r\nHost: x\r\n\r\n", 400, false},
		{"request line without version", "GET " + path + "\r\n", 400, false},
		{"missing Host", "GET " + path + " HTTP/1.1\r\n\r\n", 400, false},
		{"malformed Host", "GET " + path + " HTTP/1.1\r\nHost: a b\r\n\r\n", 400, false},
		{"empty Host", "GET " + path + " HTTP/1.1\r\nHost:\r\n\r\n", 400, false},
		{"two different lengths", "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", 400, false},
		{"signed length", "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400, false},
		{"unknown transfer coding", "POST " + path + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, false},
		{"bare LF", "GET " + path + " HTTP/1.1\nHost: x\n\n", 400, true},
		{"bare LF after a header", "GET " + path + " HTTP/1.1\r\nHost: x\nA: b\r\n\r\n", 400, true},
		{"folded header", "GET " + path + " HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n", 400, true},
	}
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			rep := startReplica(t, "r", nil)
			rt := New(nil)
			base := serve(t, rt, engine)
			mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
			for _, tc := range cases {
				if tc.loopOnly && engine != "eventloop" {
					continue
				}
				c := rawConn(t, base)
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, tc.req)
				br := bufio.NewReader(c)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Errorf("%s: no answer: %v", tc.name, err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				if resp.StatusCode != tc.code {
					t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.code)
				}
				if _, err := br.ReadByte(); err == nil || isTimeoutErr(err) {
					t.Errorf("%s: connection still open after the answer (%v)", tc.name, err)
				}
			}
			if n := rep.hits.Load(); n != 0 {
				t.Errorf("malformed requests reached the replica %d times", n)
			}
		})
	}
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestCallerRequestIDReplaced: request ids the caller sends (two of them,
// on the general path) never reach the replica; it sees the router's, the
// one the caller gets back.
func TestCallerRequestIDReplaced(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			seen := make(chan []string, 4)
			rep := startReplica(t, "r", func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				seen <- r.Header.Values("X-Ms-Request-Id")
				w.Header().Set("X-Ms-Request-Id", "from-replica")
				io.WriteString(w, "ok")
			})
			rt := New(nil)
			base := serve(t, rt, engine)
			mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
			for _, req := range []string{
				// Chunked: the general path.
				"POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nX-Ms-Request-Id: one\r\nX-Ms-Request-Id: two\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
				"POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nx-ms-request-id: one\r\nX-MS-REQUEST-ID: two\r\nContent-Length: 2\r\n\r\n{}",
			} {
				status, header, body := rawExchange(t, base, req)
				if status != "HTTP/1.1 200 OK" || body != "ok" {
					t.Fatalf("got %q %q", status, body)
				}
				got := <-seen
				var ids []string
				for _, kv := range header {
					if strings.EqualFold(kv[0], HeaderRequestID) {
						ids = append(ids, kv[1])
					}
				}
				if len(got) != 1 || got[0] == "one" || got[0] == "two" {
					t.Errorf("replica got request ids %q, want only the router's", got)
				}
				if len(ids) != 1 || len(got) != 1 || ids[0] != got[0] {
					t.Errorf("caller got request ids %q, replica %q", ids, got)
				}
			}
		})
	}
}

// TestMetricsNotPublic: /metrics lists every service, so on the scoring
// port it answers only callers on the router's own machine (loopback) or
// those presenting Options.MetricsKey. Every caller here is on loopback;
// isLocal stands in for a remote address, which a test cannot dial from.
func TestMetricsNotPublic(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			for _, key := range []string{"", "metrics-secret"} {
				rt := New(&Options{MetricsKey: key})
				rt.isLocal = func(string) bool { return false }
				base := serve(t, rt, engine)
				mustSet(t, rt, Route{Name: "secret-service", Versions: []Version{{Name: "v"}}})
				got := do(t, "GET", base+PathMetrics, "")
				if got.code == 200 || strings.Contains(got.body, "secret-service") {
					t.Errorf("key %q: a remote caller without the key got %d %.80q", key, got.code, got.body)
				}
				got = do(t, "GET", base+PathMetrics, "", "Authorization: Bearer wrong")
				if got.code == 200 {
					t.Errorf("key %q: a wrong key got %d", key, got.code)
				}
				if key != "" {
					got = do(t, "GET", base+PathMetrics, "", "Authorization: Bearer "+key)
					if got.code != 200 || !strings.Contains(got.body, "secret-service") {
						t.Errorf("the metrics key got %d %.80q", got.code, got.body)
					}
				}
			}
			rt := New(nil)
			base := serve(t, rt, engine)
			mustSet(t, rt, Route{Name: "local", Versions: []Version{{Name: "v"}}})
			if got := do(t, "GET", base+PathMetrics, ""); got.code != 200 || !strings.Contains(got.body, `service="local"`) {
				t.Errorf("loopback caller: %d %.80q", got.code, got.body)
			}
		})
	}
}

// TestCallerResetCancelsReplica: a caller that hangs up while its request
// runs on a replica cancels the replica's work (the Go handler's context
// ends) and frees the slot at once, so the next caller is served.
func TestCallerResetCancelsReplica(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			started := make(chan struct{}, 1)
			canceled := make(chan struct{}, 1)
			stop := make(chan struct{})
			t.Cleanup(func() { close(stop) })
			rep := startReplica(t, "r", func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if string(b) != "slow" {
					io.WriteString(w, "quick")
					return
				}
				started <- struct{}{}
				select {
				case <-r.Context().Done():
					canceled <- struct{}{}
				case <-stop:
				}
			})
			rt := New(nil)
			base := serve(t, rt, engine)
			mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", MaxConcurrentPerReplica: 1,
				MaxQueueWait: 50 * time.Millisecond, Replicas: []Replica{rep.replica("r", true)}}}})
			c := rawConn(t, base)
			io.WriteString(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nslow")
			<-started
			tcpConn(c).SetLinger(0) // a reset
			c.Close()
			select {
			case <-canceled:
			case <-time.After(5 * time.Second):
				t.Fatal("the replica's work went on after the caller reset")
			}
			waitFor(t, "the slot to be freed", func() bool {
				l, _ := rt.Load("svc")
				return l[0].InFlight == 0
			})
			if got := do(t, "POST", base+"/api/v1/service/svc/score", "next"); got.code != 200 || got.body != "quick" {
				t.Errorf("the next caller: %d %q", got.code, got.body)
			}
		})
	}
}

// TestOversizedChunkedBody: a chunked body past the limit gets 413 while
// it is still arriving, on an unknown route too.
func TestOversizedChunkedBody(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			rep := startReplica(t, "r", nil)
			rt := New(&Options{MaxBodyBytes: 1 << 20})
			base := serve(t, rt, engine)
			mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
			for _, path := range []string{"/api/v1/service/svc/score", "/api/v1/service/nope/score"} {
				c := rawConn(t, base)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				answered := make(chan int, 1)
				go func() {
					resp, err := http.ReadResponse(bufio.NewReader(c), nil)
					if err != nil {
						answered <- 0
						return
					}
					answered <- resp.StatusCode
				}()
				io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
				chunk := "1000\r\n" + strings.Repeat("x", 4096) + "\r\n"
				sent := 0
				code := -1
				// Up to 8 MB: eight times the limit.
				for sent < 8<<20 && code < 0 {
					if _, err := io.WriteString(c, chunk); err != nil {
						break // the router closed the connection
					}
					sent += 4096
					select {
					case code = <-answered:
					default:
					}
				}
				if code < 0 {
					code = <-answered
				}
				if code != http.StatusRequestEntityTooLarge {
					t.Errorf("%s: got %d after %d bytes, want 413", path, code, sent)
				}
				if sent >= 8<<20 {
					t.Errorf("%s: the whole 8 MB went in before the answer", path)
				}
			}
		})
	}
}

// TestSlowCallersClosed: a caller that does not finish its request head
// within the header timeout, or stays idle between requests past the idle
// timeout, or stalls in the middle of a body past the body timeout, is
// disconnected. The http.Handler path leaves these to its http.Server.
func TestSlowCallersClosed(t *testing.T) {
	t.Parallel()
	rep := startReplica(t, "r", nil)
	const d = 200 * time.Millisecond
	rt := New(&Options{HeaderReadTimeout: d, IdleTimeout: d, BodyReadTimeout: d})
	base := serve(t, rt, "eventloop")
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
	closedSoon := func(name string, c net.Conn, br *bufio.Reader) {
		t.Helper()
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, err := br.ReadByte()
			if err == nil {
				continue // a 408 answer is fine
			}
			if isTimeoutErr(err) {
				t.Errorf("%s: connection still open after %v", name, time.Since(start))
			}
			return
		}
	}
	t.Run("header", func(t *testing.T) {
		c := rawConn(t, base)
		io.WriteString(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\n")
		closedSoon("partial head", c, bufio.NewReader(c))
	})
	t.Run("idle", func(t *testing.T) {
		c := rawConn(t, base)
		io.WriteString(c, "GET /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		closedSoon("idle", c, br)
	})
	t.Run("body", func(t *testing.T) {
		c := rawConn(t, base)
		io.WriteString(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
		closedSoon("stalled body", c, bufio.NewReader(c))
	})
}

// TestPipelineFlood: a caller that pipelines requests and never reads the
// answers is not served without bound: the router stops serving it while
// its answers wait and closes it when it keeps sending.
func TestPipelineFlood(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("z", 64<<10)
	rep := startReplica(t, "r", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, big)
	})
	rt := New(&Options{MaxPipelineBytes: 64 << 10})
	base := serve(t, rt, "eventloop")
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 2000
	req := "GET /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\n\r\n"
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, strings.Repeat(req, n)) // the router may close before it is all in
	br := bufio.NewReader(c)
	answers := 0
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if isTimeoutErr(err) {
				t.Errorf("the flooding connection is still open after %d answers", answers)
			}
			break
		}
		io.Copy(io.Discard, resp.Body)
		answers++
	}
	if h := rep.hits.Load(); h > n/4 {
		t.Errorf("the router served %d of %d pipelined requests whose answers were not read", h, n)
	}
}

// TestLargeBodiesArriveWhole: bodies larger than what the event loop
// leaves in a connection's read buffer (moved to the connection's own, or to a file, and
// sent to the replica in pieces), with a length or chunked, written in
// small pieces, reach the replica byte for byte, also when the router can
// make no file for them.
func TestLargeBodiesArriveWhole(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			rep := startReplica(t, "r", func(w http.ResponseWriter, r *http.Request) {
				h := sha256.New()
				n, _ := io.Copy(h, r.Body)
				fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
			})
			rt := New(nil)
			base := serve(t, rt, engine)
			mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
			// A router that cannot make files for large bodies holds
			// them in memory.
			noDir := New(&Options{BodySpillDir: filepath.Join(t.TempDir(), "missing")})
			noDirBase := serve(t, noDir, engine)
			mustSet(t, noDir, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
			for _, tc := range []struct {
				base string
				size int
			}{{base, 200 << 10}, {base, 3 << 20}, {noDirBase, 3 << 20}} {
				base, size := tc.base, tc.size
				body := make([]byte, size)
				for i := range body {
					body[i] = byte(i * 7 / 5)
				}
				sum := sha256.Sum256(body)
				want := fmt.Sprintf("%d %x", size, sum)
				for _, chunked := range []bool{false, true} {
					c := rawConn(t, base)
					c.SetDeadline(time.Now().Add(20 * time.Second))
					go func() {
						if chunked {
							io.WriteString(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
							for off := 0; off < size; off += 5000 {
								p := body[off:min(off+5000, size)]
								fmt.Fprintf(c, "%x\r\n%s\r\n", len(p), p)
							}
							io.WriteString(c, "0\r\n\r\n")
							return
						}
						fmt.Fprintf(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
						for off := 0; off < size; off += 7000 {
							c.Write(body[off:min(off+7000, size)])
						}
					}()
					resp, err := http.ReadResponse(bufio.NewReader(c), nil)
					if err != nil {
						t.Fatalf("%d bytes (chunked %v): %v", size, chunked, err)
					}
					b, _ := io.ReadAll(resp.Body)
					if resp.StatusCode != 200 || string(b) != want {
						t.Errorf("%d bytes (chunked %v): %d %q, want %q", size, chunked, resp.StatusCode, b, want)
					}
				}
			}
		})
	}
}

// TestAsteriskTarget: a request for "*" gets what net/http gives it on
// both engines: OPTIONS * is answered 200 with no body (the server-wide
// OPTIONS), anything else is routed and not found; the connection stays
// usable.
func TestAsteriskTarget(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			rep := startReplica(t, "r", nil)
			rt := New(nil)
			base := serve(t, rt, engine)
			mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
			c := rawConn(t, base)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"+
				"GET * HTTP/1.1\r\nHost: x\r\n\r\n"+
				"POST * HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"+
				"OPTIONS * HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"+
				"GET /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(c)
			for i, want := range []struct {
				code int
				body string
			}{{200, ""}, {404, "Not found"}, {404, "Not found"}, {200, ""}, {200, `"r"`}} {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("answer %d: %v", i, err)
				}
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != want.code || strings.TrimSpace(string(b)) != want.body {
					t.Errorf("answer %d: %d %q, want %d %q", i, resp.StatusCode, b, want.code, want.body)
				}
			}
		})
	}
}

// TestLargeBodiesBoundedMemory: on both engines, a large body, with a
// length or chunked, is not held in memory on its way to the replica (it
// is spilled to a file as it arrives and sent from there), and a chunked
// body is refused with 413 as soon as it passes the limit (on the event
// loop, as soon as a chunk header takes it past, before any of that chunk
// arrives; net/http, which decodes the chunks, shows the router the
// chunk's first byte). The bound is on all the heap
// the test process allocates meanwhile (runtime.MemStats.TotalAlloc, which
// misses no peak): under a quarter of the bodies (the loops' piece buffers
// and the connections' write buffers take a few MB however large the bodies are;
// holding any one body takes 20 MB). Not parallel, so that no other
// test allocates meanwhile.
func TestLargeBodiesBoundedMemory(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) { testLargeBodiesBoundedMemory(t, engine) })
	}
}

func testLargeBodiesBoundedMemory(t *testing.T, engine string) {
	const limit = 24 << 20
	const size = 20 << 20
	rep := startReplica(t, "r", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	rt := New(&Options{MaxBodyBytes: limit, BodySpillDir: t.TempDir()})
	base := serve(t, rt, engine)
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
	if got := do(t, "POST", base+"/api/v1/service/svc/score", "{}"); got.code != 200 {
		t.Fatalf("warm-up: %d %q", got.code, got.body)
	}
	piece := make([]byte, 64<<10)
	for i := range piece {
		piece[i] = byte(i * 7 / 5)
	}
	h := sha256.New()
	for off := 0; off < size; off += len(piece) {
		h.Write(piece)
	}
	want := fmt.Sprintf("%d %x", size, h.Sum(nil))
	chunkHead := fmt.Sprintf("%x\r\n", len(piece))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, chunked := range []bool{false, true} {
		c := rawConn(t, base)
		c.SetDeadline(time.Now().Add(60 * time.Second))
		go func() {
			if chunked {
				io.WriteString(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
			} else {
				fmt.Fprintf(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
			}
			for off := 0; off < size; off += len(piece) {
				if chunked {
					io.WriteString(c, chunkHead)
				}
				c.Write(piece)
				if chunked {
					io.WriteString(c, "\r\n")
				}
			}
			if chunked {
				io.WriteString(c, "0\r\n\r\n")
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("chunked %v: %v", chunked, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != want {
			t.Errorf("chunked %v: %d %q, want %q", chunked, resp.StatusCode, b, want)
		}
	}
	// Exactly the limit, then a chunk header past it, and nothing more.
	c := rawConn(t, base)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	go func() {
		io.WriteString(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
		for off := 0; off < limit; off += len(piece) {
			io.WriteString(c, chunkHead)
			c.Write(piece)
			io.WriteString(c, "\r\n")
		}
		io.WriteString(c, "1\r\n")
		if engine != "eventloop" { // net/http reads a byte of the chunk first (the tls engine hands chunked bodies to net/http)
			io.WriteString(c, "x")
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("oversized chunked body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized chunked body: %d, want 413", resp.StatusCode)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("heap allocated for %d MB of bodies: %.1f MB", (2*size+limit)>>20, float64(alloc)/(1<<20))
	if alloc > 16<<20 {
		t.Errorf("%.1f MB of heap allocated for %d MB of bodies, want under 16 MB", float64(alloc)/(1<<20), (2*size+limit)>>20)
	}
}

// TestLargeBodyQueued: a large body (spilled on the event loop) whose
// request waits for a replica slot, and so is sent by the slow path from
// its file, reaches the replica whole, with a length or chunked.
func TestLargeBodyQueued(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			hold := make(chan struct{})
			held := make(chan struct{}, 1)
			rep := startReplica(t, "r", func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("hold") != "" {
					held <- struct{}{}
					<-hold
				}
				h := sha256.New()
				n, _ := io.Copy(h, r.Body)
				fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
			})
			rt := New(nil)
			base := serve(t, rt, engine)
			mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", MaxConcurrentPerReplica: 1,
				MaxQueueWait: 20 * time.Second, Replicas: []Replica{rep.replica("r", true)}}}})
			body := make([]byte, 3<<20)
			for i := range body {
				body[i] = byte(i * 3 / 7)
			}
			want := fmt.Sprintf("%d %x", len(body), sha256.Sum256(body))
			for _, chunked := range []bool{false, true} {
				first := make(chan result, 1)
				go func() { first <- do(t, "POST", base+"/api/v1/service/svc/score?hold=1", "x") }()
				<-held
				c := rawConn(t, base)
				c.SetDeadline(time.Now().Add(30 * time.Second))
				go func() {
					if chunked {
						io.WriteString(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
						for off := 0; off < len(body); off += 100000 {
							p := body[off:min(off+100000, len(body))]
							fmt.Fprintf(c, "%x\r\n%s\r\n", len(p), p)
						}
						io.WriteString(c, "0\r\n\r\n")
					} else {
						fmt.Fprintf(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body))
						c.Write(body)
					}
				}()
				waitFor(t, "the request to queue", func() bool {
					l, _ := rt.Load("svc")
					return l[0].InFlight == 2
				})
				hold <- struct{}{}
				if got := <-first; got.code != 200 {
					t.Fatalf("the first request: %d %q", got.code, got.body)
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("chunked %v: %v", chunked, err)
				}
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 || string(b) != want {
					t.Errorf("chunked %v: %d %q, want %q", chunked, resp.StatusCode, b, want)
				}
			}
		})
	}
}

// TestSpillAllowance: large bodies buffered on disk count against
// Options.MaxSpillBytes; a body that would pass it gets 503 as its bytes
// arrive (before the file is made when its length is known), and the
// allowance comes back when bodies have been sent, so the next body fits.
func TestSpillAllowance(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			testSpillAllowance(t, engine)
		})
	}
}

func testSpillAllowance(t *testing.T, engine string) {
	rep := startReplica(t, "r", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	})
	rt := New(&Options{MaxSpillBytes: 3 << 20})
	base := serve(t, rt, engine)
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
	send := func(size int, chunked bool) (int, string) {
		t.Helper()
		c := rawConn(t, base)
		c.SetDeadline(time.Now().Add(20 * time.Second))
		go func() {
			piece := bytes.Repeat([]byte("x"), 8192)
			if chunked {
				io.WriteString(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
				for off := 0; off < size; off += len(piece) {
					if _, err := fmt.Fprintf(c, "%x\r\n%s\r\n", len(piece), piece); err != nil {
						return
					}
				}
				io.WriteString(c, "0\r\n\r\n")
				return
			}
			fmt.Fprintf(c, "POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
			for off := 0; off < size; off += len(piece) {
				if _, err := c.Write(piece[:min(len(piece), size-off)]); err != nil {
					return
				}
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%d bytes (chunked %v): %v", size, chunked, err)
		}
		b, _ := io.ReadAll(resp.Body)
		// The body's share comes back before its answer goes out: a
		// caller who sends again at once finds the allowance free.
		if used := rt.spill.Used(); used != 0 {
			t.Errorf("%d bytes (chunked %v): %d bytes of the allowance still held once the answer (%d) was read, want 0", size, chunked, used, resp.StatusCode)
		}
		return resp.StatusCode, string(b)
	}
	for _, chunked := range []bool{false, true} {
		code, body := send(4<<20, chunked)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "large request bodies") {
			t.Errorf("4 MiB past a 3 MiB allowance (chunked %v): %d %q, want 503", chunked, code, body)
		}
		code, body = send(2<<20, chunked)
		if code != 200 || body != strconv.Itoa(2<<20) {
			t.Errorf("2 MiB after the refusal (chunked %v): %d %q, want 200 and the whole body", chunked, code, body)
		}
	}
}
