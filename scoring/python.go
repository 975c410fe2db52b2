package scoring

import (
	"context"
	"embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/childproc"
)

// The Python side: host.py runs in every worker; the shims are served to it
// from memory by an import hook placed after the normal finders.
var (
	//go:embed pyhost/host.py
	hostSource []byte
	//go:embed all:pyhost/shims
	shimFS embed.FS
)

// bootstrap is the interpreter's -c program: it reads the host source and
// the configuration from fd 3 (one framed message) and runs the host.
const bootstrap = `# aksml-score worker
import os
def _r(n):
    b = b''
    while len(b) < n:
        c = os.read(3, n - len(b))
        if not c:
            os._exit(3)
        b += c
    return b
_h = _r(5)
_p = _r(int.from_bytes(_h[:4], 'big'))
_n = int.from_bytes(_p[:4], 'big')
exec(compile(_p[4:4 + _n].decode('utf-8'), '<aksml-host>', 'exec'), {'__name__': 'aksml_host', 'AKSML_CONFIG': _p[4 + _n:]})
`

// Message kinds of the worker protocol (see pyhost/host.py).
const (
	kindRun        = 'R' // Go → Python: raw body
	kindRequest    = 'Q' // Go → Python: metadata + body
	kindRunIDs     = 'U' // Go → Python: request ids + raw body
	kindBoot       = 'H' // Go → Python: host source + config
	kindInitOK     = 'I' // Python → Go: init info
	kindInitFail   = 'F' // Python → Go: init failed, JSON initFail
	kindOK         = 'O' // Python → Go: JSON result
	kindError      = 'E' // Python → Go: error JSON
	kindResponse   = 'P' // Python → Go: raw HTTP response
	kindStream     = 'S' // Python → Go: streamed HTTP response starts (metadata)
	kindChunk      = 'C' // Python → Go: one chunk of a streamed response
	kindEnd        = 'Z' // Python → Go: the stream ended ("E" if it failed)
	kindCancel     = 'X' // Go → Python: stop the stream of request seq (the client left)
	kindRecord     = 'D' // Python → Go: a ModelDataCollector record (before a reply, or on fd 5)
	kindPrints     = 'L' // Python → Go: what run() printed (telemetry), before a reply
	kindBatch      = 'B' // Go → Python: a batch of raw bodies for run_batch
	kindBatchReply = 'N' // Python → Go: the answers to a batch
)

// cancelMessage asks a worker to stop streaming the response to its
// request number seq (counted from 1 in the order the worker reads them). A
// cancel that arrives after that stream ended is ignored, so it cannot stop
// the stream of a request queued behind it.
func cancelMessage(seq uint32) []byte {
	msg := make([]byte, frameHeader+4)
	binary.BigEndian.PutUint32(msg[frameHeader:], seq)
	putHeader(msg, kindCancel)
	return msg
}

// streamSink receives a streamed response from roundTrip.
type streamSink interface {
	// start gets the stream's metadata payload and the time run() took.
	start(payload []byte, elapsed time.Duration) error
	// chunk gets one chunk; an error means the client is gone.
	chunk(b []byte) error
}

const (
	frameHeader = 5
	// maxFrame bounds one reply so that a corrupt length cannot allocate
	// without limit.
	maxFrame = 1 << 30
)

// errProtocol marks a malformed frame from a worker.
var errProtocol = errors.New("malformed reply from the worker")

var shimsOnce = sync.OnceValue(func() map[string]shimModule {
	mods := map[string]shimModule{}
	_ = fs.WalkDir(shimFS, "pyhost/shims", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".py") {
			return err
		}
		src, err := shimFS.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(p, "pyhost/shims/"), ".py")
		pkg := path.Base(rel) == "__init__"
		if pkg {
			rel = path.Dir(rel)
		}
		mods[strings.ReplaceAll(rel, "/", ".")] = shimModule{Source: string(src), Package: pkg}
		return nil
	})
	return mods
})

type shimModule struct {
	Source  string `json:"source"`
	Package bool   `json:"package"`
}

// initInfo is what a worker reports after init().
type initInfo struct {
	Mode         string          `json:"mode"` // plain, schema or raw
	WantsHeaders bool            `json:"wants_headers"`
	InputSchema  json.RawMessage `json:"input_schema"`
	OutputSchema json.RawMessage `json:"output_schema"`
	PID          int             `json:"pid"`
	Batch        bool            `json:"batch"` // the script defines run_batch
}

// needsMeta reports whether requests must carry method, query and headers.
func (i *initInfo) needsMeta(method string) bool {
	return i.Mode != "plain" || i.WantsHeaders || method != http.MethodPost
}

// bootMessage builds the first message sent to every worker.
func bootMessage(cfg *Config) ([]byte, error) {
	conf, err := json.Marshal(map[string]any{
		"entry_script": cfg.EntryScript,
		"source_dir":   cfg.SourceDir,
		"shims":        shimsOnce(),
	})
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err)
	}
	msg := make([]byte, frameHeader+4, frameHeader+4+len(hostSource)+len(conf))
	binary.BigEndian.PutUint32(msg[frameHeader:], uint32(len(hostSource)))
	msg = append(msg, hostSource...)
	msg = append(msg, conf...)
	putHeader(msg, kindBoot)
	return msg, nil
}

