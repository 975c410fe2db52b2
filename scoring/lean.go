package scoring

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/connq"
)

// The lean HTTP/1.1 engine of Serve. Each connection has one goroutine,
// which reads its caller's requests into a buffer of its own and serves the
// common request — GET or POST of /score or /, HTTP/1.1, a body of known
// length up to leanMaxBody, plain header lines — without net/http's
// per-request machinery: no bufio reader, no background read goroutine and
// its deadline resets, no header parsing into fresh maps. The request is
// still an *http.Request and the answer goes through an http.ResponseWriter
// (leanWriter), so the Server's handlers are the same on both paths; the
// writer follows net/http's rules for the status line, the header block,
// Date, Content-Length, sniffed Content-Type, chunking and when the
// connection closes, so the caller gets the same bytes either way (the
// engine tests compare them with net/http's).
//
// Anything else (chunked or large bodies, Expect, Upgrade, HTTP/1.0, other
// paths, a header line net/http might read differently) is not read here:
// the connection, with the bytes already read, is handed to a net/http
// server for the rest of its life, which answers as before.
//
// Timeouts: the head of a request must arrive within readHeaderTimeout of
// its first byte (of the connection's start, for the first request), as
// net/http's ReadHeaderTimeout; a kept-alive connection that sends nothing
// for idleTimeout after an answer is closed (net/http's IdleTimeout; the
// deadline is renewed when a second of it has gone, not on every request);
// on the lean path each read of a body must come within leanBodyTimeout.

// leanMaxBody bounds a body read whole into the connection's buffer; a
// larger one takes net/http's path, which streams it.
const leanMaxBody = 1 << 20

// leanMaxHead bounds a head the lean path reads; a larger one (net/http
// takes up to 1 MiB) is handed over.
const leanMaxHead = 16 << 10

// leanReadBuffer is a connection's first read buffer.
const leanReadBuffer = 8 << 10

// readHeaderTimeout bounds the arrival of a request's head.
const readHeaderTimeout = 30 * time.Second

// idleTimeout closes a kept-alive connection that sends nothing for this
// long after an answer (nginx's keepalive_timeout; the router drops its
// own idle connections to a replica after a second).
const idleTimeout = 75 * time.Second

// leanBodyTimeout bounds the wait for each read of a body on the lean path
// (nginx's client_body_timeout).
const leanBodyTimeout = 60 * time.Second

// leanCallerCheck is how often the engine looks whether the callers of the
// requests that have run at least this long hung up; a caller gone ends
// its request's context, as on net/http.
const leanCallerCheck = 100 * time.Millisecond

// leanEngine serves one listener.
type leanEngine struct {
	h        http.Handler
	eligible func() bool // whether a request may take the lean path now
	// afterAnswer, when set, is called by a connection once it has sent
	// an answer, before it reads the next request.
	afterAnswer func()
	ln          net.Listener
	ctx         context.Context // the connections' base context

	headerTimeout time.Duration // a head's, from its first byte; 0: none
	idleTimeout   time.Duration // between requests; 0: none
	bodyTimeout   time.Duration // between reads of a body; 0: none
	served        atomic.Int64  // requests answered on the lean path
	handedOver    atomic.Int64  // connections given to net/http

	fb    *connq.Fallback // handed-over connections' server
	conns connq.Set[*leanConn]

	stopWatch, watchDone chan struct{} // the caller watch's
	stopOnce             sync.Once
}

// serveLean is Serve with the lean engine in front of hs.
func serveLean(ctx context.Context, ln net.Listener, h http.Handler, eligible func() bool, hs *http.Server, after func()) error {
	e := newLeanEngine(ln, h, eligible, hs)
	e.afterAnswer = after
	errc := make(chan error, 1)
	go func() { errc <- e.accept() }()
	select {
	case err := <-errc:
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
		defer cancel()
		_ = e.shutdown(sctx)
		return errcode.Wrap(errcode.Unavailable, fmt.Errorf("serve on %s: %w", ln.Addr(), err))
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
		defer cancel()
		_ = e.shutdown(sctx)
		<-errc
		return nil
	}
}

// newLeanEngine makes the engine of ln and starts hs on its queue of
// handed-over connections; accept runs it.
func newLeanEngine(ln net.Listener, h http.Handler, eligible func() bool, hs *http.Server) *leanEngine {
	e := &leanEngine{h: h, eligible: eligible, ln: ln,
		headerTimeout: hs.ReadHeaderTimeout, idleTimeout: hs.IdleTimeout, bodyTimeout: leanBodyTimeout}
	e.ctx = context.WithValue(context.Background(), http.ServerContextKey, hs)
	e.fb = connq.StartFallback(hs, ln.Addr())
	e.stopWatch, e.watchDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(e.watchDone)
		e.watchCallers(e.stopWatch)
	}()
	return e
}

