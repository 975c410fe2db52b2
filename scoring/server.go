package scoring

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aksml/aksml/errcode"
)

// Server states.
const (
	stateNew int32 = iota
	stateStarting
	stateReady
	stateFailed
	stateClosed
)

// Server is one replica: the HTTP face of a Go Handler or of a pool of
// Python workers running an entry script. It serves, as azmlinfsrv does,
//
//	GET  /              200 "Healthy" once init has finished, 503 before
//	POST /score         runs the model (GET /score too, with the query as input;
//	                    OPTIONS answered empty unless run() is @rawhttp)
//	GET  /swagger.json  the OpenAPI document (?version=2, the default, 3 or 3.1)
//
// and answers 405 to other methods on those paths, 404 to other paths, 413
// to bodies above Config.MaxBodyBytes, 503 while not ready, 504 "Scoring
// timeout after N ms" when a run exceeds Config.ScoringTimeout, 500 when run
// raises (or a Go Run returns an error) and 502 when a worker dies while
// running the request. Error bodies are JSON objects with a "message" only;
// exception text goes to the log. Request ids, TraceId, CORS and the
// x-ms-* headers are those of azmlinfsrv (docs/inference-server.md).
//
// A Server is safe for concurrent use. Create it with NewServer, call Start,
// and Close it when done.
type Server struct {
	cfg  Config
	logs *logBuffer

	// Exactly one of py and goh is set.
	py  *pyPool
	dc  *collector // data collection of a Python replica; nil when off
	tel *telemetry // request telemetry; nil when off
	goh Handler
	raw RawHTTPHandler
	// batch gathers requests into batches when Config.MaxBatchSize is set;
	// set (under mu) before the state becomes ready.
	batch      *batcher
	batchHooks struct {
		queued, batched func(int)
		spared          func()
	} // for tests

	// child is the capture writer process (see capturewriter.go), nil
	// when the replica writes its records itself.
	child *captureChild

	state    atomic.Int32
	initDone chan struct{}
	initErr  error     // set before initDone closes
	info     *initInfo // Python: set before the state becomes ready
	swagger  map[string][]byte

	cors          *corsPolicy
	serverVersion []string

	mu            sync.Mutex
	cancelInit    context.CancelFunc
	removeAppRoot func() // set once the workers' app root exists
	wg            sync.WaitGroup
	closeOnce     sync.Once
}

// NewServer validates cfg (reporting every broken rule at once, with code
// InvalidArgument), applies defaults and returns a Server that has not
// started yet.
func NewServer(cfg Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: c, logs: newLogBuffer(c.LogLines, c.LogOutput), initDone: make(chan struct{}),
		cors: newCORSPolicy(c.CORSOrigins), serverVersion: []string{c.ServerVersion}}
	if c.Handler == nil {
		s.py, err = newPyPool(s)
		if err != nil {
			return nil, err
		}
		if c.DataCollection != nil {
			s.dc = newCollector(s, c.DataCollection)
		}
	}
	if c.Telemetry != nil {
		s.tel = newTelemetry(s, c.Telemetry)
	}
	if c.capture != nil && c.Handler == nil && (s.dc != nil || s.tel != nil) {
		// Started before the writers, which ship to it.
		if s.child, err = startCaptureChild(s, c.capture); err != nil {
			s.event(slog.LevelWarn, "capture writer process: cannot start ("+err.Error()+"); the replica writes its model data and telemetry records itself")
		} else {
			go s.child.readReports()
		}
	}
	if s.dc != nil {
		go s.dc.write()
	}
	if s.tel != nil {
		go s.tel.export()
	}
	return s, nil
}

// Start begins init in the background and returns at once: the Python
// workers start and each runs init(), or the Go handler's Init runs. ctx
// bounds init only; cancelling it later has no effect. Learn the outcome
// with InitDone, Err, Ready or Wait. Start may be called once.
func (s *Server) Start(ctx context.Context) error {
	if !s.state.CompareAndSwap(stateNew, stateStarting) {
		return errcode.New(errcode.FailedPrecondition, "scoring server: Start called twice or after Close")
	}
	initCtx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.cancelInit = cancel
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer cancel()
		err := s.initialize(initCtx)
		s.finishInit(err)
	}()
	return nil
}

