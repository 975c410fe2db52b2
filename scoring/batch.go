package scoring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aksml/aksml/errcode"
	"k8s.io/utils/clock"
)

// BatchHandler is an optional interface for a Handler that scores several
// requests at once, the Go counterpart of a score.py that defines
// run_batch(inputs). With Config.MaxBatchSize set, POST /score (and GET
// /score) calls RunBatch with the bodies of up to MaxBatchSize concurrent
// requests instead of calling Run for each.
//
// RunBatch returns one BatchResult per input, in the order of the inputs:
// result i answers the request whose body is inputs[i]. A BatchResult with
// an Err fails that request alone, as an error from Run would (an
// errcode.InvalidArgument error is a 400 naming it, any other a 500 whose
// text goes to the log). An error from RunBatch itself, a panic, or a slice
// of the wrong length fails every request of the batch with 500. ctx ends
// at the scoring timeout, which every request of the batch gets from the
// moment the batch starts; the inputs must not be kept after RunBatch
// returns.
type BatchHandler interface {
	Handler
	RunBatch(ctx context.Context, inputs [][]byte) ([]BatchResult, error)
}

// BatchResult is the answer to one input of a batch: Output, the response
// body (application/json), or Err.
type BatchResult struct {
	Output []byte
	Err    error
}

// batchItem is one request waiting in, or served by, a batch.
type batchItem struct {
	input   []byte
	arrived time.Time
	done    chan struct{}
	once    sync.Once
	res     batchReply
}

// batchReply is the answer to one request of a batch: a worker's reply
// (kindOK, kindError or kindResponse with its payload) or rerr.
type batchReply struct {
	kind    byte
	payload []byte
	elapsed time.Duration
	rerr    *replyError
}

// deliver answers the item; only the first answer counts (a timeout may
// answer before the batch does).
func (it *batchItem) deliver(r batchReply) {
	it.once.Do(func() {
		it.res = r
		close(it.done)
	})
}

// batchRunner runs batches: the Python pool (one batch per worker) or a Go
// BatchHandler (one batch per slot).
type batchRunner interface {
	// acquire waits for a free worker; it fails once ctx ends.
	acquire(ctx context.Context) (any, error)
	// release gives back a worker that ran nothing.
	release(slot any)
	// run runs a batch on the worker, answers every item, and frees the
	// worker.
	run(slot any, items []*batchItem)
	// spare reports whether a worker other than the ones acquired is free.
	spare() bool
}

// batcher gathers the requests of a replica into batches. One dispatcher
// goroutine takes a free worker, then the oldest queued requests: as soon
// as size of them wait, once the oldest has waited delay, or once another
// worker is free too, whichever comes first. Requests queue while every
// worker is busy, so under load a batch leaves full without waiting; and a
// partial batch is held only while it would take the last free worker, so
// a replica never idles two workers while requests wait.
type batcher struct {
	clk    clock.WithDelayedExecution
	size   int
	delay  time.Duration
	runner batchRunner

	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{} // a request joined the queue
	timer  batchTimer    // ends the wait of a partial batch; the dispatcher's, made by start
	wg     sync.WaitGroup

	mu     sync.Mutex
	queue  []*batchItem
	closed bool
	// spared is set (by tests) when the dispatcher lets a partial batch
	// leave before its delay because another worker is free.
	spared func()

	// queued, when set (by tests), is called with the queue's length each
	// time a request joins it; batched with the sizes of the batches that
	// leave.
	queued  func(n int)
	batched func(n int)
	batches atomic.Int64 // how many batches have left
	items   atomic.Int64 // how many requests they held
}

func newBatcher(clk clock.WithDelayedExecution, size int, delay time.Duration, r batchRunner) *batcher {
	ctx, cancel := context.WithCancel(context.Background())
	return &batcher{clk: clk, size: size, delay: delay, runner: r, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1)}
}

func (b *batcher) start() {
	b.timer = newBatchTimer(b.clk)
	b.wg.Add(1)
	go b.dispatch()
}