// putHeader writes the frame header for msg, whose payload starts at
// frameHeader.
func putHeader(msg []byte, kind byte) {
	binary.BigEndian.PutUint32(msg, uint32(len(msg)-frameHeader))
	msg[4] = kind
}

// readFrame reads one frame into buf (grown as needed) and returns its kind
// and payload (a slice of the returned buffer). It reads no more than the
// frame: a worker sends one frame per request, except in a stream (see
// readFrameAfter).
func readFrame(r io.Reader, buf []byte) (kind byte, payload, out []byte, err error) {
	kind, payload, out, extra, err := readFrameAfter(r, buf, nil)
	if err == nil && len(extra) > 0 {
		return 0, nil, out, fmt.Errorf("%w: %d bytes after a %d-byte frame", errProtocol, len(extra), len(payload)+frameHeader)
	}
	return kind, payload, out, err
}

// readFrameAfter reads one frame whose first bytes are pre (bytes read
// earlier) and the rest from r. Reads are greedy: extra holds what arrived
// after the frame (the start of the next one), a slice of out.
func readFrameAfter(r io.Reader, buf, pre []byte) (kind byte, payload, out, extra []byte, err error) {
	if cap(buf) < max(4096, len(pre)) {
		buf = make([]byte, max(4096, len(pre)))
	}
	buf = buf[:cap(buf)]
	n := copy(buf, pre)
	if n < frameHeader {
		m, err := io.ReadAtLeast(r, buf[n:], frameHeader-n)
		n += m
		if err != nil {
			return 0, nil, buf, nil, err
		}
	}
	size := binary.BigEndian.Uint32(buf)
	if size > maxFrame {
		return 0, nil, buf, nil, fmt.Errorf("%w: frame of %d bytes", errProtocol, size)
	}
	total := int(size) + frameHeader
	// Grow as the data arrives rather than trusting the length up front.
	for n < total {
		if n == len(buf) {
			grow := min(total, max(2*len(buf), n+64<<10))
			nb := make([]byte, grow)
			copy(nb, buf[:n])
			buf = nb
		}
		m, err := r.Read(buf[n:min(total, len(buf))])
		n += m
		if err != nil && n < total {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, buf, nil, err
		}
	}
	return buf[4], buf[frameHeader:total], buf, buf[total:n], nil
}

// splitMeta splits a payload of the form uint32 n, n bytes of JSON, body.
func splitMeta(payload []byte, meta any) (body []byte, err error) {
	if len(payload) < 4 {
		return nil, fmt.Errorf("%w: payload of %d bytes has no metadata length", errProtocol, len(payload))
	}
	n := binary.BigEndian.Uint32(payload)
	if uint64(n) > uint64(len(payload)-4) {
		return nil, fmt.Errorf("%w: metadata of %d bytes in a %d-byte payload", errProtocol, n, len(payload))
	}
	if err := json.Unmarshal(payload[4:4+n], meta); err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", errProtocol, err)
	}
	return payload[4+n:], nil
}

// worker is one Python process.
type worker struct {
	slot  int
	cmd   *exec.Cmd
	reqW  *os.File
	respR *os.File
	// req and resp write reqW and read respR on the request path (raw
	// system calls on Linux, see rawio_linux.go).
	req  fileIO
	resp fileIO
	outR *os.File

	// wmu orders the writes to the request pipe (requests and cancels);
	// rmu is held while a reply is read. The files close under both.
	wmu sync.Mutex
	rmu sync.Mutex
	// written counts the bytes written to the request pipe and seq the
	// requests (R, U, Q and B frames, as the host counts them); both are
	// guarded by wmu. left is what the pipe still held when the worker was
	// gone (-1: unknown), set before filesClosed closes.
	written     int64
	seq         uint32
	left        int64
	filesClosed chan struct{}
	// turn tells the request queued behind the running one (see acquire)
	// that the reply before its own has been read.
	turn chan turn

	// Guarded by pool.mu:
	inflight  int    // requests handed to it whose reply is not read yet (0–2)
	writing   bool   // the last of them is not fully written yet
	exclusive bool   // a batch has it: nothing queues behind
	broken    bool   // a round trip on it failed: it is being killed
	order     uint64 // when its running request was handed out, to pick the oldest

	exited   chan struct{}
	logsDone chan struct{} // its output has been copied to the log
	initLogs chan struct{} // its init output has been copied to the log
	err      error         // exit status, set before exited closes
	booted   bool          // init succeeded; guarded by pool.mu
	gone     bool          // pool.exited has processed its exit; guarded by pool.mu
}

func (w *worker) pid() int { return w.cmd.Process.Pid }

func (w *worker) dead() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

// kill stops the worker and every process it started.
func (w *worker) kill() {
	if !w.dead() {
		childproc.KillGroup(w.cmd.Process)
	}
}

// exitText describes how the worker exited.
func (w *worker) exitText() string {
	if !w.dead() {
		return "not reaped yet"
	}
	if w.err == nil {
		return "exit status 0"
	}
	return w.err.Error()
}

// waitExit waits (bounded) for the worker to be reaped after a kill and its
// last output to reach the log.
func (w *worker) waitExit() {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	for _, ch := range []chan struct{}{w.exited, w.logsDone} {
		select {
		case <-ch:
		case <-t.C:
			return
		}
	}
}

