//go:build linux

package loop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aksml/aksml/frontend/internal/sock"
	"github.com/aksml/aksml/frontend/internal/spill"
	"github.com/aksml/aksml/frontend/internal/wire"
)

const (
	// sweepGap is the least time between two looks for requests past
	// their deadlines (a timer armed for the earliest one), so a request
	// is answered at most this late after its deadline.
	sweepGap = 10 * time.Millisecond
	// pauseCheck is how often a loop looks whether callers whose answers
	// piled up have read them.
	pauseCheck = 2 * time.Millisecond
	// loopIdleTimeout closes a loop's connections to replicas idle this
	// long. Longer than the goroutine pool's idleConnTimeout: a loop sees a
	// replica close an idle connection the moment it happens (the socket
	// turns readable) and drops it, so keeping connections longer costs no
	// failed requests, and spares dials (which leave the loop) when load
	// comes in bursts.
	loopIdleTimeout = 30 * time.Second
)

var (
	errNeedMore        = errors.New("need more data")
	errHeaderTooLarge  = errors.New("header block larger than 16 KiB")
	msgContinue        = []byte("HTTP/1.1 100 Continue\r\n\r\n")
	headerExpect       = []byte("Expect")
	errLoopEngineClose = errors.New("frontend: the event-loop engine is shut down")
)

// Engine serves one listener.
type Engine struct {
	core  Core
	cfg   Config
	ln    net.Listener
	loops []*loop
	next  atomic.Uint32
	conns atomic.Int64 // callers' connections open

	closing atomic.Bool
	wg      sync.WaitGroup // accept loop, dials, slow paths
	active  atomic.Int64   // requests between parse and answer

	mu   sync.Mutex
	idle chan struct{} // closed when active drops to 0 while closing
}

// loop is one event loop and the state only its goroutine touches.
type loop struct {
	eng *Engine
	p   *poller

	idle     map[Replica][]*upstream // kept-alive connections, most recent last
	inflight []*clientConn           // requests with a scoring deadline
	clients  []*clientConn           // callers' connections, for their timeouts
	connT    *time.Timer             // runs sweepClients
	pauseT   *time.Timer             // runs checkPaused
	paused   int                     // callers not served while answers pile up
	feeding  []*clientConn           // large bodies being sent (see feed)
	draining []*clientConn           // answers sent from files (see drainStreams)
	chunkBuf []byte                  // a chunk of a streamed answer
	pauseArm bool
	armed    atomic.Bool // a sweep is scheduled, at sweepAt
	sweepAt  time.Time
	sweepFn  func()
	sweepT   *time.Timer // fires fireSweep
	idleT    *time.Timer // runs sweepIdle
	idleArm  bool

	rd    bytes.Reader
	br    *bufio.Reader
	piece []byte // a piece of a spilled body on its way to a replica
	out   wire.Writer
	lreq  wire.Request
	lresp wire.Response
}

// clientConn is a caller's connection; ex is its request in progress.
type clientConn struct {
	c       *fdConn
	l       *loop
	busy    bool // a request is in progress
	closed  bool
	seq     uint64 // counts requests, so late events for an old one are ignored
	sent100 bool
	star    bool // the request's target is "*"
	// skipCRLF is how many stray CR or LF bytes may still be skipped
	// before the next request (see postSkip).
	skipCRLF int
	cancel   context.CancelFunc // of a slow path or a wait for a slot in progress
	// closeAfter: the caller asked to close the connection after this
	// answer. respDirty: resp holds an earlier answer.
	closeAfter bool
	respDirty  bool
	upReq      []byte // the request as sent to the replica
	// upBody, when set, is the body that follows upReq (which then holds
	// only the head): a large body is sent from the connection's buffer
	// rather than copied after the head.
	upBody []byte
	// upFile, when set, holds the body that follows upReq (a spilled
	// one, see spill.go); upOff is how much of the body was handed to
	// the replica's connection.
	upFile *spill.File
	upOff  int
	// sp is the spilled body of the request arriving or in progress;
	// noSpill: no file could be made for the request arriving.
	sp      *spill.File
	noSpill bool
	// headLen is the length of the head parseRequest last read.
	headLen int

	// Reading: acc holds the connection's input from acc[accOff:] when
	// accOn (a large request arriving); chunkPos and chunkSum are how far
	// a chunked body there was scanned (from the request's start) and its
	// size so far.
	acc      []byte
	accOff   int
	accOn    bool
	chunkPos int
	chunkSum int64
	want     int // the size of the request arriving, when known
	// phase is what the connection waits for, since when; paused: answers
	// pile up unread, so no further request is served.
	phase  connPhase
	since  time.Time
	paused bool
	idx    int // in loop.clients

	req  fasthttp.Request
	resp fasthttp.Response
	ex   exchange
	// stream is the answer being forwarded as it arrives (stream.go);
	// chunkOK: the caller takes a chunked answer (HTTP/1.1).
	stream  *answerStream
	chunkOK bool
}

// exchange is a request on the fast path.
type exchange struct {
	x        Exchange // the core's state of the exchange, one per connection
	begun    bool     // x began an exchange that is not settled
	rep      Replica  // the replica whose slot it holds; nil when none
	start    time.Time
	up       *upstream // nil while a connection is being dialled
	deadline time.Time
	idBuf    [36]byte
	id       []byte
	slot     int // index in loop.inflight, -1 when not there
	// An answer without length runs until the replica closes.
	untilClose bool
	body       []byte
}

// connPhase is what a caller's connection waits for.
type connPhase uint8

const (
	phaseIdle connPhase = iota // the next request (IdleTimeout)
	phaseNew                   // the first request (HeaderReadTimeout)
	phaseHead                  // the rest of a head (HeaderReadTimeout)
	phaseBody                  // the rest of a body (BodyReadTimeout)
	phaseBusy                  // its answer (the scoring timeout)
)

// upstream is a connection to a replica owned by a loop.
type upstream struct {
	c      *fdConn
	rep    Replica
	cc     *clientConn // the request on it; nil when idle
	seq    uint64
	idleAt time.Time
	closed bool
	// writing: a request is being written by a call that has not
	// returned; a close meanwhile means no byte of it left.
	writing bool
}