// submit queues one request and waits for its answer. A request whose ctx
// ends while it is queued leaves the queue with 504; once its batch runs,
// the scoring timeout bounds the wait.
func (b *batcher) submit(ctx context.Context, input []byte) batchReply {
	it := &batchItem{input: input, arrived: b.clk.Now(), done: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return batchReply{rerr: &replyError{http.StatusServiceUnavailable, errPoolClosed.Error(), errPoolClosed}}
	}
	b.queue = append(b.queue, it)
	n := len(b.queue)
	b.mu.Unlock()
	b.poke()
	if b.queued != nil {
		b.queued(n)
	}
	select {
	case <-it.done:
		return it.res
	case <-ctx.Done():
	}
	b.mu.Lock()
	removed := false
	for i, x := range b.queue {
		if x == it {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			removed = true
			break
		}
	}
	b.mu.Unlock()
	if !removed {
		// Its batch is running (or over): the answer comes, at the latest
		// at the scoring timeout.
		<-it.done
		return it.res
	}
	err := errcode.Wrap(errcode.DeadlineExceeded, fmt.Errorf("no worker became free: %w", context.Cause(ctx)))
	return batchReply{rerr: &replyError{http.StatusGatewayTimeout, err.Error(), err}}
}

// dispatch forms batches until the batcher closes.
func (b *batcher) dispatch() {
	defer b.wg.Done()
	defer b.timer.close()
	for {
		if !b.waitQueued() {
			return
		}
		slot, err := b.runner.acquire(b.ctx)
		if err != nil {
			return
		}
		items := b.gather()
		if items == nil {
			b.runner.release(slot)
			return
		}
		b.batches.Add(1)
		b.items.Add(int64(len(items)))
		if b.batched != nil {
			b.batched(len(items))
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.runner.run(slot, items)
			// A worker is free again: a partial batch being held for
			// company may leave now.
			b.poke()
		}()
	}
}

// poke wakes the dispatcher to look at the queue and the workers again.
func (b *batcher) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// waitQueued waits until a request is queued; false when the batcher
// closed.
func (b *batcher) waitQueued() bool {
	for {
		b.mu.Lock()
		n := len(b.queue)
		b.mu.Unlock()
		if n > 0 {
			return true
		}
		select {
		case <-b.wake:
		case <-b.ctx.Done():
			return false
		}
	}
}

// gather takes the next batch off the queue, waiting (with a worker in
// hand) until it is full, its oldest request has waited the delay, or
// another worker is free (holding requests back while two workers idle
// would only add latency); nil when the batcher closed.
func (b *batcher) gather() []*batchItem {
	var armed time.Time // the deadline the timer is armed for, if any
	for {
		b.mu.Lock()
		n := len(b.queue)
		var due time.Time
		leave := false
		if n > 0 {
			due = b.queue[0].arrived.Add(b.delay)
			leave = n >= b.size || !b.clk.Now().Before(due)
		}
		b.mu.Unlock()
		early := n > 0 && !leave && b.runner.spare()
		if leave || early {
			if items := b.take(); items != nil {
				if !armed.IsZero() {
					b.timer.disarm()
				}
				if early && b.spared != nil {
					b.spared()
				}
				return items
			}
			continue // the queue emptied meanwhile (its callers gave up)
		}
		// Arm once per deadline: requests joining a partial batch do not
		// move it.
		if n > 0 && !due.Equal(armed) {
			b.timer.arm(due.Sub(b.clk.Now()))
			armed = due
		}
		select {
		case <-b.wake:
		case <-b.timer.fired():
			// Fired (or a stale fire): the next look at the queue decides.
			armed = time.Time{}
		case <-b.ctx.Done():
			b.timer.disarm()
			return nil
		}
	}
}