// pyPool runs the Python workers of one replica.
type pyPool struct {
	cfg     *Config
	srv     *Server
	boot    []byte
	appRoot string // the workers' working directory; set before they start

	mu      sync.Mutex
	idle    []*worker
	waiters []*waiter
	procs   map[*worker]struct{}
	running bool // initial init succeeded
	closed  bool
	// streamed: the script has streamed a response; requests no longer
	// queue behind busy workers (see behindLocked).
	streamed bool
	ticks    uint64 // counts the requests handed to workers (worker.order)
	done     chan struct{}
	wg       sync.WaitGroup

	info *initInfo
	// initTracebacks are the init tracebacks already written to the log.
	initTracebacks map[string]bool
}

func newPyPool(s *Server) (*pyPool, error) {
	boot, err := bootMessage(&s.cfg)
	if err != nil {
		return nil, err
	}
	return &pyPool{cfg: &s.cfg, srv: s, boot: boot, procs: map[*worker]struct{}{}, done: make(chan struct{})}, nil
}

var errPoolClosed = errcode.New(errcode.Unavailable, "the replica is shutting down")

// spawn starts a worker in slot and waits for its init() to finish.
func (p *pyPool) spawn(slot int) (*worker, *initInfo, error) {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	reqR, reqW, err1 := pipe()
	respR, respW, err2 := pipe()
	outR, outW, err3 := pipe()
	var dcR, dcW *os.File
	var err4 error
	if p.srv.dc != nil || p.srv.tel != nil {
		dcR, dcW, err4 = pipe()
	}
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		closeAll()
		return nil, nil, errcode.Wrap(errcode.Internal, err)
	}
	cmd := exec.Command(p.cfg.Interpreter, "-u", "-c", bootstrap)
	cmd.Dir = p.appRoot
	cmd.Env = p.cfg.workerEnv(p.appRoot)
	cmd.Stdout = outW
	cmd.Stderr = outW
	cmd.ExtraFiles = []*os.File{reqR, respW}
	if dcW != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, dcW) // fd 5
	}
	cmd.SysProcAttr = childproc.Attr()
	w := &worker{slot: slot, cmd: cmd, reqW: reqW, respR: respR, req: newFileIO(reqW), resp: newFileIO(respR), outR: outR,
		left: -1, filesClosed: make(chan struct{}), turn: make(chan turn, 1),
		exited: make(chan struct{}), logsDone: make(chan struct{}), initLogs: make(chan struct{})}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		closeAll()
		return nil, nil, errPoolClosed
	}
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		closeAll()
		return nil, nil, errcode.Errorf(errcode.FailedPrecondition, "start interpreter %s: %w", p.cfg.Interpreter, err)
	}
	p.procs[w] = struct{}{}
	p.wg.Add(2)
	if dcR != nil {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.srv.readSide(dcR, slot)
		}()
	}
	p.mu.Unlock()
	reqR.Close()
	respW.Close()
	outW.Close()
	if dcW != nil {
		dcW.Close()
	}
	p.srv.event(slog.LevelInfo, fmt.Sprintf("worker %d started (pid %d)", slot, w.pid()))

	logsDone := w.logsDone
	go func() {
		defer p.wg.Done()
		defer close(logsDone)
		p.srv.logs.copyLines(outR, func() { close(w.initLogs) })
	}()
	go func() {
		defer p.wg.Done()
		w.err = cmd.Wait()
		// Processes the worker forked (same process group) go with it, so
		// none keeps the reply pipe open.
		killGroup(w.cmd.Process.Pid)
		close(w.exited)
		// Output written just before the exit is still in the pipe: let the
		// copier drain it, but do not wait forever for a grandchild that
		// escaped the process group and holds stdout open.
		t := time.AfterFunc(2*time.Second, func() { outR.Close() })
		<-logsDone
		t.Stop()
		outR.Close()
		w.wmu.Lock()
		w.rmu.Lock()
		// The process group is gone: nothing reads the request pipe any
		// more, so what it still holds was never read (see unstarted).
		w.left = w.req.unread()
		w.reqW.Close()
		w.respR.Close()
		w.rmu.Unlock()
		w.wmu.Unlock()
		close(w.filesClosed)
		p.exited(w)
	}()

	w.wmu.Lock()
	_, err := w.req.Write(p.boot)
	w.wmu.Unlock()
	w.rmu.Lock()
	defer w.rmu.Unlock()
	if err != nil {
		w.kill()
		w.waitExit()
		return nil, nil, p.initFailure(w, nil)
	}
	kind, payload, _, err := readFrame(w.resp, nil)
	switch {
	case err == nil && kind == kindInitOK:
		var info initInfo
		if err := json.Unmarshal(payload, &info); err != nil {
			w.kill()
			return nil, nil, errcode.Errorf(errcode.Internal, "worker %d: init reply: %v", slot, err)
		}
		// Let the init output reach the log before init counts as done, so
		// the init-only view is complete.
		t := time.NewTimer(5 * time.Second)
		select {
		case <-w.initLogs:
		case <-w.logsDone:
		case <-t.C:
		}
		t.Stop()
		p.mu.Lock()
		w.booted = true
		p.mu.Unlock()
		return w, &info, nil
	case err == nil && kind == kindInitFail:
		var f initFail
		if json.Unmarshal(payload, &f) != nil {
			f = initFail{Traceback: string(payload)}
		}
		w.waitExit()
		return nil, nil, p.initFailure(w, &f)
	default:
		w.kill()
		w.waitExit()
		return nil, nil, p.initFailure(w, nil)
	}
}