func (s *Server) initialize(ctx context.Context) error {
	if s.py != nil {
		s.event(slog.LevelInfo, fmt.Sprintf("starting %d worker(s) for %s with %s", s.cfg.Workers, s.cfg.entryRel(), s.cfg.Interpreter))
		root, remove, err := s.cfg.makeAppRoot()
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.removeAppRoot = remove
		s.mu.Unlock()
		s.py.appRoot = root
		info, err := s.py.start(ctx)
		if err != nil {
			return err
		}
		s.info = info
		s.swagger = buildSwaggers(&s.cfg, info.InputSchema, info.OutputSchema, root, s.cfg.SourceDir)
		return s.startBatching()
	}
	h := s.cfg.Handler()
	if h == nil {
		return errcode.New(errcode.InvalidArgument, "scoring server: the Go handler constructor returned nil")
	}
	s.goh = h
	s.raw, _ = h.(RawHTTPHandler)
	if err := callInit(ctx, h, s.cfg.ModelDir); err != nil {
		return errcode.Errorf(errcode.FailedPrecondition, "Go handler Init failed; the replica never becomes ready: %w", err)
	}
	var in, out json.RawMessage
	if sp, ok := h.(SchemaProvider); ok {
		in, out = sp.Schema()
	}
	s.swagger = buildSwaggers(&s.cfg, in, out, "", "")
	return s.startBatching()
}

func callInit(ctx context.Context, h Handler, dir string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errcode.Errorf(errcode.Internal, "panic: %v\n%s", r, debug.Stack())
		}
	}()
	return h.Init(ctx, dir)
}

func (s *Server) finishInit(err error) {
	if err != nil {
		s.initErr = err
		s.event(slog.LevelError, "init failed: "+err.Error())
		s.state.CompareAndSwap(stateStarting, stateFailed)
	} else if s.state.CompareAndSwap(stateStarting, stateReady) {
		s.event(slog.LevelInfo, "init finished; the replica is ready")
	} else {
		s.initErr = errPoolClosed
	}
	s.logs.closeInit()
	close(s.initDone)
}

// InitDone is closed when init has finished, successfully or not (and when
// Close interrupts it).
func (s *Server) InitDone() <-chan struct{} { return s.initDone }

// Err returns nil while init runs and after it succeeded, and the init error
// after it failed: for a Python script the message names the entry script and
// ends with the tail of the traceback; its code is FailedPrecondition.
func (s *Server) Err() error {
	select {
	case <-s.initDone:
		return s.initErr
	default:
		return nil
	}
}

// Ready reports whether init has succeeded and the server is not closed:
// GET / answers 200 exactly when Ready is true.
func (s *Server) Ready() bool { return s.state.Load() == stateReady }

// Wait blocks until init has finished and returns Err, or returns ctx's
// error (code DeadlineExceeded) if ctx ends first.
func (s *Server) Wait(ctx context.Context) error {
	select {
	case <-s.initDone:
		return s.initErr
	case <-ctx.Done():
		return errcode.Wrap(errcode.DeadlineExceeded, fmt.Errorf("waiting for the replica to initialize: %w", context.Cause(ctx)))
	}
}

// Logs returns the replica's log lines, oldest first: the workers' stdout and
// stderr (tracebacks included) and the server's own events. tail > 0 keeps
// only the last tail lines. initOnly returns only what was logged until init
// finished. This backs get_logs(num_lines, init).
func (s *Server) Logs(tail int, initOnly bool) []string { return s.logs.lines(tail, initOnly) }