// accept runs the accept loop until the listener closes.
func (e *leanEngine) accept() error {
	var backoff time.Duration
	for {
		c, err := e.ln.Accept()
		if err != nil {
			if e.conns.Closing() {
				return nil
			}
			if connq.Retry(err, &backoff) {
				continue
			}
			return err
		}
		backoff = 0
		lc := newLeanConn(e, c)
		if !e.conns.Add(lc) {
			c.Close()
			return nil
		}
		go lc.serve()
	}
}

// shutdown stops accepting, closes idle connections, lets the requests in
// progress end (until ctx ends, then closes every connection), and shuts
// the net/http server of handed-over connections down the same way.
func (e *leanEngine) shutdown(ctx context.Context) error {
	e.conns.Close()
	e.ln.Close()
	ferr := make(chan error, 1)
	go func() { ferr <- e.fb.Shutdown(ctx) }()
	err := e.conns.Shutdown(ctx, (*leanConn).wake, func(c *leanConn) { c.c.Close() })
	e.conns.Wait()
	e.stopOnce.Do(func() { close(e.stopWatch) })
	<-e.watchDone
	if ferr := <-ferr; ferr != nil && err == nil {
		err = ferr
	}
	return err
}

// leanConn is one caller's connection, its buffers and the state of the
// request being served.
type leanConn struct {
	e      *leanEngine
	c      net.Conn
	remote string
	ctx    context.Context

	idle atomic.Bool // waiting for a request: shutdown wakes it

	rb connq.Buffer // what was read of the caller's requests

	rq    leanRequest
	hdr   http.Header
	vals  []string
	names map[string]*leanName
	url   url.URL
	tmpl  *http.Request
	body  leanBody
	w     leanWriter
	out   []byte

	// The request in progress, for the engine's caller check: when it
	// began (Unix nanoseconds; 0 between requests) and its context's
	// cancel, under mu.
	busySince atomic.Int64
	mu        sync.Mutex
	cancel    context.CancelFunc
}

// leanName is a header name's canonical form and the last value it had on
// this connection (callers send the same values again and again).
type leanName struct {
	canon string
	last  string
}

// maxLeanNames bounds a connection's cache of header names.
const maxLeanNames = 64

func newLeanConn(e *leanEngine, c net.Conn) *leanConn {
	lc := &leanConn{e: e, c: c, remote: c.RemoteAddr().String(), hdr: http.Header{},
		names: map[string]*leanName{}}
	lc.ctx = context.WithValue(e.ctx, http.LocalAddrContextKey, c.LocalAddr())
	lc.tmpl = (&http.Request{Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, RemoteAddr: lc.remote}).WithContext(lc.ctx)
	lc.w.init(lc)
	return lc
}

// wake makes an idle connection's read return at once (shutdown).
func (c *leanConn) wake() {
	if c.idle.Load() {
		_ = c.c.SetReadDeadline(time.Unix(1, 0))
	}
}

// serve serves the connection's requests until it closes or is handed
// over.
func (c *leanConn) serve() {
	handedOver := false
	defer func() {
		if !handedOver {
			c.c.Close()
		}
		c.e.conns.Remove(c)
	}()
	handedOver = c.requests()
}

