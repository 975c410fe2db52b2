package scoring

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
	clocktesting "k8s.io/utils/clock/testing"
)

// testHandler is a configurable Go model.
type testHandler struct {
	initGate chan struct{} // Init waits for it when set
	initErr  error
	initDir  atomic.Value
	closed   atomic.Bool
	run      func(ctx context.Context, in []byte) ([]byte, error)
	schemaIn json.RawMessage
}

func (h *testHandler) Init(ctx context.Context, dir string) error {
	h.initDir.Store(dir)
	if h.initGate != nil {
		select {
		case <-h.initGate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return h.initErr
}

func (h *testHandler) Run(ctx context.Context, in []byte) ([]byte, error) {
	if h.run != nil {
		return h.run(ctx, in)
	}
	return in, nil
}

func (h *testHandler) Close() error { h.closed.Store(true); return nil }

type schemaHandler struct{ testHandler }

func (h *schemaHandler) Schema() (json.RawMessage, json.RawMessage) {
	return h.schemaIn, json.RawMessage(`{"type":"array","example":[1]}`)
}

type rawHandler struct{ testHandler }

func (h *rawHandler) ServeScore(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("panic") != "" {
		panic("raw boom")
	}
	w.Header().Set("X-Model", "raw")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(r.Method + " " + r.URL.RawQuery))
}

func goServer(t *testing.T, h Handler, cfg Config) *Server {
	t.Helper()
	cfg.Handler = func() Handler { return h }
	return newReady(t, cfg)
}

func TestGoHandlerRoutes(t *testing.T) {
	t.Parallel()
	h := &testHandler{run: func(ctx context.Context, in []byte) ([]byte, error) {
		switch string(in) {
		case `"bad"`:
			return nil, errcode.New(errcode.InvalidArgument, "input is bad")
		case `"fail"`:
			return nil, errors.New("model exploded")
		case `"panic"`:
			panic("kaboom")
		}
		return in, nil
	}}
	s := goServer(t, h, Config{MaxBodyBytes: 16, ModelDir: t.TempDir()})
	if got := h.initDir.Load().(string); got == "" {
		t.Errorf("Init got an empty model dir")
	}
	tests := []struct {
		name, method, target, body string
		status                     int
		wantBody                   string // substring
		header                     string // header that must be set
	}{
		{"health", "GET", "/", "", 200, "Healthy", ""},
		{"health HEAD", "HEAD", "/", "", 200, "", ""},
		{"score", "POST", "/score", `{"a":1}`, 200, `{"a":1}`, "X-Request-Id"},
		{"score GET query", "GET", "/score?a=1&b=x&b=2", "", 200, `{"a":1,"b":["x",2]}`, ""},
		{"score exec time", "POST", "/score", `1`, 200, "1", "X-Ms-Run-Fn-Exec-Ms"},
		{"run error", "POST", "/score", `"fail"`, 500, `{"message":"An unexpected error occurred in scoring script. Check the logs for more info."}`, "X-Ms-Run-Function-Failed"},
		{"run invalid input", "POST", "/score", `"bad"`, 400, "input is bad", ""},
		{"run panic", "POST", "/score", `"panic"`, 500, `{"message":"An unexpected error occurred in scoring script. Check the logs for more info."}`, ""},
		{"too large", "POST", "/score", strings.Repeat("x", 17), 413, "limit of 16 bytes", ""},
		{"score PUT", "PUT", "/score", "", 405, "The method is not allowed for the requested URL.", "Allow"},
		{"score OPTIONS", "OPTIONS", "/score", "", 200, "", "X-Request-Id"},
		{"score HEAD", "HEAD", "/score", "", 405, "", ""},
		{"health POST", "POST", "/", "", 405, "The method is not allowed for the requested URL.", "Allow"},
		{"health OPTIONS", "OPTIONS", "/", "", 200, "", "Allow"},
		{"swagger DELETE", "DELETE", "/swagger.json", "", 405, "", "Allow"},
		{"unknown path", "GET", "/nope", "", 404, "The requested URL was not found on the server.", ""},
		{"swagger bad version", "GET", "/swagger.json?version=9", "", 404, "not valid", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(s, tc.method, tc.target, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d (body %q)", r.status, tc.status, r.body)
			}
			if !strings.Contains(r.body, tc.wantBody) {
				t.Errorf("body %q does not contain %q", r.body, tc.wantBody)
			}
			if tc.header != "" && r.header.Get(tc.header) == "" {
				t.Errorf("header %s missing in %v", tc.header, r.header)
			}
			if tc.status >= 400 && tc.method != "HEAD" {
				r.json(t)
			}
		})
	}
	if !logsContain(s, "kaboom") || !logsContain(s, "model exploded") {
		t.Errorf("run failures are not in the log:\n%s", strings.Join(s.Logs(0, false), "\n"))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !h.closed.Load() {
		t.Errorf("Close did not close the handler")
	}
	if r := do(s, "GET", "/", ""); r.status != 503 {
		t.Errorf("GET / after Close: %d", r.status)
	}
}

func TestGoHandlerReadiness(t *testing.T) {
	t.Parallel()
	h := &testHandler{initGate: make(chan struct{})}
	s := newStarted(t, Config{Handler: func() Handler { return h }})
	for _, target := range []string{"/", "/score", "/swagger.json"} {
		if r := do(s, "GET", target, ""); r.status != 503 || !strings.Contains(r.body, "init has not finished") {
			t.Errorf("GET %s before init: %d %q", target, r.status, r.body)
		}
	}
	if s.Ready() || s.Err() != nil {
		t.Errorf("Ready %v Err %v during init", s.Ready(), s.Err())
	}
	select {
	case <-s.InitDone():
		t.Fatal("InitDone closed during init")
	default:
	}
	close(h.initGate)
	<-s.InitDone()
	if !s.Ready() || s.Err() != nil {
		t.Fatalf("Ready %v Err %v after init", s.Ready(), s.Err())
	}
	if r := do(s, "GET", "/", ""); r.status != 200 || r.body != "Healthy" {
		t.Errorf("GET / after init: %d %q", r.status, r.body)
	}
	if err := s.Start(context.Background()); !errors.Is(err, errcode.FailedPrecondition) {
		t.Errorf("second Start: %v", err)
	}
	if init := s.Logs(0, true); len(init) == 0 || !strings.Contains(strings.Join(init, "\n"), "ready") {
		t.Errorf("init-only logs: %q", init)
	}
}

func TestGoHandlerInitFailure(t *testing.T) {
	t.Parallel()
	h := &testHandler{initErr: errors.New("weights missing")}
	s := newStarted(t, Config{Handler: func() Handler { return h }})
	err := s.Wait(context.Background())
	if !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), "weights missing") {
		t.Fatalf("Wait: %v", err)
	}
	if s.Ready() {
		t.Error("ready after a failed init")
	}
	r := do(s, "GET", "/", "")
	if r.status != 503 || strings.Contains(r.body, "weights missing") {
		t.Errorf("GET /: %d %q (want 503, the error only in the log)", r.status, r.body)
	}
	if !logsContain(s, "weights missing") {
		t.Errorf("init error not in logs")
	}
}

