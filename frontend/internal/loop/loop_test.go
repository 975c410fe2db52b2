//go:build linux

package loop

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aksml/aksml/frontend/internal/spill"
	"github.com/aksml/aksml/frontend/internal/wire"
)

// The engine against a fake core: what it asks of the core through
// Exchange, phase by phase, for each kind of answer. The router's own
// tests (package frontend) run the engine end to end with the real core.

// fakeCore routes /api/score to one replica with one slot.
type fakeCore struct {
	rep *fakeReplica
	eng *Engine

	mu    sync.Mutex
	calls []string // "lean", "prepare", "take", "release", "failed LOST", "end 200", ...
	slots int      // free slots
}

type fakeReplica struct{ host string }

func (r *fakeReplica) Host() string { return r.host }
func (r *fakeReplica) Member() bool { return true }

func (c *fakeCore) note(s string) {
	c.mu.Lock()
	c.calls = append(c.calls, s)
	c.mu.Unlock()
}

func (c *fakeCore) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.calls, ",")
}

func (c *fakeCore) NewExchange() Exchange       { return &fakeExch{c: c} }
func (c *fakeCore) Register(e *Engine) bool     { c.eng = e; return true }
func (c *fakeCore) Redirect(conn net.Conn) bool { return false }
func (c *fakeCore) MetricsRefused(addr string, auth []byte, resp *fasthttp.Response) bool {
	wire.SetError(resp, http.StatusNotFound, "Not found")
	return true
}
func (c *fakeCore) Metrics(resp *fasthttp.Response) {}
func (c *fakeCore) Route(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, start time.Time, id []byte) {
	wire.SetError(resp, http.StatusServiceUnavailable, "no")
}
func (c *fakeCore) RefuseBody(resp *fasthttp.Response, err error) bool { return false }

type fakeExch struct {
	c       *fakeCore
	held    bool
	timeout time.Duration
}

func (x *fakeExch) Lean(lr *wire.Request, resp *fasthttp.Response, start time.Time) (string, Plan) {
	x.c.note("lean")
	switch string(lr.Path) {
	case "/api/score":
		x.timeout = 5 * time.Second
	case "/api/fast": // a version with a short scoring timeout
		x.timeout = 100 * time.Millisecond
	default:
		wire.SetError(resp, http.StatusNotFound, "Not found")
		return "", Refused
	}
	return "/score", Routed
}

func (x *fakeExch) Prepare(req *fasthttp.Request, resp *fasthttp.Response, id []byte, start time.Time) Plan {
	x.c.note("prepare")
	if string(req.URI().Path()) != "/api/score" {
		wire.SetError(resp, http.StatusNotFound, "Not found")
		return Refused
	}
	req.URI().SetPath("/score")
	x.timeout = 5 * time.Second
	return Routed
}

func (x *fakeExch) TryTake() Replica {
	x.c.mu.Lock()
	defer x.c.mu.Unlock()
	x.c.calls = append(x.c.calls, "take")
	if x.c.slots == 0 {
		return nil
	}
	x.c.slots--
	x.held = true
	return x.c.rep
}

func (x *fakeExch) Take(ctx context.Context) (Replica, int, string) {
	return nil, http.StatusServiceUnavailable, "overloaded"
}

func (x *fakeExch) Release() {
	x.c.mu.Lock()
	defer x.c.mu.Unlock()
	x.c.calls = append(x.c.calls, "release")
	if x.held {
		x.c.slots++
		x.held = false
	}
}

func (x *fakeExch) Failed(o Outcome, mayRetry bool) (bool, int, string) {
	x.Release()
	x.c.note("failed " + [...]string{"unreachable", "notsent", "timedout", "lost"}[o])
	if o == TimedOut {
		return false, http.StatusGatewayTimeout, "timed out"
	}
	return false, http.StatusBadGateway, "lost"
}

func (x *fakeExch) End(code int, done time.Time) {
	x.c.note("end " + http.StatusText(code))
	if x.held {
		x.Release()
	}
}

func (x *fakeExch) Version() string        { return "v" }
func (x *fakeExch) Timeout() time.Duration { return x.timeout }

// serveFake starts the engine on a fake core whose replica is h; it
// returns the core and the engine's address.
func serveFake(t *testing.T, h http.HandlerFunc) (*fakeCore, string) {
	return serveFakeLoops(t, h, 0)
}

