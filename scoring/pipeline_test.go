package scoring

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// pipeScript notes each run() it starts (name and pid) in $PIPE_LOG and
// then does what its JSON input says: wait for a gate file, read the
// request pipe itself (as a hostile script could), crash, hang, or stream
// chunks (each after its own gate file, or on a tick).
const pipeScript = `import json, os, time
from azureml.contrib.services.aml_response import AMLResponse
from azureml.monitoring import ModelDataCollector

def init():
    global dc
    dc = ModelDataCollector("m", designation="inputs")

def note(what):
    with open(os.environ["PIPE_LOG"], "a") as f:
        f.write(what + "\n")

def wait(path):
    while not os.path.exists(path):
        time.sleep(0.002)

def chunks(name, n, gate, tick):
    for i in range(n):
        if i > 0 and gate:
            wait("%s.%d" % (gate, i))
        if tick:
            time.sleep(0.005)
        yield "%s %d\n" % (name, i)

def run(raw_data):
    d = json.loads(raw_data)
    name = d["id"]
    note("start %s %d" % (name, os.getpid()))
    if d.get("gate"):
        wait(d["gate"])
    if d.get("steal"):
        note("stole %d" % len(os.read(3, 65536)))
    if d.get("crash"):
        os._exit(3)
    if d.get("hang"):
        time.sleep(3600)
    print("printed by", name)
    dc.collect([[name]])
    if "chunks" in d:
        return AMLResponse(chunks(name, d["chunks"], d.get("chunkgate"), d.get("tick")), 200)
    return {"id": name, "pid": os.getpid()}
`

type pipeEnv struct {
	t   *testing.T
	s   *Server
	log string
	dir string
}

// newPipeEnv serves pipeScript with one worker (unless cfg says more).
func newPipeEnv(t *testing.T, cfg Config) *pipeEnv {
	dir := t.TempDir()
	e := &pipeEnv{t: t, log: filepath.Join(dir, "log"), dir: dir}
	cfg.Env = map[string]string{"PIPE_LOG": e.log}
	e.s = pyServer(t, pipeScript, cfg, nil)
	return e
}

// body is the input of request id with the given directives.
func (e *pipeEnv) body(id string, kv ...any) string {
	m := map[string]any{"id": id}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// gate is the path of a gate file, open creates it.
func (e *pipeEnv) gate(name string) string { return filepath.Join(e.dir, "gate-"+name) }

func (e *pipeEnv) open(path string) {
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// post sends a request (its request id is id) and answers on the channel.
func (e *pipeEnv) post(id, body string) <-chan response {
	ch := make(chan response, 1)
	go func() { ch <- do(e.s, http.MethodPost, "/score", body, "x-ms-request-id", id) }()
	return ch
}

// starts returns the names run() started, in order, with their pids.
func (e *pipeEnv) starts() []string {
	b, err := os.ReadFile(e.log)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		e.t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "start "); ok {
			out = append(out, rest)
		}
	}
	return out
}

func (e *pipeEnv) started(name string) bool {
	for _, s := range e.starts() {
		if strings.HasPrefix(s, name+" ") {
			return true
		}
	}
	return false
}

// startCount counts the runs of name.
func (e *pipeEnv) startCount(name string) int {
	n := 0
	for _, s := range e.starts() {
		if strings.HasPrefix(s, name+" ") {
			n++
		}
	}
	return n
}

// queued reports whether a worker holds a request, fully written, behind
// the one it runs, and how many requests wait for a worker.
func (e *pipeEnv) queued() (behind bool, waiting int) {
	p := e.s.py
	p.mu.Lock()
	defer p.mu.Unlock()
	for w := range p.procs {
		if w.inflight == 2 && !w.writing {
			behind = true
		}
	}
	return behind, len(p.waiters)
}

func (e *pipeEnv) waitQueued(what string, behind bool, waiting int) {
	e.t.Helper()
	eventually(e.t, what, func() bool {
		b, n := e.queued()
		return b == behind && n == waiting
	})
}