// Serve serves ln with the event-loop engine until ln fails or the engine
// is shut down (then it returns nil).
func Serve(ln net.Listener, core Core, cfg Config) error {
	if cfg.UpIdleTimeout <= 0 {
		cfg.UpIdleTimeout = loopIdleTimeout
	}
	eng := &Engine{core: core, cfg: cfg, ln: ln}
	n := cfg.Loops
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	for i := 0; i < n; i++ {
		l := &loop{eng: eng, idle: map[Replica][]*upstream{}}
		l.br = bufio.NewReaderSize(&l.rd, wire.MaxHeaderBytes)
		l.sweepFn = l.sweep
		l.sweepT = time.AfterFunc(time.Hour, l.fireSweep)
		l.sweepT.Stop()
		l.idleT = time.AfterFunc(time.Hour, func() { l.exec(l.sweepIdle) })
		l.idleT.Stop()
		l.connT = time.AfterFunc(time.Hour, func() { l.exec(l.sweepClients) })
		l.connT.Stop()
		l.pauseT = time.AfterFunc(time.Hour, func() { l.exec(l.checkPaused) })
		l.pauseT.Stop()
		p, err := newPoller(l)
		if err != nil {
			eng.stopLoops()
			ln.Close()
			return fmt.Errorf("frontend: starting event loop: %w", err)
		}
		l.p = p
		eng.loops = append(eng.loops, l)
	}
	if !core.Register(eng) {
		eng.stopLoops()
		ln.Close()
		return nil
	}

	eng.wg.Add(1)
	defer eng.wg.Done()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if eng.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			eng.closing.Store(true)
			go eng.stopLoops()
			return err
		}
		delay = 0
		if eng.conns.Load() >= int64(cfg.MaxConns) {
			conn.Close() // over MaxConns
			continue
		}
		if core.Redirect(conn) {
			continue // HTTPS only: 308 from net/http
		}
		l := eng.loops[int(eng.next.Add(1))%len(eng.loops)]
		cc := &clientConn{l: l, idx: -1}
		cc.ex.slot = -1
		cc.ex.x = core.NewExchange()
		eng.conns.Add(1)
		if err := l.p.enroll(conn, cc); err != nil {
			eng.conns.Add(-1)
			conn.Close()
		}
	}
}

// Shutdown stops accepting, waits for requests in progress (until ctx
// ends), then closes every connection and stops the loops.
func (eng *Engine) Shutdown(ctx context.Context) error {
	eng.closing.Store(true)
	eng.ln.Close()
	eng.mu.Lock()
	var idle chan struct{}
	if eng.active.Load() > 0 {
		eng.idle = make(chan struct{})
		idle = eng.idle
	}
	eng.mu.Unlock()
	var err error
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	eng.stopLoops()
	eng.wg.Wait()
	return err
}

func (eng *Engine) stopLoops() {
	for _, l := range eng.loops {
		l.sweepT.Stop()
		l.idleT.Stop()
		l.connT.Stop()
		l.pauseT.Stop()
		if l.p != nil {
			l.p.stop()
		}
	}
}

func (eng *Engine) begin() { eng.active.Add(1) }

func (eng *Engine) end() {
	if eng.active.Add(-1) == 0 && eng.closing.Load() {
		eng.mu.Lock()
		if eng.idle != nil {
			close(eng.idle)
			eng.idle = nil
		}
		eng.mu.Unlock()
	}
}

// ---- the poller's handler ----

func (l *loop) OnOpen(c *fdConn) {
	switch x := c.Context().(type) {
	case *clientConn:
		x.c = c
		l.addClient(x)
	case *upstream:
		x.c = c
		cc := x.cc
		if cc == nil || cc.seq != x.seq || cc.ex.up != nil || cc.ex.rep != x.rep {
			// The request it was dialled for ended meanwhile.
			x.cc = nil
			l.putIdle(x, time.Now())
			return
		}
		cc.ex.up = x
		l.sendUp(x, cc)
		return
	}
	return
}

func (l *loop) OnClose(c *fdConn, err error) {
	switch x := c.Context().(type) {
	case *clientConn:
		x.closed = true
		l.dropClient(x)
		l.eng.conns.Add(-1)
		x.acc = nil
		if x.cancel != nil {
			x.cancel() // the slow path closes x.sp when it ends
		} else {
			if x.busy && x.ex.begun {
				// The caller left while its request is at a replica:
				// close the replica's connection (a Go handler's
				// context ends) and free the slot now.
				l.endExchange(x, true)
				l.settle(x, 499, time.Time{})
				x.busy = false
			}
			l.endStream(x)
			x.dropSpill()
		}
	case *upstream:
		x.closed = true
		l.dropIdle(x)
		o := Lost
		if x.writing && err != nil {
			o = NotSent // the write that failed sent nothing
		}
		if cc := x.cc; cc != nil && cc.seq == x.seq && cc.ex.up == x {
			if cc.stream != nil {
				l.breakStream(cc, false, errStreamBroken)
				return
			}
			if cc.ex.untilClose {
				cc.resp.SetBody(cc.ex.body)
				cc.ex.body = nil
				l.answered(cc, time.Now())
				return
			}
			l.failed(cc, o)
		}
	}
	return
}

func (l *loop) OnTraffic(c *fdConn) action {
	switch x := c.Context().(type) {
	case *clientConn:
		return l.serveClient(x)
	case *upstream:
		return l.readAnswer(x)
	}
	return actClose
}

// ---- callers ----

// serveClient parses and dispatches the caller's buffered requests, one at
// a time.
func (l *loop) serveClient(cc *clientConn) action {
	cfg := &l.eng.cfg
	for !cc.closed {
		if cc.busy {
			if l.pending(cc) > cfg.MaxPipeline {
				return actClose // pipelining past MaxPipelineBytes
			}
			return actNone
		}
		if l.eng.closing.Load() {
			return actClose // shutting down: no new requests
		}
		if cc.sp != nil {
			if cc.sp.Done {
				cc.dropSpill() // of a request answered
			} else {
				done, err := l.spillIn(cc)
				if err == nil && done {
					err = l.spilled(cc)
				}
				if err != nil {
					return l.refuse(cc, err)
				}
				if !done {
					return actNone
				}
				cc.sent100 = false
				cc.seq++
				cc.skipCRLF = wire.PostSkip(cc.req.Header.Method())
				l.dispatch(cc)
				continue
			}
		}
		buf := l.input(cc)
		if cc.skipCRLF > 0 && len(buf) > 0 {
			// After a POST, net/http skips up to 4 CR or LF bytes
			// before the next request (RFC 9112, section 2.2).
			k := 0
			for k < len(buf) && k < cc.skipCRLF && (buf[k] == '\r' || buf[k] == '\n') {
				k++
			}
			cc.skipCRLF -= k
			if k < len(buf) {
				cc.skipCRLF = 0
			}
			if k > 0 {
				l.consume(cc, k)
				buf = l.input(cc)
			}
		}
		if len(buf) == 0 {
			if cc.phase != phaseNew && cc.phase != phaseIdle {
				l.setPhase(cc, phaseIdle, time.Now())
			}
			return actNone
		}
		if cc.c.OutboundBuffered() > cfg.MaxPipeline {
			// Answers pile up unread: serve nothing more until they go.
			if len(buf) > cfg.MaxPipeline {
				return actClose
			}
			l.pause(cc)
			return actNone
		}
		if cc.paused {
			cc.paused = false
			l.paused--
		}
		switch l.lean(cc, buf) {
		case wire.OK:
			continue
		case wire.More:
			if lr := &l.lreq; lr.Length > wire.SpillOver && !cc.noSpill {
				return l.startSpill(cc, buf, lr.N-lr.Length, int64(lr.Length))
			}
			l.awaitBody(cc, buf, l.lreq.N)
			return actNone
		}
		n, err := l.parseRequest(cc, &cc.req, buf)
		if err == errNeedMore {
			if !cc.sent100 && cc.req.Header.IsHTTP11() && wire.ExpectsContinue(cc.req.Header.PeekBytes(headerExpect)) {
				cc.sent100 = true
				_, _ = cc.c.Write(msgContinue)
			}
			if cl := cc.req.Header.ContentLength(); !cc.noSpill && (cl > wire.SpillOver || cl == -1 && len(buf) >= wire.AccumulateOver) {
				return l.startSpill(cc, buf, cc.headLen, int64(cl))
			}
			l.awaitBody(cc, buf, cc.want)
			return actNone
		}
		if err == errNeedHead {
			l.awaitHead(cc)
			return actNone
		}
		if err != nil {
			return l.refuse(cc, err)
		}
		l.consume(cc, n)
		cc.sent100 = false
		cc.seq++
		cc.skipCRLF = wire.PostSkip(cc.req.Header.Method())
		l.dispatch(cc)
	}
	return actNone
}