// initFail is what a worker reports when its init fails: the traceback and
// the exception alone (traceback.format_exception_only).
type initFail struct {
	Traceback string `json:"traceback"`
	Summary   string `json:"summary"`
}

// initFailure builds the error for a worker whose init did not succeed and
// writes its traceback to the log, after the worker's own output. The log
// holds each distinct traceback once, however many workers fail the same
// way; the error names the exception, not the traceback, so that a reader
// of the log followed by the error (a deployment's failure message, the
// command's last line) sees the traceback once.
func (p *pyPool) initFailure(w *worker, f *initFail) error {
	if p.isClosed() {
		return errPoolClosed
	}
	msg := fmt.Sprintf("entry script %s failed to initialize in worker %d (%s); the replica never becomes ready",
		p.cfg.entryRel(), w.slot, w.exitText())
	if f == nil {
		return errcode.Errorf(errcode.FailedPrecondition, "%s; the worker's output is in the replica's log", msg)
	}
	if tb := strings.TrimRight(f.Traceback, "\n"); tb != "" {
		p.mu.Lock()
		seen := p.initTracebacks[tb]
		if p.initTracebacks == nil {
			p.initTracebacks = map[string]bool{}
		}
		p.initTracebacks[tb] = true
		p.mu.Unlock()
		if !seen {
			// waitExit has let the worker's output reach the log.
			for i, line := range strings.Split(tb, "\n") {
				if i == 0 {
					line = "Encountered Exception during init: " + line
				}
				p.srv.logs.add(line)
			}
		}
	}
	summary := f.Summary
	if summary == "" {
		summary = lastLines(f.Traceback, 1)
	}
	return errcode.Errorf(errcode.FailedPrecondition, "%s: %s (the traceback is in the replica's log)", msg, lastLines(summary, 10))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// exited runs when a worker process has ended: it leaves the pool and, once
// the replica is running, its slot is refilled.
func (p *pyPool) exited(w *worker) {
	p.mu.Lock()
	w.gone = true
	delete(p.procs, w)
	for i, x := range p.idle {
		if x == w {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			break
		}
	}
	restart := p.running && !p.closed && w.booted
	if restart {
		p.wg.Add(1)
	}
	p.mu.Unlock()
	if p.isClosed() {
		return
	}
	p.srv.event(slog.LevelWarn, fmt.Sprintf("worker %d (pid %d) exited: %s", w.slot, w.pid(), w.exitText()))
	if restart {
		go p.refill(w.slot)
	}
}

// refill starts a replacement worker for slot, backing off while its init
// keeps failing.
func (p *pyPool) refill(slot int) {
	defer p.wg.Done()
	backoff := time.Second
	for {
		w, _, err := p.spawn(slot)
		if err == nil {
			p.srv.event(slog.LevelInfo, fmt.Sprintf("worker %d restarted (pid %d)", slot, w.pid()))
			p.release(w)
			return
		}
		if p.isClosed() {
			return
		}
		p.srv.event(slog.LevelError, fmt.Sprintf("worker %d could not be restarted, retrying in %v: %v", slot, backoff, err))
		select {
		case <-p.srv.cfg.Clock.After(backoff):
		case <-p.done:
			return
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// start launches every worker and waits for all of them to finish init().
func (p *pyPool) start(ctx context.Context) (*initInfo, error) {
	type result struct {
		w    *worker
		info *initInfo
		err  error
	}
	n := p.cfg.Workers
	results := make(chan result, n)
	for i := 1; i <= n; i++ {
		go func(slot int) {
			w, info, err := p.spawn(slot)
			results <- result{w, info, err}
		}(i)
	}
	stop := context.AfterFunc(ctx, func() { p.close() })
	defer stop()
	var ws []*worker
	var info *initInfo
	var errs []error
	for range n {
		r := <-results
		if r.err != nil {
			if len(errs) == 0 {
				// One failure is enough: do not wait for the others' init.
				p.killAll()
			}
			errs = append(errs, r.err)
			continue
		}
		ws = append(ws, r.w)
		if info == nil {
			info = r.info
		}
	}
	if len(errs) > 0 || ctx.Err() != nil {
		p.close()
		if ctx.Err() != nil {
			return nil, errcode.Wrap(errcode.DeadlineExceeded, fmt.Errorf("init interrupted: %w", context.Cause(ctx)))
		}
		for _, err := range errs {
			if !errors.Is(err, errPoolClosed) {
				return nil, err
			}
		}
		return nil, errs[0]
	}
	p.mu.Lock()
	p.running = true
	p.info = info
	for _, w := range ws {
		// A worker whose exit was processed before the pool was running
		// was not restarted by exited: refill its slot here.
		if w.gone {
			p.wg.Add(1)
			go p.refill(w.slot)
		}
	}
	p.mu.Unlock()
	for _, w := range ws {
		p.release(w)
	}
	return info, nil
}

func (p *pyPool) killAll() {
	p.mu.Lock()
	ws := make([]*worker, 0, len(p.procs))
	for w := range p.procs {
		ws = append(ws, w)
	}
	p.mu.Unlock()
	for _, w := range ws {
		w.kill()
	}
}

func (p *pyPool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// waiter is a request queued for a worker.
type waiter struct {
	msg []byte
	ch  chan handoff
	// single: one request (it may queue behind a running one); a batch
	// (msg nil) needs a worker to itself.
	single bool
}

// handoff gives a worker to a request. sent says the request has already
// been written to it (err is that write's error, at and seq as worker.send
// returns them); behind says it is queued behind the request the worker is
// running, and must wait for its turn before reading its reply.
type handoff struct {
	w      *worker
	sent   bool
	err    error
	at     int64
	seq    uint32
	behind bool
}

// turn is what the request queued behind another learns once that one's
// reply has been read: the start of its own reply if it came in the same
// read, or that the one before failed and the worker is being killed.
type turn struct {
	pre    []byte
	failed bool
}

// proxyWriteMax bounds the requests that release writes on behalf of a
// waiter: larger ones are written by their own goroutine.
const proxyWriteMax = 64 << 10

// maxAttempts bounds the workers one request is handed to: a request
// queued behind another is sent to a second worker when the first was
// killed before it read the request (see unstarted).
const maxAttempts = 3

// send writes one request to w and returns the bytes written to the
// request pipe before it and its number in the worker's order.
func (w *worker) send(msg []byte) (at int64, seq uint32, err error) {
	w.wmu.Lock()
	at = w.written
	w.seq++
	seq = w.seq
	n, err := w.req.Write(msg)
	w.written += int64(n)
	w.wmu.Unlock()
	return at, seq, err
}

// unstarted waits until w is gone and its files are closed, and reports
// whether the request written at byte at of its request pipe never left
// the pipe: then no process read it, let alone ran it.
func (w *worker) unstarted(at int64) bool {
	<-w.filesClosed
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.left >= 0 && w.written-w.left <= at
}

// take gives an idle worker to a request (a batch has it to itself).
// p.mu is held.
func (p *pyPool) take(w *worker, exclusive bool) {
	w.inflight = 1
	w.writing = true
	w.exclusive = exclusive
	p.ticks++
	w.order = p.ticks
}

// behindLocked picks the worker to queue a request behind when none is
// idle: of the workers running one request, fully written, the one that
// has run it longest. nil when there is none, or once the script has
// streamed a response (a request queued behind a stream waits for all of
// it). p.mu is held.
func (p *pyPool) behindLocked() *worker {
	if p.streamed || p.closed {
		return nil
	}
	var best *worker
	for w := range p.procs {
		if w.inflight == 1 && !w.writing && !w.exclusive && !w.broken && w.booted && (best == nil || w.order < best.order) {
			best = w
		}
	}
	if best != nil && best.dead() {
		return nil
	}
	return best
}

// queueBehindLocked hands the place behind w's running request to the
// first waiter, if w can take one and that waiter is a single request (the
// queue stays in order: a batch at its head waits for an idle worker).
// p.mu is held.
func (p *pyPool) queueBehindLocked(w *worker) *waiter {
	if len(p.waiters) == 0 || !p.waiters[0].single || p.streamed || p.closed ||
		w.inflight != 1 || w.writing || w.exclusive || w.broken {
		return nil
	}
	wt := p.popWaiterLocked()
	p.queueLocked(w)
	return wt
}

// queueLocked takes the place behind w's running request for a request
// about to be written. p.mu is held.
func (p *pyPool) queueLocked(w *worker) {
	w.inflight = 2
	w.writing = true
}

func (p *pyPool) popWaiterLocked() *waiter {
	wt := p.waiters[0]
	copy(p.waiters, p.waiters[1:])
	p.waiters[len(p.waiters)-1] = nil
	p.waiters = p.waiters[:len(p.waiters)-1]
	return wt
}

// acquire finds a worker for msg (nil for a batch). An idle worker comes
// first. When none is idle, a single request is queued behind the request
// of a busy worker (at most one behind each, see behindLocked), so that
// the worker reads it the moment it has written the reply before it;
// otherwise it waits in FIFO order. A waiter may have its request written
// to the worker by the goroutine that frees it (see finish), so that the
// worker starts on it at once.
func (p *pyPool) acquire(ctx context.Context, msg []byte) (handoff, error) {
	single := msg != nil
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return handoff{}, errPoolClosed
	}
	for len(p.idle) > 0 {
		w := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !w.dead() {
			p.take(w, !single)
			p.mu.Unlock()
			return handoff{w: w}, nil
		}
	}
	if single && len(p.waiters) == 0 {
		if w := p.behindLocked(); w != nil {
			p.queueLocked(w)
			p.mu.Unlock()
			return handoff{w: w, behind: true}, nil
		}
	}
	wt := &waiter{msg: msg, ch: make(chan handoff, 1), single: single}
	p.waiters = append(p.waiters, wt)
	p.mu.Unlock()
	select {
	case h := <-wt.ch:
		if h.w == nil {
			return handoff{}, errPoolClosed
		}
		return h, nil
	case <-ctx.Done():
		p.mu.Lock()
		removed := false
		for i, x := range p.waiters {
			if x == wt {
				p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
				removed = true
				break
			}
		}
		p.mu.Unlock()
		if !removed {
			// A worker is on its way, maybe with the request already
			// written: finish the round trip.
			h := <-wt.ch
			if h.w == nil {
				return handoff{}, errPoolClosed
			}
			return h, nil
		}
		return handoff{}, errcode.Wrap(errcode.DeadlineExceeded, fmt.Errorf("no worker became free: %w", context.Cause(ctx)))
	}
}

// wrote records that the request handed to w is written: another may now
// queue behind it. Only the goroutine that wrote the request calls it.
func (p *pyPool) wrote(w *worker) {
	p.mu.Lock()
	w.writing = false
	wt := p.queueBehindLocked(w)
	p.mu.Unlock()
	if wt != nil {
		p.hand(w, wt, true)
	}
}

// hasIdle reports whether a live worker is idle.
func (p *pyPool) hasIdle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.idle {
		if !w.dead() {
			return true
		}
	}
	return false
}

// release returns a worker that runs nothing (a new one, or one a batch
// took and did not use) to the pool.
func (p *pyPool) release(w *worker) {
	p.mu.Lock()
	w.inflight = 0
	w.writing = false
	w.exclusive = false
	p.freeLocked(w)
}

// freeLocked makes a healthy worker that runs nothing idle, or hands it to
// the first waiter after writing that waiter's request to it. p.mu is held
// and freeLocked unlocks it.
func (p *pyPool) freeLocked(w *worker) {
	if p.closed || w.dead() || w.broken {
		p.mu.Unlock()
		return
	}
	if len(p.waiters) == 0 {
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		return
	}
	wt := p.popWaiterLocked()
	p.take(w, !wt.single)
	p.mu.Unlock()
	p.hand(w, wt, false)
}

// hand gives w to wt, writing wt's request to it first when it is not too
// large: the worker can start on it (or find it queued) without waiting for
// the waiter's goroutine to be scheduled, and another request can queue
// behind it at once. behind: wt is queued behind the request w runs.
func (p *pyPool) hand(w *worker, wt *waiter, behind bool) {
	h := handoff{w: w, behind: behind}
	if wt.single && len(wt.msg) <= proxyWriteMax {
		h.at, h.seq, h.err = w.send(wt.msg)
		h.sent = true
	}
	wt.ch <- h
	if h.sent {
		p.wrote(w)
	}
}

// finish ends the round trip at the head of w's pipe: ok when its reply
// was read in full and the worker stays in service, extra what was read
// after that reply. The request queued behind gets its turn (with extra,
// the start of its own reply), and the worker takes another request behind
// that one or, if it runs nothing now, becomes free. finish returns false
// when extra cannot be the start of a reply (nothing is queued behind):
// the worker then counts as failed.
func (p *pyPool) finish(w *worker, ok bool, extra []byte) bool {
	p.mu.Lock()
	good := true
	if ok && len(extra) > 0 && w.inflight < 2 {
		ok, good = false, false
	}
	w.inflight--
	if !ok {
		w.broken = true
	}
	if w.inflight > 0 {
		t := turn{failed: !ok}
		if ok && len(extra) > 0 {
			t.pre = append([]byte(nil), extra...)
		}
		p.ticks++
		w.order = p.ticks
		w.turn <- t // never blocks: one request at most is behind
		var wt *waiter
		if ok {
			wt = p.queueBehindLocked(w)
		}
		p.mu.Unlock()
		if wt != nil {
			p.hand(w, wt, true)
		}
		return good
	}
	w.writing = false
	w.exclusive = false
	if !ok {
		p.mu.Unlock()
		return good
	}
	p.freeLocked(w)
	return good
}

// replyError is a failed round trip, already mapped to an HTTP status.
type replyError struct {
	status int
	msg    string
	err    error
}

func (e *replyError) Error() string { return e.msg }
func (e *replyError) Unwrap() error { return e.err }

// roundTrip sends one framed request (header included) to a worker and
// reads the reply into rbuf. A streamed reply goes to sink chunk by chunk
// and roundTrip returns kindEnd once it is over; the scoring timeout covers
// run() up to the start of its response, as in azmlinfsrv, where the
// generator is consumed after run() returned.
//
// A request queued behind another on a busy worker (see acquire) is
// written at once and cannot be withdrawn: it runs even if its client
// leaves, as a running request does. Its scoring timeout starts when the
// reply before it has been read, that is when the worker starts on it. If
// the worker is killed or dies before it reads the request, the request is
// sent to another worker; if the worker may have read it, it is answered
// 502 and never run again.
func (p *pyPool) roundTrip(ctx context.Context, msg, rbuf []byte, sink streamSink) (kind byte, payload, out []byte, elapsed time.Duration, rerr *replyError) {
	for attempt := 1; ; attempt++ {
		h, err := p.acquire(ctx, msg)
		if err != nil {
			status := http.StatusServiceUnavailable
			if errors.Is(err, context.DeadlineExceeded) {
				status = http.StatusGatewayTimeout
			}
			return 0, nil, rbuf, 0, &replyError{status, err.Error(), err}
		}
		w := h.w
		at, seq, err := h.at, h.seq, h.err
		if !h.sent {
			at, seq, err = w.send(msg)
			p.wrote(w)
		}
		var pre []byte
		if h.behind {
			t := <-w.turn
			if t.failed {
				unstarted := w.unstarted(at)
				if unstarted && attempt < maxAttempts && !p.isClosed() {
					p.srv.event(slog.LevelWarn, fmt.Sprintf("worker %d failed with a request queued on it that it had not read; the request goes to another worker", w.slot))
					continue
				}
				return 0, nil, rbuf, 0, p.queuedFailed(w, unstarted)
			}
			pre = t.pre
		}
		return p.readRun(w, seq, err, pre, rbuf, sink)
	}
}

// queuedFailed is the answer to a request that was queued behind another
// on a worker that failed: the worker may have read it (unstarted false),
// or it never started but has been handed to maxAttempts workers.
func (p *pyPool) queuedFailed(w *worker, unstarted bool) *replyError {
	w.waitExit()
	if p.isClosed() {
		return &replyError{http.StatusServiceUnavailable, errPoolClosed.Error(), errPoolClosed}
	}
	m := fmt.Sprintf("worker %d was killed (%s) while this request was queued on it, after it may have started the request; it is not run again", w.slot, w.exitText())
	if unstarted {
		m = fmt.Sprintf("worker %d was killed (%s) while this request was queued on it, before it started; the request was queued on %d workers that all failed", w.slot, w.exitText(), maxAttempts)
	}
	p.srv.event(slog.LevelError, m)
	return &replyError{http.StatusBadGateway, m, errcode.New(errcode.Unavailable, m)}
}

// readRun reads the reply to request seq, written to w (werr is that
// write's error), whose turn it is; pre is the start of the reply if it was
// read with the one before.
func (p *pyPool) readRun(w *worker, seq uint32, werr error, pre, rbuf []byte, sink streamSink) (kind byte, payload, out []byte, elapsed time.Duration, rerr *replyError) {
	clk := p.srv.cfg.Clock
	start := clk.Now()
	var timedOut atomic.Bool
	timer := clk.AfterFunc(p.cfg.ScoringTimeout, func() {
		timedOut.Store(true)
		w.kill()
	})
	err := werr
	var extra []byte
	// The request's records and printed lines (D and L frames before the
	// reply) are held in rbuf and handed to the background writers once
	// the worker has its next request: not on the worker's critical path.
	var heldArr [4]sideFrame
	held := heldArr[:0]
	w.rmu.Lock()
	if err == nil {
		kind, payload, rbuf, extra, held, err = p.readReplyHeld(w.resp, rbuf, pre, held)
	}
	if err == nil && kind == kindStream {
		p.srv.takeSides(held)
		held = held[:0]
		timer.Stop()
		elapsed = clk.Since(start)
		p.mu.Lock()
		p.streamed = true
		p.mu.Unlock()
		pending := append([]byte(nil), extra...)
		extra = nil
		if timedOut.Load() {
			err = errors.New("timed out")
		} else if err = sink.start(payload, elapsed); err == nil {
			kind, payload, rbuf, extra, err = p.pump(w, seq, rbuf, pending, sink)
		}
	}
	w.rmu.Unlock()
	timer.Stop()
	if elapsed == 0 {
		elapsed = clk.Since(start)
	}
	if err == nil && kind != kindOK && kind != kindError && kind != kindResponse && kind != kindEnd {
		err = fmt.Errorf("%w: unexpected kind %q", errProtocol, kind)
	}
	if !p.finish(w, err == nil && !timedOut.Load(), extra) && err == nil {
		err = fmt.Errorf("%w: %d bytes after a %d-byte frame", errProtocol, len(extra), len(payload)+frameHeader)
	}
	if err != nil {
		p.srv.takeSides(held)
		return 0, nil, rbuf, elapsed, p.failed(w, err, timedOut.Load(), "run()")
	}
	// A reply that won the race against the timeout is answered; the
	// worker is being killed and replaced all the same.
	p.srv.takeSides(held)
	return kind, payload, rbuf, elapsed, nil
}

// failed kills a worker whose round trip failed (err; timedOut when the
// scoring timeout killed it), waits for it, and returns what the callers of
// fn (run() or run_batch()) get.
func (p *pyPool) failed(w *worker, err error, timedOut bool, fn string) *replyError {
	w.kill()
	w.waitExit()
	switch {
	case timedOut:
		ms := p.cfg.ScoringTimeout.Milliseconds()
		p.srv.event(slog.LevelWarn, fmt.Sprintf("%s did not finish within the scoring timeout of %d ms; worker %d was killed and is being replaced", fn, ms, w.slot))
		m := fmt.Sprintf("Scoring timeout after %d ms", ms)
		return &replyError{http.StatusGatewayTimeout, m, errcode.New(errcode.DeadlineExceeded, m)}
	case p.isClosed():
		return &replyError{http.StatusServiceUnavailable, errPoolClosed.Error(), errPoolClosed}
	case errors.Is(err, errProtocol):
		m := fmt.Sprintf("worker %d sent a malformed reply (%v); it was killed and is being replaced", w.slot, err)
		p.srv.event(slog.LevelError, m)
		return &replyError{http.StatusBadGateway, m, errcode.New(errcode.Internal, m)}
	default:
		m := fmt.Sprintf("worker %d exited (%s) while running this request; it is being restarted", w.slot, w.exitText())
		p.srv.event(slog.LevelError, m)
		return &replyError{http.StatusBadGateway, m, errcode.New(errcode.Unavailable, m)}
	}
}

// readReply is readFrameAfter for the frames of a reply: the records and
// telemetry of the request (D and L frames, sent before the reply in the
// same write) are handed to the collector and telemetry, and the next frame
// is returned.
func (p *pyPool) readReply(r io.Reader, buf, pre []byte) (kind byte, payload, out, extra []byte, err error) {
	for {
		kind, payload, buf, extra, err = readFrameAfter(r, buf, pre)
		if err != nil || !isSide(kind) {
			return kind, payload, buf, extra, err
		}
		if err := p.srv.checkSide(kind, uint32(len(payload))); err != nil {
			return kind, payload, buf, extra, err
		}
		p.srv.takeSide(kind, payload)
		pre = extra
	}
}

// sideFrame is a D or L frame (checked by checkSide) held until the worker
// that sent it has been released.
type sideFrame struct {
	kind    byte
	payload []byte
}

// readReplyHeld is readReply that holds the D and L frames before the
// reply instead of handing them over: they are appended to held, their
// payloads slices of out (or of the buffers it grew from), valid until out
// is read into again. The frames are read in place, none is moved. pre
// holds the reply's first bytes if they were read with the reply before.
func (p *pyPool) readReplyHeld(r io.Reader, buf, pre []byte, held []sideFrame) (kind byte, payload, out, extra []byte, _ []sideFrame, err error) {
	if cap(buf) < max(4096, len(pre)) {
		buf = make([]byte, max(4096, len(pre)))
	}
	buf = buf[:cap(buf)]
	off, n := 0, copy(buf, pre) // the frame being read starts at off; n bytes are in buf
	// fill reads until buf holds at least want bytes (want-off of the
	// frame), reading no further than limit (greedy when limit is
	// len(buf)); a full buffer is replaced by a larger one holding the
	// frame's bytes from its start (the held frames keep the old one).
	fill := func(want int, greedy bool) error {
		for n < want {
			if n == len(buf) {
				nb := make([]byte, max(2*len(buf), want-off, (n-off)+64<<10))
				copy(nb, buf[off:n])
				n -= off
				want -= off
				off = 0
				buf = nb
			}
			end := len(buf)
			if !greedy {
				end = min(want, len(buf))
			}
			m, err := r.Read(buf[n:end])
			n += m
			if err != nil && n < want {
				if err == io.EOF && n > off {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		return nil
	}
	for {
		if err := fill(off+frameHeader, true); err != nil {
			return 0, nil, buf, nil, held, err
		}
		size := binary.BigEndian.Uint32(buf[off:])
		if size > maxFrame {
			return 0, nil, buf, nil, held, fmt.Errorf("%w: frame of %d bytes", errProtocol, size)
		}
		// Grow as the data arrives rather than trusting the length up
		// front.
		if err := fill(off+frameHeader+int(size), false); err != nil {
			return 0, nil, buf, nil, held, err
		}
		total := off + frameHeader + int(size)
		kind, payload = buf[off+4], buf[off+frameHeader:total]
		if !isSide(kind) {
			return kind, payload, buf, buf[total:n], held, nil
		}
		if err := p.srv.checkSide(kind, size); err != nil {
			return kind, payload, buf, buf[total:n], held, err
		}
		held = append(held, sideFrame{kind, payload})
		off = total
	}
}

// takeSides hands held D and L frames to the collector and telemetry.
func (s *Server) takeSides(held []sideFrame) {
	if len(held) == 0 {
		return
	}
	now := s.cfg.Clock.Now()
	if s.dc != nil {
		s.dc.offer(held, now)
	}
	if s.tel != nil {
		for _, f := range held {
			if f.kind == kindPrints {
				s.tel.offerPrints(f.payload, now)
			}
		}
	}
}

// pump copies the chunks of a streamed reply (to request seq) to sink until
// the worker ends the stream, and returns what was read after its end (the
// start of the next reply). When the client goes away the worker is asked
// to stop, and what it still sends is read and dropped. The caller holds
// w.rmu.
func (p *pyPool) pump(w *worker, seq uint32, rbuf, pending []byte, sink streamSink) (kind byte, payload, out, extra []byte, err error) {
	cancelled := false
	for {
		kind, payload, rbuf, extra, err = p.readReply(w.resp, rbuf, pending)
		if err != nil {
			return kind, payload, rbuf, nil, err
		}
		switch kind {
		case kindChunk:
			pending = append(pending[:0], extra...)
			if !cancelled && sink.chunk(payload) != nil {
				cancelled = true
				p.cancel(w, seq)
			}
		case kindEnd:
			return kind, payload, rbuf, extra, nil
		default:
			return kind, payload, rbuf, nil, fmt.Errorf("%w: kind %q inside a stream", errProtocol, kind)
		}
	}
}

// cancel asks w to stop streaming the reply to request seq. The write
// waits for the request pipe: a request queued behind may be under way on
// it, and the worker reads that only when the stream is over, so the
// reader of the stream must not wait for it.
func (p *pyPool) cancel(w *worker, seq uint32) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		w.wmu.Lock()
		n, _ := w.req.Write(cancelMessage(seq))
		w.written += int64(n)
		w.wmu.Unlock()
	}()
}

// close stops every worker and waits for them.
func (p *pyPool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	waiters := p.waiters
	p.waiters = nil
	p.idle = nil
	close(p.done)
	p.mu.Unlock()
	for _, wt := range waiters {
		wt.ch <- handoff{}
	}
	p.killAll()
}

// wait waits for every process and goroutine of the pool to end.
func (p *pyPool) wait() { p.wg.Wait() }
