package aml

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
	testingclock "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// newWS opens a workspace in a fresh temporary directory with a fake clock.
func newWS(t testing.TB) (*Workspace, *testingclock.FakePassiveClock) {
	t.Helper()
	clk := testingclock.NewFakePassiveClock(t0)
	ws, err := Open(context.Background(), t.TempDir(), &OpenOptions{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws, clk
}

// writeFiles creates files (path → content) under dir; a path ending in
// "/" creates a directory.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// wantErr checks that err carries code and mentions every substring.
func wantErr(t testing.TB, err error, code *errcode.Code, substrs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v mentioning %q", code, substrs)
	}
	if !errors.Is(err, code) {
		t.Fatalf("error %q does not carry %v (has %v)", err, code, errcode.Of(err))
	}
	for _, s := range substrs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

// joinedLen counts the coded errors joined into err.
func joinedLen(err error) int {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		if err == nil {
			return 0
		}
		return 1
	}
	n := 0
	for _, e := range j.Unwrap() {
		if _, isCode := e.(*errcode.Code); isCode {
			return 1
		}
		n += joinedLen(e)
	}
	return n
}
