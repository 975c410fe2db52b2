package scoring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
	clocktesting "k8s.io/utils/clock/testing"
)

// batchScript answers each input of a batch with the input and the size of
// the batch it came in, except for inputs that ask for something else.
const batchScript = `import os, time
from azureml.contrib.services.aml_response import AMLResponse

def init():
    pass

def run(raw_data):
    return {"single": raw_data}

def run_batch(inputs):
    out = []
    for x in inputs:
        if x == "fail-all":
            raise RuntimeError("the whole batch fails")
        if x == "hang":
            time.sleep(3600)
        if x == "fail-one":
            out.append(ValueError("this input fails: " + x))
        elif x == "teapot":
            out.append(AMLResponse("short and stout", 418))
        elif x == "pid":
            out.append(os.getpid())
        else:
            out.append({"input": x, "batch": len(inputs)})
    if "short" in inputs:
        out.pop()
    return out
`

// batchWatch records what the batcher of s does: the queue's length after
// each arrival and the size of each batch that leaves.
type batchWatch struct {
	queued  chan int
	batched chan int
	spared  chan struct{} // a partial batch left early: another worker was free
}

func watchBatches(s *Server) *batchWatch {
	bw := &batchWatch{queued: make(chan int, 256), batched: make(chan int, 256), spared: make(chan struct{}, 256)}
	s.batchHooks.queued = func(n int) { bw.queued <- n }
	s.batchHooks.batched = func(n int) { bw.batched <- n }
	s.batchHooks.spared = func() { bw.spared <- struct{}{} }
	return bw
}

// drain forgets the events seen so far.
func (bw *batchWatch) drain() {
	for {
		select {
		case <-bw.queued:
		case <-bw.batched:
		case <-bw.spared:
		default:
			return
		}
	}
}

// waitQueued waits until the queue has held n requests.
func (bw *batchWatch) waitQueued(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case got := <-bw.queued:
			if got >= n {
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %d queued requests", n)
		}
	}
}

func (bw *batchWatch) next(t *testing.T) int {
	t.Helper()
	select {
	case n := <-bw.batched:
		return n
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for a batch")
		return 0
	}
}

// pyBatchServer is pyServer with batching hooks installed before init.
func pyBatchServer(t *testing.T, cfg Config) (*Server, *batchWatch) {
	t.Helper()
	dir := writeFiles(t, t.TempDir(), map[string]string{"score.py": batchScript})
	cfg.EntryScript, cfg.SourceDir, cfg.Interpreter = "score.py", dir, testPython(t)
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bw := watchBatches(s)
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Wait(ctx); err != nil {
		t.Fatalf("init: %v\n%s", err, strings.Join(s.Logs(0, false), "\n"))
	}
	return s, bw
}

