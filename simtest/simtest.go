package simtest

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)

// Options tune New. Nil means defaults.
type Options struct {
	// Simulator configures the simulator (an injected clock, timeouts, a
	// container engine); nil means simulator defaults.
	Simulator *simulator.Options
	// Provisioning is the compute target's configuration; the zero value
	// means a dev-test cluster of Standard_D3_v2 nodes.
	Provisioning compute.ProvisioningConfig
	// Timeout bounds the test's context (Env.Ctx) and every wait; 0 means
	// two minutes.
	Timeout time.Duration
	// LeakWait is how long the end-of-test checks wait for processes and
	// goroutines to end after the simulator closed; 0 means 5 s.
	LeakWait time.Duration
}

// Env is one test's AKS: a workspace, a simulator and a compute target.
type Env struct {
	// Ctx ends when the test ends or Options.Timeout passes.
	Ctx context.Context
	// Workspace lives in t.TempDir().
	Workspace *aml.Workspace
	// Simulator runs the target; Cluster is its simulated cluster (replica
	// listing, fault injection).
	Simulator *simulator.Simulator
	Cluster   *simulator.Cluster
	// Target is the compute target, Succeeded.
	Target *compute.Target

	tb       testing.TB
	leakWait time.Duration
}

// open counts the environments open in this process: process-wide leak
// checks only run when the last one closes.
var (
	openMu sync.Mutex
	open   int
)

// New creates the workspace, the simulator and the target, and registers
// their cleanup (and the leak checks) on t. It fails the test at once if
// any of them cannot be created.
func New(t testing.TB, opts *Options) *Env {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	e := &Env{tb: t, leakWait: opts.LeakWait}
	if e.leakWait == 0 {
		e.leakWait = 5 * time.Second
	}
	baseGoroutines := goroutineIDs()
	baseChildren := children()
	openMu.Lock()
	open++
	openMu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	e.Ctx = ctx
	// Cleanups run last-registered first: this one runs after the
	// simulator and workspace are closed.
	t.Cleanup(func() {
		cancel()
		openMu.Lock()
		open--
		last := open == 0
		openMu.Unlock()
		if last {
			e.checkProcesses(baseChildren)
			e.checkGoroutines(baseGoroutines)
		}
	})

	ws, err := aml.Open(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatalf("simtest: opening the workspace: %v", err)
	}
	e.Workspace = ws
	t.Cleanup(func() { ws.Close() })

	e.Simulator = simulator.New(opts.Simulator)
	t.Cleanup(func() { e.Simulator.Close() })

	pc := opts.Provisioning
	if pc.ClusterPurpose == "" {
		pc.ClusterPurpose = compute.DevTest
	}
	target, err := compute.Create(ctx, ws, "aks-test", pc, &compute.CreateOptions{Provider: e.Simulator})
	if err == nil {
		err = target.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("simtest: creating the compute target: %v", err)
	}
	e.Target = target
	e.Cluster, _ = e.Simulator.SimCluster(target.Name())
	// Before the simulator closes: what the test left deployed.
	t.Cleanup(e.checkServices)
	return e
}

// DeployHandler deploys a Go handler as web service name with default
// settings, waits until it is Healthy and deletes it when the test ends. A
// failure fails the test.
func (e *Env) DeployHandler(name string, h scoring.NewHandler) *webservice.Service {
	e.tb.Helper()
	return e.Deploy(name, nil, &aml.InferenceConfig{Handler: h}, webservice.DeployConfig{})
}

// DeployScript deploys entryScript (a score.py with init() and run()) from
// sourceDir as web service name, with models (registered in e.Workspace)
// under AZUREML_MODEL_DIR, waits until it is Healthy and deletes it when the
// test ends. A failure fails the test with the deployment's error, which
// carries the replica's log.
func (e *Env) DeployScript(name, sourceDir, entryScript string, models ...*aml.Model) *webservice.Service {
	e.tb.Helper()
	return e.Deploy(name, models, &aml.InferenceConfig{SourceDirectory: sourceDir, EntryScript: entryScript}, webservice.DeployConfig{})
}