// requests reads and serves requests; true when the connection was handed
// to the net/http server.
func (c *leanConn) requests() bool {
	c.rb.Reset(leanReadBuffer)
	// The read deadline in force (zero: none) and what it bounds.
	var deadline time.Time
	setDeadline := func(t time.Time) {
		if !t.Equal(deadline) {
			_ = c.c.SetReadDeadline(t)
			deadline = t
		}
	}
	const (
		idle = iota // between requests
		head        // inside a head
		body        // inside a body
	)
	phase := head // the first request's head: from the connection's start
	setDeadline(c.e.after(c.e.headerTimeout))
	for {
		if data := c.rb.Next(); len(data) > 0 {
			switch c.scan(data) {
			case leanOK:
				if !c.e.eligible() {
					return c.handoff()
				}
				if !c.serveOne(data) || c.e.conns.Closing() {
					return false
				}
				phase = idle
				continue
			case leanMore:
				// Each read of a body must come within the body timeout.
				phase = body
				setDeadline(c.e.after(c.e.bodyTimeout))
				c.rb.Ensure(c.rq.n)
			case leanHead:
				if phase == idle {
					phase = head
					setDeadline(c.e.after(c.e.headerTimeout))
				}
				c.rb.Ensure(len(data) + 1)
			default:
				return c.handoff()
			}
		} else if c.e.conns.Closing() {
			return false
		} else if d := c.e.idleTimeout; phase == idle && d > 0 &&
			(deadline.IsZero() || time.Until(deadline) < d-min(idleSlack, d/4)) {
			// Waiting for the next request: the idle timeout, renewed
			// when more than idleSlack (or a quarter) of it has gone,
			// not on every request.
			setDeadline(c.e.after(d))
		}
		c.idle.Store(len(c.rb.Bytes()) == 0)
		if c.idle.Load() && c.e.conns.Closing() {
			return false
		}
		n, err := c.rb.ReadOnce(c.c)
		c.idle.Store(false)
		if err != nil && n == 0 {
			if err == io.EOF && len(c.rb.Bytes()) > 0 {
				// The caller ended its side inside a request: net/http
				// answers that (a handler may already have been called
				// with the head), so it takes the rest.
				return c.handoff()
			}
			return false // closed, reset or timed out
		}
	}
}

// idleSlack is how much of the idle timeout (a quarter of it at most) may
// pass before a connection between requests renews its deadline.
const idleSlack = time.Second

// after is the deadline d from now; zero (none) when d is 0.
func (e *leanEngine) after(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// handoff gives the connection, with the bytes read and not consumed, to
// the net/http server.
func (c *leanConn) handoff() bool {
	c.e.handedOver.Add(1)
	rc := &connq.ReplayConn{Conn: c.c, Rest: append([]byte(nil), c.rb.Bytes()...)}
	_ = c.c.SetDeadline(time.Time{})
	return c.e.fb.Queue.Put(rc)
}

// A lean scan's verdict.
const (
	leanOK   = iota // a whole request the lean path serves
	leanMore        // its head is complete, its body is not
	leanHead        // its head is not complete yet
	leanNo          // for net/http
)

// leanRequest is a scanned request.
type leanRequest struct {
	method     string
	target     []byte
	path       string
	query      []byte // without '?'; nil when there is no '?'
	host       string
	length     int // Content-Length, 0 when absent
	closeAfter bool
	head       int // bytes of the head
	n          int // bytes of the whole request
}

// tchar marks the bytes of an RFC 9110 token.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// scan reads the request at the start of data into c.rq and c.hdr.
func (c *leanConn) scan(data []byte) int {
	end := bytes.Index(data, crlfcrlf)
	if end < 0 {
		if len(data) > leanMaxHead || !c.linesSoFar(data) {
			return leanNo
		}
		return leanHead
	}
	if end+4 > leanMaxHead {
		return leanNo
	}
	head := data[:end+2]
	le := bytes.IndexByte(head, '\n')
	if le < 1 || head[le-1] != '\r' || !c.requestLine(head[:le-1]) {
		return leanNo
	}
	clear(c.hdr)
	c.vals = c.vals[:0]
	hasHost, hasLength := false, false
	for rest := head[le+1:]; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 1 || rest[i-1] != '\r' {
			return leanNo
		}
		line := rest[:i-1]
		rest = rest[i+1:]
		name, value, ok := headerLine(line)
		if !ok {
			return leanNo
		}
		canon, v := c.intern(name, value)
		switch canon {
		case "Host":
			if hasHost || !httpguts.ValidHostHeader(v) {
				return leanNo
			}
			hasHost = true
			c.rq.host = v
			continue // net/http keeps Host out of Header
		case "Content-Length":
			if hasLength {
				return leanNo
			}
			hasLength = true
			n, ok := parseLeanLength(value)
			if !ok {
				return leanNo
			}
			c.rq.length = n
		case "Connection":
			if hasToken(v, "upgrade") {
				return leanNo
			}
			if hasToken(v, "close") {
				c.rq.closeAfter = true
			}
		case "Transfer-Encoding", "Expect", "Upgrade", "Te", "Trailer":
			return leanNo
		}
		if len(c.vals) == cap(c.vals) && len(c.vals) >= 100 {
			return leanNo
		}
		if vs, dup := c.hdr[canon]; dup {
			c.hdr[canon] = append(vs, v)
		} else {
			c.vals = append(c.vals, v)
			c.hdr[canon] = c.vals[len(c.vals)-1 : len(c.vals) : len(c.vals)]
		}
	}
	if !hasHost {
		return leanNo
	}
	if c.rq.length > leanMaxBody {
		return leanNo
	}
	c.rq.head = end + 4
	c.rq.n = c.rq.head + c.rq.length
	if len(data) < c.rq.n {
		return leanMore
	}
	return leanOK
}

