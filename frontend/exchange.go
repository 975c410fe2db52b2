package frontend

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aksml/aksml/frontend/internal/spill"
	"github.com/aksml/aksml/frontend/internal/wire"
)

// The exchange: one request's way to a replica's answer, written once for
// both engines. An engine begins it with the version chosen, takes a
// replica slot (at once, or waiting in the version's queue), sends the
// request its own way, and reports how the attempt ended; the exchange
// classifies the outcome, trips the replica's breaker after a failed dial,
// gives the slot back and decides: send again (only when the request
// provably never reached a replica, at most maxRetries times), fall back to
// the default version (when the version chosen has no usable replica and
// was not asked for by name), or answer with a status code. end settles
// the counts and metrics.
//
// forward drives it in a goroutine (the http.Handler path and the event
// loop's slow path); the event loop (package frontend/internal/loop)
// drives it from its callbacks through loop.Exchange (serve.go), waiting
// for a slot in a goroutine when it must.

// maxRetries bounds how many more times a request is sent after sends
// that provably did not reach a replica (a failed dial, a connection found
// closed before any byte of the request left). A request that may have
// reached one is never sent again, whatever its method.
const maxRetries = 8

// ejectFor is how long a replica whose dial failed is skipped, unless a
// route update marks it ready again first.
const ejectFor = time.Second

// breaker keeps a replica out of the picks for ejectFor after a failed
// dial. Times are unix ns read from the pool's clock.
type breaker struct {
	openUntil atomic.Int64 // 0: closed (the replica takes requests)
}

// trip opens the breaker until now + ejectFor.
func (b *breaker) trip(now time.Time) { b.openUntil.Store(now.Add(ejectFor).UnixNano()) }

// reset closes the breaker.
func (b *breaker) reset() { b.openUntil.Store(0) }

// allows reports whether the replica may get a request. *now is the time
// in unix ns, read from clock on first need (0 until then), so that a
// pick over many replicas with closed breakers reads no clock.
func (b *breaker) allows(now *int64, clock func() time.Time) bool {
	e := b.openUntil.Load()
	if e == 0 {
		return true
	}
	if *now == 0 {
		*now = clock().UnixNano()
	}
	if e > *now {
		return false
	}
	b.openUntil.CompareAndSwap(e, 0) // spares later picks the clock
	return true
}

// outcome is how an attempt to send a request to a replica ended.
type outcome uint8

const (
	outUnreachable outcome = iota // the dial failed: nothing reached the replica
	outNotSent                    // no byte of the request left the router
	outTimedOut                   // no answer within the scoring timeout
	outCallerLeft                 // the caller hung up
	outLost                       // the replica may have read it; no answer
)

// notSentError is a failure to send a request of which no byte left the
// router: the replica cannot have seen it, so it may go elsewhere.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return "request not sent: " + e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

// dialError is a failed dial: nothing reached the replica.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// outcomeOf names the outcome of an attempt that failed with err; ctx is
// the caller's (nil when there is none to watch).
func outcomeOf(ctx context.Context, err error) outcome {
	var de *dialError
	var ns *notSentError
	switch {
	case errors.As(err, &de):
		return outUnreachable
	case errors.As(err, &ns):
		return outNotSent
	case errors.Is(err, fasthttp.ErrTimeout) || isTimeout(err):
		return outTimedOut
	case ctx != nil && ctx.Err() != nil:
		return outCallerLeft
	}
	return outLost
}

// exch is the engine-neutral state of one request's exchange.
type exch struct {
	p        plan
	vs       *versionState // the version serving it (after any fallback)
	rep      *replica      // the replica whose slot it holds; nil when none
	attempts int           // sends after the first
	start    time.Time
	queued   bool // it waited for its slot
	// mirror: a copy of a live request (Version.MirrorPercent). It never
	// waits for a slot (no free slot drops it), and it is counted as
	// mirrored (sent or failed), not among the version's answers.
	mirror bool
}

// begin starts an exchange for plan p: the version counts it in flight
// until end.
func (x *exch) begin(p plan, start time.Time) {
	*x = exch{p: p, vs: p.r.versions[p.idx], start: start, mirror: x.mirror}
	x.vs.inflight.Add(1)
}

// tryTake takes a free slot of the version, without waiting.
func (x *exch) tryTake() bool {
	x.rep = x.vs.pool.tryAcquire()
	return x.rep != nil
}

// take takes a slot, waiting in the version's queue up to its queue wait
// (or until ctx ends). A version left with no usable replica hands the
// request to the default version when the caller did not name it. When no
// slot is had, it returns the status code and message to answer with.
func (x *exch) take(ctx context.Context) (code int, msg string, ok bool) {
	r := x.p.r
	if x.mirror {
		if x.tryTake() {
			return 0, "", true
		}
		return http.StatusServiceUnavailable, msgOverloaded(r.name), false
	}
	for {
		rep, queued, err := x.vs.pool.acquire(ctx)
		if err == nil {
			x.rep, x.queued = rep, x.queued || queued
			return 0, "", true
		}
		switch {
		case errors.Is(err, errNoReady) && !x.p.explicit && x.p.idx != r.def && r.routable[r.def]:
			// Readiness fallback: the version lost its replicas since
			// the route was set; its traffic goes to the default.
			x.vs.inflight.Add(-1)
			x.p.idx, x.vs = r.def, r.versions[r.def]
			x.vs.inflight.Add(1)
		case errors.Is(err, errOverloaded):
			return http.StatusServiceUnavailable, msgOverloaded(r.name), false
		case errors.Is(err, errNoReady):
			return http.StatusServiceUnavailable, msgNoReady(r.name), false
		default: // the caller went away
			return 499, "Client closed request", false
		}
	}
}

