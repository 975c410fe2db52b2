package simtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simtest"
	"github.com/aksml/aksml/webservice"
)

// fakeTB records what simtest reports and holds the cleanups until the
// test runs them, so a test can check that a leak is reported; everything
// else goes to the real test.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// end runs the cleanups last first, as the testing package does, and
// returns what was reported.
func (f *fakeTB) end() []string {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	f.cleanups = nil
	return f.errs
}

var double = scoring.HandlerFunc(func(_ context.Context, input []byte) ([]byte, error) {
	var in struct{ Data []float64 }
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, err
	}
	for i := range in.Data {
		in.Data[i] *= 2
	}
	return json.Marshal(in.Data)
})

func newDouble() scoring.Handler { return double }

func TestDeployHandler(t *testing.T) {
	env := simtest.New(t, nil)
	svc := env.DeployHandler("double", newDouble)
	out, err := svc.Run(env.Ctx, `{"data": [1, 2.5]}`)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "[2,5]" {
		t.Errorf("Run = %s, want [2,5]", out)
	}
}

// A clean test reports nothing: the helpers' own deletes and the closing
// simulator leave no service, process or goroutine behind.
func TestCleanTestReportsNothing(t *testing.T) {
	fake := &fakeTB{TB: t}
	env := simtest.New(fake, &simtest.Options{LeakWait: 2 * time.Second})
	env.DeployHandler("double", newDouble)
	if errs := fake.end(); len(errs) != 0 {
		t.Errorf("a clean test reported:\n%s", strings.Join(errs, "\n"))
	}
}

// A service deployed with aml.Deploy and never deleted fails the test,
// naming the service and its replicas.
func TestLeakedReplicaFailsTheTest(t *testing.T) {
	fake := &fakeTB{TB: t}
	env := simtest.New(fake, &simtest.Options{LeakWait: 2 * time.Second})
	svc, err := aml.Deploy(env.Ctx, env.Workspace, "leaky", nil, &aml.InferenceConfig{Handler: newDouble},
		webservice.DeployConfig{NumReplicas: 2}, env.Target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.WaitForDeployment(env.Ctx); err != nil {
		t.Fatal(err)
	}
	errs := fake.end()
	if len(errs) != 1 || !strings.Contains(errs[0], `left service "leaky" deployed with 2 replica(s) running`) {
		t.Errorf("reported %q, want one error naming service leaky and its 2 replicas", errs)
	}
}

// A child process still running when the simulator has closed fails the
// test, naming the process.
func TestLeakedProcessFailsTheTest(t *testing.T) {
	fake := &fakeTB{TB: t}
	simtest.New(fake, &simtest.Options{LeakWait: 200 * time.Millisecond})
	// Stands in for a scoring worker that outlived its replica: the
	// library's own workers end with their replicas.
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	errs := fake.end()
	if len(errs) != 1 || !strings.Contains(errs[0], "left child process") || !strings.Contains(errs[0], "sleep 30") {
		t.Errorf("reported %q, want one error naming the sleep process", errs)
	}
}

// DeployScript runs a score.py (python3 is an outside process).
func TestIntegrationDeployScript(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "score.py"), []byte("import json\n\ndef init():\n    pass\n\ndef run(raw):\n    return [x * 3 for x in json.loads(raw)['data']]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := simtest.New(t, nil)
	svc := env.DeployScript("triple", dir, "score.py")
	out, err := svc.Run(env.Ctx, `{"data": [1, 2]}`)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "[3, 6]" {
		t.Errorf("Run = %s, want [3, 6]", out)
	}
}
