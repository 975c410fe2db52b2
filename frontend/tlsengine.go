package frontend

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aksml/aksml/frontend/internal/wire"
	"github.com/aksml/aksml/internal/connq"
)

// The lean HTTPS engine of ServeTLS. crypto/tls does the handshake and the
// records; each connection has one goroutine, which reads its caller's
// requests into a buffer of its own, scans the common request with the
// event loop's lean scanner (package wire), forwards it through the exchange
// (exchange.go) on a kept-alive connection from the replica's pool, and
// writes the answer with one write. No goroutine is started per request,
// and the buffers live as long as the connection.
//
// What the lean scanner does not take (chunked or large bodies, Expect,
// HTTP/1.0, unusual paths or headers, /metrics, a route with mirroring or
// with no ready version, a malformed request) is not read here: the
// connection, with the bytes already read, is handed to a net/http server
// for the rest of its life, which answers as ServeHTTP does. So every
// answer the lean path gives is the event loop's, and every other one
// net/http's, and both are checked against each other by the engine tests.
//
// While a request is at a replica the engine does not read its caller (a
// read would take the next pipelined request); it looks at the caller's
// socket every callerCheck instead, and a caller that hung up (reset, or
// closed its side) frees the slot and closes the replica's connection, as
// on the other engines.

// callerCheck is how often a request waiting for a replica's answer looks
// whether its caller hung up.
const callerCheck = 100 * time.Millisecond

// tlsReadBuffer is a connection's first read buffer; it grows for a large
// request (up to the header limit plus a body of wire.SpillOver bytes).
const tlsReadBuffer = 8 << 10

// errCallerLeft ends an attempt whose caller hung up.
var errCallerLeft = errors.New("the caller hung up")

// tlsEngine is ServeTLS's server.
type tlsEngine struct {
	rt  *Router
	ln  *limitListener
	cfg *tls.Config

	// The net/http server of handed-over connections.
	fb    *connq.Fallback
	conns connq.Set[*tlsConn]
}

// tlsStateKey keys a handed-over connection's TLS state in its context.
type tlsStateKey struct{}

// serveTLSLean runs the lean engine on ln.
func (rt *Router) serveTLSLean(ln net.Listener) error {
	e := &tlsEngine{rt: rt, ln: newLimitListener(sockListener{Listener: ln}, rt.maxConns), cfg: rt.tlsConfig()}
	h := rt.withBodyDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
			r.TLS = st // the connection is TLS: no redirect to HTTPS
		}
		rt.ServeHTTP(w, r)
	}))
	fallback := rt.httpServer(h)
	fallback.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if rc, ok := c.(*replayConn); ok {
			st := rc.tc.ConnectionState()
			return context.WithValue(ctx, tlsStateKey{}, &st)
		}
		return ctx
	}
	e.fb = connq.StartFallback(fallback, ln.Addr())
	if !rt.addEngine(e) {
		ln.Close()
		_ = e.fb.Shutdown(context.Background())
		return nil
	}
	var backoff time.Duration
	for {
		c, err := e.ln.Accept()
		if err != nil {
			if e.conns.Closing() {
				return nil
			}
			if connq.Retry(err, &backoff) {
				// As net/http: wait a little and accept again.
				rt.log.Debug("frontend: accept error; retried", "err", err, "after", backoff)
				continue
			}
			e.conns.Close()
			e.stop(context.Background())
			return err
		}
		backoff = 0
		tc := &tlsConn{e: e, raw: c, tc: tls.Server(c, e.cfg)}
		if cc, ok := c.(*countedConn); ok {
			if sc, ok := cc.Conn.(*sockConn); ok {
				tc.sock = sc
			}
		}
		if !e.conns.Add(tc) {
			c.Close()
			return nil
		}
		go tc.serve()
	}
}

// shutdown stops accepting, closes idle connections, lets the requests in
// progress end (until ctx ends, then closes every connection) and shuts the
// net/http server of handed-over connections down.
func (e *tlsEngine) shutdown(ctx context.Context) error {
	e.conns.Close()
	e.ln.Close()
	return e.stop(ctx)
}