// refuse answers a request that cannot be read (413, 400 or another
// refusal of the head, 500 when its body could not be buffered); then the
// connection closes.
func (l *loop) refuse(cc *clientConn, err error) action {
	cc.resp.Reset()
	cc.respDirty = true
	var he *headError
	switch {
	case l.eng.core.RefuseBody(&cc.resp, err):
	case errors.As(err, &he):
		wire.SetError(&cc.resp, he.p.Code, he.p.Msg)
		wire.SetRequestID(&cc.resp)
	default:
		wire.SetError(&cc.resp, http.StatusBadRequest, "Bad request")
		wire.SetRequestID(&cc.resp)
	}
	cc.closeAfter = true
	// The body's share of the spill allowance comes back before the
	// answer goes out, so a caller who retries on reading it finds it free.
	cc.dropSpill()
	l.writeResponse(cc)
	cc.closed = true
	return actClose
}

// dropSpill closes the file of cc's spilled body, if any.
func (cc *clientConn) dropSpill() {
	cc.sp.Close()
	cc.sp, cc.upFile = nil, nil
}

// input returns the caller's bytes not yet consumed.
func (l *loop) input(cc *clientConn) []byte {
	if !cc.accOn {
		buf, _ := cc.c.Peek(-1)
		return buf
	}
	if cc.c.InboundBuffered() > 0 {
		b, _ := cc.c.Next(-1)
		cc.acc = append(cc.acc, b...)
	}
	return cc.acc[cc.accOff:]
}

// consume drops the first n bytes of the caller's input.
func (l *loop) consume(cc *clientConn, n int) {
	cc.chunkPos, cc.chunkSum = 0, 0
	if n <= 0 {
		return
	}
	cc.noSpill = false
	if !cc.accOn {
		_, _ = cc.c.Discard(n)
		return
	}
	cc.accOff += n
	if cc.accOff >= len(cc.acc) && cc.c.InboundBuffered() == 0 {
		cc.acc, cc.accOff, cc.accOn = nil, 0, false
	}
}

// pending is how many bytes the caller sent beyond the request in progress.
func (l *loop) pending(cc *clientConn) int {
	n := cc.c.InboundBuffered()
	if cc.accOn {
		n += len(cc.acc) - cc.accOff
	}
	return n
}

// awaitHead notes that a request head is arriving.
func (l *loop) awaitHead(cc *clientConn) {
	switch cc.phase {
	case phaseNew, phaseHead: // the header timeout runs from the start
		cc.phase = phaseHead
	default:
		l.setPhase(cc, phaseHead, time.Now())
	}
}

// awaitBody notes that a request body is arriving (progress since now)
// and, once the part buffered passes wire.AccumulateOver, moves it into
// the connection's own buffer, where each arriving byte is copied once
// (Peek hands back the socket's input as one slice, copying what is kept
// between reads, and a large body read anew on each arrival would cost
// time quadratic in its size).
// want is the whole request's size when known, else 0.
func (l *loop) awaitBody(cc *clientConn, buf []byte, want int) {
	l.setPhase(cc, phaseBody, time.Now())
	if cc.accOn || len(buf) < wire.AccumulateOver {
		return
	}
	cc.acc = make([]byte, 0, max(want, 2*len(buf)))
	cc.acc = append(cc.acc, buf...)
	cc.accOff, cc.accOn = 0, true
	_, _ = cc.c.Discard(len(buf))
}

func (l *loop) setPhase(cc *clientConn, p connPhase, now time.Time) {
	cc.phase, cc.since = p, now
}

var (
	errNeedHead = errors.New("need the rest of the head")
)

// headError refuses a request head.
type headError struct{ p wire.Problem }

func (e *headError) Error() string { return e.p.Msg }