// serveFakeLoops is serveFake with n event loops (0: GOMAXPROCS).
func serveFakeLoops(t *testing.T, h http.HandlerFunc, n int) (*fakeCore, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := &fakeCore{rep: &fakeReplica{host: strings.TrimPrefix(srv.URL, "http://")}, slots: 1}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- Serve(ln, c, Config{Log: slog.New(slog.DiscardHandler), MaxBody: 1 << 20, HeaderTimeout: 5 * time.Second,
			IdleTimeout: 5 * time.Second, BodyTimeout: 5 * time.Second, MaxConns: 100, MaxPipeline: 1 << 20,
			Spill: &spill.Allowance{Cap: 1 << 30}, DialTimeout: time.Second, MetricsPath: "/metrics", Loops: n})
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		eng := c.registered() // Serve registers before it accepts
		if eng == nil {
			t.Fatal("the engine was not registered")
		}
		if err := eng.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c, ln.Addr().String()
}

func (c *fakeCore) registered() *Engine {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eng
}

// roundTrip sends raw on a new connection and reads one answer.
func roundTrip(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// TestExchangePhases checks which calls the engine makes on the core's
// exchange for each kind of request and answer: the slot goes back once
// and the exchange is settled once, whichever parser read the answer.
func TestExchangePhases(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, req string
		h         http.HandlerFunc
		code      int
		body      string
		calls     string
	}{{
		name: "lean request and answer",
		req:  "POST /api/score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
		h:    func(w http.ResponseWriter, r *http.Request) { b, _ := io.ReadAll(r.Body); w.Write(b) },
		code: 200, body: "hi",
		calls: "lean,take,release,end OK",
	}, {
		name: "refused",
		req:  "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
		h:    func(w http.ResponseWriter, r *http.Request) {},
		code: 404, body: "Not found",
		calls: "lean",
	}, {
		// HTTP/1.0 takes the general path, and a chunked answer to it
		// is read whole by fasthttp's parser, then sent with a length.
		name: "chunked answer read whole",
		req:  "GET /api/score HTTP/1.0\r\nHost: x\r\n\r\n",
		h: func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("a"))
			w.(http.Flusher).Flush()
			w.Write([]byte("b"))
		},
		code: 200, body: "ab",
		calls: "prepare,take,release,end OK",
	}, {
		name: "chunked answer streamed",
		req:  "GET /api/score HTTP/1.1\r\nHost: x\r\n\r\n",
		h: func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("a"))
			w.(http.Flusher).Flush()
			w.Write([]byte("b"))
		},
		code: 200, body: "ab",
		calls: "lean,take,release,end OK",
	}, {
		name: "replica drops the request",
		req:  "POST /api/score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
		h: func(w http.ResponseWriter, r *http.Request) {
			io.ReadAll(r.Body)
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		},
		code: 502, body: "lost",
		calls: "lean,take,release,failed lost,end Bad Gateway",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, addr := serveFake(t, tc.h)
			resp, body := roundTrip(t, addr, tc.req)
			if resp.StatusCode != tc.code || body != tc.body {
				t.Errorf("answer %d %q, want %d %q", resp.StatusCode, body, tc.code, tc.body)
			}
			if resp.Header.Get(wire.HeaderRequestID) == "" {
				t.Errorf("answer without %s", wire.HeaderRequestID)
			}
			// The exchange may be settled just after the answer's last
			// bytes went out (a streamed one).
			got := c.log()
			for deadline := time.Now().Add(5 * time.Second); got != tc.calls && time.Now().Before(deadline); got = c.log() {
				time.Sleep(time.Millisecond)
			}
			if got != tc.calls {
				t.Errorf("calls on the exchange: %s, want %s", got, tc.calls)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.slots != 1 {
				t.Errorf("free slots after the request: %d, want 1", c.slots)
			}
		})
	}
}

// TestScoringTimeoutBeforeEarlierOnes checks that a request whose deadline
// comes before those of the requests already at replicas gets its 504 at
// its own deadline: the loop's one timer, armed for the earliest deadline,
// is brought forward.
func TestScoringTimeoutBeforeEarlierOnes(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c, addr := serveFakeLoops(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, 1) // both requests in one loop, under one timer
	defer close(release)
	c.mu.Lock()
	c.slots = 2
	c.mu.Unlock()
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET /api/score HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(c.log(), "take") {
		time.Sleep(time.Millisecond) // the 5-s request is at the replica
	}
	start := time.Now()
	resp, body := roundTrip(t, addr, "GET /api/fast HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != http.StatusGatewayTimeout || body != "timed out" {
		t.Errorf("answer %d %q, want 504 %q", resp.StatusCode, body, "timed out")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the 100-ms timeout answered after %v: not before the 5-s one's deadline", d)
	}
}