// Close stops the replica: it interrupts init, kills every worker process
// (and the processes they started) and waits for them. Requests in flight
// get 503. A Go handler that implements io.Closer is closed. Close is
// idempotent.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		prev := s.state.Swap(stateClosed)
		s.mu.Lock()
		cancel := s.cancelInit
		s.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		s.mu.Lock()
		batch := s.batch
		s.mu.Unlock()
		if batch != nil {
			// Queued requests get 503; closing the workers ends the
			// batches under way.
			batch.stop()
		}
		if s.py != nil {
			s.py.close()
		}
		s.wg.Wait()
		if batch != nil {
			batch.wait()
		}
		if s.py != nil {
			s.py.wait()
		}
		if s.dc != nil {
			// Every worker's record reader has ended: write what is left.
			s.dc.close()
		}
		if s.tel != nil {
			// Every request and record reader has ended: send what is left.
			s.tel.close()
		}
		// The writers have shipped their last batches: the capture
		// writer process writes them and exits.
		s.child.close(dataCollectionClose)
		s.mu.Lock()
		if s.removeAppRoot != nil {
			s.removeAppRoot()
		}
		s.mu.Unlock()
		if prev == stateNew {
			s.initErr = errPoolClosed
			s.logs.closeInit()
			close(s.initDone)
		}
		if c, ok := s.goh.(io.Closer); ok {
			err = c.Close()
		}
		s.event(slog.LevelInfo, "replica closed")
	})
	return err
}

// event records one of the server's own events in the log and the Logger.
func (s *Server) event(level slog.Level, msg string) {
	s.cfg.Logger.Log(context.Background(), level, msg, "component", "scoring")
	ts := s.cfg.Clock.Now().UTC().Format(time.RFC3339)
	for _, line := range strings.Split(msg, "\n") {
		s.logs.add(ts + " aksml-score " + level.String() + ": " + line)
	}
}

// ---------------------------------------------------------------- HTTP

var (
	hdrJSON     = []string{"application/json"}
	hdrHTML     = []string{"text/html; charset=utf-8"}
	hdrTrue     = []string{"True"}
	hdrFalse    = []string{"False"}
	hdrNoSniff  = []string{"nosniff"}
	healthyBody = []byte("Healthy")
)

// Messages of Flask's own errors, which azmlinfsrv sends as they are.
const (
	msgNotFound         = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
	msgMethodNotAllowed = "The method is not allowed for the requested URL."
)

// ServeHTTP serves the replica's routes (see Server).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/score":
		switch r.Method {
		case http.MethodGet, http.MethodPost, http.MethodHead, http.MethodOptions:
		default:
			methodNotAllowed(w, "GET, HEAD, OPTIONS, POST")
			return
		}
		if !s.stampIDs(w, r) {
			return
		}
		if s.tel != nil {
			s.scoreWithTelemetry(w, r)
			return
		}
		s.serveScore(w, r)
	case "/", "/swagger.json":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodOptions:
			if s.stampIDs(w, r) {
				automaticOptions(w)
			}
			return
		default:
			methodNotAllowed(w, "GET, HEAD, OPTIONS")
			return
		}
		if !s.stampIDs(w, r) {
			return
		}
		if r.URL.Path == "/" {
			s.serveHealth(w)
		} else {
			s.serveSwagger(w, r)
		}
	case "/metrics":
		if r.Method == http.MethodGet && s.metricsAllowed(r) {
			s.serveMetrics(w)
			return
		}
		writeError(w, http.StatusNotFound, msgNotFound, false)
	default:
		writeError(w, http.StatusNotFound, msgNotFound, false)
	}
}

// automaticOptions is Flask's answer to OPTIONS on a route that does not
// handle it itself: 200, empty, with the allowed methods.
func automaticOptions(w http.ResponseWriter) {
	h := w.Header()
	h["Allow"] = []string{"GET, HEAD, OPTIONS"}
	h["Content-Type"] = hdrHTML
	h["Content-Length"] = []string{"0"}
	w.WriteHeader(http.StatusOK)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, msgMethodNotAllowed, false)
}

