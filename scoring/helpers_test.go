package scoring

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testPython returns the interpreter the tests use: $AKSML_TEST_PYTHON or
// Debian's /usr/bin/python3 (which has numpy, scikit-learn and Flask). Tests
// that need Python fail, not skip, when it is missing.
func testPython(t testing.TB) string {
	t.Helper()
	p := os.Getenv("AKSML_TEST_PYTHON")
	if p == "" {
		p = "/usr/bin/python3"
	}
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("Python interpreter %s is missing (run scripts/install-deps): %v", p, err)
	}
	return p
}

// writeFiles creates files (path relative to dir → content) and returns dir.
func writeFiles(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// newStarted creates and starts a server, closing it at the end of the test.
func newStarted(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s
}

// newReady is newStarted plus waiting for init to succeed.
func newReady(t testing.TB, cfg Config) *Server {
	t.Helper()
	s := newStarted(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Wait(ctx); err != nil {
		t.Fatalf("init failed: %v\nlogs:\n%s", err, strings.Join(s.Logs(0, false), "\n"))
	}
	return s
}

// pyServer hosts script (the content of score.py) with extra files in its
// source directory.
func pyServer(t testing.TB, script string, cfg Config, files map[string]string) *Server {
	t.Helper()
	dir := t.TempDir()
	all := map[string]string{"score.py": script}
	for k, v := range files {
		all[k] = v
	}
	writeFiles(t, dir, all)
	cfg.EntryScript = "score.py"
	cfg.SourceDir = dir
	if cfg.Interpreter == "" {
		cfg.Interpreter = testPython(t)
	}
	return newReady(t, cfg)
}

type response struct {
	status int
	header http.Header
	body   string
}

func (r response) json(t testing.TB) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	return v
}

// do sends one request through ServeHTTP.
func do(h http.Handler, method, target, body string, hdr ...string) response {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{rec.Code, rec.Header(), rec.Body.String()}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func logsContain(s *Server, sub string) bool {
	for _, l := range s.Logs(0, false) {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// postConcurrently sends n POST /score requests to h from four goroutines,
// request i with the body and headers req(i) gives, and fails t on the
// first answer that is not 200.
func postConcurrently(t *testing.T, h http.Handler, n int, req func(i int) (body string, hdr []string)) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 4 {
				body, hdr := req(i)
				if r := do(h, http.MethodPost, "/score", body, hdr...); r.status != 200 {
					errs <- fmt.Sprintf("request %d: %d %s", i, r.status, r.body)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