func TestGoHandlerNilConstructor(t *testing.T) {
	t.Parallel()
	s := newStarted(t, Config{Handler: func() Handler { return nil }})
	if err := s.Wait(context.Background()); !errors.Is(err, errcode.InvalidArgument) {
		t.Fatalf("Wait: %v", err)
	}
}

func TestGoHandlerTimeout(t *testing.T) {
	t.Parallel()
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	release := make(chan struct{})
	var sawCancel atomic.Bool
	h := &testHandler{run: func(ctx context.Context, in []byte) ([]byte, error) {
		if string(in) == `"slow"` {
			select {
			case <-ctx.Done():
				sawCancel.Store(true)
			case <-release:
			}
			return nil, ctx.Err()
		}
		return in, nil
	}}
	s := goServer(t, h, Config{ScoringTimeout: 5 * time.Second, Clock: fc})
	done := make(chan response)
	go func() { done <- do(s, "POST", "/score", `"slow"`) }()
	eventually(t, "the scoring timer", fc.HasWaiters)
	fc.Step(5 * time.Second)
	// release stays open until Run has seen the cancellation: with both
	// ready, its select could pick either.
	defer close(release)
	r := <-done
	if r.status != 504 || r.body != `{"message":"Scoring timeout after 5000 ms"}` || r.header.Get("X-Ms-Run-Function-Failed") != "True" {
		t.Fatalf("slow run: %d %q", r.status, r.body)
	}
	eventually(t, "Run to see its context cancelled", sawCancel.Load)
	if r := do(s, "POST", "/score", `"fast"`); r.status != 200 {
		t.Errorf("next run: %d %q", r.status, r.body)
	}
}

