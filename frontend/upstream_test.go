package frontend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// smallBuffer sets a socket's send or receive buffer (opt) to 4 kB.
func smallBuffer(opt int) func(_, _ string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// TestUpstreamBodies sends bodies on both sides of the inline-write limit to
// a replica that reads them late, through small socket buffers, so the
// router's write of a request meets a full socket buffer (the inline write
// then finishes with a blocking write).
func TestUpstreamBodies(t *testing.T) {
	t.Parallel()
	lc := net.ListenConfig{Control: smallBuffer(syscall.SO_RCVBUF)}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // let the router's write fill the buffers
		b, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(b)
		fmt.Fprintf(w, "%d %s", len(b), hex.EncodeToString(sum[:]))
	})}}
	srv.Start()
	t.Cleanup(srv.Close)

	for _, engine := range engines {
		rt := New(nil)
		base := serve(t, rt, engine)
		mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{{ID: "r", URL: srv.URL, Ready: true}}}}})
		p := &rt.table.Load().routes["svc"].versions[0].pool.byID["r"].conns
		p.mu.Lock()
		p.control = smallBuffer(syscall.SO_SNDBUF)
		p.mu.Unlock()
		for _, n := range []int{0, 100, inlineBodyMax - 1000, inlineBodyMax + 1, 3 << 20} {
			body := strings.Repeat("abcdefghij", n/10+1)[:n]
			sum := sha256.Sum256([]byte(body))
			want := fmt.Sprintf("%d %s", n, hex.EncodeToString(sum[:]))
			got := do(t, "POST", base+"/api/v1/service/svc/score", body)
			if got.code != 200 || got.body != want {
				t.Errorf("%s: %d-byte body: got %d %.80q, want 200 %q", engine, n, got.code, got.body, want)
			}
		}
	}
}

// connCounter is a replica that counts its open connections.
type connCounter struct {
	*httptest.Server
	open  atomic.Int64
	total atomic.Int64
}

func startConnCounter(t *testing.T) *connCounter {
	cc := &connCounter{}
	cc.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	cc.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			cc.open.Add(1)
			cc.total.Add(1)
		case http.StateClosed, http.StateHijacked:
			cc.open.Add(-1)
		}
	}
	cc.Start()
	t.Cleanup(cc.Close)
	return cc
}

// TestUpstreamConnReuse checks, on both engines, that sequential
// requests share one kept-alive connection, concurrent ones open no more
// connections than requests can be in flight, and idle connections are
// closed after their idle timeout (set to idleConnTimeout for both here).
// The event-loop engine keeps a pool per loop, so its bound is the cap
// times the loops.
func TestUpstreamConnReuse(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			cc := startConnCounter(t)
			rt := New(nil)
			rt.loopIdle = idleConnTimeout // the event loop's own is 30 s
			base := serve(t, rt, engine)
			mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", MaxConcurrentPerReplica: 8, Replicas: []Replica{{ID: "r", URL: cc.URL, Ready: true}}}}})
			// One connection to the router for the sequential requests:
			// net/http's Transport dials a second one when a request
			// starts before the previous answer's connection is back in
			// its idle pool, which the event loop may serve from another
			// loop, with its own connections to replicas.
			one := &http.Transport{MaxConnsPerHost: 1, TLSClientConfig: engineClientTLS()}
			defer one.CloseIdleConnections()
			for i := 0; i < 20; i++ {
				resp, err := one.RoundTrip(mustRequest(t, "POST", base+"/api/v1/service/svc/score", "{}"))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
				}
			}
			if n := cc.total.Load(); n != 1 {
				t.Errorf("20 sequential requests used %d connections, want 1", n)
			}
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 20; i++ {
						if got := do(t, "POST", base+"/api/v1/service/svc/score", "{}"); got.code != 200 {
							t.Errorf("concurrent request: %d %q", got.code, got.body)
							return
						}
					}
				}()
			}
			wg.Wait()
			pools := int64(1)
			if engine == "eventloop" {
				pools = int64(runtime.GOMAXPROCS(0))
			}
			t.Logf("%s: %d connections for 8 concurrent callers", engine, cc.total.Load())
			if n := cc.total.Load(); n > 8*pools {
				t.Errorf("8 concurrent callers (at most 8 in flight) used %d connections, more than 8 × %d pools", n, pools)
			}
			start := time.Now()
			waitFor(t, "idle connections to close", func() bool { return cc.open.Load() == 0 })
			if d := time.Since(start); d < idleConnTimeout/2 {
				t.Errorf("idle connections closed after %v, well before idleConnTimeout %v", d, idleConnTimeout)
			}
		})
	}
}

// TestQueuedRequestsUseLoopConnections: requests that wait for a replica
// slot are sent from the event loop on its own connections, as those that
// find a slot at once: with one request at a time per replica and sixteen
// callers and one loop, the replica sees one connection, never more than
// one request at once, and every caller gets its answer.
func TestQueuedRequestsUseLoopConnections(t *testing.T) {
	var now, most atomic.Int64
	cc := startConnCounter(t)
	cc.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		defer now.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		io.Copy(io.Discard, r.Body)
		time.Sleep(time.Millisecond) // the model's work
		io.WriteString(w, "ok")
	})
	// One loop, so that one connection serves every request.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	rt := New(nil)
	base := serve(t, rt, "eventloop")
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", MaxConcurrentPerReplica: 1, MaxQueueWait: 30 * time.Second,
		Replicas: []Replica{{ID: "r", URL: cc.URL, Ready: true}}}}})
	if got := do(t, "POST", base+"/api/v1/service/svc/score", "{}"); got.code != 200 {
		t.Fatalf("first request: %d %q", got.code, got.body)
	}
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if got := do(t, "POST", base+"/api/v1/service/svc/score", "{}"); got.code != 200 {
					t.Errorf("request: %d %q", got.code, got.body)
					return
				}
			}
		}()
	}
	wg.Wait()
	st, _ := rt.Stats("svc")
	t.Logf("161 requests, %d connections to the replica from one loop", cc.total.Load())
	if n := cc.total.Load(); n != 1 {
		t.Errorf("%d connections to the replica from one loop, want 1", n)
	}
	if m := most.Load(); m != 1 {
		t.Errorf("the replica had %d requests at once, want 1", m)
	}
	if st.Versions[0].Responses[200] != 161 {
		t.Errorf("answers: %v", st.Versions[0].Responses)
	}
}

// TestUpstreamDeadKeptAliveConn closes the router's kept-alive connections
// from the replica's side between requests: the next request meets a dead
// connection, is sent again on a new one and succeeds.
func TestUpstreamDeadKeptAliveConn(t *testing.T) {
	t.Parallel()
	cc := startConnCounter(t)
	for _, engine := range engines {
		rt := New(nil)
		base := serve(t, rt, engine)
		mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{{ID: "r", URL: cc.URL, Ready: true}}}}})
		for i := 0; i < 5; i++ {
			if got := do(t, "POST", base+"/api/v1/service/svc/score", "{}"); got.code != 200 {
				t.Fatalf("%s: request %d: %d %q", engine, i, got.code, got.body)
			}
			cc.CloseClientConnections()
			waitFor(t, "the replica to drop its connections", func() bool { return cc.open.Load() == 0 })
		}
	}
}

func mustRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}