// queueBehind sends request A (body aBody, which should hold it in run()
// until the test lets it go), and once A runs, request B (bBody), and waits
// until B is queued behind A.
func (e *pipeEnv) queueBehind(aBody, bBody string) (a, b <-chan response) {
	e.t.Helper()
	a = e.post("A", aBody)
	eventually(e.t, "A to start", func() bool { return e.started("A") })
	b = e.post("B", bBody)
	e.waitQueued("B queued behind A", true, 0)
	return a, b
}

// expect checks that request name was answered status with sub in the body.
func (e *pipeEnv) expect(name string, ch <-chan response, status int, sub string) {
	e.t.Helper()
	if r := <-ch; r.status != status || !strings.Contains(r.body, sub) {
		e.t.Fatalf("%s: %d %q, want %d with %q", name, r.status, r.body, status, sub)
	}
}

// ranOnce checks that run() started request name exactly once.
func (e *pipeEnv) ranOnce(name string) {
	e.t.Helper()
	if n := e.startCount(name); n != 1 {
		e.t.Errorf("%s ran %d times", name, n)
	}
}

func (e *pipeEnv) answer(name string, ch <-chan response) (pid float64) {
	e.t.Helper()
	r := <-ch
	if r.status != 200 {
		e.t.Fatalf("%s: %d %q", name, r.status, r.body)
	}
	var v struct {
		ID  string
		PID float64
	}
	if err := json.Unmarshal([]byte(r.body), &v); err != nil || v.ID != name {
		e.t.Fatalf("%s answered %q (%v)", name, r.body, err)
	}
	return v.PID
}

// Requests queued behind a running one are run in order, once each, by the
// same worker, and what each prints and collects is its own.
func TestPipelineOrderAndAttribution(t *testing.T) {
	t.Parallel()
	sink := &memorySink{}
	root := t.TempDir()
	e := newPipeEnv(t, Config{Telemetry: &Telemetry{Sink: sink}, DataCollection: dcConfig(&LocalModelDataStore{Root: root}, 0)})
	gate := e.gate("a")
	a, b := e.queueBehind(e.body("A", "gate", gate), e.body("B"))
	c := e.post("C", e.body("C"))
	e.waitQueued("C waiting", true, 1)
	e.open(gate)
	pa, pb, pc := e.answer("A", a), e.answer("B", b), e.answer("C", c)
	if pa != pb || pb != pc {
		t.Errorf("pids %v %v %v: one worker", pa, pb, pc)
	}
	var names []string
	for _, s := range e.starts() {
		names = append(names, strings.Fields(s)[0])
	}
	if got := strings.Join(names, " "); got != "A B C" {
		t.Errorf("runs %q, want A B C once each", got)
	}
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	prints := map[string]string{}
	for _, r := range sink.records() {
		if r.Kind == TelemetryPrint {
			prints[r.RequestID] += r.Message
		}
	}
	for _, n := range []string{"A", "B", "C"} {
		if prints[n] != "printed by "+n {
			t.Errorf("request %s printed %q", n, prints[n])
		}
	}
	var rows []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			for _, r := range readLines(t, p) {
				f := strings.SplitN(r, ",", 3)
				rows = append(rows, f[1]+","+f[2])
			}
		}
		return err
	})
	sort.Strings(rows)
	if got := strings.Join(rows, "|"); got != "A,A|B,B|C,C" {
		t.Errorf("collected rows %q", got)
	}
}