// parseRequest reads one whole request from buf into req and returns its
// length, or errNeedHead, or errNeedMore (the body is incomplete).
func (l *loop) parseRequest(cc *clientConn, req *fasthttp.Request, buf []byte) (int, error) {
	end, err := headEnd(buf, wire.MaxHeaderBytes)
	if err == errNeedMore {
		if p := wire.CheckHead(buf, false); p.Code != 0 {
			return 0, &headError{p}
		}
		return 0, errNeedHead
	}
	if err != nil {
		return 0, &headError{wire.ProbTooLarge}
	}
	if p := wire.CheckHead(buf[:end], true); p.Code != 0 {
		return 0, &headError{p}
	}
	req.Reset()
	head := buf[:end]
	star := asteriskTarget(head)
	if star {
		// fasthttp's parser takes "*" for OPTIONS only: read it as "/",
		// which no route has, and let dispatch answer OPTIONS *.
		i := bytes.IndexByte(head, ' ')
		head = append(append(append([]byte(nil), head[:i+1]...), '/'), head[i+2:]...)
		if wire.OptionsStar(buf) {
			// An empty Host, which OPTIONS * may have, would not do
			// for fasthttp.
			head = fillEmptyHost(head)
		}
	}
	if le := bytes.IndexByte(head, '\r'); le >= 8 && string(head[le-8:le-1]) == "HTTP/1." && head[le-1] > '1' {
		// HTTP/1.2 and later minor versions are HTTP/1.1 to net/http
		// (kept alive unless told otherwise); fasthttp takes them for
		// HTTP/1.0.
		if !star {
			head = append([]byte(nil), head...)
		}
		head[le-1] = '1'
	} else if le >= 8 && string(head[le-8:le]) == "HTTP/1.0" && bytes.Contains(bytes.ToLower(head), []byte("\ntransfer-encoding:")) {
		// net/http ignores Transfer-Encoding before HTTP/1.1 (the body
		// is as long as Content-Length says); fasthttp would not.
		head = dropHeader(head, "transfer-encoding")
	}
	if le := bytes.IndexByte(head, '\r'); le > 0 {
		if a, b := bytes.IndexByte(head[:le], ' '), bytes.LastIndexByte(head[:le], ' '); a < b && bytes.IndexByte(head[a:b], '#') >= 0 {
			// net/http takes a '#' in the target as part of the path
			// (or query); fasthttp would cut a fragment off.
			out := append([]byte(nil), head[:a]...)
			out = append(out, bytes.ReplaceAll(head[a:b], []byte("#"), []byte("%23"))...)
			head = append(out, head[b:]...)
		}
	}
	if cc != nil {
		cc.star, cc.headLen = star, end
	}
	if err := l.read(head, req.Header.Read); err != nil {
		return 0, err
	}
	maxBody := l.eng.cfg.MaxBody
	switch cl := req.Header.ContentLength(); {
	case cl > 0:
		if int64(cl) > maxBody {
			return 0, fasthttp.ErrBodyTooLarge
		}
		if cc != nil {
			cc.want = end + cl
		}
		if len(buf)-end < cl {
			return 0, errNeedMore
		}
		req.SetBody(buf[end : end+cl])
		return end + cl, nil
	case cl == -1: // chunked
		if cc != nil {
			// Scan the chunks that arrived since the last look; parse
			// the body only once it is all there.
			pos, sum := max(cc.chunkPos, end), cc.chunkSum
			pos, sum, done, err := wire.ScanChunks(buf, pos, sum, maxBody)
			cc.chunkPos, cc.chunkSum = pos, sum
			if err != nil {
				return 0, err
			}
			if !done {
				return 0, errNeedMore
			}
		}
		return l.readChunked(buf, end, func(br *bufio.Reader) error {
			return req.ContinueReadBody(br, int(min(maxBody, int64(^uint(0)>>1))))
		})
	default:
		return end, nil
	}
}

// fillEmptyHost returns head with a placeholder in an empty Host line.
func fillEmptyHost(head []byte) []byte {
	out := make([]byte, 0, len(head)+1)
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n') + 1
		if i == 0 {
			i = len(head)
		}
		line := head[:i]
		head = head[i:]
		if c := bytes.IndexByte(line, ':'); c > 0 && strings.EqualFold(string(line[:c]), "host") &&
			len(bytes.Trim(line[c+1:], " \t\r\n")) == 0 {
			line = []byte("Host: -\r\n")
		}
		out = append(out, line...)
	}
	return out
}

// dropHeader returns a copy of a request head without its lines named
// name (lower case).
func dropHeader(head []byte, name string) []byte {
	out := make([]byte, 0, len(head))
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n') + 1
		if i == 0 {
			i = len(head)
		}
		line := head[:i]
		head = head[i:]
		c := bytes.IndexByte(line, ':')
		if c > 0 && strings.EqualFold(string(line[:c]), name) {
			continue
		}
		out = append(out, line...)
	}
	return out
}

// asteriskTarget reports whether a request head's target is "*" (as in
// OPTIONS * HTTP/1.1).
func asteriskTarget(head []byte) bool {
	i := bytes.IndexByte(head, ' ')
	return i > 0 && len(head) > i+2 && head[i+1] == '*' && head[i+2] == ' '
}

// headEnd returns the length of the header block at the start of buf, or
// errNeedMore, or errHeaderTooLarge past limit.
func headEnd(buf []byte, limit int) (int, error) {
	end := bytes.Index(buf, wire.CRLFCRLF)
	switch {
	case end < 0 && len(buf) > limit, end+4 > limit:
		return 0, errHeaderTooLarge
	case end < 0:
		return 0, errNeedMore
	}
	return end + 4, nil
}

// read runs a fasthttp reader on b.
func (l *loop) read(b []byte, f func(*bufio.Reader) error) error {
	l.rd.Reset(b)
	l.br.Reset(&l.rd)
	err := f(l.br)
	l.br.Reset(nil)
	return err
}

// readChunked reads a chunked body that starts at buf[start:] with f and
// returns where it ends, or errNeedMore while it is incomplete.
func (l *loop) readChunked(buf []byte, start int, f func(*bufio.Reader) error) (int, error) {
	l.rd.Reset(buf[start:])
	l.br.Reset(&l.rd)
	err := f(l.br)
	rest := l.rd.Len() + l.br.Buffered()
	l.br.Reset(nil)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, errNeedMore
		}
		return 0, err
	}
	return len(buf) - rest, nil
}

// lean serves the request at the start of buf on the lean path if it can
// (see lean.go): leanOK when it was taken (answered, forwarded or handed to
// the slow path), leanMore when its body is still arriving, leanNo when the
// general path must read it.
func (l *loop) lean(cc *clientConn, buf []byte) wire.Status {
	lr := &l.lreq
	if st := wire.ScanRequest(buf, l.eng.cfg.MaxBody, lr); st != wire.OK {
		return st
	}
	if cc.respDirty {
		cc.resp.Reset()
		cc.respDirty = false
	}
	resp := &cc.resp
	ex := &cc.ex
	start := time.Now()
	path, plan := ex.x.Lean(lr, resp, start)
	if plan == General {
		cc.respDirty = true
		return wire.No
	}
	cc.seq++
	cc.skipCRLF = wire.PostSkip(lr.Method)
	cc.closeAfter = lr.CloseAfter
	cc.chunkOK = true
	ex.start = start
	ex.id = wire.NewRequestID(ex.idBuf[:0])
	if plan != Routed {
		l.consume(cc, lr.N)
		cc.respDirty = true
		resp.Header.SetNoDefaultContentType(true)
		resp.Header.SetBytesV(wire.HeaderRequestID, ex.id)
		l.writeResponse(cc)
		if cc.closeAfter {
			_ = cc.c.Close()
			cc.closed = true
		}
		return wire.OK
	}
	ex.begun = true
	host := "replica" // set once a slot is had (queue)
	if ex.rep = ex.x.TryTake(); ex.rep != nil {
		host = ex.rep.Host()
	}
	cc.upBody, cc.upFile = nil, nil
	if cc.accOn && len(lr.Body) > wire.AccumulateOver {
		// Sent from cc.acc, which consume leaves to upBody.
		cc.upBody = lr.Body
		body := lr.Body
		lr.Body = nil
		cc.upReq = wire.AppendUpstream(cc.upReq[:0], buf, lr, path, host, ex.id)
		cc.upReq = wire.SetLengthHeader(cc.upReq, len(body))
	} else {
		cc.upReq = wire.AppendUpstream(cc.upReq[:0], buf, lr, path, host, ex.id)
	}
	l.consume(cc, lr.N)
	if ex.rep == nil {
		l.queue(cc)
		return wire.OK
	}
	l.exchange(cc, start)
	return wire.OK
}