// sendAll posts every body at once and returns the answers, by body.
func sendAll(s *Server, bodies ...string) map[string]response {
	var mu sync.Mutex
	out := map[string]response{}
	var wg sync.WaitGroup
	for _, b := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := do(s, "POST", "/score", b)
			mu.Lock()
			out[b] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func TestBatchPythonGathersConcurrentRequests(t *testing.T) {
	t.Parallel()
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	s, bw := pyBatchServer(t, Config{MaxBatchSize: 4, MaxBatchDelay: time.Second, Clock: fc})
	// The clock never moves: the batch leaves because it is full.
	got := sendAll(s, "a", "b", "c", "d")
	for _, b := range []string{"a", "b", "c", "d"} {
		r := got[b]
		if want := fmt.Sprintf(`{"input": %q, "batch": 4}`, b); r.status != 200 || r.body != want {
			t.Errorf("%s: %d %s, want 200 %s", b, r.status, r.body, want)
		}
		if r.header.Get("X-Ms-Run-Function-Failed") != "False" || r.header.Get("X-Ms-Run-Fn-Exec-Ms") == "" {
			t.Errorf("%s: headers %v", b, r.header)
		}
	}
	if n := bw.next(t); n != 4 {
		t.Errorf("batch of %d, want 4", n)
	}
	// GET /score: the query as JSON, as run(raw_data) would get it.
	others := make(chan map[string]response, 1)
	go func() { others <- sendAll(s, "e", "f", "g") }()
	r := do(s, "GET", "/score?x=1", "")
	<-others
	var v struct {
		Input string
		Batch int
	}
	if err := json.Unmarshal([]byte(r.body), &v); r.status != 200 || err != nil || v.Input != `{"x":1}` || v.Batch != 4 {
		t.Errorf("GET: %d %s", r.status, r.body)
	}
}

func TestBatchPythonPartialBatchLeavesAfterDelay(t *testing.T) {
	t.Parallel()
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	s, bw := pyBatchServer(t, Config{MaxBatchSize: 8, MaxBatchDelay: 50 * time.Millisecond, Clock: fc})
	done := make(chan map[string]response, 1)
	go func() { done <- sendAll(s, "x", "y", "z") }()
	bw.waitQueued(t, 3)
	fc.Step(49 * time.Millisecond)
	eventually(t, "the batch timer", fc.HasWaiters)
	select {
	case n := <-bw.batched:
		t.Fatalf("a batch of %d left before the delay", n)
	case <-done:
		t.Fatal("answers before the delay")
	default:
	}
	fc.Step(time.Millisecond)
	if n := bw.next(t); n != 3 {
		t.Errorf("batch of %d, want 3", n)
	}
	for b, r := range <-done {
		if want := fmt.Sprintf(`{"input": %q, "batch": 3}`, b); r.status != 200 || r.body != want {
			t.Errorf("%s: %d %s, want %s", b, r.status, r.body, want)
		}
	}
}

func TestBatchPythonErrors(t *testing.T) {
	t.Parallel()
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	s, _ := pyBatchServer(t, Config{MaxBatchSize: 3, MaxBatchDelay: time.Second, Clock: fc})

	// Per request: an exception instance fails its request alone, an
	// AMLResponse is sent as it is.
	got := sendAll(s, "ok", "fail-one", "teapot")
	if r := got["ok"]; r.status != 200 || r.body != `{"input": "ok", "batch": 3}` {
		t.Errorf("ok: %d %s", r.status, r.body)
	}
	if r := got["fail-one"]; r.status != 500 || r.body != `{"message":"`+runFailed+`"}` || r.header.Get("X-Ms-Run-Function-Failed") != "True" {
		t.Errorf("fail-one: %d %s %v", r.status, r.body, r.header)
	}
	if r := got["teapot"]; r.status != 418 || r.body != "short and stout" {
		t.Errorf("teapot: %d %s", r.status, r.body)
	}
	// The worker's output reaches the log on its own.
	eventually(t, "the per-request exception in the log", func() bool { return logsContain(s, "ValueError: this input fails: fail-one") })

	// Per batch: run_batch raises, or returns the wrong number of answers.
	for _, bad := range []string{"fail-all", "short"} {
		got = sendAll(s, bad, "p-"+bad, "q-"+bad)
		for b, r := range got {
			if r.status != 500 || r.body != `{"message":"`+runFailed+`"}` {
				t.Errorf("%s: %d %s, want 500", b, r.status, r.body)
			}
		}
	}
	eventually(t, "the batch errors in the log", func() bool {
		return logsContain(s, "RuntimeError: the whole batch fails") && logsContain(s, "run_batch returned 2 answers for 3 inputs")
	})
	// The worker serves on.
	got = sendAll(s, "1", "2", "3")
	if r := got["2"]; r.status != 200 {
		t.Errorf("after the errors: %d %s", r.status, r.body)
	}
}

func TestBatchPythonTimeoutPerRequest(t *testing.T) {
	t.Parallel()
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	s, bw := pyBatchServer(t, Config{MaxBatchSize: 2, MaxBatchDelay: time.Second, ScoringTimeout: 2 * time.Second, Clock: fc})
	pid := sendAll(s, "pid", "pid")["pid"].body
	bw.next(t)
	done := make(chan map[string]response, 1)
	go func() { done <- sendAll(s, "hang", "quick") }()
	bw.next(t)
	// The batch's scoring timer is the only one.
	eventually(t, "the scoring timer", fc.HasWaiters)
	fc.Step(2 * time.Second)
	for b, r := range <-done {
		if r.status != 504 || r.body != `{"message":"Scoring timeout after 2000 ms"}` {
			t.Errorf("%s: %d %s, want 504", b, r.status, r.body)
		}
	}
	eventually(t, "the worker's replacement", func() bool { return logsContain(s, "restarted") })
	got := sendAll(s, "pid", "pid")["pid"]
	if got.status != 200 || got.body == pid {
		t.Errorf("after the timeout: %d %s (the hung worker was %s)", got.status, got.body, pid)
	}
	eventually(t, "the timeout in the log", func() bool {
		return logsContain(s, "run_batch() did not finish within the scoring timeout of 2000 ms")
	})
}

func TestBatchPythonAnswersReachTheirCallers(t *testing.T) {
	t.Parallel()
	// Two workers, real time, no delay: batches form from what queues
	// while both workers are busy.
	s, bw := pyBatchServer(t, Config{MaxBatchSize: 8, Workers: 2})
	const n = 200
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("req-%03d", i)
	}
	got := sendAll(s, bodies...)
	for _, b := range bodies {
		var v struct {
			Input string
			Batch int
		}
		r := got[b]
		if err := json.Unmarshal([]byte(r.body), &v); r.status != 200 || err != nil || v.Input != b || v.Batch < 1 || v.Batch > 8 {
			t.Fatalf("%s: %d %s", b, r.status, r.body)
		}
	}
	total, most := 0, 0
	for total < n {
		k := bw.next(t)
		total += k
		most = max(most, k)
	}
	if total != n || most < 2 {
		t.Errorf("%d requests in batches of at most %d: want %d, and some batching", total, most, n)
	}
}

