package aml_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/drivertest"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)

type deployEnv struct {
	ws     *aml.Workspace
	sim    *simulator.Simulator
	target *compute.Target
}

func newDeployEnv(t *testing.T, cfg compute.ProvisioningConfig) *deployEnv {
	t.Helper()
	ctx := context.Background()
	ws, err := aml.Open(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	sim := simulator.New(&simulator.Options{DrainDelay: 50 * time.Millisecond})
	t.Cleanup(func() { sim.Close() })
	target, err := compute.Create(ctx, ws, "aks-test", cfg, &compute.CreateOptions{Provider: sim})
	if err != nil {
		t.Fatal(err)
	}
	if err := target.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	return &deployEnv{ws: ws, sim: sim, target: target}
}

func (e *deployEnv) model(t *testing.T, name, content string) *aml.Model {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".txt")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := e.ws.RegisterModel(context.Background(), name, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dirHandler answers with the names below its model directory.
type dirHandler struct{ dir string }

func (h *dirHandler) Init(ctx context.Context, dir string) error { h.dir = dir; return nil }
func (h *dirHandler) Run(ctx context.Context, in []byte) ([]byte, error) {
	entries, err := os.ReadDir(h.dir)
	if err != nil {
		return nil, err
	}
	return []byte(fmt.Sprintf(`{"dir":%q,"entries":%d}`, h.dir, len(entries))), nil
}

func TestDeployThousandModelsAndRefuseMore(t *testing.T) {
	t.Parallel()
	// Registering and laying out 1,001 models (each checksummed into the
	// workspace and copied read-only for the replica) takes tens of seconds
	// under -race on a busy 2-core machine: a longer bound than testCtx's.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	t.Cleanup(cancel)
	e := newDeployEnv(t, compute.ProvisioningConfig{ClusterPurpose: compute.DevTest})
	models := make([]*aml.Model, 0, aml.MaxModelsPerDeployment+1)
	for i := 0; i <= aml.MaxModelsPerDeployment; i++ {
		models = append(models, e.model(t, fmt.Sprintf("m%04d", i), fmt.Sprint(i)))
	}
	ic := &aml.InferenceConfig{Handler: func() scoring.Handler { return &dirHandler{} }}
	dc := webservice.DeployConfig{NumReplicas: 1, AuthEnabled: new(false)}
	_, err := aml.Deploy(ctx, e.ws, "too-many", models, ic, dc, e.target, nil)
	if !errors.Is(err, errcode.InvalidArgument) || !strings.Contains(err.Error(), "1001 models given, at most 1000") {
		t.Fatalf("1001 models: %v, want InvalidArgument naming the limit", err)
	}
	svc, err := aml.Deploy(ctx, e.ws, "thousand", models[:1000], ic, dc, e.target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.WaitForDeployment(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := svc.Run(ctx, `{}`)
	if err != nil {
		t.Fatal(err)
	}
	// Several models: AZUREML_MODEL_DIR is azureml-models with one
	// directory per model below it.
	if !strings.Contains(string(out), `azureml-models"`) || !strings.Contains(string(out), `"entries":1000`) {
		t.Errorf("model dir answer %s, want azureml-models holding 1000 models", out)
	}
}

func TestDeployValidatesEverythingAtOnce(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newDeployEnv(t, compute.ProvisioningConfig{ClusterPurpose: compute.DevTest})
	ic := &aml.InferenceConfig{EntryScript: "missing.py", SourceDirectory: t.TempDir()}
	dc := webservice.DeployConfig{CPUCores: 1, CPUCoresLimit: 0.5, NumReplicas: 2, AutoscaleMaxReplicas: 3}
	_, err := aml.Deploy(ctx, e.ws, "Bad_Name", nil, ic, dc, e.target, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"Bad_Name", "cpu_cores_limit", "autoscale", "missing.py"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("error %v is not InvalidArgument", err)
	}
	if recs, _ := webservice.List(ctx, e.ws); len(recs) != 0 {
		t.Errorf("a refused deployment left records: %+v", recs)
	}
}

func TestServiceLifecycle(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newDeployEnv(t, compute.ProvisioningConfig{ClusterPurpose: compute.DevTest})
	m := e.model(t, "one", "weights")
	ic := &aml.InferenceConfig{Handler: func() scoring.Handler { return &dirHandler{} }}
	svc, err := aml.Deploy(ctx, e.ws, "life", []*aml.Model{m}, ic, webservice.DeployConfig{NumReplicas: 1}, e.target, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A second operation while the first is in progress is refused.
	if st, _ := svc.State(ctx); st == driver.Transitioning {
		err := svc.Update(ctx, webservice.UpdateOptions{Config: &webservice.DeployConfig{Description: "x"}})
		if !errors.Is(err, errcode.Conflict) {
			t.Errorf("update during deployment: %v, want Conflict", err)
		}
	}
	if err := svc.WaitForDeployment(ctx); err != nil {
		t.Fatal(err)
	}
	// One model: AZUREML_MODEL_DIR is azureml-models/NAME/VERSION.
	out, err := svc.Run(ctx, `{}`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), filepath.Join("azureml-models", "one", "1")+`"`) {
		t.Errorf("model dir %s, want …/azureml-models/one/1", out)
	}
	if _, err := aml.Deploy(ctx, e.ws, "life", []*aml.Model{m}, ic, webservice.DeployConfig{NumReplicas: 1}, e.target, nil); !errors.Is(err, errcode.AlreadyExists) {
		t.Errorf("deploying the same name again: %v, want AlreadyExists", err)
	}
	if err := e.ws.DeleteModel(ctx, m.ID()); !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), "life") {
		t.Errorf("deleting a deployed model: %v, want FailedPrecondition naming the service", err)
	}
	if err := svc.Update(ctx, webservice.UpdateOptions{}); !errors.Is(err, errcode.InvalidArgument) || !strings.Contains(err.Error(), "No parameters provided to update.") {
		t.Errorf("empty update: %v", err)
	}
	if err := svc.Update(ctx, webservice.UpdateOptions{Config: &webservice.DeployConfig{Properties: map[string]string{"a": "1"}}}); err != nil {
		t.Fatal(err)
	}
	if err := svc.WaitForDeployment(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.Update(ctx, webservice.UpdateOptions{Config: &webservice.DeployConfig{Properties: map[string]string{"a": "2"}}}); !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("changing a property: %v, want InvalidArgument", err)
	}
	got, err := webservice.Get(ctx, e.target, "life")
	if err != nil {
		t.Fatal(err)
	}
	if got.ScoringURI() != svc.ScoringURI() || got.Record().Config.Properties["a"] != "1" {
		t.Errorf("Get: %+v", got.Record())
	}
	logs, err := svc.Logs(ctx, 0, false)
	if err != nil || len(logs) == 0 {
		t.Errorf("logs: %v %v", logs, err)
	}
	if err := svc.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.ws.DeleteModel(ctx, m.ID()); err != nil {
		t.Errorf("deleting the model after the service: %v", err)
	}
	if _, err := webservice.Get(ctx, e.target, "life"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("Get after delete: %v", err)
	}
}

// A client that moves to the secondary key before the primary is rotated
// sees no failure; the old primary is rejected once RegenKey returns.
func TestKeyRotationWithoutFailures(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newDeployEnv(t, compute.ProvisioningConfig{ClusterPurpose: compute.DevTest})
	ic := &aml.InferenceConfig{Handler: drivertest.Echo("k")}
	svc, err := aml.Deploy(ctx, e.ws, "rotate", nil, ic, webservice.DeployConfig{NumReplicas: 2, MaxRequestWaitTimeMs: 10000}, e.target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.WaitForDeployment(ctx); err != nil {
		t.Fatal(err)
	}
	oldPrimary, secondary, err := svc.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var total, failed atomic.Int64
	stop := make(chan struct{})
	// Each rotation waits for a request scored since the previous rotation
	// began, so requests run between rotations however the machine
	// schedules them.
	scored := make(chan struct{}, 1)
	var wg sync.WaitGroup
	stopClients := func() {
		close(stop)
		wg.Wait()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, _, err := drivertest.Score(ctx, svc.ScoringURI(), secondary, `{}`)
				total.Add(1)
				if err != nil || code != 200 {
					failed.Add(1)
				}
				select {
				case scored <- struct{}{}:
				default:
				}
			}
		}()
	}
	for i := 0; i < 5; i++ {
		select {
		case <-scored:
		case <-ctx.Done():
			stopClients()
			t.Fatal(ctx.Err())
		}
		if err := svc.RegenKey(ctx, webservice.Primary, ""); err != nil {
			t.Fatal(err)
		}
	}
	stopClients()
	if failed.Load() != 0 || total.Load() == 0 {
		t.Errorf("%d of %d requests with the secondary key failed during rotation", failed.Load(), total.Load())
	}
	if code, _, _ := drivertest.Score(ctx, svc.ScoringURI(), oldPrimary, `{}`); code != 401 {
		t.Errorf("old primary key: %d, want 401", code)
	}
	newPrimary, _, _ := svc.Keys(ctx)
	if code, _, _ := drivertest.Score(ctx, svc.ScoringURI(), newPrimary, `{}`); code != 200 {
		t.Errorf("new primary key: %d, want 200", code)
	}
	if err := svc.RegenKey(ctx, "tertiary", ""); !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("RegenKey(tertiary): %v", err)
	}
	if err := svc.RegenKey(ctx, "secondary", "my-own-key-value"); err != nil {
		t.Errorf("RegenKey(secondary, value): %v", err)
	}
	if code, _, _ := drivertest.Score(ctx, svc.ScoringURI(), "my-own-key-value", `{}`); code != 200 {
		t.Errorf("set secondary key: %d, want 200", code)
	}
}