func (e *tlsEngine) stop(ctx context.Context) error {
	// The net/http server's connections at the same time: its idle ones
	// close now, as the lean engine's do.
	ferr := make(chan error, 1)
	go func() { ferr <- e.fb.Shutdown(ctx) }()
	// When ctx ends first, the connections left are closed; their
	// goroutines end as their waits for replicas do.
	err := e.conns.Shutdown(ctx, (*tlsConn).wake, func(c *tlsConn) { c.raw.Close() })
	if ferr := <-ferr; ferr != nil && err == nil {
		err = ferr
	}
	return err
}

// tlsConn is one caller's connection and its buffers.
type tlsConn struct {
	e    *tlsEngine
	raw  net.Conn // under tc
	sock *sockConn
	tc   *tls.Conn

	// idle: waiting for a new request (or in the handshake); Shutdown
	// wakes such a connection, which then closes.
	idle atomic.Bool

	rb connq.Buffer // what was read of the caller's requests

	lr    wire.Request
	lresp wire.Response
	resp  fasthttp.Response
	dirty bool // resp holds an answer

	up    []byte // the request for the replica
	ans   []byte // the replica's answer
	out   []byte // the caller's answer
	idBuf [36]byte
}

// wake makes an idle connection's read return at once (Shutdown).
func (c *tlsConn) wake() {
	if c.idle.Load() {
		_ = c.raw.SetReadDeadline(time.Unix(1, 0))
	}
}

func (c *tlsConn) close() {
	c.e.conns.Remove(c)
}

// serve runs the handshake, then the connection's requests.
func (c *tlsConn) serve() {
	handedOver, handshaken := false, false
	defer func() {
		switch {
		case handedOver:
		case handshaken:
			c.tc.Close() // close_notify, then the socket
		default:
			c.raw.Close()
		}
		c.close()
	}()
	rt := c.e.rt
	// The header timeout bounds the handshake, then the first request's
	// header.
	_ = c.raw.SetDeadline(time.Now().Add(rt.headerTimeout))
	c.idle.Store(true)
	if c.e.conns.Closing() {
		return
	}
	if err := c.tc.Handshake(); err != nil {
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			// As net/http: a plain request on the HTTPS port.
			_ = re.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		}
		rt.log.Debug("frontend: TLS handshake error", "remote", c.raw.RemoteAddr().String(), "err", err)
		return
	}
	handshaken = true
	handedOver = c.requests()
}

// looksLikeHTTP reports whether a TLS record header is the start of a
// plain HTTP request (as net/http's server checks).
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// phase of reading a request.
const (
	awaitFirst = iota // nothing of it yet: the idle (or first header) timeout
	awaitHead         // part of the head: the header timeout from its first byte
	awaitBody         // the head, part of the body: the body timeout per read
)

// requests serves the connection's requests until it closes; true when it
// was handed to the net/http server.
func (c *tlsConn) requests() bool {
	rt := c.e.rt
	c.rb.Reset(tlsReadBuffer)
	phase := awaitFirst
	first := true // the first request: its header timeout runs from the handshake's end
	_ = c.raw.SetDeadline(time.Now().Add(rt.headerTimeout))
	for {
		if data := c.rb.Next(); len(data) > 0 {
			switch wire.ScanRequest(data, rt.maxBody, &c.lr) {
			case wire.OK:
				if !c.serveLean(data) {
					return c.handoff()
				}
				if c.lr.CloseAfter {
					return false
				}
				phase, first = awaitFirst, false
				continue
			case wire.More:
				if c.lr.Length > wire.SpillOver {
					return c.handoff() // to a file, on net/http's path
				}
				c.rb.Ensure(c.lr.N)
				phase = awaitBody
				_ = c.raw.SetDeadline(time.Now().Add(rt.bodyTimeout))
			default:
				if headDone(data) {
					return c.handoff()
				}
				if phase == awaitFirst {
					phase = awaitHead
					if !first {
						_ = c.raw.SetDeadline(time.Now().Add(rt.headerTimeout))
					}
				}
				c.rb.Ensure(len(data) + 1)
			}
		} else {
			if !first {
				_ = c.raw.SetDeadline(time.Now().Add(rt.idleTimeout))
			}
			c.idle.Store(true)
			if c.e.conns.Closing() {
				return false
			}
		}
		n, err := c.rb.ReadOnce(c.tc)
		c.idle.Store(false)
		if err != nil && n == 0 {
			return false // closed, reset, timed out, or a TLS alert
		}
	}
}