// dispatch answers cc's request, parsed by fasthttp into cc.req: at once
// when it is refused, on the fast path when a replica slot is free, else on
// the slow path.
func (l *loop) dispatch(cc *clientConn) {
	core := l.eng.core
	req, resp := &cc.req, &cc.resp
	resp.Reset()
	cc.respDirty = true
	resp.Header.SetNoDefaultContentType(true)
	cc.closeAfter = req.Header.ConnectionClose()
	cc.chunkOK = req.Header.IsHTTP11()
	start := time.Now()
	ex := &cc.ex
	ex.start = start
	if e := req.Header.PeekBytes(headerExpect); len(e) > 0 && !wire.ExpectsContinue(e) {
		// An expectation other than 100-continue: 417 and close, as
		// net/http's server answers.
		resp.SetStatusCode(http.StatusExpectationFailed)
		resp.Header.SetContentLength(0)
		wire.SetRequestID(resp)
		cc.closeAfter = true
		l.answerNow(cc)
		return
	}
	if cc.star && string(req.Header.Method()) == http.MethodOptions {
		// The server-wide OPTIONS, answered as net/http's server does.
		resp.SetStatusCode(http.StatusOK)
		resp.Header.SetContentLength(0)
		wire.SetRequestID(resp)
		l.answerNow(cc)
		return
	}
	if string(req.URI().Path()) == l.eng.cfg.MetricsPath {
		if core.MetricsRefused(cc.c.RemoteAddr().String(), req.Header.Peek("Authorization"), resp) {
			l.answerNow(cc)
			return
		}
		l.slow(cc, slowMetrics)
		return
	}
	ex.id = wire.NewRequestID(ex.idBuf[:0])
	plan := ex.x.Prepare(req, resp, ex.id, start)
	if plan == Wait {
		// No version takes live traffic yet: wait for one on the slow
		// path, which reads the request again.
		resp.Reset()
		resp.Header.SetNoDefaultContentType(true)
		l.slow(cc, slowWhole)
		return
	}
	if plan != Routed {
		resp.Header.SetBytesV(wire.HeaderRequestID, ex.id)
		l.answerNow(cc)
		return
	}
	ex.begun = true
	if ex.rep = ex.x.TryTake(); ex.rep == nil {
		l.upRequest(cc, "replica") // the host is set once a slot is had
		l.queue(cc)
		return
	}
	l.upRequest(cc, ex.rep.Host())
	l.exchange(cc, start)
}

// upRequest writes the request in cc.req, as the replica at host is to
// get it, to cc.upReq (and cc.upFile for a spilled body).
func (l *loop) upRequest(cc *clientConn, host string) {
	req := &cc.req
	req.SetHost(host)
	w := wire.Writer{B: cc.upReq[:0]}
	if sp := cc.sp; sp != nil {
		// The head alone; the body follows from the file.
		req.ResetBody()
		req.Header.SetContentLength(0)
		_, _ = req.WriteTo(&w)
		cc.upReq, cc.upBody, cc.upFile = withLength(w.B, int(sp.Size)), nil, sp
	} else {
		_, _ = req.WriteTo(&w)
		cc.upReq, cc.upBody, cc.upFile = w.B, nil, nil
	}
}

// queue waits in a goroutine for a slot for cc's request (the version's
// FIFO queue, up to its queue wait, with the readiness fallback to the
// default version), then sends the request from the loop, on one of the
// loop's connections to that replica, as a request that found a slot at
// once. cc.upReq holds the request (its Host set once the replica is
// known). Waiting requests hold no connection to a replica.
func (l *loop) queue(cc *clientConn) {
	ex := &cc.ex
	l.goBusy(cc, func(ctx context.Context, seq uint64) {
		rep, code, msg := ex.x.Take(ctx)
		l.exec(func() {
			cc.cancel = nil
			ex.rep = rep
			if cc.seq != seq || cc.closed {
				// The caller left while its request waited.
				l.release(cc)
				l.settle(cc, 499, time.Time{})
				cc.dropSpill()
				return
			}
			if rep == nil {
				cc.resp.Reset()
				cc.respDirty = true
				cc.resp.Header.SetNoDefaultContentType(true)
				wire.SetError(&cc.resp, code, msg)
				l.finish(cc, code, time.Time{})
				return
			}
			l.eng.end() // the exchange begins
			cc.busy = false
			cc.upReq = wire.SetUpstreamHost(cc.upReq, rep.Host())
			l.exchange(cc, time.Now())
		})
	})
}

// goBusy marks cc busy with a request that f (given a context that ends
// when the caller leaves, and the request's sequence number) serves in a
// goroutine of its own.
func (l *loop) goBusy(cc *clientConn, f func(ctx context.Context, seq uint64)) {
	cc.busy = true
	cc.phase = phaseBusy
	l.eng.begin()
	ctx, cancel := context.WithCancel(context.Background())
	cc.cancel = cancel
	seq := cc.seq
	l.eng.wg.Add(1)
	go func() {
		defer l.eng.wg.Done()
		defer cancel()
		f(ctx, seq)
	}()
}

// exchange sends cc.upReq to the replica whose slot cc's exchange holds,
// on a kept-alive connection of this loop or on a new one; the scoring
// timeout runs from start.
func (l *loop) exchange(cc *clientConn, start time.Time) {
	ex := &cc.ex
	rep := ex.rep
	l.eng.begin()
	cc.busy = true
	cc.phase = phaseBusy
	ex.deadline = start.Add(ex.x.Timeout())
	l.track(cc, start)
	up := l.getIdle(rep, start)
	for up != nil && !sock.PeerQuiet(uintptr(up.c.Fd())) {
		// The replica closed it (its OnClose may not have run yet).
		l.closeUp(up)
		up = l.getIdle(rep, start)
	}
	if up == nil {
		l.dial(cc, rep) // OnOpen sends cc.upReq
		return
	}
	ex.up = up
	up.cc, up.seq = cc, cc.seq
	// A failure closes up, which ends the exchange; when this write is
	// what failed, nothing left (see OnClose).
	l.sendUp(up, cc)
}