func TestGoHandlerSwagger(t *testing.T) {
	t.Parallel()
	plain := goServer(t, &testHandler{}, Config{ServiceName: "svc"})
	withSchema := goServer(t, &schemaHandler{testHandler{schemaIn: json.RawMessage(`{"type":"object","properties":{"x":{"type":"number"}}}`)}}, Config{})
	tests := []struct {
		name    string
		s       *Server
		version string
		path    []string
		want    string
	}{
		{"generic v2 input", plain, "", []string{"definitions", "ServiceInput", "type"}, "object"},
		{"generic v2 title", plain, "2", []string{"info", "title"}, "svc"},
		{"generic v3", plain, "3", []string{"openapi"}, "3.0.3"},
		{"generic v3.1", plain, "3.1", []string{"openapi"}, "3.1.0"},
		{"default title", withSchema, "3", []string{"info", "title"}, "ML service"},
		{"default version", withSchema, "2", []string{"info", "version"}, "1.0"},
		{"schema v2 input", withSchema, "", []string{"definitions", "ServiceInput", "properties", "x", "type"}, "number"},
		{"schema v2 output", withSchema, "", []string{"definitions", "ServiceOutput", "type"}, "array"},
		{"schema v3 input", withSchema, "3", []string{"components", "schemas", "ServiceInput", "properties", "x", "type"}, "number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := "/swagger.json"
			if tc.version != "" {
				target += "?version=" + tc.version
			}
			r := do(tc.s, "GET", target, "")
			if r.status != 200 {
				t.Fatalf("%d %q", r.status, r.body)
			}
			var v any = r.json(t)
			for _, k := range tc.path {
				m, ok := v.(map[string]any)
				if !ok {
					t.Fatalf("no %q in %v", k, v)
				}
				v = m[k]
			}
			if v != tc.want {
				t.Errorf("%v = %v, want %v", tc.path, v, tc.want)
			}
		})
	}
}

func TestGoRawHandler(t *testing.T) {
	t.Parallel()
	s := goServer(t, &rawHandler{}, Config{MaxBodyBytes: 8})
	r := do(s, "POST", "/score?x=1", "hello")
	if r.status != 201 || r.body != "POST x=1" || r.header.Get("X-Model") != "raw" {
		t.Errorf("raw: %d %q %v", r.status, r.body, r.header)
	}
	if r := do(s, "GET", "/score?q", ""); r.status != 201 || r.body != "GET q" {
		t.Errorf("raw GET: %d %q", r.status, r.body)
	}
	if r := do(s, "POST", "/score", strings.Repeat("x", 9)); r.status != 413 {
		t.Errorf("raw too large: %d %q", r.status, r.body)
	}
	if r := do(s, "POST", "/score?panic=1", "x"); r.status != 500 || strings.Contains(r.body, "raw boom") {
		t.Errorf("raw panic: %d %q", r.status, r.body)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, t.TempDir(), map[string]string{"score.py": "def init(): pass\ndef run(d): return d\n", "notpy.txt": ""})
	h := func() Handler { return &testHandler{} }
	tests := []struct {
		name  string
		cfg   Config
		wants []string // each must appear in the error
	}{
		{"nothing", Config{}, []string{"entry_script is empty"}},
		{"both", Config{Handler: h, EntryScript: "score.py"}, []string{"both set"}},
		{"negative workers and timeout", Config{Handler: h, Workers: -1, ScoringTimeout: -time.Second, MaxBodyBytes: -1},
			[]string{"worker_count -1 is outside", "scoring_timeout -1s is negative", "max_request_body_bytes -1 is negative"}},
		{"too many workers", Config{Handler: h, Workers: MaxWorkers + 1}, []string{"worker_count 257"}},
		{"missing script", Config{EntryScript: "missing.py", SourceDir: dir}, []string{`entry_script "missing.py" does not exist`}},
		{"not a .py", Config{EntryScript: "notpy.txt", SourceDir: dir}, []string{"is not a .py file"}},
		{"bad source dir", Config{EntryScript: "score.py", SourceDir: dir + "/nope"}, []string{"source_directory", "is not a directory"}},
		{"bad interpreter", Config{EntryScript: "score.py", SourceDir: dir, Interpreter: "/nonexistent/python9"}, []string{`interpreter "/nonexistent/python9"`}},
		{"bad app root", Config{Handler: h, AppRoot: dir + "/noroot"}, []string{"app_root", "is not a directory"}},
		{"bad env", Config{Handler: h, Env: map[string]string{"A=B": "x"}}, []string{`environment_variables key "A=B"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewServer(tc.cfg)
			if !errors.Is(err, errcode.InvalidArgument) {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// Valid: the script's directory becomes the source directory.
	s, err := NewServer(Config{EntryScript: dir + "/score.py", Interpreter: testPython(t)})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.SourceDir != dir || s.cfg.entryRel() != "score.py" || s.cfg.Workers != 1 ||
		s.cfg.ScoringTimeout != DefaultScoringTimeout || s.cfg.MaxBodyBytes != 100<<20 {
		t.Errorf("defaults: %+v", s.cfg)
	}
	_ = s.Close()
}
