package scoring

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
)

func TestRunFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		h    NewHandler
		code *errcode.Code
		want string
	}{
		{"bad port", []string{"--port", "70000"}, nil, errcode.InvalidArgument, "port 70000"},
		{"unknown flag", []string{"--nope"}, nil, errcode.InvalidArgument, "flag provided but not defined"},
		{"bad env", []string{"--env", "novalue"}, nil, errcode.InvalidArgument, "not KEY=VALUE"},
		{"extra args", []string{"x"}, nil, errcode.InvalidArgument, "unexpected arguments"},
		{"timeout", []string{"--scoring_timeout_ms", "0"}, nil, errcode.InvalidArgument, "scoring_timeout_ms 0"},
		{"entry script with a Go model", []string{"--entry_script", "score.py"}, func() Handler { return &testHandler{} }, errcode.InvalidArgument, "cannot be used with a Go model"},
		{"missing script", []string{"--entry_script", "/nonexistent/score.py", "--port", "0"}, nil, errcode.InvalidArgument, "does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Run(context.Background(), tc.args, tc.h, io.Discard, io.Discard)
			if !errors.Is(err, tc.code) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run: %v, want %v with %q", err, tc.code, tc.want)
			}
		})
	}
}

// runAndAddr starts Run in the background and returns the address it
// listens on.
func runAndAddr(t *testing.T, ctx context.Context, args []string, h NewHandler) (string, chan error) {
	t.Helper()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Run(ctx, args, h, io.Discard, pw)
		pw.Close()
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	re := regexp.MustCompile(`listening on http://(\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, pr) }()
			return m[1], done
		}
	}
	t.Fatalf("Run exited without listening: %v", <-done)
	return "", nil
}

func TestRunGoModel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, done := runAndAddr(t, ctx, []string{"--port", "0"}, func() Handler { return &testHandler{} })
	eventually(t, "readiness", func() bool {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	resp, err := http.Post("http://"+addr+"/score", "application/json", strings.NewReader(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != `{"x":1}` {
		t.Errorf("%d %q", resp.StatusCode, b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRunPythonInitFailureExits(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, t.TempDir(), map[string]string{"score.py": "def init():\n    raise RuntimeError('no model')\ndef run(d): return d\n"})
	_, done := runAndAddr(t, context.Background(), []string{"--port", "0", "--entry_script", filepath.Join(dir, "score.py"),
		"--interpreter", testPython(t), "--worker_count", "2"}, nil)
	select {
	case err := <-done:
		if !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), "RuntimeError: no model") {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not exit after init failed")
	}
}