var crlfcrlf = []byte("\r\n\r\n")

// requestLine reads "METHOD TARGET HTTP/1.1" into c.rq; false when the
// lean path does not take it.
func (c *leanConn) requestLine(line []byte) bool {
	c.rq = leanRequest{}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 < 0 {
		return false
	}
	switch string(line[:sp1]) {
	case http.MethodPost:
		c.rq.method = http.MethodPost
	case http.MethodGet:
		c.rq.method = http.MethodGet
	default:
		return false
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 < 1 || string(rest[sp2+1:]) != "HTTP/1.1" {
		return false
	}
	target := rest[:sp2]
	for _, b := range target {
		if b <= ' ' || b >= 0x7f || b == '#' {
			return false
		}
	}
	path := target
	if q := bytes.IndexByte(target, '?'); q >= 0 {
		path, c.rq.query = target[:q], target[q+1:]
	}
	switch string(path) {
	case "/score":
		c.rq.path = "/score"
	case "/":
		c.rq.path = "/"
	default:
		return false
	}
	c.rq.target = target
	return true
}

// linesSoFar reports whether the complete lines of an unfinished head are
// all ones the lean path takes (when one is not, net/http may answer it
// now, without waiting for the rest).
func (c *leanConn) linesSoFar(data []byte) bool {
	le := bytes.IndexByte(data, '\n')
	if le < 0 {
		return len(data) < 8 || bytes.IndexByte(data, ' ') < 0 || string(data[:4]) == "GET " || string(data[:5]) == "POST "
	}
	if le < 1 || data[le-1] != '\r' {
		return false
	}
	saved := c.rq
	defer func() { c.rq = saved }()
	if !c.requestLine(data[:le-1]) {
		return false
	}
	for rest := data[le+1:]; ; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return true
		}
		if i < 1 || rest[i-1] != '\r' {
			return false
		}
		if _, _, ok := headerLine(rest[:i-1]); !ok {
			return false
		}
		rest = rest[i+1:]
	}
}

// headerLine splits "Name: value" (the value without surrounding spaces and
// tabs); false for what net/http might read otherwise: a name that is not
// a token, a folded line, control bytes in the value.
func headerLine(line []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon < 1 {
		return nil, nil, false
	}
	name = line[:colon]
	for _, b := range name {
		if !tchar[b] {
			return nil, nil, false
		}
	}
	value = line[colon+1:]
	for len(value) > 0 && (value[0] == ' ' || value[0] == '\t') {
		value = value[1:]
	}
	for len(value) > 0 && (value[len(value)-1] == ' ' || value[len(value)-1] == '\t') {
		value = value[:len(value)-1]
	}
	for _, b := range value {
		if b < ' ' && b != '\t' || b == 0x7f {
			return nil, nil, false
		}
	}
	return name, value, true
}

// intern returns a header name's canonical form and the value as a string,
// reusing the strings of earlier requests on the connection.
func (c *leanConn) intern(name, value []byte) (string, string) {
	if n, ok := c.names[string(name)]; ok {
		if n.last != string(value) {
			n.last = string(value)
		}
		return n.canon, n.last
	}
	n := &leanName{canon: http.CanonicalHeaderKey(string(name)), last: string(value)}
	if len(c.names) < maxLeanNames {
		c.names[string(name)] = n
	}
	return n.canon, n.last
}

// parseLeanLength parses a Content-Length of digits only.
func parseLeanLength(v []byte) (int, bool) {
	if len(v) == 0 || len(v) > 12 {
		return 0, false
	}
	n := 0
	for _, b := range v {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + int(b-'0')
	}
	return n, true
}

// hasToken reports whether the comma-separated list v holds tok (ASCII
// case-insensitive).
func hasToken(v, tok string) bool { return httpguts.HeaderValuesContainsToken([]string{v}, tok) }

// leanBody is a request body already read into the connection's buffer.
type leanBody struct {
	b      []byte
	pos    int
	closed bool
	early  bool // closed with more than maxPostHandlerRead bytes unread
}