// sendUp writes cc's request on up; when the write fails at once, no byte
// of it left (the write closes up from inside the call, see OnClose). A
// large body goes in pieces of feedPiece bytes as the connection drains
// (see feed), so the connection's write buffer never holds a copy of all
// of it.
func (l *loop) sendUp(up *upstream, cc *clientConn) {
	up.writing = true
	cc.upOff = 0
	if cc.upBody != nil || cc.upFile != nil {
		piece, err := l.bodyPiece(cc, 0, feedPiece)
		if err != nil {
			up.writing = false
			l.eng.cfg.Log.Error("frontend: request body not sent", "err", err)
			l.closeUp(up) // a 502, as the replica may have read nothing
			return
		}
		_, _ = up.c.Writev([][]byte{cc.upReq, piece})
		cc.upOff = len(piece)
		if cc.upOff < cc.bodyLen() && !up.closed {
			l.feeding = append(l.feeding, cc)
			l.armPauseCheck()
		}
	} else {
		_, _ = up.c.Write(cc.upReq)
	}
	up.writing = false
}

// feedPiece is how much of a large body is handed to a replica's
// connection at a time.
const feedPiece = 1 << 20

// feed hands the next pieces of large bodies to replica connections that
// have drained.
func (l *loop) feed() {
	keep := l.feeding[:0]
	for _, cc := range l.feeding {
		up := cc.ex.up
		if up == nil || up.closed || cc.upOff >= cc.bodyLen() {
			continue
		}
		for cc.upOff < cc.bodyLen() && up.c.OutboundBuffered() < feedPiece/4 && !up.closed {
			piece, err := l.bodyPiece(cc, cc.upOff, feedPiece)
			if err != nil {
				l.eng.cfg.Log.Error("frontend: request body not sent", "err", err)
				l.closeUp(up)
				break
			}
			_, _ = up.c.Write(piece)
			cc.upOff += len(piece)
		}
		if cc.upOff < cc.bodyLen() && !up.closed {
			keep = append(keep, cc)
		}
	}
	clear(l.feeding[len(keep):])
	l.feeding = keep
}

// closeUp closes a connection to a replica.
func (l *loop) closeUp(up *upstream) {
	if !up.closed {
		up.closed = true
		_ = up.c.Close()
	}
}

// dial connects to rep in a goroutine and enrolls the connection in this
// loop; OnOpen sends the request waiting for it.
func (l *loop) dial(cc *clientConn, rep Replica) {
	up := &upstream{rep: rep, cc: cc, seq: cc.seq}
	seq := cc.seq
	l.eng.wg.Add(1)
	go func() {
		defer l.eng.wg.Done()
		d := net.Dialer{Timeout: l.eng.cfg.DialTimeout}
		conn, err := d.Dial("tcp", rep.Host())
		if err == nil && !l.eng.closing.Load() {
			if err = l.p.enroll(conn, up); err == nil {
				return
			}
		} else if err == nil {
			conn.Close()
			err = errLoopEngineClose
		}
		l.eng.cfg.Log.Debug("frontend: dial failed", "replica", rep.Host(), "err", err)
		l.exec(func() {
			if cc.seq == seq && cc.busy && cc.ex.rep == rep && cc.ex.up == nil {
				l.failed(cc, Unreachable)
			}
		})
	}()
}

// exec runs f in the loop.
func (l *loop) exec(f func()) {
	l.p.exec(f)
}

// What the slow path is given.
type slowKind int

const (
	slowWhole   slowKind = iota // cc.req as the caller sent it
	slowMetrics                 // GET /metrics
)

// slow answers cc's request in a goroutine with the engine-neutral path.
func (l *loop) slow(cc *clientConn, kind slowKind) {
	core := l.eng.core
	start := cc.ex.start
	l.goBusy(cc, func(ctx context.Context, seq uint64) {
		req, resp := &cc.req, &cc.resp
		switch kind {
		case slowMetrics:
			core.Metrics(resp)
		default:
			core.Route(ctx, req, resp, start, cc.ex.id)
			resp.Header.SetBytesV(wire.HeaderRequestID, cc.ex.id)
		}
		out := wire.AppendResponse(nil, cc.closeAfter, resp)
		l.exec(func() {
			cc.ex.begun = false // ended by Route
			if cc.seq != seq || cc.closed {
				cc.dropSpill()
				l.eng.end()
				return
			}
			cc.cancel = nil
			// The body's file is done with: its share of the spill
			// allowance comes back before the caller reads the answer.
			cc.dropSpill()
			_, _ = cc.c.Write(out)
			l.eng.end()
			l.next(cc)
		})
	})
}

// next makes cc ready for its next request and serves any already buffered.
func (l *loop) next(cc *clientConn) {
	cc.busy = false
	if cc.closed {
		return
	}
	if cc.closeAfter {
		_ = cc.c.Close()
		return
	}
	if l.serveClient(cc) == actClose {
		_ = cc.c.Close()
	}
}

// answerNow writes the router's own answer in cc.resp and closes the
// connection if the caller asked for that.
func (l *loop) answerNow(cc *clientConn) {
	l.writeResponse(cc)
	if cc.closeAfter {
		_ = cc.c.Close()
		cc.closed = true
	}
}

// writeResponse writes cc.resp to the caller from the loop.
func (l *loop) writeResponse(cc *clientConn) {
	cc.respDirty = true
	l.out.B = wire.AppendResponse(l.out.B[:0], cc.closeAfter, &cc.resp)
	_, _ = cc.c.Write(l.out.B)
}

// ---- replicas ----

// readAnswer parses a replica's answer for the request on up.
func (l *loop) readAnswer(up *upstream) action {
	cc := up.cc
	if cc == nil || cc.seq != up.seq || cc.ex.up != up {
		return actClose // nobody asked: not a connection to keep
	}
	buf, _ := up.c.Peek(-1)
	if cc.stream != nil {
		return l.streamIn(up, cc, buf)
	}
	ex := &cc.ex
	if ex.untilClose {
		ex.body = append(ex.body, buf...)
		_, _ = up.c.Discard(len(buf))
		return actNone
	}
	lr := &l.lresp
	switch wire.ScanResponse(buf, lr) {
	case wire.More:
		if lr.Length-(len(buf)-lr.Start) > wire.StreamOver {
			return l.startStream(up, cc, buf, lr)
		}
		return actNone
	case wire.OK:
		now := time.Now()
		code := lr.Code
		if code == http.StatusInternalServerError {
			code = http.StatusBadGateway
		}
		w := &l.out
		w.B = wire.AppendAnswer(w.B[:0], buf, lr, ex.id, ex.x.Version(), cc.closeAfter)
		// A connection whose request body is not all out (the replica
		// answered early) is not reused.
		keep := !lr.CloseConn && len(buf) == lr.N && cc.upOff >= cc.bodyLen()
		_, _ = up.c.Discard(lr.N)
		l.endExchange(cc, false)
		if keep {
			l.putIdle(up, now)
		}
		l.settle(cc, code, now)
		if !cc.closed {
			_, _ = cc.c.Write(w.B)
		}
		// Idle from now (the answer's time, read above).
		cc.phase, cc.since = phaseIdle, now
		l.next(cc)
		if !keep {
			return actClose
		}
		return actNone
	}
	if cc.chunkOK && wire.ScanChunkedResponse(buf, lr) {
		return l.startStream(up, cc, buf, lr)
	}
	resp := &cc.resp
	cc.respDirty = true
	n, err := l.parseResponse(resp, buf)
	switch {
	case err == errNeedMore:
		return actNone
	case err == errUntilClose:
		ex.untilClose = true
		ex.body = append(ex.body[:0], buf[n:]...)
		_, _ = up.c.Discard(len(buf))
		return actNone
	case err != nil:
		up.cc = nil
		l.eng.cfg.Log.Debug("frontend: replica's answer unreadable", "replica", up.rep.Host(), "err", err)
		l.failed(cc, Lost)
		return actClose
	}
	_, _ = up.c.Discard(n)
	now := time.Now()
	keep := up.c.InboundBuffered() == 0 && !resp.ConnectionClose() && cc.upOff >= cc.bodyLen()
	l.endExchange(cc, false)
	if keep {
		l.putIdle(up, now)
	}
	l.answered(cc, now)
	if !keep {
		return actClose
	}
	return actNone
}