// writeError writes a JSON error body {"message": ...} with
// x-ms-run-function-failed, as azmlinfsrv's ErrorResponse does. The body
// never carries exception text: that goes to the log.
func writeError(w http.ResponseWriter, status int, msg string, runFailed bool) {
	b, _ := json.Marshal(map[string]string{"message": msg})
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["X-Content-Type-Options"] = hdrNoSniff
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	if runFailed {
		h["X-Ms-Run-Function-Failed"] = hdrTrue
	} else {
		h["X-Ms-Run-Function-Failed"] = hdrFalse
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (s *Server) notReady(w http.ResponseWriter) {
	switch s.state.Load() {
	case stateFailed:
		writeError(w, http.StatusServiceUnavailable, "The replica is not ready: init failed. Check the logs for more info.", false)
	case stateClosed:
		writeError(w, http.StatusServiceUnavailable, "The replica is shutting down.", false)
	default:
		writeError(w, http.StatusServiceUnavailable, "The replica is not ready: init has not finished.", false)
	}
}

func (s *Server) serveHealth(w http.ResponseWriter) {
	if !s.Ready() {
		s.notReady(w)
		return
	}
	h := w.Header()
	h["Content-Type"] = hdrHTML
	h["Content-Length"] = []string{"7"}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(healthyBody)
}

func (s *Server) serveSwagger(w http.ResponseWriter, r *http.Request) {
	if !s.Ready() {
		s.notReady(w)
		return
	}
	v := r.URL.Query().Get("version")
	if v == "" {
		v = "2"
	}
	doc, ok := s.swagger[v]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Swagger version [%s] is not valid. Supported versions: [2, 3, 3.1].", v), false)
		return
	}
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["X-Ms-Run-Function-Failed"] = hdrFalse
	h["Content-Length"] = []string{strconv.Itoa(len(doc))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
}

func (s *Server) serveScore(w http.ResponseWriter, r *http.Request) {
	if !s.Ready() {
		s.notReady(w)
		return
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		tooLarge(w, s.cfg.MaxBodyBytes)
		return
	}
	// With batching on, every request goes to run_batch (RunBatch), which
	// takes the body alone.
	raw := s.batch == nil && (s.raw != nil || (s.py != nil && s.info.Mode == "raw"))
	if !raw && r.Method != http.MethodGet && r.Method != http.MethodPost {
		// Only a @rawhttp run() sees other methods. azmlinfsrv answers
		// OPTIONS itself (the CORS headers are already set) and refuses
		// the rest.
		if r.Method == http.MethodOptions {
			h := w.Header()
			h["Content-Type"] = hdrHTML
			h["X-Ms-Run-Function-Failed"] = hdrFalse
			h["Content-Length"] = []string{"0"}
			w.WriteHeader(http.StatusOK)
			return
		}
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed", false)
		return
	}
	if s.batch != nil {
		s.scoreBatch(w, r)
		return
	}
	if s.py != nil {
		s.scorePython(w, r)
		return
	}
	s.scoreGo(w, r)
}

func tooLarge(w http.ResponseWriter, limit int64) {
	writeError(w, http.StatusRequestEntityTooLarge,
		fmt.Sprintf("Request body is larger than the limit of %d bytes (%s).", limit, humanBytes(limit)), false)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// newRequestID returns a random UUID (version 4).
func newRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// bufPool holds request/reply buffers.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

const maxPooledBuf = 1 << 20

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBuf {
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}

// errBodyTooLarge marks a body above the limit.
var errBodyTooLarge = errors.New("request body too large")

// readBody appends the request body to buf, failing with errBodyTooLarge
// past limit bytes.
func readBody(r *http.Request, buf []byte, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return buf, nil
	}
	if cl := r.ContentLength; cl >= 0 {
		if cl > limit {
			return buf, errBodyTooLarge
		}
		need := len(buf) + int(cl)
		if cap(buf) < need {
			nb := make([]byte, len(buf), need)
			copy(nb, buf)
			buf = nb
		}
		n, err := io.ReadFull(r.Body, buf[len(buf):need])
		buf = buf[:len(buf)+n]
		if err != nil {
			return buf, err
		}
		return buf, nil
	}
	start := len(buf)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)-start) > limit {
			return buf, errBodyTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (s *Server) bodyError(w http.ResponseWriter, err error) {
	if errors.Is(err, errBodyTooLarge) {
		tooLarge(w, s.cfg.MaxBodyBytes)
		return
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		tooLarge(w, s.cfg.MaxBodyBytes)
		return
	}
	writeError(w, http.StatusBadRequest, "Could not read the request body: "+err.Error(), false)
}

func execMS(d time.Duration) []string {
	return []string{strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)}
}

// reqMeta is the request metadata sent to a worker with kindRequest.
type reqMeta struct {
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	Query   string      `json:"query"`
	Remote  string      `json:"remote"`
	Headers [][2]string `json:"headers"`
	// ID and Client are the request's id and the caller's (see
	// TelemetryRecord), sent when data collection or telemetry is on.
	ID     string `json:"id,omitempty"`
	Client string `json:"client,omitempty"`
}

// respMeta is the metadata of a raw HTTP reply (kindResponse).
type respMeta struct {
	Status  int         `json:"status"`
	Headers [][2]string `json:"headers"`
}

// errReply is the payload of kindError.
type errReply struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"` // unused since run() errors stay in the log
}