// maxPostHandlerRead is how much of a body net/http reads and drops after
// the handler to keep the connection (its maxPostHandlerReadBytes).
const maxPostHandlerRead = 256 << 10

func (b *leanBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.pos >= len(b.b) {
		return 0, io.EOF
	}
	n := copy(p, b.b[b.pos:])
	b.pos += n
	return n, nil
}

// Close drops the rest of the body, as net/http does, unless more than
// maxPostHandlerRead bytes are left: then the connection closes after the
// answer.
func (b *leanBody) Close() error {
	if !b.closed {
		b.closed = true
		if b.unread() > maxPostHandlerRead {
			b.early = true
		} else {
			b.pos = len(b.b)
		}
	}
	return nil
}

func (b *leanBody) unread() int { return len(b.b) - b.pos }

// serveOne serves the scanned request at the start of data; false when the
// connection is to close.
func (c *leanConn) serveOne(data []byte) bool {
	rq := &c.rq
	ctx, cancel := context.WithCancel(c.ctx)
	r := c.tmpl.WithContext(ctx)
	c.url = url.URL{Path: rq.path}
	if rq.query != nil {
		c.url.RawQuery = string(rq.query)
		c.url.ForceQuery = len(rq.query) == 0
		r.RequestURI = string(rq.target)
	} else {
		r.RequestURI = rq.path
	}
	r.Method = rq.method
	r.URL = &c.url
	r.Header = c.hdr
	r.Host = rq.host
	r.Close = rq.closeAfter
	r.ContentLength = int64(rq.length)
	if rq.length > 0 {
		c.body = leanBody{b: data[rq.head:rq.n]}
		r.Body = &c.body
	} else {
		c.body = leanBody{}
		r.Body = http.NoBody
	}
	c.rb.Consume(rq.n)
	if rq.method == http.MethodPost {
		c.rb.SkipCRLF(4)
	}

	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()
	c.busySince.Store(time.Now().UnixNano())

	c.w.reset(r)
	aborted := c.run(r)
	c.busySince.Store(0)
	c.mu.Lock()
	c.cancel = nil
	c.mu.Unlock()
	cancel()
	c.e.served.Add(1)
	if aborted {
		// What passed the handler's buffer is sent, as net/http does
		// when it closes the connection.
		c.flushOut()
		return false
	}
	c.w.finish()
	if !c.flushOut() {
		return false
	}
	if c.e.afterAnswer != nil {
		c.e.afterAnswer()
	}
	if cap(c.out) > 256<<10 {
		c.out = nil
	}
	c.rb.Shrink(256<<10, leanReadBuffer)
	return c.w.shouldReuse()
}

// run calls the handler; true when it panicked (the connection closes
// without the rest of the answer, as on net/http).
func (c *leanConn) run(r *http.Request) (aborted bool) {
	defer func() {
		if p := recover(); p != nil {
			aborted = true
			if p != http.ErrAbortHandler {
				const size = 64 << 10
				buf := make([]byte, size)
				buf = buf[:runtime.Stack(buf, false)]
				log.Printf("http: panic serving %v: %v\n%s", c.remote, p, buf)
			}
		}
	}()
	c.e.h.ServeHTTP(&c.w, r)
	return false
}

// watchCallers looks, every leanCallerCheck until done closes, at the
// connections whose request has run that long, and ends the context of
// each one whose caller hung up. One goroutine for the engine, so that a
// request costs no timer of its own (re-arming one per request wakes an
// idle processor's poller each time).
func (e *leanEngine) watchCallers(done <-chan struct{}) {
	t := time.NewTicker(leanCallerCheck)
	defer t.Stop()
	var busy []*leanConn
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			before := now.Add(-leanCallerCheck).UnixNano()
			busy = busy[:0]
			e.conns.Each(func(c *leanConn) {
				if since := c.busySince.Load(); since != 0 && since <= before {
					busy = append(busy, c)
				}
			})
			for _, c := range busy {
				if callerGone(c.c) {
					c.mu.Lock()
					if c.cancel != nil {
						c.cancel()
					}
					c.mu.Unlock()
				}
			}
			clear(busy)
		}
	}
}

// flushOut writes what the answer has so far; false when the caller cannot
// be written to.
func (c *leanConn) flushOut() bool {
	if len(c.out) == 0 {
		return c.w.werr == nil
	}
	_, err := c.c.Write(c.out)
	c.out = c.out[:0]
	if err != nil && c.w.werr == nil {
		c.w.werr = err
	}
	return c.w.werr == nil
}
