//go:build linux

package loop

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aksml/aksml/frontend/internal/spill"
	"github.com/aksml/aksml/frontend/internal/wire"
)

// What the engine needs from the router's core (package frontend, which
// implements these interfaces): routing, authentication, replica slots,
// the exchange's decisions and its counts all stay there. The engine asks
// at each phase of a request (route it, take a slot, an attempt failed,
// settle it) with one call through Exchange, and owns the rest: sockets,
// parsing, buffering, timeouts and the kept-alive connections to replicas.

// Config is the engine's settings, fixed when it starts.
type Config struct {
	Log     *slog.Logger
	MaxBody int64 // largest request body (413 past it)
	// The caller's defences (see frontend.Options).
	HeaderTimeout, IdleTimeout, BodyTimeout time.Duration
	MaxConns, MaxPipeline                   int
	// Spill is the allowance of spill files, shared with the other engines.
	Spill *spill.Allowance
	// UpIdleTimeout closes connections to replicas idle this long; 0
	// means 30 s.
	UpIdleTimeout time.Duration
	// DialTimeout bounds a dial to a replica.
	DialTimeout time.Duration
	// Loops is how many event loops serve; 0 means GOMAXPROCS.
	Loops int
	// MetricsPath is the path of the metrics exposition, served by
	// Core.Metrics.
	MetricsPath string
}

// Core is the router, as the engine sees it.
type Core interface {
	// NewExchange returns the exchange state of a new caller connection,
	// used for each of its requests in turn.
	NewExchange() Exchange
	// Register adds the engine to those the router shuts down; false
	// means the router is shut down already.
	Register(e *Engine) bool
	// Redirect takes conn when the router answers plain HTTP with a
	// redirect to HTTPS, and reports whether it did.
	Redirect(conn net.Conn) bool
	// MetricsRefused decides whether a caller at addr ("IP:port") with
	// the Authorization value auth may read the metrics; when not, resp
	// holds the answer.
	MetricsRefused(addr string, auth []byte, resp *fasthttp.Response) bool
	// Metrics fills resp with the metrics exposition.
	Metrics(resp *fasthttp.Response)
	// Route serves req, read whole, in this goroutine (the engine-neutral
	// path: it may wait for a version to become routable) and leaves the
	// answer in resp; ctx ends when the caller leaves.
	Route(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, start time.Time, id []byte)
	// RefuseBody sets resp to the answer to a body that could not be
	// taken (413, 503 when the spill allowance is used up, 500) and
	// returns true, or returns false for any other error.
	RefuseBody(resp *fasthttp.Response, err error) bool
}

// Plan is where the core sends a request.
type Plan uint8

const (
	Routed  Plan = iota // to a version: the exchange began
	Refused             // answered by the router: resp holds the answer
	General             // (lean) for the general path, resp to be reset
	Wait                // (general) no version is routable yet: the slow path waits
)

// Outcome is how an attempt to send a request to a replica ended without
// an answer.
type Outcome uint8

const (
	Unreachable Outcome = iota // the dial failed: nothing reached the replica
	NotSent                    // no byte of the request left the router
	TimedOut                   // no answer within the scoring timeout
	Lost                       // the replica may have read it; no answer
)

// Replica is a replica as a key of the engine's connection pools.
type Replica interface {
	// Host is its HOST:PORT.
	Host() string
	// Member reports whether it is still one of its version's replicas.
	Member() bool
}

// Exchange is one request's way to a replica's answer, driven by the
// engine: Lean or Prepare begins it (when they return Routed), a slot is
// taken with TryTake or Take, each attempt that gets no answer is given to
// Failed, and End settles it.
type Exchange interface {
	// Lean routes the request the lean scanner read into lr; path is
	// the replica's path for it.
	Lean(lr *wire.Request, resp *fasthttp.Response, start time.Time) (path string, p Plan)
	// Prepare routes req, parsed by fasthttp, and turns it into the
	// request for the replica (its Host still to be set).
	Prepare(req *fasthttp.Request, resp *fasthttp.Response, id []byte, start time.Time) Plan
	// TryTake takes a free slot of the version without waiting; nil
	// when there is none.
	TryTake() Replica
	// Take waits for a slot in the version's queue (up to its queue
	// wait, or until ctx ends), falling back to the default version as
	// the core decides; without one, the answer's code and message.
	Take(ctx context.Context) (rep Replica, code int, msg string)
	// Release gives the slot back (the replica answered).
	Release()
	// Failed takes an attempt's outcome and gives the slot back: retry
	// when the request is to be sent again (then a slot is to be taken
	// again), else the answer's code and message. With mayRetry false
	// (the caller left, the engine shuts down) it never retries.
	Failed(o Outcome, mayRetry bool) (retry bool, code int, msg string)
	// End settles the exchange with the code sent to the caller; done is
	// when the replica's answer was read (zero: none was).
	End(code int, done time.Time)
	// Version is the name of the version serving the request.
	Version() string
	// Timeout is that version's scoring timeout.
	Timeout() time.Duration
}