func (s *Server) scorePython(w http.ResponseWriter, r *http.Request) {
	bp := getBuf()
	defer putBuf(bp)
	buf := append((*bp)[:0], 0, 0, 0, 0, 0)
	needsMeta := s.info.needsMeta(r.Method)
	withIDs := !needsMeta && (s.dc != nil || s.tel != nil)
	if withIDs {
		// The ids first (each at most requestIDLimit bytes: one length
		// byte), so the worker can tag what the request collects and
		// prints; the body is read after them.
		id, client := first(w.Header()[hdrKeyMSRequestID]), clientRequestID(r)
		buf = append(buf, byte(min(len(id), 255)))
		buf = append(buf, id[:min(len(id), 255)]...)
		buf = append(buf, byte(min(len(client), 255)))
		buf = append(buf, client[:min(len(client), 255)]...)
	}
	buf, err := readBody(r, buf, s.cfg.MaxBodyBytes)
	*bp = buf
	if err != nil {
		s.bodyError(w, err)
		return
	}
	msg := buf
	if needsMeta {
		meta := reqMeta{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Remote: r.RemoteAddr,
			Headers: make([][2]string, 0, len(r.Header)+1)}
		if s.dc != nil || s.tel != nil {
			meta.ID, meta.Client = first(w.Header()[hdrKeyMSRequestID]), clientRequestID(r)
		}
		if r.Host != "" {
			meta.Headers = append(meta.Headers, [2]string{"Host", r.Host})
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				meta.Headers = append(meta.Headers, [2]string{k, v})
			}
		}
		m, err := json.Marshal(meta)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "Could not encode the request.", false)
			return
		}
		body := buf[frameHeader:]
		msg = make([]byte, frameHeader+4, frameHeader+4+len(m)+len(body))
		binary.BigEndian.PutUint32(msg[frameHeader:], uint32(len(m)))
		msg = append(msg, m...)
		msg = append(msg, body...)
		putHeader(msg, kindRequest)
	} else if withIDs {
		putHeader(msg, kindRunIDs)
	} else {
		putHeader(msg, kindRun)
	}
	st := &streamWriter{s: s, w: w, ctx: r.Context()}
	kind, payload, rbuf, elapsed, rerr := s.py.roundTrip(r.Context(), msg, buf, st)
	*bp = rbuf[:0]
	h := w.Header()
	if rerr != nil {
		if st.started {
			// The response is under way: the client sees it cut short.
			panic(http.ErrAbortHandler)
		}
		h["X-Ms-Run-Fn-Exec-Ms"] = execMS(elapsed)
		writeError(w, rerr.status, rerr.msg, rerr.status >= 500 && rerr.status != http.StatusServiceUnavailable)
		return
	}
	if kind == kindEnd {
		// A streamed response: its chunks have been written.
		if len(payload) > 0 || st.gone {
			// The generator raised (its traceback is in the log) or the
			// client left: end the response without its last chunk.
			panic(http.ErrAbortHandler)
		}
		return
	}
	s.writeReply(w, kind, payload, elapsed)
}