// A request queued behind one that times out never started: the worker is
// killed, and the queued request runs on its replacement.
func TestPipelineQueuedBehindTimeout(t *testing.T) {
	t.Parallel()
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	e := newPipeEnv(t, Config{ScoringTimeout: 2 * time.Second, Clock: fc})
	a := e.post("A", e.body("A", "hang", true))
	eventually(t, "A to start", func() bool { return e.started("A") && fc.HasWaiters() })
	b := e.post("B", e.body("B"))
	e.waitQueued("B queued behind A", true, 0)
	fc.Step(2 * time.Second)
	e.expect("A", a, 504, "Scoring timeout")
	pb := e.answer("B", b)
	starts := e.starts()
	if len(starts) != 2 || !strings.HasPrefix(starts[1], "B ") || strings.Fields(starts[0])[1] == strings.Fields(starts[1])[1] {
		t.Errorf("runs %q: want A, then B once on a new worker (pid %v)", starts, pb)
	}
}

// A queued request's scoring timeout starts when the worker starts on it;
// when it times out, the request queued behind it in turn runs elsewhere.
func TestPipelineQueuedRequestTimesOut(t *testing.T) {
	t.Parallel()
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	e := newPipeEnv(t, Config{ScoringTimeout: 2 * time.Second, Clock: fc})
	gate := e.gate("a")
	a, b := e.queueBehind(e.body("A", "gate", gate), e.body("B", "hang", true))
	c := e.post("C", e.body("C"))
	e.waitQueued("C waiting", true, 1)
	// A runs for most of the timeout: B's time counts from its own start.
	fc.Step(1500 * time.Millisecond)
	e.open(gate)
	e.answer("A", a)
	eventually(t, "B to start and C to queue behind it", func() bool {
		behind, n := e.queued()
		return e.started("B") && behind && n == 0 && fc.HasWaiters()
	})
	// A's timer is stopped and B's has 0.5 s to go: had B's started with
	// its write, it would have fired now (Step runs due timers at once).
	fc.Step(1500 * time.Millisecond)
	if !fc.HasWaiters() {
		t.Fatal("B's scoring timer fired 1.5 s after B started")
	}
	fc.Step(500 * time.Millisecond)
	e.expect("B", b, 504, "Scoring timeout after 2000 ms")
	e.answer("C", c)
	e.ranOnce("C")
}

// A worker that dies with a request queued behind the running one: the
// running one is answered 502, the queued one runs on the replacement.
func TestPipelineWorkerDiesWithQueuedRequest(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t, Config{})
	gate := e.gate("a")
	a, b := e.queueBehind(e.body("A", "gate", gate, "crash", true), e.body("B"))
	e.open(gate)
	e.expect("A", a, 502, "exit status 3")
	e.answer("B", b)
	e.ranOnce("B")
}

// A queued request that left the pipe before the worker died may have
// started: it is answered 502 and never run again.
func TestPipelineNoSecondRunOfARequestTheWorkerRead(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t, Config{})
	gate := e.gate("a")
	a, b := e.queueBehind(e.body("A", "gate", gate, "steal", true, "crash", true), e.body("B"))
	e.open(gate)
	if r := <-a; r.status != 502 {
		t.Fatalf("A: %d %q", r.status, r.body)
	}
	e.expect("B", b, 502, "may have started")
	e.answer("D", e.post("D", e.body("D")))
	if n := e.startCount("B"); n != 0 {
		t.Errorf("B ran %d times", n)
	}
	if b, _ := os.ReadFile(e.log); !strings.Contains(string(b), "stole ") || strings.Contains(string(b), "stole 0") {
		t.Errorf("log:\n%s", b)
	}
}

// chunkSink collects a streamed reply; fail makes chunk n (from 0) fail, as
// when the client leaves; hold, when set, is waited for before chunk 0.
type chunkSink struct {
	mu     sync.Mutex
	chunks []string
	fail   int
	hold   chan struct{}
}

func (c *chunkSink) start([]byte, time.Duration) error { return nil }

func (c *chunkSink) chunk(b []byte) error {
	c.mu.Lock()
	n := len(c.chunks)
	c.chunks = append(c.chunks, string(b))
	c.mu.Unlock()
	if n == 0 && c.hold != nil {
		<-c.hold
	}
	if n == c.fail {
		return errors.New("client gone")
	}
	return nil
}

