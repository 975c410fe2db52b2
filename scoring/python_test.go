package scoring

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
	clocktesting "k8s.io/utils/clock/testing"
)

// behaviourScript reacts to its input: echo, fail, crash, hang or report.
const behaviourScript = `import json, os, sys, time

def init():
    print("init of worker", os.getpid())

def run(raw_data):
    if raw_data == "fail":
        raise ValueError("run was told to fail")
    if raw_data == "crash":
        print("crashing now", flush=True)
        os._exit(3)
    if raw_data == "hang":
        time.sleep(3600)
    if raw_data == "text":
        return "a string"
    if raw_data == "env":
        return {k: os.environ.get(k) for k in ("AZUREML_MODEL_DIR", "AZUREML_ENTRY_SCRIPT", "AZUREML_SOURCE_DIRECTORY", "AML_APP_ROOT", "EXTRA")} | {"cwd": os.getcwd()}
    if raw_data.startswith("sleep"):
        start = time.time()
        time.sleep(float(raw_data[5:]))
        return {"pid": os.getpid(), "start": start, "end": time.time()}
    if raw_data == "pid":
        return os.getpid()
    return json.loads(raw_data)
`

func pidOf(t *testing.T, s *Server) int {
	t.Helper()
	r := do(s, "POST", "/score", "pid")
	if r.status != 200 {
		t.Fatalf("pid: %d %q", r.status, r.body)
	}
	var pid int
	if err := json.Unmarshal([]byte(r.body), &pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

func processGone(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

func TestPythonScore(t *testing.T) {
	t.Parallel()
	models := t.TempDir()
	s := pyServer(t, behaviourScript, Config{ModelDir: models, Env: map[string]string{"EXTRA": "yes"}}, nil)
	tests := []struct {
		name, method, target, body string
		status                     int
		want                       string
	}{
		{"echo object", "POST", "/score", `{"a": [1, 2]}`, 200, `{"a": [1, 2]}`},
		{"str becomes JSON string", "POST", "/score", "text", 200, `"a string"`},
		{"GET query as JSON string", "GET", "/score?x=1&y=two", "", 200, `{"x": 1, "y": "two"}`},
		{"run exception", "POST", "/score", "fail", 500, `{"message":"An unexpected error occurred in scoring script. Check the logs for more info."}`},
		{"bad UTF-8", "POST", "/score", "\xff\xfe", 400, "cannot be decoded as UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(s, tc.method, tc.target, tc.body)
			if r.status != tc.status || !strings.Contains(r.body, tc.want) {
				t.Fatalf("%d %q, want %d containing %q", r.status, r.body, tc.status, tc.want)
			}
			if r.status == 200 && r.header.Get("Content-Type") != "application/json" {
				t.Errorf("content type %q", r.header.Get("Content-Type"))
			}
		})
	}
	r := do(s, "POST", "/score", "env")
	var env map[string]string
	if err := json.Unmarshal([]byte(r.body), &env); err != nil {
		t.Fatal(r.body, err)
	}
	want := map[string]string{"AZUREML_MODEL_DIR": models, "AZUREML_ENTRY_SCRIPT": s.cfg.EntryScript,
		"AZUREML_SOURCE_DIRECTORY": s.cfg.SourceDir, "EXTRA": "yes", "cwd": s.py.appRoot, "AML_APP_ROOT": s.py.appRoot}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	// The worker writes the traceback to its stderr, which reaches the log
	// apart from the answer: wait for it, up to a deadline.
	wants := []string{"Traceback (most recent call last)", `File "` + s.cfg.EntryScript + `"`, "ValueError: run was told to fail"}
	var logs string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		logs = strings.Join(s.Logs(0, false), "\n")
		all := true
		for _, w := range wants {
			all = all && strings.Contains(logs, w)
		}
		if all || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range wants {
		if !strings.Contains(logs, w) {
			t.Errorf("logs lack %q:\n%s", w, logs)
		}
	}
	initLogs := strings.Join(s.Logs(0, true), "\n")
	if !strings.Contains(initLogs, "init of worker") || strings.Contains(initLogs, "ValueError") {
		t.Errorf("init-only logs:\n%s", initLogs)
	}
	if tail := s.Logs(2, false); len(tail) != 2 {
		t.Errorf("Logs(2) returned %d lines", len(tail))
	}
}

func TestPythonInitFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, script, want string
	}{
		{"init raises", "def init():\n    1/0\n\ndef run(d):\n    return d\n", "ZeroDivisionError: division by zero"},
		{"import fails", "import no_such_module_xyz\ndef init(): pass\ndef run(d): return d\n", "No module named 'no_such_module_xyz'"},
		{"no run", "def init(): pass\n", "does not define a run() function"},
		{"init exits", "import os\ndef init():\n    print('leaving', flush=True)\n    os._exit(7)\ndef run(d): return d\n", "exit status 7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := writeFiles(t, t.TempDir(), map[string]string{"score.py": tc.script})
			s := newStarted(t, Config{EntryScript: "score.py", SourceDir: dir, Interpreter: testPython(t), Workers: 2})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := s.Wait(ctx)
			if !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Wait: %v, want FailedPrecondition mentioning %q", err, tc.want)
			}
			if s.Ready() {
				t.Fatal("ready after init failure")
			}
			if r := do(s, "GET", "/", ""); r.status != 503 {
				t.Errorf("GET /: %d", r.status)
			}
			if r := do(s, "POST", "/score", "{}"); r.status != 503 {
				t.Errorf("POST /score: %d", r.status)
			}
			if init := strings.Join(s.Logs(0, true), "\n"); !strings.Contains(init, tc.want) && tc.name != "init exits" {
				t.Errorf("init logs lack %q:\n%s", tc.want, init)
			}
		})
	}
}