// headDone reports whether the lean scanner's refusal of data is final:
// the head is complete (or too large, or ends in a way only the general
// reader takes, or a line already there is malformed), so waiting for more bytes would change nothing.
func headDone(data []byte) bool {
	return bytes.Contains(data, wire.CRLFCRLF) || len(data) > wire.MaxHeaderBytes ||
		bytes.Contains(data, []byte("\n\n")) || bytes.Contains(data, []byte("\n\r\n")) ||
		wire.CheckHead(data, false).Code != 0 // a line already there is refused
}

// handoff gives the connection, with the bytes read and not consumed, to
// the net/http server.
func (c *tlsConn) handoff() bool {
	rc := &replayConn{ReplayConn: connq.ReplayConn{Conn: c.tc, Rest: append([]byte(nil), c.rb.Bytes()...)}, tc: c.tc}
	_ = c.raw.SetDeadline(time.Time{})
	return c.e.fb.Queue.Put(rc)
}

// replayConn is a TLS connection handed to net/http: its reads give the
// bytes already read first; tc gives the handler its TLS state.
type replayConn struct {
	connq.ReplayConn
	tc *tls.Conn
}

// serveLean answers the lean request c.lr at the start of data; false
// when it is for the general path (nothing was consumed or answered).
func (c *tlsConn) serveLean(data []byte) bool {
	rt := c.e.rt
	lr := &c.lr
	if c.dirty {
		c.resp.Reset()
		c.dirty = false
	}
	resp := &c.resp
	start := time.Now()
	p, kind, ok, general := rt.leanPlan(lr, resp)
	if general {
		c.dirty = true
		return false
	}
	c.rb.SkipCRLF(wire.PostSkip(lr.Method))
	id := wire.NewRequestID(c.idBuf[:0])
	if !ok {
		c.rb.Consume(lr.N)
		c.dirty = true
		resp.Header.SetNoDefaultContentType(true)
		resp.Header.SetBytesV(HeaderRequestID, id)
		c.out = wire.AppendResponse(c.out[:0], lr.CloseAfter, resp)
		c.write()
		return true
	}
	var x exch
	x.begin(p, start)
	host := "replica"
	if x.tryTake() {
		host = x.rep.host
	}
	c.up = wire.AppendUpstream(c.up[:0], data, lr, upstreamPath(kind), host, id)
	c.rb.Consume(lr.N)
	code, done := c.forward(&x, start, id)
	x.end(code, done)
	c.write()
	return true
}

// write sends c.out to the caller (a caller that cannot be written to
// is not served further), and lets go of buffers grown large.
func (c *tlsConn) write() {
	if len(c.out) > 0 && c.writeOut() != nil {
		c.lr.CloseAfter = true
	}
	if cap(c.out) > 256<<10 {
		c.out = nil
	}
	if cap(c.up) > 256<<10 {
		c.up = nil
	}
	if cap(c.ans) > 256<<10 {
		c.ans = nil
	}
	c.rb.Shrink(256<<10, tlsReadBuffer)
}

// writeOut writes c.out to the caller, which must take it within
// BodyReadTimeout: a caller that reads nothing for that long is cut off,
// as on the event loop (the write fails, and the connection closes).
func (c *tlsConn) writeOut() error {
	_ = c.raw.SetWriteDeadline(time.Now().Add(c.e.rt.bodyTimeout))
	_, err := c.tc.Write(c.out)
	return err
}