func (c *chunkSink) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.chunks...)
}

func runMessage(body string) []byte {
	msg := append(make([]byte, frameHeader), body...)
	putHeader(msg, kindRun)
	return msg
}

type tripResult struct {
	kind    byte
	payload string
	rerr    *replyError
}

func (e *pipeEnv) trip(body string, sink streamSink) <-chan tripResult {
	ch := make(chan tripResult, 1)
	go func() {
		kind, payload, _, _, rerr := e.s.py.roundTrip(context.Background(), runMessage(body), nil, sink)
		ch <- tripResult{kind, string(payload), rerr}
	}()
	return ch
}

// A client that leaves a stream with a request queued behind it: the
// stream stops and the queued request is served; from then on nothing
// queues behind a busy worker.
func TestPipelineStreamCancelWithQueuedRequest(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t, Config{})
	gate := e.gate("a")
	a := e.trip(e.body("A", "gate", gate, "chunks", 1000000, "tick", true), &chunkSink{fail: 2})
	eventually(t, "A to start", func() bool { return e.started("A") })
	b := e.trip(e.body("B"), nil)
	e.waitQueued("B queued behind A", true, 0)
	e.open(gate)
	if r := <-a; r.rerr != nil || r.kind != kindEnd {
		t.Fatalf("A: %q %v", r.kind, r.rerr)
	}
	if r := <-b; r.rerr != nil || r.kind != kindOK || !strings.Contains(r.payload, `"B"`) {
		t.Fatalf("B: %q %q %v", r.kind, r.payload, r.rerr)
	}
	p := e.s.py
	p.mu.Lock()
	behind := p.behindLocked()
	p.mu.Unlock()
	if behind != nil {
		t.Error("a request can still queue behind a busy worker after a stream")
	}
}

// A cancel that reaches the worker after its stream ended does not stop the
// stream of the request queued behind it.
func TestPipelineLateCancelSparesTheNextStream(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t, Config{})
	gate, chunkGate := e.gate("a"), e.gate("b")
	// A streams one chunk; its client leaves on it, but only once B's
	// stream is under way, so A's cancel reaches the worker during B's.
	hold := make(chan struct{})
	a := e.trip(e.body("A", "gate", gate, "chunks", 1), &chunkSink{fail: 0, hold: hold})
	eventually(t, "A to start", func() bool { return e.started("A") })
	bs := &chunkSink{fail: -1}
	b := e.trip(e.body("B", "chunks", 3, "chunkgate", chunkGate), bs)
	e.waitQueued("B queued behind A", true, 0)
	var w *worker
	p := e.s.py
	p.mu.Lock()
	for x := range p.procs {
		w = x
	}
	p.mu.Unlock()
	w.wmu.Lock()
	before := w.written
	w.wmu.Unlock()
	e.open(gate)
	eventually(t, "B to start", func() bool { return e.started("B") })
	close(hold)
	if r := <-a; r.rerr != nil || r.kind != kindEnd {
		t.Fatalf("A: %q %v", r.kind, r.rerr)
	}
	eventually(t, "A's cancel to be written", func() bool {
		w.wmu.Lock()
		defer w.wmu.Unlock()
		return w.written > before
	})
	// B's next chunk comes after the cancel is in the pipe, and the worker
	// reads the pipe after each chunk.
	e.open(chunkGate + ".1")
	eventually(t, "B's second chunk", func() bool { return len(bs.got()) >= 2 })
	e.open(chunkGate + ".2")
	r := <-b
	if r.rerr != nil || r.kind != kindEnd || r.payload != "" {
		t.Fatalf("B: %q %q %v", r.kind, r.payload, r.rerr)
	}
	if got := strings.Join(bs.got(), ""); got != "B 0\nB 1\nB 2\n" {
		t.Errorf("B's stream %q", got)
	}
}