// Deploy is aml.Deploy on the environment's target, waiting until the
// service is Healthy and deleting it when the test ends. A failure fails the
// test.
func (e *Env) Deploy(name string, models []*aml.Model, ic *aml.InferenceConfig, dc webservice.DeployConfig) *webservice.Service {
	e.tb.Helper()
	svc, err := aml.Deploy(e.Ctx, e.Workspace, name, models, ic, dc, e.Target, nil)
	if err != nil {
		e.tb.Fatalf("simtest: deploying %s: %v", name, err)
	}
	e.tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := svc.Delete(ctx); err != nil {
			e.tb.Errorf("simtest: deleting service %s: %v", name, err)
		}
	})
	if err := svc.WaitForDeployment(e.Ctx); err != nil {
		e.tb.Fatalf("simtest: service %s did not become Healthy: %v", name, err)
	}
	return svc
}

// RegisterModel registers path (a file or a directory) as model name in the
// workspace. A failure fails the test.
func (e *Env) RegisterModel(name, path string) *aml.Model {
	e.tb.Helper()
	m, err := e.Workspace.RegisterModel(e.Ctx, name, path, nil)
	if err != nil {
		e.tb.Fatalf("simtest: registering model %s: %v", name, err)
	}
	return m
}

// checkServices fails the test for every service still deployed: its
// replicas would run on after the test.
func (e *Env) checkServices() {
	if e.Cluster == nil {
		return
	}
	for _, name := range e.Cluster.Services() {
		n := 0
		if rs, err := e.Cluster.Replicas(name); err == nil {
			n = len(rs)
		}
		e.tb.Errorf("simtest: the test left service %q deployed with %d replica(s) running; delete it (Service.Delete) or deploy it with Env.Deploy, which deletes it at the end", name, n)
	}
}

// checkProcesses fails the test for child processes started since New that
// still run leakWait after the simulator closed.
func (e *Env) checkProcesses(base map[int]string) {
	var left map[int]string
	deadline := time.Now().Add(e.leakWait)
	for {
		left = map[int]string{}
		for pid, cmd := range children() {
			if _, ok := base[pid]; !ok {
				left[pid] = cmd
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // waiting for exits the kernel does not announce to us
	}
	for _, pid := range slices.Sorted(maps.Keys(left)) {
		e.tb.Errorf("simtest: the test left child process %d running: %s", pid, left[pid])
	}
}

// checkGoroutines fails the test for goroutines running aksml code that
// were not there at New and are still there leakWait after the end.
func (e *Env) checkGoroutines(base map[string]bool) {
	var left []string
	deadline := time.Now().Add(e.leakWait)
	for {
		left = left[:0]
		for id, stack := range goroutines() {
			if !base[id] && isLibrary(stack) {
				left = append(left, stack)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, stack := range left {
		e.tb.Errorf("simtest: the test left a goroutine of aksml running:\n%s", stack)
	}
}

// isLibrary reports whether a goroutine's stack runs aksml code other than
// this package and tests.
func isLibrary(stack string) bool {
	for _, line := range strings.Split(stack, "\n") {
		if strings.HasPrefix(line, "github.com/aksml/aksml/") && !strings.HasPrefix(line, "github.com/aksml/aksml/simtest.") && !strings.Contains(line, "_test.") {
			return true
		}
	}
	return false
}

// goroutines returns every goroutine's stack by ID, but the caller's.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for i, g := range bytes.Split(buf, []byte("\n\n")) {
		if i == 0 {
			continue // this goroutine
		}
		f := strings.Fields(string(g))
		if len(f) > 1 && f[0] == "goroutine" {
			out[f[1]] = string(g)
		}
	}
	return out
}

func goroutineIDs() map[string]bool {
	ids := map[string]bool{}
	for id := range goroutines() {
		ids[id] = true
	}
	return ids
}

// children returns this process's live (not zombie) child processes with
// their command lines. It reads /proc; elsewhere it returns none.
func children() map[int]string {
	out := map[int]string{}
	self := os.Getpid()
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, statPath := range dirs {
		b, err := os.ReadFile(statPath)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		pid, _ := strconv.Atoi(strings.Fields(s)[0])
		cmd, _ := os.ReadFile(filepath.Join(filepath.Dir(statPath), "cmdline"))
		out[pid] = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		if len(out[pid]) > 200 {
			out[pid] = out[pid][:200] + "…"
		}
	}
	return out
}