// take removes the oldest requests, up to size, from the queue; nil if it
// is empty.
func (b *batcher) take() []*batchItem {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := min(len(b.queue), b.size)
	if k == 0 {
		return nil
	}
	items := make([]*batchItem, k)
	copy(items, b.queue)
	rest := copy(b.queue, b.queue[k:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	return items
}

// stop ends the dispatcher and answers the queued requests with 503;
// batches under way go on (closing the workers ends them).
func (b *batcher) stop() {
	b.mu.Lock()
	b.closed = true
	queue := b.queue
	b.queue = nil
	b.mu.Unlock()
	b.cancel()
	for _, it := range queue {
		it.deliver(batchReply{rerr: &replyError{http.StatusServiceUnavailable, errPoolClosed.Error(), errPoolClosed}})
	}
}

// wait waits for the dispatcher and the batches it started.
func (b *batcher) wait() { b.wg.Wait() }

// timeoutReply is the answer of a request whose batch ran past the
// scoring timeout.
func timeoutReply(timeout, elapsed time.Duration) batchReply {
	m := fmt.Sprintf("Scoring timeout after %d ms", timeout.Milliseconds())
	return batchReply{elapsed: elapsed, rerr: &replyError{http.StatusGatewayTimeout, m, errcode.New(errcode.DeadlineExceeded, m)}}
}

// ---------------------------------------------------------------- Python

// pyBatches runs batches on the Python workers.
type pyBatches struct{ p *pyPool }

func (r pyBatches) acquire(ctx context.Context) (any, error) {
	h, err := r.p.acquire(ctx, nil)
	if err != nil {
		return nil, err
	}
	return h.w, nil
}

func (r pyBatches) release(slot any) { r.p.release(slot.(*worker)) }

func (r pyBatches) run(slot any, items []*batchItem) { r.p.runBatch(slot.(*worker), items) }

func (r pyBatches) spare() bool { return r.p.hasIdle() }

// batchMessage frames a batch for a worker: uint32 n, then per request
// uint32 length and the body.
func batchMessage(items []*batchItem) []byte {
	size := frameHeader + 4
	for _, it := range items {
		size += 4 + len(it.input)
	}
	msg := make([]byte, frameHeader+4, size)
	binary.BigEndian.PutUint32(msg[frameHeader:], uint32(len(items)))
	for _, it := range items {
		msg = binary.BigEndian.AppendUint32(msg, uint32(len(it.input)))
		msg = append(msg, it.input...)
	}
	putHeader(msg, kindBatch)
	return msg
}

// splitBatchReply splits a worker's answer to a batch of n: uint32 n, then
// per request a kind byte (O, E or P), uint32 length and the payload.
func splitBatchReply(payload []byte, n int) ([]batchReply, error) {
	if len(payload) < 4 {
		return nil, fmt.Errorf("%w: batch reply of %d bytes", errProtocol, len(payload))
	}
	if got := binary.BigEndian.Uint32(payload); uint64(got) != uint64(n) {
		return nil, fmt.Errorf("%w: %d answers to a batch of %d", errProtocol, got, n)
	}
	out := make([]batchReply, n)
	rest := payload[4:]
	for i := range out {
		if len(rest) < 5 {
			return nil, fmt.Errorf("%w: answer %d of a batch is cut short", errProtocol, i)
		}
		kind, size := rest[0], binary.BigEndian.Uint32(rest[1:])
		rest = rest[5:]
		if uint64(size) > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: answer %d of %d bytes in %d", errProtocol, i, size, len(rest))
		}
		switch kind {
		case kindOK, kindError, kindResponse:
		default:
			return nil, fmt.Errorf("%w: answer %d of a batch has kind %q", errProtocol, i, kind)
		}
		out[i] = batchReply{kind: kind, payload: rest[:size:size]}
		rest = rest[size:]
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the answers of a batch", errProtocol, len(rest))
	}
	return out, nil
}

// runBatch sends a batch to w, waits for its answers and delivers them. At
// the scoring timeout every request of the batch is answered 504 at once
// and the worker is killed and replaced, as for a single run().
func (p *pyPool) runBatch(w *worker, items []*batchItem) {
	msg := batchMessage(items)
	clk := p.srv.cfg.Clock
	start := clk.Now()
	var timedOut atomic.Bool
	timer := clk.AfterFunc(p.cfg.ScoringTimeout, func() {
		timedOut.Store(true)
		// No clock call here: a fake clock runs this under its lock.
		r := timeoutReply(p.cfg.ScoringTimeout, p.cfg.ScoringTimeout)
		for _, it := range items {
			it.deliver(r)
		}
		w.kill()
	})
	_, _, err := w.send(msg)
	var kind byte
	var payload, extra []byte
	if err == nil {
		// The records and telemetry of the batch come first.
		w.rmu.Lock()
		kind, payload, _, extra, err = p.readReply(w.resp, nil, nil)
		w.rmu.Unlock()
		if err == nil && len(extra) > 0 {
			err = fmt.Errorf("%w: %d bytes after the answers to a batch", errProtocol, len(extra))
		}
	}
	timer.Stop()
	elapsed := clk.Since(start)
	if err == nil && kind != kindBatchReply {
		err = fmt.Errorf("%w: kind %q in answer to a batch", errProtocol, kind)
	}
	var replies []batchReply
	if err == nil {
		replies, err = splitBatchReply(payload, len(items))
	}
	// A batch has its worker to itself: nothing is queued behind it.
	p.finish(w, err == nil && !timedOut.Load(), nil)
	if err != nil {
		rerr := p.failed(w, err, timedOut.Load(), "run_batch()")
		for _, it := range items {
			it.deliver(batchReply{elapsed: elapsed, rerr: rerr})
		}
		return
	}
	for i, it := range items {
		replies[i].elapsed = elapsed
		it.deliver(replies[i])
	}
}

// ---------------------------------------------------------------- Go

// goBatches runs batches on a Go BatchHandler, at most cap(slots) at once.
type goBatches struct {
	s     *Server
	h     BatchHandler
	slots chan struct{}
	stop  <-chan struct{} // the batcher stopped: the replica closes
}

func (g *goBatches) acquire(ctx context.Context) (any, error) {
	select {
	case g.slots <- struct{}{}:
		return nil, nil
	case <-ctx.Done():
		return nil, errPoolClosed
	}
}

func (g *goBatches) release(any) { <-g.slots }

func (g *goBatches) spare() bool { return len(g.slots) < cap(g.slots) }

func (g *goBatches) run(_ any, items []*batchItem) {
	defer g.release(nil)
	s := g.s
	clk := s.cfg.Clock
	inputs := make([][]byte, len(items))
	for i, it := range items {
		inputs[i] = it.input
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		res []BatchResult
		err error
	}
	done := make(chan outcome, 1)
	start := clk.Now()
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- outcome{err: errcode.Errorf(errcode.Internal, "panic: %v\n%s", p, debug.Stack())}
			}
		}()
		res, err := g.h.RunBatch(ctx, inputs)
		done <- outcome{res, err}
	}()
	timer := clk.NewTimer(s.cfg.ScoringTimeout)
	var o outcome
	select {
	case o = <-done:
		timer.Stop()
	case <-timer.C():
		// RunBatch is abandoned with its context cancelled; its slot is
		// free again.
		cancel()
		ms := s.cfg.ScoringTimeout.Milliseconds()
		s.event(slog.LevelWarn, fmt.Sprintf("RunBatch did not finish within the scoring timeout of %d ms", ms))
		r := timeoutReply(s.cfg.ScoringTimeout, clk.Since(start))
		for _, it := range items {
			it.deliver(r)
		}
		return
	case <-g.stop:
		// The replica closes: RunBatch is abandoned with its context
		// cancelled.
		timer.Stop()
		r := batchReply{elapsed: clk.Since(start), rerr: &replyError{http.StatusServiceUnavailable, errPoolClosed.Error(), errPoolClosed}}
		for _, it := range items {
			it.deliver(r)
		}
		return
	}
	elapsed := clk.Since(start)
	if o.err == nil && len(o.res) != len(items) {
		o.err = fmt.Errorf("RunBatch returned %d results for %d inputs", len(o.res), len(items))
	}
	if o.err != nil {
		s.event(slog.LevelError, "Encountered error in RunBatch: "+o.err.Error())
		r := batchReply{elapsed: elapsed, rerr: &replyError{http.StatusInternalServerError, runFailed, o.err}}
		for _, it := range items {
			it.deliver(r)
		}
		return
	}
	for i, it := range items {
		if err := o.res[i].Err; err != nil {
			status, msg := s.goErrorStatus(err)
			it.deliver(batchReply{elapsed: elapsed, rerr: &replyError{status, msg, err}})
			continue
		}
		it.deliver(batchReply{kind: kindOK, payload: o.res[i].Output, elapsed: elapsed})
	}
}