// Run re-fetches credentials once on a 401, as the SDK does: a handle
// holding a stale key still scores after another handle rotated it.
func TestRunRetriesWithFreshKeyOn401(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newDeployEnv(t, compute.ProvisioningConfig{ClusterPurpose: compute.DevTest})
	svc, err := aml.Deploy(ctx, e.ws, "stale", nil, &aml.InferenceConfig{Handler: drivertest.Echo("s")}, webservice.DeployConfig{NumReplicas: 1}, e.target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.WaitForDeployment(ctx); err != nil {
		t.Fatal(err)
	}
	other, err := webservice.Get(ctx, e.target, "stale")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.RegenKey(ctx, webservice.Primary, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Run(ctx, `{"a":1}`); err != nil {
		t.Errorf("Run with a stale key did not recover: %v", err)
	}
}

func TestTokenAuthService(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newDeployEnv(t, compute.ProvisioningConfig{ClusterPurpose: compute.DevTest})
	dc := webservice.DeployConfig{NumReplicas: 1, TokenAuthEnabled: true, AuthEnabled: new(false)}
	svc, err := aml.Deploy(ctx, e.ws, "tok", nil, &aml.InferenceConfig{Handler: drivertest.Echo("t")}, dc, e.target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.WaitForDeployment(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Keys(ctx); !errors.Is(err, errcode.FailedPrecondition) {
		t.Errorf("Keys on a token service: %v", err)
	}
	tok, err := svc.Token(ctx)
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("Token: %+v %v", tok, err)
	}
	if _, err := svc.Run(ctx, `{}`); err != nil {
		t.Errorf("Run with a token: %v", err)
	}
	if code, _, _ := drivertest.Score(ctx, svc.ScoringURI(), "", `{}`); code != 401 {
		t.Errorf("no token: %d", code)
	}
}

func TestCrashingScoreScriptFailsWithTraceback(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newDeployEnv(t, compute.ProvisioningConfig{ClusterPurpose: compute.DevTest})
	src := t.TempDir()
	script := "import json\n\ndef init():\n    raise RuntimeError('cannot load model.pkl')\n\ndef run(raw_data):\n    return 1\n"
	if err := os.WriteFile(filepath.Join(src, "score.py"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ic := &aml.InferenceConfig{EntryScript: "score.py", SourceDirectory: src,
		Environment: &aml.Environment{Name: "debian", Python: aml.PythonSection{UserManagedDependencies: true, InterpreterPath: "/usr/bin/python3"}}}
	svc, err := aml.Deploy(ctx, e.ws, "crash", nil, ic, webservice.DeployConfig{NumReplicas: 1}, e.target, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = svc.WaitForDeployment(ctx)
	if err == nil {
		t.Fatal("a crashing init() deployed")
	}
	for _, want := range []string{"current service state: Failed", "CrashLoopBackOff", "RuntimeError: cannot load model.pkl", "Traceback"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// The error and the log lines it quotes hold the traceback once.
	if n := strings.Count(err.Error(), "Traceback (most recent call last)"); n != 1 {
		t.Errorf("the error holds the traceback %d times, want once:\n%v", n, err)
	}
	init, err := svc.Logs(ctx, 50, true)
	if err != nil || !strings.Contains(strings.Join(init, "\n"), "cannot load model.pkl") {
		t.Errorf("init logs %q %v lack the traceback", init, err)
	}
}

func TestDeployRefusesScriptThatDoesNotParse(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newDeployEnv(t, compute.ProvisioningConfig{ClusterPurpose: compute.DevTest})
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "score.py"), []byte("def init():\n    pass\n\ndef run(raw_data)\n    return 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ic := &aml.InferenceConfig{EntryScript: "score.py", SourceDirectory: src,
		Environment: &aml.Environment{Name: "debian", Python: aml.PythonSection{UserManagedDependencies: true, InterpreterPath: "/usr/bin/python3"}}}
	_, err := aml.Deploy(ctx, e.ws, "syntax", nil, ic, webservice.DeployConfig{NumReplicas: 1}, e.target, nil)
	if !errors.Is(err, errcode.InvalidArgument) || !strings.Contains(err.Error(), "line 4") {
		t.Fatalf("a score.py with a syntax error: %v, want InvalidArgument naming line 4", err)
	}
}
