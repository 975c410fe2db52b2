//go:build linux

package frontend

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aksml/aksml/frontend/internal/loop"
	"github.com/aksml/aksml/frontend/internal/wire"
	"github.com/aksml/aksml/internal/connq"
)

// Serve accepts connections on ln and serves the router on them from a few
// event loops until ln fails or Shutdown is called. It returns nil after
// Shutdown.
func (rt *Router) Serve(ln net.Listener) error {
	c := &loopCore{rt: rt, addr: ln.Addr()}
	return loop.Serve(ln, c, loop.Config{
		Log:           rt.log,
		MaxBody:       rt.maxBody,
		HeaderTimeout: rt.headerTimeout,
		IdleTimeout:   rt.idleTimeout,
		BodyTimeout:   rt.bodyTimeout,
		MaxConns:      rt.maxConns,
		MaxPipeline:   rt.maxPipeline,
		Spill:         &rt.spill,
		UpIdleTimeout: rt.loopIdle,
		DialTimeout:   dialTimeout,
		MetricsPath:   PathMetrics,
	})
}

// The core as the event-loop engine (package frontend/internal/loop) sees
// it: loopCore for the router, loopExch for the exchange of each caller
// connection's request in progress, over the exchange of exchange.go.

// loopCore is the router as one event-loop engine sees it.
type loopCore struct {
	rt   *Router
	addr net.Addr

	mu     sync.Mutex
	redir  *redirector // started on first use
	closed bool
	wg     sync.WaitGroup // the redirector's server
}

func (c *loopCore) NewExchange() loop.Exchange { return &loopExch{rt: c.rt} }

func (c *loopCore) Register(e *loop.Engine) bool { return c.rt.addEngine(loopServer{e, c}) }

func (c *loopCore) MetricsRefused(addr string, auth []byte, resp *fasthttp.Response) bool {
	return c.rt.metricsRefused(addr, auth, resp)
}

func (c *loopCore) Metrics(resp *fasthttp.Response) {
	resp.SetStatusCode(http.StatusOK)
	resp.Header.SetContentType(metricsContentType)
	resp.SetBody(c.rt.appendMetrics(resp.Body()[:0]))
}

func (c *loopCore) Route(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, start time.Time, id []byte) {
	c.rt.route(ctx, req, resp, start, id, true, nil)
}

func (c *loopCore) RefuseBody(resp *fasthttp.Response, err error) bool {
	return c.rt.refuseBody(resp, err)
}

// Redirect hands conn to the engine's redirector while the router
// redirects plain HTTP to HTTPS (tls.go), starting it on first use; after
// shutdown it closes conn.
func (c *loopCore) Redirect(conn net.Conn) bool {
	if c.rt.tls.redirect.Load() == nil {
		return false
	}
	c.mu.Lock()
	if c.redir == nil && !c.closed {
		rt := c.rt
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !rt.redirectHTTPS(w, r) {
				rt.ServeHTTP(w, r) // /metrics, or TLS turned off meanwhile
			}
		})
		r := &redirector{srv: rt.httpServer(h), q: connq.New(c.addr)}
		c.redir = r
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			_ = r.srv.Serve(r.q)
		}()
	}
	r := c.redir
	c.mu.Unlock()
	if r == nil {
		conn.Close()
		return true
	}
	if !r.q.Put(conn) {
		conn.Close()
	}
	return true
}

// stopRedirect shuts the redirector down, if it was started.
func (c *loopCore) stopRedirect(ctx context.Context) {
	c.mu.Lock()
	c.closed = true
	r := c.redir
	c.mu.Unlock()
	if r != nil {
		r.q.Close()
		if err := r.srv.Shutdown(ctx); err != nil {
			r.srv.Close()
		}
	}
	c.wg.Wait()
}

// redirector serves the plain engine's connections while SetHTTPSRedirect
// holds a base: a net/http server that answers each request with 308.
type redirector struct {
	srv *http.Server
	q   *connq.Queue
}

// loopServer is an event-loop engine as the router shuts it down.
type loopServer struct {
	eng *loop.Engine
	c   *loopCore
}

func (s loopServer) shutdown(ctx context.Context) error {
	err := s.eng.Shutdown(ctx)
	s.c.stopRedirect(ctx)
	return err
}

// loopExch is the exchange (exchange.go) of a caller connection's request
// in progress on the event loop, reused for each request in turn.
type loopExch struct {
	exch
	rt *Router
}

func (x *loopExch) Lean(lr *wire.Request, resp *fasthttp.Response, start time.Time) (string, loop.Plan) {
	p, kind, ok, general := x.rt.leanPlan(lr, resp)
	switch {
	case general:
		return "", loop.General
	case !ok:
		return "", loop.Refused
	}
	x.begin(p, start)
	return upstreamPath(kind), loop.Routed
}

func (x *loopExch) Prepare(req *fasthttp.Request, resp *fasthttp.Response, id []byte, start time.Time) loop.Plan {
	p, ok := x.rt.prepare(req, resp, id)
	switch {
	case !ok && p.noReady:
		return loop.Wait
	case !ok:
		return loop.Refused
	}
	x.begin(p, start)
	return loop.Routed
}

func (x *loopExch) TryTake() loop.Replica {
	if !x.tryTake() {
		return nil // not a nil *replica in an interface
	}
	return x.rep
}

func (x *loopExch) Take(ctx context.Context) (loop.Replica, int, string) {
	code, msg, ok := x.take(ctx)
	if !ok {
		return nil, code, msg
	}
	return x.rep, 0, ""
}

func (x *loopExch) Release() { x.release() }

// loopOutcomes maps the engine's outcomes to the exchange's.
var loopOutcomes = [...]outcome{loop.Unreachable: outUnreachable, loop.NotSent: outNotSent, loop.TimedOut: outTimedOut, loop.Lost: outLost}

func (x *loopExch) Failed(o loop.Outcome, mayRetry bool) (bool, int, string) {
	retry, code, msg := x.failed(loopOutcomes[o], x.rt.now)
	if retry && !mayRetry {
		return false, http.StatusBadGateway, MsgReplicaClosed
	}
	return retry, code, msg
}

func (x *loopExch) End(code int, done time.Time) { x.end(code, done) }

func (x *loopExch) Version() string { return x.vs.name }

func (x *loopExch) Timeout() time.Duration { return x.vs.pool.scoringTimeout() }