// ---------------------------------------------------------------- HTTP

// startBatching turns batching on after init, when Config.MaxBatchSize is
// set: the script must define run_batch, the Go handler implement
// BatchHandler.
func (s *Server) startBatching() error {
	if s.cfg.MaxBatchSize == 0 {
		return nil
	}
	var r batchRunner
	var g *goBatches
	if s.py != nil {
		if !s.info.Batch {
			return errcode.Errorf(errcode.FailedPrecondition,
				"entry script %s defines no run_batch(inputs) function, which batching (max_batch_size %d) needs: define run_batch or turn batching off; the replica never becomes ready",
				s.cfg.entryRel(), s.cfg.MaxBatchSize)
		}
		r = pyBatches{s.py}
	} else {
		bh, ok := s.goh.(BatchHandler)
		if !ok {
			return errcode.Errorf(errcode.FailedPrecondition,
				"the Go handler %T does not implement scoring.BatchHandler (RunBatch), which batching (max_batch_size %d) needs: implement it or turn batching off; the replica never becomes ready",
				s.goh, s.cfg.MaxBatchSize)
		}
		g = &goBatches{s: s, h: bh, slots: make(chan struct{}, s.cfg.Workers)}
		r = g
	}
	b := newBatcher(s.cfg.Clock, s.cfg.MaxBatchSize, s.cfg.MaxBatchDelay, r)
	if g != nil {
		g.stop = b.ctx.Done()
	}
	b.queued, b.batched, b.spared = s.batchHooks.queued, s.batchHooks.batched, s.batchHooks.spared
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Load() == stateClosed {
		return errPoolClosed
	}
	s.batch = b
	b.start()
	return nil
}