// writeReply writes a worker's answer to one request: a JSON result
// (kindOK), an error (kindError) or a raw HTTP response (kindResponse).
func (s *Server) writeReply(w http.ResponseWriter, kind byte, payload []byte, elapsed time.Duration) {
	h := w.Header()
	switch kind {
	case kindOK:
		h["Content-Type"] = hdrJSON
		h["X-Ms-Run-Function-Failed"] = hdrFalse
		h["X-Ms-Run-Fn-Exec-Ms"] = execMS(elapsed)
		h["Content-Length"] = []string{strconv.Itoa(len(payload))}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(payload)
	case kindError:
		var e errReply
		if err := json.Unmarshal(payload, &e); err != nil || e.Status < 400 || e.Status > 599 {
			e = errReply{Status: http.StatusInternalServerError, Message: "The worker sent a malformed error reply."}
		}
		h["X-Ms-Run-Fn-Exec-Ms"] = execMS(elapsed)
		writeError(w, e.Status, e.Message, e.Status >= 500)
	case kindResponse:
		var m respMeta
		body, err := splitMeta(payload, &m)
		if err != nil || m.Status < 100 || m.Status > 999 {
			s.event(slog.LevelError, fmt.Sprintf("run() returned a response the server cannot send: %v", err))
			writeError(w, http.StatusBadGateway, "run() returned a response the server cannot send.", true)
			return
		}
		s.mergeScriptHeaders(h, m.Headers)
		if m.Status >= 500 {
			h["X-Ms-Run-Function-Failed"] = hdrTrue
		}
		h["X-Ms-Run-Fn-Exec-Ms"] = append(h["X-Ms-Run-Fn-Exec-Ms"], execMS(elapsed)...)
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
		w.WriteHeader(m.Status)
		_, _ = w.Write(body)
	}
}

// streamWriter writes a streamed AMLResponse (run() returned a response
// whose body is a generator) chunk by chunk, flushing each one as azmlinfsrv
// does.
type streamWriter struct {
	ctx     context.Context // the request's: done when the client leaves
	s       *Server
	w       http.ResponseWriter
	started bool
	gone    bool // the client went away; the rest is discarded
}

// start writes the status and headers from the stream's metadata.
func (st *streamWriter) start(payload []byte, elapsed time.Duration) error {
	var m respMeta
	if _, err := splitMeta(payload, &m); err != nil || m.Status < 100 || m.Status > 999 {
		return fmt.Errorf("%w: stream metadata: %v", errProtocol, err)
	}
	h := st.w.Header()
	st.s.mergeScriptHeaders(h, m.Headers)
	if m.Status >= 500 {
		h["X-Ms-Run-Function-Failed"] = hdrTrue
	}
	h["X-Ms-Run-Fn-Exec-Ms"] = append(h["X-Ms-Run-Fn-Exec-Ms"], execMS(elapsed)...)
	delete(h, "Content-Length")
	st.started = true
	st.w.WriteHeader(m.Status)
	st.flush()
	return nil
}

// chunk writes one chunk and flushes it; an error means the client is gone.
func (st *streamWriter) chunk(b []byte) error {
	if st.gone {
		return nil
	}
	if err := st.ctx.Err(); err != nil {
		st.gone = true
		return err
	}
	if _, err := st.w.Write(b); err != nil {
		st.gone = true
		return err
	}
	if err := http.NewResponseController(st.w).Flush(); err != nil {
		st.gone = true
		return err
	}
	return nil
}

func (st *streamWriter) flush() {
	if err := http.NewResponseController(st.w).Flush(); err != nil {
		st.gone = true
	}
}

// validHeader reports whether a header from a script can be sent as is.
func validHeader(k, v string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return !strings.ContainsAny(v, "\r\n\x00")
}

// leanEligible reports whether a request may take the lean engine's path:
// not for a Go handler that serves raw HTTP (RawHTTPHandler), which may use
// what only net/http's ResponseWriter has (hijacking, full duplex).
func (s *Server) leanEligible() bool {
	return s.state.Load() != stateReady || s.raw == nil
}