var errUntilClose = errors.New("body runs until the connection closes")

// parseResponse reads one whole answer from buf into resp.
func (l *loop) parseResponse(resp *fasthttp.Response, buf []byte) (int, error) {
	end, err := headEnd(buf, wire.MaxAnswerHead)
	if err != nil {
		return 0, err
	}
	resp.Reset()
	resp.Header.DisableNormalizing()
	resp.Header.SetNoDefaultContentType(true)
	if err := l.read(buf[:end], resp.Header.Read); err != nil {
		return 0, err
	}
	code := resp.StatusCode()
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An interim answer: the final one follows.
		n, err := l.parseResponse(resp, buf[end:])
		return end + n, err
	}
	if code == http.StatusNoContent || code == http.StatusNotModified || code < 200 {
		return end, nil
	}
	switch cl := resp.Header.ContentLength(); {
	case cl >= 0:
		if len(buf)-end < cl {
			return 0, errNeedMore
		}
		resp.SetBody(buf[end : end+cl])
		return end + cl, nil
	case cl == -1:
		return l.readChunked(buf, end, func(br *bufio.Reader) error { return resp.ReadBody(br, 0) })
	default:
		return end, errUntilClose
	}
}

// answered ends the exchange with the replica's answer in cc.resp (the
// connection is already detached).
func (l *loop) answered(cc *clientConn, done time.Time) {
	l.endExchange(cc, false)
	l.finish(cc, wire.ReplicaAnswer(&cc.resp), done)
}

// failed ends an attempt whose replica connection failed with outcome o;
// the core's exchange decides what follows (see Exchange.Failed). A
// request sent again goes on another of this loop's connections if a
// slot is free at once, else to the queue, which also falls back to the
// default version.
func (l *loop) failed(cc *clientConn, o Outcome) {
	ex := &cc.ex
	l.detach(cc, true)
	retry, code, msg := ex.x.Failed(o, !cc.closed && !l.eng.closing.Load())
	ex.rep = nil
	if retry {
		l.eng.end() // the exchange or the queue begins again
		cc.busy = false
		if ex.rep = ex.x.TryTake(); ex.rep != nil {
			cc.upReq = wire.SetUpstreamHost(cc.upReq, ex.rep.Host())
			l.exchange(cc, time.Now())
		} else {
			l.queue(cc)
		}
		return
	}
	cc.resp.Reset()
	cc.resp.Header.SetNoDefaultContentType(true)
	wire.SetError(&cc.resp, code, msg)
	l.finish(cc, code, time.Time{})
}

// timedOut ends the exchange at its deadline with 504.
func (l *loop) timedOut(cc *clientConn) {
	if cc.stream != nil {
		// The replica stopped sending an answer already under way.
		l.breakStream(cc, true, errStreamBroken)
		return
	}
	ex := &cc.ex
	l.detach(cc, true)
	_, code, msg := ex.x.Failed(TimedOut, false)
	ex.rep = nil
	cc.resp.Reset()
	cc.resp.Header.SetNoDefaultContentType(true)
	wire.SetError(&cc.resp, code, msg)
	l.finish(cc, code, time.Time{})
}

// endExchange detaches cc's replica connection (see detach) and gives the
// replica slot back.
func (l *loop) endExchange(cc *clientConn, closeUp bool) {
	l.detach(cc, closeUp)
	l.release(cc)
}

// release gives back the replica slot cc's exchange holds, if any.
func (l *loop) release(cc *clientConn) {
	if cc.ex.rep != nil {
		cc.ex.x.Release()
		cc.ex.rep = nil
	}
}

// detach stops cc's scoring deadline and detaches the replica connection
// still attached, closing it when closeUp is set.
func (l *loop) detach(cc *clientConn, closeUp bool) {
	ex := &cc.ex
	l.untrack(cc)
	if up := ex.up; up != nil {
		up.cc, ex.up = nil, nil
		if closeUp {
			l.closeUp(up)
		}
	}
}

// settle ends cc's exchange (counts and metrics) and readies cc for its
// next request; events that still arrive for the old one are stale from
// here on.
func (l *loop) settle(cc *clientConn, code int, done time.Time) {
	ex := &cc.ex
	ex.x.End(code, done)
	ex.rep, ex.begun, ex.untilClose, ex.body = nil, false, false, nil
	// A spilled body is done with: its share of the spill allowance
	// comes back before the caller reads the answer.
	cc.dropSpill()
	cc.upBody, cc.upOff = nil, 0
	cc.seq++
	l.eng.end()
}

// finish settles cc's request and answers it with cc.resp.
func (l *loop) finish(cc *clientConn, code int, done time.Time) {
	cc.resp.Header.Set(wire.HeaderServedBy, cc.ex.x.Version())
	cc.resp.Header.SetBytesV(wire.HeaderRequestID, cc.ex.id)
	l.settle(cc, code, done)
	if !cc.closed {
		l.writeResponse(cc)
	}
	l.next(cc)
}

// getIdle takes the most recently used idle connection to rep, dropping
// stale ones.
func (l *loop) getIdle(rep Replica, now time.Time) *upstream {
	conns := l.idle[rep]
	for n := len(conns); n > 0; n = len(conns) {
		up := conns[n-1]
		conns[n-1] = nil
		conns = conns[:n-1]
		if now.Sub(up.idleAt) < l.eng.cfg.UpIdleTimeout && rep.Member() {
			l.idle[rep] = conns
			return up
		}
		// The rest are older still.
		for _, old := range append(conns, up) {
			old.closed = true
			_ = old.c.Close()
		}
		conns = nil
	}
	delete(l.idle, rep)
	return nil
}

func (l *loop) putIdle(up *upstream, now time.Time) {
	if up.closed {
		return
	}
	up.idleAt = now
	l.idle[up.rep] = append(l.idle[up.rep], up)
	if !l.idleArm {
		l.idleArm = true
		l.idleT.Reset(l.eng.cfg.UpIdleTimeout)
	}
}