func TestBatchOffByDefault(t *testing.T) {
	t.Parallel()
	s := pyServer(t, batchScript, Config{}, nil)
	if r := do(s, "POST", "/score", "a"); r.status != 200 || r.body != `{"single": "a"}` {
		t.Errorf("%d %s: run() should answer with batching off", r.status, r.body)
	}
}

func TestBatchNeedsRunBatch(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, t.TempDir(), map[string]string{"score.py": "def init(): pass\ndef run(d): return d\n"})
	s := newStarted(t, Config{EntryScript: "score.py", SourceDir: dir, Interpreter: testPython(t), MaxBatchSize: 4})
	err := s.Wait(context.Background())
	if !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), "score.py defines no run_batch(inputs) function, which batching (max_batch_size 4) needs") {
		t.Fatalf("init: %v", err)
	}
	if r := do(s, "POST", "/score", "a"); r.status != 503 {
		t.Errorf("after the failed init: %d %s", r.status, r.body)
	}

	g := newStarted(t, Config{Handler: func() Handler { return HandlerFunc(nil) }, MaxBatchSize: 4})
	if err := g.Wait(context.Background()); !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), "does not implement scoring.BatchHandler") {
		t.Fatalf("Go init: %v", err)
	}
}

func TestBatchConfigValidation(t *testing.T) {
	t.Parallel()
	h := func() Handler { return HandlerFunc(nil) }
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{MaxBatchSize: -1}, "max_batch_size -1 is outside 1..1024 (0 turns batching off)"},
		{Config{MaxBatchSize: 1025}, "max_batch_size 1025 is outside 1..1024"},
		{Config{MaxBatchSize: 2, MaxBatchDelay: -time.Millisecond}, "max_batch_delay -1ms is outside 0..10s"},
		{Config{MaxBatchSize: 2, MaxBatchDelay: 11 * time.Second}, "max_batch_delay 11s is outside 0..10s"},
		{Config{MaxBatchDelay: 5 * time.Millisecond}, "max_batch_delay 5ms is set but max_batch_size is not"},
	} {
		c.cfg.Handler = h
		_, err := NewServer(c.cfg)
		if !errors.Is(err, errcode.InvalidArgument) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	if _, err := NewServer(Config{Handler: h, MaxBatchSize: 1024, MaxBatchDelay: 10 * time.Second}); err != nil {
		t.Errorf("the limits themselves: %v", err)
	}
}

// batchModel is a Go BatchHandler that echoes each input with the size of
// its batch.
type batchModel struct {
	HandlerFunc
	release chan struct{} // when set, RunBatch waits for it (or ctx)
}