// An init() exception's traceback is in the log once, after the worker's
// own output, however many workers fail the same way; the error names the
// exception without repeating the traceback, so the log and the error read
// together (a deployment's failure message, the command's output) hold it
// once.
func TestPythonInitTracebackOnce(t *testing.T) {
	t.Parallel()
	script := "import sys\n\ndef init():\n    print('loading model.pkl', flush=True)\n    raise RuntimeError('cannot load model.pkl')\n\ndef run(d):\n    return d\n"
	for _, workers := range []int{1, 3} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			t.Parallel()
			dir := writeFiles(t, t.TempDir(), map[string]string{"score.py": script})
			var out syncBuffer
			s, err := NewServer(Config{EntryScript: "score.py", SourceDir: dir, Interpreter: testPython(t), Workers: workers, LogOutput: &out})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if err := s.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = s.Wait(ctx)
			if !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), "RuntimeError: cannot load model.pkl") {
				t.Fatalf("Wait: %v, want FailedPrecondition naming the exception", err)
			}
			if strings.Contains(err.Error(), "Traceback") {
				t.Errorf("the error repeats the traceback:\n%v", err)
			}
			const tb = "Traceback (most recent call last)"
			for _, view := range []struct {
				name string
				text string
			}{
				{"logs", strings.Join(s.Logs(0, false), "\n")},
				{"init logs", strings.Join(s.Logs(0, true), "\n")},
				{"log output", out.String()},
			} {
				if n := strings.Count(view.text, tb); n != 1 {
					t.Errorf("%s hold the traceback %d times, want once:\n%s", view.name, n, view.text)
				}
				loading, trace := strings.Index(view.text, "loading model.pkl"), strings.Index(view.text, tb)
				if loading < 0 || trace < loading || !strings.Contains(view.text[trace:], `line 5, in init`) {
					t.Errorf("%s: the traceback does not follow the worker's output:\n%s", view.name, view.text)
				}
			}
		})
	}
}