// dropIdle forgets a closed connection.
func (l *loop) dropIdle(up *upstream) {
	conns := l.idle[up.rep]
	for i, x := range conns {
		if x == up {
			l.idle[up.rep] = append(conns[:i], conns[i+1:]...)
			return
		}
	}
}

// sweepIdle closes connections idle for the engine's idle timeout.
func (l *loop) sweepIdle() {
	l.idleArm = false
	now := time.Now()
	for rep, conns := range l.idle {
		i := 0
		for i < len(conns) && (now.Sub(conns[i].idleAt) >= l.eng.cfg.UpIdleTimeout || !rep.Member()) {
			conns[i].closed = true
			_ = conns[i].c.Close()
			i++
		}
		if i == len(conns) {
			delete(l.idle, rep)
		} else {
			l.idle[rep] = append(conns[:0], conns[i:]...)
		}
	}
	if len(l.idle) > 0 {
		l.idleArm = true
		l.idleT.Reset(l.eng.cfg.UpIdleTimeout)
	}
}

// ---- scoring timeouts ----

// The requests at replicas are in l.inflight, each with its deadline
// (the scoring timeout, then a streamed answer's progress), and one timer
// per loop is armed for the earliest deadline, not ticking while requests
// are in flight: under load a request ends long before its deadline, and
// the timer fires about once per timeout rather than every sweepGap.

// track adds cc's request, whose deadline is set, to those watched; now
// is the time.
func (l *loop) track(cc *clientConn, now time.Time) {
	cc.ex.slot = len(l.inflight)
	l.inflight = append(l.inflight, cc)
	l.schedule(cc.ex.deadline, now)
}

// schedule makes a sweep run at at (or sweepGap from now, if later),
// unless one is due before.
func (l *loop) schedule(at, now time.Time) {
	if soonest := now.Add(sweepGap); at.Before(soonest) {
		at = soonest
	}
	if l.armed.Load() && !at.Before(l.sweepAt) {
		return
	}
	l.sweepAt = at
	l.armed.Store(true)
	l.sweepT.Reset(at.Sub(now))
}

func (l *loop) untrack(cc *clientConn) {
	i := cc.ex.slot
	if i < 0 {
		return
	}
	last := len(l.inflight) - 1
	l.inflight[i] = l.inflight[last]
	l.inflight[i].ex.slot = i
	l.inflight[last] = nil
	l.inflight = l.inflight[:last]
	cc.ex.slot = -1
}

func (l *loop) fireSweep() {
	if !l.p.exec(l.sweepFn) {
		l.armed.Store(false)
	}
}

// sweep answers requests past their scoring deadline with 504.
func (l *loop) sweep() {
	now := time.Now()
	for i := 0; i < len(l.inflight); {
		cc := l.inflight[i]
		if !now.Before(cc.ex.deadline) {
			l.timedOut(cc) // removes it from l.inflight
			continue
		}
		i++
	}
	l.armed.Store(false)
	var next time.Time
	for _, cc := range l.inflight {
		if next.IsZero() || cc.ex.deadline.Before(next) {
			next = cc.ex.deadline
		}
	}
	if !next.IsZero() {
		l.schedule(next, now)
	}
}

// ---- callers' timeouts and backpressure ----

// addClient starts watching a new caller's connection for its timeouts.
func (l *loop) addClient(cc *clientConn) {
	cc.idx = len(l.clients)
	l.clients = append(l.clients, cc)
	l.setPhase(cc, phaseNew, time.Now())
	if len(l.clients) == 1 {
		l.connT.Reset(l.clientSweepEvery())
	}
}

// dropClient stops watching a closed caller's connection.
func (l *loop) dropClient(cc *clientConn) {
	i := cc.idx
	if i < 0 {
		return
	}
	last := len(l.clients) - 1
	l.clients[i] = l.clients[last]
	l.clients[i].idx = i
	l.clients[last] = nil
	l.clients = l.clients[:last]
	cc.idx = -1
	if cc.paused {
		cc.paused = false
		l.paused--
	}
}

// clientSweepEvery is how often callers' timeouts are looked at: a
// fortieth of the shortest, within [10 ms, 250 ms], so that a connection
// is closed at most 2.5% (or 250 ms) past its timeout.
func (l *loop) clientSweepEvery() time.Duration {
	cfg := &l.eng.cfg
	d := min(cfg.HeaderTimeout, cfg.IdleTimeout, cfg.BodyTimeout) / 40
	return min(max(d, 10*time.Millisecond), 250*time.Millisecond)
}

// sweepClients closes callers' connections past their timeouts.
func (l *loop) sweepClients() {
	cfg := &l.eng.cfg
	now := time.Now()
	for _, cc := range l.clients {
		var limit time.Duration
		switch cc.phase {
		case phaseIdle:
			limit = cfg.IdleTimeout
		case phaseNew, phaseHead:
			limit = cfg.HeaderTimeout
		case phaseBody:
			limit = cfg.BodyTimeout
		}
		if cc.paused {
			limit = cfg.IdleTimeout // the caller does not read its answers
		}
		if limit > 0 && !cc.closed && now.Sub(cc.since) >= limit {
			cc.closed = true
			_ = cc.c.Close() // OnClose drops it from l.clients
		}
	}
	if len(l.clients) > 0 {
		l.connT.Reset(l.clientSweepEvery())
	}
}

// pause stops serving cc's requests until its answers are read.
func (l *loop) pause(cc *clientConn) {
	if !cc.paused {
		cc.paused = true
		l.paused++
		l.setPhase(cc, phaseIdle, time.Now())
	}
	l.armPauseCheck()
}

func (l *loop) armPauseCheck() {
	if !l.pauseArm {
		l.pauseArm = true
		l.pauseT.Reset(pauseCheck)
	}
}

// checkPaused feeds large bodies to replicas and serves paused callers
// whose answers were read meanwhile.
func (l *loop) checkPaused() {
	l.pauseArm = false
	if len(l.feeding) > 0 {
		l.feed()
		if len(l.feeding) > 0 {
			l.armPauseCheck()
		}
	}
	if len(l.draining) > 0 {
		l.drainStreams()
		if len(l.draining) > 0 {
			l.armPauseCheck()
		}
	}
	if l.paused == 0 {
		return
	}
	limit := l.eng.cfg.MaxPipeline
	for _, cc := range l.clients {
		if !cc.paused || cc.closed {
			continue
		}
		if out := cc.c.OutboundBuffered(); out <= limit/2 {
			cc.paused = false
			l.paused--
			if l.serveClient(cc) == actClose {
				cc.closed = true
				_ = cc.c.Close()
			}
		}
	}
	if l.paused > 0 {
		l.armPauseCheck()
	}
}