// scoreBatch serves POST (or GET) /score through the batcher.
func (s *Server) scoreBatch(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r, nil, s.cfg.MaxBodyBytes)
	if err != nil {
		s.bodyError(w, err)
		return
	}
	if r.Method == http.MethodGet {
		body = queryJSON(r)
	}
	rep := s.batch.submit(r.Context(), body)
	if rep.rerr != nil {
		w.Header()["X-Ms-Run-Fn-Exec-Ms"] = execMS(rep.elapsed)
		writeError(w, rep.rerr.status, rep.rerr.msg, rep.rerr.status >= 500 && rep.rerr.status != http.StatusServiceUnavailable)
		return
	}
	s.writeReply(w, rep.kind, rep.payload, rep.elapsed)
}

// goErrorStatus maps an error of a Go Run (or of one input of RunBatch) to
// the status and message the caller sees, logging the text of a 5xx.
func (s *Server) goErrorStatus(err error) (int, string) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, errcode.InvalidArgument):
		status = http.StatusBadRequest
	case errors.Is(err, errcode.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
	}
	msg := runFailed
	switch status {
	case http.StatusBadRequest:
		// The model's own refusal of the input is meant for the caller.
		msg = "The input was rejected by the model: " + err.Error()
	case http.StatusGatewayTimeout:
		msg = fmt.Sprintf("Scoring timeout after %d ms", s.cfg.ScoringTimeout.Milliseconds())
	}
	if status >= 500 {
		// The error text stays in the log: it can hold data.
		s.event(slog.LevelError, "Encountered error in Run: "+err.Error())
	}
	return status, msg
}