// forward runs exchange x for c.up (written for the replica whose slot x
// holds, or for none yet) and leaves the caller's answer in c.out; it
// returns the status code and when the replica's answer was read.
func (c *tlsConn) forward(x *exch, start time.Time, id []byte) (int, time.Time) {
	rt := c.e.rt
	closeAfter := c.lr.CloseAfter
	fail := func(code int, msg string) (int, time.Time) {
		c.resp.Reset()
		c.dirty = true
		c.resp.Header.SetNoDefaultContentType(true)
		wire.SetError(&c.resp, code, msg)
		c.resp.Header.Set(HeaderServedBy, x.vs.name)
		c.resp.Header.SetBytesV(HeaderRequestID, id)
		c.out = wire.AppendResponse(c.out[:0], closeAfter, &c.resp)
		return code, time.Time{}
	}
	for {
		if x.rep == nil {
			code, msg, ok := x.take(context.Background())
			if !ok {
				return fail(code, msg)
			}
			c.up = wire.SetUpstreamHost(c.up, x.rep.host)
		}
		now := start
		if x.queued || x.attempts > 0 {
			now = time.Now()
		}
		deadline := now.Add(x.vs.pool.scoringTimeout())
		code, done, err := c.roundTrip(x, now, deadline, id, closeAfter)
		if err == nil {
			return code, done
		}
		rt.log.Debug("frontend: replica error", "route", x.p.r.name, "version", x.vs.name, "replica", x.rep.id, "err", err)
		o := outcomeOf(nil, err)
		if err == errCallerLeft {
			o = outCallerLeft
		}
		retry, code, msg := x.failed(o, rt.now)
		if o == outCallerLeft {
			c.lr.CloseAfter = true // nobody to answer
			c.out = c.out[:0]
			return code, time.Time{}
		}
		if !retry {
			return fail(code, msg)
		}
	}
}

// roundTrip sends c.up to x's replica on a kept-alive connection (or a new
// one) and reads its answer into c.out, the caller's answer. Errors are
// those of connPool.roundTrip, or errCallerLeft.
func (c *tlsConn) roundTrip(x *exch, now, deadline time.Time, id []byte, closeAfter bool) (int, time.Time, error) {
	uc, err := x.rep.conns.get(now)
	if err != nil {
		return 0, time.Time{}, err
	}
	if err := c.send(uc, deadline); err != nil {
		uc.Close()
		return 0, time.Time{}, err
	}
	if c.ans == nil {
		c.ans = make([]byte, 0, 16<<10)
	}
	ans := c.ans[:0]
	lr := &c.lresp
	for {
		if len(ans) == cap(ans) {
			ans = append(ans, 0)[:len(ans)]
		}
		n, err := uc.Read(ans[len(ans):cap(ans)])
		ans = ans[:len(ans)+n]
		c.ans = ans
		if n > 0 {
			switch wire.ScanResponse(ans, lr) {
			case wire.OK:
				done := time.Now()
				code := lr.Code
				if code == http.StatusInternalServerError {
					code = http.StatusBadGateway
				}
				c.out = wire.AppendAnswer(c.out[:0], ans, lr, id, x.vs.name, closeAfter)
				if !lr.CloseConn && len(ans) == lr.N {
					x.rep.conns.put(uc, done)
				} else {
					uc.Close()
				}
				x.release()
				return code, done, nil
			case wire.More:
				if lr.Length-(len(ans)-lr.Start) > wire.StreamOver {
					return c.stream(x, uc, ans, lr, id, closeAfter)
				}
				if need := lr.N; need > cap(ans) {
					ans = append(make([]byte, 0, need), ans...)
				}
				continue
			default:
				if wire.ScanChunkedResponse(ans, lr) {
					return c.stream(x, uc, ans, lr, id, closeAfter)
				}
				if bytes.Contains(ans, wire.CRLFCRLF) || len(ans) > upstreamReadBuffer {
					return c.generalAnswer(x, uc, deadline, id, closeAfter)
				}
				continue
			}
		}
		if err != nil {
			if isTimeout(err) && time.Now().Before(deadline) {
				if c.callerGone() {
					uc.Close()
					return 0, time.Time{}, errCallerLeft
				}
				if err := uc.SetReadDeadline(watchUntil(deadline)); err != nil {
					uc.Close()
					return 0, time.Time{}, err
				}
				continue
			}
			uc.Close()
			return 0, time.Time{}, err
		}
	}
}