func TestPythonTimeout(t *testing.T) {
	t.Parallel()
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	s := pyServer(t, behaviourScript, Config{ScoringTimeout: 2 * time.Second, Clock: fc}, nil)
	before := pidOf(t, s)
	done := make(chan response)
	go func() { done <- do(s, "POST", "/score", "hang") }()
	eventually(t, "the scoring timer", fc.HasWaiters)
	fc.Step(2 * time.Second)
	r := <-done
	if r.status != 504 || r.body != `{"message":"Scoring timeout after 2000 ms"}` || r.header.Get("X-Ms-Run-Function-Failed") != "True" {
		t.Fatalf("hang: %d %q %v", r.status, r.body, r.header)
	}
	eventually(t, "the old worker to be gone", func() bool { return processGone(before) })
	after := pidOf(t, s)
	if after == before {
		t.Errorf("worker not replaced: pid %d", after)
	}
	if r := do(s, "POST", "/score", `[1]`); r.status != 200 || r.body != "[1]" {
		t.Errorf("after timeout: %d %q", r.status, r.body)
	}
}

func TestPythonWorkerCrash(t *testing.T) {
	t.Parallel()
	s := pyServer(t, behaviourScript, Config{}, nil)
	before := pidOf(t, s)
	r := do(s, "POST", "/score", "crash")
	if r.status != 502 || !strings.Contains(r.body, "exit status 3") {
		t.Fatalf("crash: %d %q", r.status, r.body)
	}
	after := pidOf(t, s)
	if after == before {
		t.Fatalf("worker not restarted")
	}
	// A worker killed from outside while idle is replaced too.
	if err := syscall.Kill(after, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the restart", func() bool {
		return logsContain(s, "signal: killed") && logsContain(s, "restarted") && strings.Count(strings.Join(s.Logs(0, false), "\n"), "restarted") >= 2
	})
	if third := pidOf(t, s); third == after || third == before {
		t.Errorf("pid %d after the second restart", third)
	}
	if !logsContain(s, "crashing now") || !logsContain(s, "exited (exit status 3)") {
		t.Errorf("logs:\n%s", strings.Join(s.Logs(0, false), "\n"))
	}
}

func TestPythonBodyLimit(t *testing.T) {
	t.Parallel()
	s := pyServer(t, behaviourScript, Config{MaxBodyBytes: 10}, nil)
	if r := do(s, "POST", "/score", `[1,2,3,4,5]`); r.status != 413 || !strings.Contains(r.body, "limit of 10 bytes") {
		t.Errorf("11 bytes: %d %q", r.status, r.body)
	}
	if r := do(s, "POST", "/score", `[1,2,3,45]`); r.status != 200 {
		t.Errorf("10 bytes: %d %q", r.status, r.body)
	}
	if r := do(s, "DELETE", "/score", ""); r.status != 405 {
		t.Errorf("DELETE: %d", r.status)
	}
}

// TestPythonConcurrency measures that N workers run N slow requests at the
// same time: every run's [start, end] interval (taken inside Python)
// overlaps every other, in N distinct processes.
func TestPythonConcurrency(t *testing.T) {
	t.Parallel()
	const n = 3
	s := pyServer(t, behaviourScript, Config{Workers: n}, nil)
	type span struct {
		PID        int
		Start, End float64
	}
	spans := make([]span, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := do(s, "POST", "/score", "sleep0.5")
			if r.status != 200 {
				t.Errorf("%d %q", r.status, r.body)
				return
			}
			_ = json.Unmarshal([]byte(r.body), &spans[i])
		}()
	}
	wg.Wait()
	pids := map[int]bool{}
	latestStart, earliestEnd := 0.0, 1e18
	for _, sp := range spans {
		pids[sp.PID] = true
		latestStart = max(latestStart, sp.Start)
		earliestEnd = min(earliestEnd, sp.End)
	}
	if len(pids) != n {
		t.Errorf("%d distinct worker pids, want %d: %+v", len(pids), n, spans)
	}
	if latestStart >= earliestEnd {
		t.Errorf("runs did not overlap: last start %.3f >= first end %.3f (%+v)", latestStart, earliestEnd, spans)
	}
	t.Logf("overlap of %d concurrent runs: %.0f ms of 500", n, (earliestEnd-latestStart)*1000)
}