func (m *batchModel) RunBatch(ctx context.Context, inputs [][]byte) ([]BatchResult, error) {
	if m.release != nil {
		select {
		case <-m.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := make([]BatchResult, len(inputs))
	for i, in := range inputs {
		switch string(in) {
		case "fail-all":
			return nil, errors.New("the whole batch fails")
		case "short":
			return out[:1], nil
		case "reject":
			out[i].Err = errcode.New(errcode.InvalidArgument, "reject is not a number")
		case "broken":
			out[i].Err = errors.New("secret detail")
		default:
			out[i].Output = fmt.Appendf(nil, `{"input":%q,"batch":%d}`, in, len(inputs))
		}
	}
	return out, nil
}

func goBatchServer(t *testing.T, m Handler, cfg Config) (*Server, *batchWatch) {
	t.Helper()
	cfg.Handler = func() Handler { return m }
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bw := watchBatches(s)
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, bw
}

func TestBatchGoHandler(t *testing.T) {
	t.Parallel()
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	s, bw := goBatchServer(t, &batchModel{}, Config{MaxBatchSize: 4, MaxBatchDelay: 20 * time.Millisecond, Clock: fc})

	got := sendAll(s, "a", "reject", "broken", "d")
	if r := got["a"]; r.status != 200 || r.body != `{"input":"a","batch":4}` || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("a: %d %s %v", r.status, r.body, r.header)
	}
	if r := got["reject"]; r.status != 400 || !strings.Contains(r.body, "reject is not a number") {
		t.Errorf("reject: %d %s", r.status, r.body)
	}
	if r := got["broken"]; r.status != 500 || strings.Contains(r.body, "secret") || !logsContain(s, "secret detail") {
		t.Errorf("broken: %d %s", r.status, r.body)
	}
	if n := bw.next(t); n != 4 {
		t.Errorf("batch of %d, want 4", n)
	}

	// A partial batch leaves after the delay.
	bw.drain()
	done := make(chan map[string]response, 1)
	go func() { done <- sendAll(s, "p", "q") }()
	bw.waitQueued(t, 2)
	fc.Step(20 * time.Millisecond)
	if n := bw.next(t); n != 2 {
		t.Errorf("batch of %d, want 2", n)
	}
	for b, r := range <-done {
		if want := fmt.Sprintf(`{"input":%q,"batch":2}`, b); r.body != want {
			t.Errorf("%s: %s, want %s", b, r.body, want)
		}
	}

	for _, bad := range []string{"fail-all", "short"} {
		for b, r := range sendAll(s, bad, "x", "y", "z") {
			if r.status != 500 || r.body != `{"message":"`+runFailed+`"}` {
				t.Errorf("%s with %s: %d %s", b, bad, r.status, r.body)
			}
		}
	}
	if !logsContain(s, "the whole batch fails") || !logsContain(s, "RunBatch returned 1 results for 4 inputs") {
		t.Errorf("log:\n%s", strings.Join(s.Logs(0, false), "\n"))
	}
}

func TestBatchGoTimeoutPerRequest(t *testing.T) {
	t.Parallel()
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	m := &batchModel{release: make(chan struct{})}
	s, bw := goBatchServer(t, m, Config{MaxBatchSize: 2, MaxBatchDelay: time.Second, ScoringTimeout: 3 * time.Second, Clock: fc})
	done := make(chan map[string]response, 1)
	go func() { done <- sendAll(s, "a", "b") }()
	bw.next(t)
	eventually(t, "the scoring timer", fc.HasWaiters)
	fc.Step(3 * time.Second)
	for b, r := range <-done {
		if r.status != 504 || r.body != `{"message":"Scoring timeout after 3000 ms"}` {
			t.Errorf("%s: %d %s", b, r.status, r.body)
		}
	}
	// The slot is free again.
	close(m.release)
	if r := sendAll(s, "c", "d")["c"]; r.status != 200 {
		t.Errorf("after the timeout: %d %s", r.status, r.body)
	}
}

func TestBatchQueuedRequestsEndWithClose(t *testing.T) {
	t.Parallel()
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	m := &batchModel{release: make(chan struct{})}
	defer close(m.release)
	s, bw := goBatchServer(t, m, Config{MaxBatchSize: 1, Clock: fc})
	done := make(chan map[string]response, 1)
	go func() { done <- sendAll(s, "running", "queued") }()
	bw.next(t)
	<-bw.queued
	<-bw.queued // both have arrived: one runs, one waits
	_ = s.Close()
	for b, r := range <-done {
		if r.status != 503 {
			t.Errorf("%s: %d %s, want 503 as the replica closes", b, r.status, r.body)
		}
	}
}

func FuzzSplitBatchReply(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x01O\x00\x00\x00\x02{}"), 1)
	f.Add([]byte("\x00\x00\x00\x02E\x00\x00\x00\x00P\x00\x00\x00\x01x"), 2)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		out, err := splitBatchReply(b, n)
		if err == nil && len(out) != n {
			t.Fatalf("%d answers for %d", len(out), n)
		}
	})
}