// stream sends the answer whose head lr was scanned at the start of ans to
// the caller as it arrives (see relay.go): the head at once, then the body
// piece by piece, chunk by chunk for a chunked one. A replica that breaks
// off after the head is out, or a caller that cannot be written to, ends
// the answer early: the caller's connection closes, and the request counts
// as a 502 (the replica failed) or 499 (the caller hung up, or read
// nothing for BodyReadTimeout). While the replica sends nothing, the
// caller is looked at every callerCheck, as while the head is awaited.
func (c *tlsConn) stream(x *exch, uc *upConn, ans []byte, lr *wire.Response, id []byte, closeAfter bool) (int, time.Time, error) {
	code := lr.Code
	if code == http.StatusInternalServerError {
		code = http.StatusBadGateway
	}
	c.out = wire.AppendStreamHead(c.out[:0], ans, lr, id, x.vs.name, closeAfter)
	b := bodyRelay{uc: uc, pool: &x.rep.conns, pre: ans[lr.Start:], chunked: lr.Chunked, left: int64(lr.Length), keep: !lr.CloseConn,
		gone: c.callerGone}
	out := func(p []byte) error {
		if b.chunked {
			c.out = wire.AppendChunk(c.out, p)
		} else {
			c.out = append(c.out, p...)
		}
		return nil
	}
	flush := func() error {
		if len(c.out) == 0 {
			return nil
		}
		err := c.writeOut()
		c.out = c.out[:0]
		return err
	}
	done, err := b.run(make([]byte, relayPiece), c.e.rt.bodyTimeout, out, flush)
	x.release()
	if err != nil {
		c.e.rt.log.Debug("frontend: streamed answer cut off", "err", err)
		c.lr.CloseAfter = true // before the answer's end
		c.out = c.out[:0]
		return cutCode(err, nil), time.Time{}, nil
	}
	if b.chunked {
		c.out = append(c.out[:0], "0\r\n\r\n"...)
	}
	return code, done, nil
}

// watchUntil is the read deadline of a wait for an answer due by deadline:
// the next look at the caller, or deadline.
func watchUntil(deadline time.Time) time.Time {
	if t := time.Now().Add(callerCheck); t.Before(deadline) {
		return t
	}
	return deadline
}

// generalAnswer reads an answer the lean scanner does not take (chunked,
// interim, delimited by closing…) with fasthttp's parser, from what was
// read and the rest of the connection, which is then closed.
func (c *tlsConn) generalAnswer(x *exch, uc *upConn, deadline time.Time, id []byte, closeAfter bool) (int, time.Time, error) {
	defer uc.Close()
	if err := uc.SetReadDeadline(deadline); err != nil {
		return 0, time.Time{}, err
	}
	resp := &c.resp
	c.dirty = true
	resp.Reset()
	resp.Header.DisableNormalizing()
	resp.Header.SetNoDefaultContentType(true)
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(c.ans), uc.sockConn), upstreamReadBuffer)
	if err := resp.ReadLimitBody(br, 0); err != nil {
		return 0, time.Time{}, err
	}
	done := time.Now()
	x.release()
	code := wire.ReplicaAnswer(resp)
	resp.Header.Set(HeaderServedBy, x.vs.name)
	resp.Header.SetBytesV(HeaderRequestID, id)
	c.out = wire.AppendResponse(c.out[:0], closeAfter, resp)
	return code, done, nil
}

// send writes c.up on uc from inside the wait for the answer (see
// upConn.writeAndWait); the wait returns when the answer starts arriving
// or at the next look at the caller.
func (c *tlsConn) send(uc *upConn, deadline time.Time) error {
	return uc.writeAndWait(c.up, watchUntil(deadline), deadline)
}