// release gives the slot back.
func (x *exch) release() {
	if x.rep != nil {
		x.vs.pool.release(x.rep)
		x.rep = nil
	}
}

// failed takes the outcome of an attempt that got no answer: it trips the
// replica's breaker after a failed dial, gives the slot back and decides
// whether to send the request again (it provably never reached a replica,
// and the cap is not reached), or what to answer.
func (x *exch) failed(o outcome, now func() time.Time) (retry bool, code int, msg string) {
	if o == outUnreachable && x.rep != nil {
		x.rep.breaker.trip(now())
	}
	x.release()
	name := x.p.r.name
	if (o == outUnreachable || o == outNotSent) && x.attempts < maxRetries {
		x.attempts++
		return true, 0, ""
	}
	switch o {
	case outUnreachable:
		return false, http.StatusServiceUnavailable, msgNoReady(name)
	case outTimedOut:
		return false, http.StatusGatewayTimeout, msgTimeout(name, x.vs.pool.scoringTimeout())
	case outCallerLeft:
		return false, 499, "Client closed request"
	}
	return false, http.StatusBadGateway, MsgReplicaClosed
}

// abandon ends an exchange whose request is refused before it is sent:
// the slot goes back and nothing is recorded.
func (x *exch) abandon() {
	x.release()
	x.vs.inflight.Add(-1)
}

// end settles the exchange: the slot (if still held) goes back, the
// version stops counting it in flight and records its outcome (done is
// when the replica's answer was read; zero means now).
func (x *exch) end(code int, done time.Time) {
	x.release()
	x.vs.inflight.Add(-1)
	switch {
	case !x.mirror:
		observe(x.p, x.vs, code, x.start, done)
	case done.IsZero():
		x.vs.mirrorFailed.Add(1) // no replica answered
	default:
		x.vs.mirrorSent.Add(1)
	}
}

// ---- the goroutine driver ----

// send forwards a prepared request and fills resp with the answer. With
// rel set, a chunked or large answer's body is left to relay (when
// rel.streaming() on return), and its exchange, in rel.x, to end after it.
func (rt *Router) send(ctx context.Context, p plan, req *fasthttp.Request, resp *fasthttp.Response, start time.Time, noDefaultCT bool, rel *bodyRelay) {
	var own exch
	x := &own
	if rel != nil {
		x = &rel.x
	}
	x.begin(p, start)
	code, done := rt.forward(ctx, x, req, resp, noDefaultCT, rel)
	resp.Header.Set(HeaderServedBy, x.vs.name)
	if rel.streaming() {
		rel.code = code
		return
	}
	x.end(code, done)
}

// observe records a scoring request's outcome.
func observe(p plan, vs *versionState, code int, start, done time.Time) {
	if p.kind == kindScore {
		if done.IsZero() {
			done = time.Now()
		}
		vs.observe(code, done.Sub(start))
	}
}

// forward runs exchange x in this goroutine: it takes a slot (waiting in
// the queue), sends req and reads the answer into resp, as many times as x
// decides. It returns the status code sent to the caller and, when a
// replica answered, the time its answer was read. The scoring timeout runs
// from x.start, or from the end of the wait for a replica slot.
func (rt *Router) forward(ctx context.Context, x *exch, req *fasthttp.Request, resp *fasthttp.Response, noDefaultCT bool, rel *bodyRelay) (code int, done time.Time) {
	spilled, _ := req.BodyStream().(*spill.Reader)
	for {
		if x.rep == nil {
			code, msg, ok := x.take(ctx)
			if !ok {
				wire.SetError(resp, code, msg)
				return code, done
			}
		}
		timeout := x.vs.pool.scoringTimeout()
		req.SetHost(x.rep.host)
		if spilled != nil {
			// Each attempt reads the body from its start (sending
			// closes the stream).
			req.SetBodyStream(spilled.S.Reader(), int(spilled.S.Size))
		}
		now := x.start
		if x.queued || x.attempts > 0 {
			now = time.Now()
		}
		var err error
		done, err = x.rep.conns.roundTrip(ctx, req, resp, now, now.Add(timeout), noDefaultCT, rel)
		if err == nil {
			if !rel.streaming() {
				x.release() // else the slot is held until the body's end
			}
			return wire.ReplicaAnswer(resp), done
		}
		rt.log.Debug("frontend: replica error", "route", x.p.r.name, "version", x.vs.name, "replica", x.rep.id, "err", err)
		retry, code, msg := x.failed(outcomeOf(ctx, err), rt.now)
		if !retry {
			wire.SetError(resp, code, msg)
			return code, done
		}
	}
}
