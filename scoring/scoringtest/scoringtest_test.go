package scoringtest_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/scoring/scoringtest"
)

func python(t *testing.T) string {
	p := os.Getenv("AKSML_TEST_PYTHON")
	if p == "" {
		p = "python3" // the linear model needs only the standard library
	}
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("no Python interpreter %s: %v", p, err)
	}
	return p
}

func score(t *testing.T, cfg scoring.Config, body string) (int, string) {
	t.Helper()
	srv, err := scoring.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(ctx); err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(srv.Logs(0, false), "\n"))
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("POST", "/score", strings.NewReader(body)))
	return rec.Code, rec.Body.String()
}

// The standard-library score.py and the Go handler give the same answers.
func TestLinearModelPythonAndGo(t *testing.T) {
	t.Parallel()
	m, err := scoringtest.WriteLinearModel(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"data": [[1, 2, 3], [0, 0, 0]]}`
	pyCfg := m.Config()
	pyCfg.Interpreter = python(t)
	pyStatus, pyBody := score(t, pyCfg, body)
	goStatus, goBody := score(t, scoring.Config{Handler: scoringtest.NewLinearHandler, ModelDir: m.ModelDir}, body)
	if pyStatus != 200 || pyBody != "[7.0, 3.0]" {
		t.Errorf("Python: %d %s", pyStatus, pyBody)
	}
	if goStatus != 200 || goBody != "[7,3]" {
		t.Errorf("Go: %d %s", goStatus, goBody)
	}
	if s, b := score(t, scoring.Config{Handler: scoringtest.NewLinearHandler, ModelDir: m.ModelDir}, `{"data": [[1]]}`); s != 400 || !strings.Contains(b, "row 0 has 1 features") {
		t.Errorf("Go bad input: %d %s", s, b)
	}
}

func ExampleNewLinearHandler() {
	dir, _ := os.MkdirTemp("", "linear")
	defer os.RemoveAll(dir)
	m, err := scoringtest.WriteLinearModel(dir)
	if err != nil {
		panic(err)
	}
	srv, err := scoring.NewServer(scoring.Config{Handler: scoringtest.NewLinearHandler, ModelDir: m.ModelDir})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	_ = srv.Start(context.Background())
	if err := srv.Wait(context.Background()); err != nil {
		panic(err)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("POST", "/score", strings.NewReader(`{"data": [[1, 2, 3]]}`)))
	fmt.Println(rec.Code, rec.Body.String())
	// Output: 200 [7]
}