func TestPythonCloseKillsWorkers(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, t.TempDir(), map[string]string{"score.py": behaviourScript})
	s, err := NewServer(Config{EntryScript: "score.py", SourceDir: dir, Interpreter: testPython(t), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	var pids []int
	s.py.mu.Lock()
	for w := range s.py.procs {
		pids = append(pids, w.pid())
	}
	s.py.mu.Unlock()
	done := make(chan response)
	go func() { done <- do(s, "POST", "/score", "sleep30") }()
	eventually(t, "the run to start", func() bool {
		s.py.mu.Lock()
		defer s.py.mu.Unlock()
		return len(s.py.idle) == 1
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.status != 503 {
		t.Errorf("request in flight at Close: %d %q", r.status, r.body)
	}
	for _, pid := range pids {
		if !processGone(pid) {
			t.Errorf("worker %d still running after Close", pid)
		}
	}
	if len(pids) != 2 {
		t.Errorf("pids %v", pids)
	}
	if r := do(s, "GET", "/", ""); r.status != 503 {
		t.Errorf("GET / after Close: %d", r.status)
	}
}

func TestPythonCloseDuringInit(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, t.TempDir(), map[string]string{"score.py": "import time\ndef init():\n    time.sleep(60)\ndef run(d): return d\n"})
	s, err := NewServer(Config{EntryScript: "score.py", SourceDir: dir, Interpreter: testPython(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the worker to start", func() bool { return logsContain(s, "Invoking user's init") })
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("Close took %v", time.Since(start))
	}
	<-s.InitDone()
	if s.Err() == nil || s.Ready() {
		t.Errorf("Err %v Ready %v after Close during init", s.Err(), s.Ready())
	}
}

func TestPythonStartContextCancelled(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, t.TempDir(), map[string]string{"score.py": "import time\ndef init():\n    time.sleep(60)\ndef run(d): return d\n"})
	ctx, cancel := context.WithCancel(context.Background())
	s2, err := NewServer(Config{EntryScript: "score.py", SourceDir: dir, Interpreter: testPython(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	if err := s2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the worker to start", func() bool { return logsContain(s2, "Invoking user's init") })
	cancel()
	<-s2.InitDone()
	if err := s2.Err(); !errors.Is(err, errcode.DeadlineExceeded) {
		t.Errorf("Err after cancelling Start's context: %v", err)
	}
}

const modelsScript = `import json, os
from azureml.core.model import Model

def init():
    pass

def load(name, version=None):
    try:
        p = Model.get_model_path(name, version=version) if version is not None else Model.get_model_path(name)
    except Exception as e:
        return "error: %s: %s" % (type(e).__name__, e)
    if os.path.isdir(p):
        return sorted(os.listdir(p))
    with open(p) as f:
        return f.read()

def run(raw_data):
    req = json.loads(raw_data)
    return [load(*r) for r in req]
`

// TestPythonModelLayout covers AZUREML_MODEL_DIR for one and several models
// and get_model_path's resolution (cache layout, then ./NAME).
func TestPythonModelLayout(t *testing.T) {
	t.Parallel()
	root := writeFiles(t, t.TempDir(), map[string]string{
		"azureml-models/alpha/1/alpha.txt":       "alpha one",
		"azureml-models/alpha/3/alpha.txt":       "alpha three",
		"azureml-models/beta/2/beta/weights.bin": "w",
		"azureml-models/beta/2/beta/config.json": "{}",
		"azureml-models/gamma/1/one.txt":         "1",
		"azureml-models/gamma/1/two.txt":         "2",
	})
	tests := []struct {
		name     string
		modelDir string
		query    string
		want     []any
	}{
		{"several models", "azureml-models",
			`[["alpha"], ["alpha", 1], ["beta", 2], ["gamma"], ["local"], ["missing"], ["alpha", "1"]]`,
			[]any{"alpha three", "alpha one", []any{"config.json", "weights.bin"},
				"error: WebserviceException: Expected exactly one child path", "local model",
				"error: WebserviceException: Model missing not found in cache at " + root + "/azureml-models or in current working directory",
				"error: WebserviceException: version must be an int"}},
		{"one model", "azureml-models/alpha/3", `[["alpha", 3], ["beta", 2]]`,
			[]any{"alpha three", []any{"config.json", "weights.bin"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// ./NAME resolves in the working directory: the app root.
			app := writeFiles(t, t.TempDir(), map[string]string{"local": "local model"})
			s := pyServer(t, modelsScript, Config{ModelDir: filepath.Join(root, tc.modelDir), AppRoot: app}, nil)
			r := do(s, "POST", "/score", tc.query)
			if r.status != 200 {
				t.Fatalf("%d %q", r.status, r.body)
			}
			got := r.json(t).([]any)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v", got)
			}
			for i := range got {
				g, w := fmt.Sprint(got[i]), fmt.Sprint(tc.want[i])
				if !strings.HasPrefix(g, w) {
					t.Errorf("query %d: got %q, want prefix %q", i, g, w)
				}
			}
		})
	}
}

const schemaScript = `import numpy as np
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

def init():
    pass

@input_schema('data', NumpyParameterType(np.array([[1.0, 2.0]])))
@input_schema('scale', StandardPythonParameterType(2.0))
@output_schema(StandardPythonParameterType({'sum': 1.0}))
def run(data, scale=1.0):
    return {'type': type(data).__name__, 'dtype': str(data.dtype), 'shape': list(data.shape), 'sum': float(data.sum()) * scale}
`

func TestPythonInferenceSchema(t *testing.T) {
	t.Parallel()
	s := pyServer(t, schemaScript, Config{}, nil)
	tests := []struct {
		name, body string
		hdr        []string
		status     int
		want       string
	}{
		{"converted to numpy", `{"data": [[1, 2], [3, 4]], "scale": 2}`, nil, 200, `{"type": "ndarray", "dtype": "float64", "shape": [2, 2], "sum": 20.0}`},
		{"default used", `{"data": [[1, 2]]}`, nil, 200, `"sum": 3.0`},
		{"missing parameter", `{"scale": 1.0}`, nil, 400, "A value is not provided for the 'data' parameter."},
		{"not an object", `[1, 2]`, nil, 400, "POST body should be a JSON dictionary."},
		{"not JSON", `{"data": `, nil, 400, "POST body could not be decoded as JSON"},
		{"wrong content type", `{"data": [[1, 2]]}`, []string{"Content-Type", "text/plain"}, 415, "Expects Content-Type to be application/json"},
		{"wrong shape", `{"data": [[1, 2, 3]]}`, nil, 500, "An unexpected error occurred in scoring script."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(s, "POST", "/score", tc.body, tc.hdr...)
			if r.status != tc.status || !strings.Contains(r.body, tc.want) {
				t.Errorf("%d %q, want %d with %q", r.status, r.body, tc.status, tc.want)
			}
		})
	}
	eventually(t, "the conversion error in the log", func() bool { return logsContain(s, "size 3 on dimension #1") })
	r := do(s, "GET", "/swagger.json", "")
	var doc struct {
		Definitions map[string]struct {
			Type       string                     `json:"type"`
			Properties map[string]json.RawMessage `json:"properties"`
			Example    json.RawMessage            `json:"example"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal([]byte(r.body), &doc); err != nil {
		t.Fatal(err)
	}
	in := doc.Definitions["ServiceInput"]
	if got := compact(in.Properties["data"]); got != `{"type":"array","items":{"type":"array","items":{"type":"number","format":"double"}},"format":"numpy.ndarray"}` {
		t.Errorf("data schema %s", got)
	}
	if got := compact(in.Properties["scale"]); got != `{"type":"number","format":"double"}` {
		t.Errorf("scale schema %s", got)
	}
	if got := compact(in.Example); got != `{"data":[[1.0,2.0]],"scale":2.0}` {
		t.Errorf("input example %s", got)
	}
	if out := doc.Definitions["ServiceOutput"]; out.Type != "object" || compact(out.Example) != `{"sum":1.0}` {
		t.Errorf("output schema %+v", out)
	}
}

func compact(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return "invalid JSON: " + string(b)
	}
	return buf.String()
}

func TestPythonSwaggerSources(t *testing.T) {
	t.Parallel()
	generic := pyServer(t, behaviourScript, Config{}, nil)
	userFile := pyServer(t, behaviourScript, Config{}, map[string]string{"swagger.json": `{"swagger": "2.0", "info": {"title": "mine"}}`})
	if r := do(generic, "GET", "/swagger.json", ""); !strings.Contains(compact([]byte(r.body)), `"ServiceInput":{"type":"object","example":{}}`) {
		t.Errorf("generic swagger:\n%s", r.body)
	}
	if r := do(userFile, "GET", "/swagger.json", ""); r.body != `{"swagger": "2.0", "info": {"title": "mine"}}` {
		t.Errorf("user swagger: %s", r.body)
	}
	if r := do(userFile, "GET", "/swagger.json?version=3", ""); !strings.Contains(r.body, `"openapi": "3.0.3"`) {
		t.Errorf("v3: %s", r.body)
	}
}

const rawScript = `from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

def init():
    pass

@rawhttp
def run(request):
    if request.method == 'GET':
        return AMLResponse({"q": request.args.get("q"), "path": request.full_path, "kind": type(request).__mro__[1].__name__}, 200, json_str=True)
    if request.headers.get("X-Fail"):
        return AMLResponse("bad things", 418, {"X-Reason": "teapot"})
    if request.headers.get("X-Plain"):
        return {"json": request.get_json()}
    body = request.get_data(False)
    return AMLResponse(body[::-1], 201, {"Content-Type": "application/octet-stream", "X-Kind": "raw"})
`

func TestPythonRawHTTP(t *testing.T) {
	t.Parallel()
	hidden := writeFiles(t, t.TempDir(), map[string]string{
		"flask/__init__.py":    "raise ImportError('flask hidden by the test')\n",
		"werkzeug/__init__.py": "raise ImportError('werkzeug hidden by the test')\n",
	})
	tests := []struct {
		name, kind string
		env        map[string]string
	}{
		{"flask", "Request", nil},
		{"standard library", "_StdlibRequest", map[string]string{"PYTHONPATH": hidden}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := pyServer(t, rawScript, Config{Env: tc.env}, nil)
			r := do(s, "GET", "/score?q=hi", "")
			want := fmt.Sprintf(`{"q": "hi", "path": "/score?q=hi", "kind": %q}`, tc.kind)
			if r.status != 200 || r.body != want {
				t.Errorf("GET: %d %s, want %s", r.status, r.body, want)
			}
			r = do(s, "POST", "/score", "abc")
			if r.status != 201 || r.body != "cba" || r.header.Get("X-Kind") != "raw" || r.header.Get("Content-Type") != "application/octet-stream" {
				t.Errorf("POST: %d %q %v", r.status, r.body, r.header)
			}
			r = do(s, "POST", "/score", "x", "X-Fail", "1")
			if r.status != 418 || r.body != "bad things" || r.header.Get("X-Reason") != "teapot" {
				t.Errorf("AMLResponse 418: %d %q %v", r.status, r.body, r.header)
			}
			r = do(s, "POST", "/score", `{"a": 1}`, "X-Plain", "1", "Content-Type", "application/json")
			if r.status != 200 || r.body != `{"json": {"a": 1}}` {
				t.Errorf("plain return: %d %q", r.status, r.body)
			}
		})
	}
}

func TestPythonRequestHeaders(t *testing.T) {
	t.Parallel()
	s := pyServer(t, "def init(): pass\ndef run(data, request_headers):\n    return {'data': data, 'h': request_headers.get('X-Custom')}\n", Config{}, nil)
	r := do(s, "POST", "/score", "payload", "X-Custom", "v1")
	if r.status != 200 || r.body != `{"data": "payload", "h": "v1"}` {
		t.Errorf("%d %q", r.status, r.body)
	}
}

const sklearnTrain = `import json, sys, joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
X, y = load_diabetes(return_X_y=True)
model = Ridge(alpha=0.5).fit(X, y)
joblib.dump(model, sys.argv[1])
json.dump({"data": X[:3].tolist(), "expected": model.predict(X[:3]).tolist()}, open(sys.argv[2], "w"))
`

// sklearnScore is written the way Azure ML's samples write it.
const sklearnScore = `import json
import numpy as np
import joblib
from azureml.core.model import Model


def init():
    global model
    model_path = Model.get_model_path('sklearn_regression_model')
    model = joblib.load(model_path)


def run(raw_data):
    data = np.array(json.loads(raw_data)['data'])
    result = model.predict(data)
    return result.tolist()
`

func TestPythonSklearnModel(t *testing.T) {
	t.Parallel()
	py := testPython(t)
	root := t.TempDir()
	modelDir := filepath.Join(root, "azureml-models", "sklearn_regression_model", "1")
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sample := filepath.Join(root, "sample.json")
	train := writeFiles(t, t.TempDir(), map[string]string{"train.py": sklearnTrain})
	out, err := exec.Command(py, filepath.Join(train, "train.py"), filepath.Join(modelDir, "sklearn_regression_model.pkl"), sample).CombinedOutput()
	if err != nil {
		t.Fatalf("training (needs python3-sklearn): %v\n%s", err, out)
	}
	b, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	var s1 struct {
		Data     [][]float64 `json:"data"`
		Expected []float64   `json:"expected"`
	}
	if err := json.Unmarshal(b, &s1); err != nil {
		t.Fatal(err)
	}
	s := pyServer(t, sklearnScore, Config{ModelDir: modelDir}, nil)
	body, _ := json.Marshal(map[string]any{"data": s1.Data})
	r := do(s, "POST", "/score", string(body))
	if r.status != 200 {
		t.Fatalf("%d %q", r.status, r.body)
	}
	var got []float64
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(s1.Expected) {
		t.Fatalf("got %v, want %v", got, s1.Expected)
	}
	for i := range got {
		if d := got[i] - s1.Expected[i]; d > 1e-9 || d < -1e-9 {
			t.Errorf("prediction %d = %v, want %v", i, got[i], s1.Expected[i])
		}
	}
	if r := do(s, "POST", "/score", `{"data": [[1, 2]]}`); r.status != 500 || strings.Contains(r.body, "ValueError") {
		t.Errorf("wrong width: %d %q (want 500 with the error only in the log)", r.status, r.body)
	}
	eventually(t, "the ValueError in the log", func() bool { return logsContain(s, "ValueError") })
}

// TestPythonForkedChildrenDie checks that processes a worker forked do not
// outlive it when it crashes.
func TestPythonForkedChildrenDie(t *testing.T) {
	t.Parallel()
	script := `import os, time
def init(): pass
def run(raw_data):
    pid = os.fork()
    if pid == 0:
        time.sleep(3600)
        os._exit(0)
    if raw_data == "crash":
        os._exit(5)
    return pid
`
	s := pyServer(t, script, Config{}, nil)
	r := do(s, "POST", "/score", "fork")
	if r.status != 200 {
		t.Fatalf("%d %q", r.status, r.body)
	}
	var child int
	_ = json.Unmarshal([]byte(r.body), &child)
	start := time.Now()
	if r := do(s, "POST", "/score", "crash"); r.status != 502 || !strings.Contains(r.body, "exit status 5") {
		t.Fatalf("crash: %d %q", r.status, r.body)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the crash took %v to be reported", d)
	}
	eventually(t, "the forked child to die", func() bool { return processGone(child) })
}