// holdModel is a Go BatchHandler whose batches holding "hold" wait until
// release is closed; it answers each input with the size of its batch.
type holdModel struct {
	HandlerFunc
	release chan struct{}
}

func (m *holdModel) RunBatch(ctx context.Context, inputs [][]byte) ([]BatchResult, error) {
	for _, in := range inputs {
		if string(in) == "hold" {
			select {
			case <-m.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	out := make([]BatchResult, len(inputs))
	for i, in := range inputs {
		out[i].Output = fmt.Appendf(nil, `{"input":%q,"batch":%d}`, in, len(inputs))
	}
	return out, nil
}

func TestBatchSpareWorkerTakesPartialBatch(t *testing.T) {
	t.Parallel()
	// The clock never moves unless the test says so: a partial batch that
	// leaves does so because a second worker is free, not because of the
	// delay.
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	m := &holdModel{release: make(chan struct{})}
	s, bw := goBatchServer(t, m, Config{MaxBatchSize: 8, MaxBatchDelay: time.Second, Workers: 2, Clock: fc})
	spared := func() {
		t.Helper()
		select {
		case <-bw.spared:
		case <-time.After(30 * time.Second):
			t.Fatal("no partial batch left early")
		}
	}

	// Both workers are free: a lone request leaves at once.
	if r := do(s, "POST", "/score", "alone"); r.status != 200 || r.body != `{"input":"alone","batch":1}` {
		t.Fatalf("lone request: %d %s", r.status, r.body)
	}
	spared()
	bw.drain()

	// One worker is busy: the other, the last free one, holds a partial
	// batch for company...
	held := make(chan response, 1)
	go func() { held <- do(s, "POST", "/score", "hold") }()
	if n := bw.next(t); n != 1 {
		t.Fatalf("held batch of %d, want 1", n)
	}
	spared()
	waiting := make(chan map[string]response, 1)
	go func() { waiting <- sendAll(s, "p", "q") }()
	bw.waitQueued(t, 2)
	eventually(t, "the batch timer", fc.HasWaiters)
	select {
	case n := <-bw.batched:
		t.Fatalf("a batch of %d left while only one worker was free", n)
	case <-waiting:
		t.Fatal("answers while only one worker was free")
	default:
	}
	// ...until the busy one is free again: then it leaves without waiting
	// out the delay.
	close(m.release)
	if r := <-held; r.status != 200 {
		t.Errorf("held request: %d %s", r.status, r.body)
	}
	for b, r := range <-waiting {
		if want := fmt.Sprintf(`{"input":%q,"batch":2}`, b); r.status != 200 || r.body != want {
			t.Errorf("%s: %d %s, want %s", b, r.status, r.body, want)
		}
	}
	spared()
	if n := bw.next(t); n != 2 {
		t.Errorf("batch of %d, want 2", n)
	}
}

func TestBatchPythonLoneRequestWithSpareWorker(t *testing.T) {
	t.Parallel()
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	s, bw := pyBatchServer(t, Config{MaxBatchSize: 8, MaxBatchDelay: 10 * time.Second, Workers: 2, Clock: fc})
	// Two idle workers: the request does not wait for company.
	if r := do(s, "POST", "/score", "solo"); r.status != 200 || r.body != `{"input": "solo", "batch": 1}` {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if n := bw.next(t); n != 1 {
		t.Errorf("batch of %d, want 1", n)
	}
	select {
	case <-bw.spared:
	case <-time.After(30 * time.Second):
		t.Error("the batch did not leave early")
	}
}
