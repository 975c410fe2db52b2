// Command deploy measures deploy-to-first-score on the in-process
// simulator: the time from aml.Deploy to the first 200 from the service's
// scoring URI, for a Go handler and for a scikit-learn score.py, beside the
// floor no Python host can beat — the time Python itself needs to start,
// import scikit-learn and load the model. With -local (the default when the
// control-plane binaries of scripts/kubebins are built) it measures the
// same on a local AKS (package kube/local: real control plane, the
// Deployment, its pod and the in-cluster front-end) beside the simulator,
// and the local cluster's start time.
//
//	go run ./bench/deploy [-quick] [-n 15] [-local=false]
//
// It ends with one line:
//
//	RESULT go_handler_ms=… scorepy_ms=… python_floor_ms=… scorepy_over_floor_ms=… [local_start_ms=… local_go_handler_ms=… local_scorepy_ms=… local_vs_sim_go=… local_vs_sim_scorepy=…]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/kube/controlplane"
	"github.com/aksml/aksml/kube/local"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)

const python = "/usr/bin/python3"

const trainPy = `
import sys, joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
X, y = load_diabetes(return_X_y=True)
joblib.dump(Ridge(alpha=0.5).fit(X, y), sys.argv[1])
`

const scorePy = `import json, os
import joblib
import numpy as np
from azureml.core.model import Model

model = None

def init():
    global model
    model = joblib.load(Model.get_model_path("diabetes-ridge"))

def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    return model.predict(data).tolist()
`

const floorPy = `import json, os, joblib, numpy, sklearn; joblib.load(os.environ["MODEL"])`

const input = `{"data": [[0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]]}`

type echo struct{}

func (echo) Init(ctx context.Context, dir string) error         { return nil }
func (echo) Run(ctx context.Context, in []byte) ([]byte, error) { return in, nil }
func newEcho() scoring.Handler                                  { return echo{} }

func main() {
	quick := flag.Bool("quick", false, "a short run (5 deployments of each kind)")
	n := flag.Int("n", 15, "deployments of each kind")
	withLocal := flag.Bool("local", len(controlplane.MissingBinaries(controlplane.BinDir())) == 0, "also measure on a local cluster (needs scripts/kubebins)")
	flag.Parse()
	if *quick {
		*n = 5
	}
	if err := run(*n, *withLocal); err != nil {
		fmt.Fprintln(os.Stderr, "bench/deploy:", err)
		os.Exit(1)
	}
}

func run(n int, withLocal bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "aksml-bench-deploy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	modelPath := filepath.Join(dir, "diabetes-ridge.pkl")
	if out, err := exec.Command(python, "-c", trainPy, modelPath).CombinedOutput(); err != nil {
		return fmt.Errorf("training the model with %s (needs python3-sklearn; run scripts/install-deps): %v\n%s", python, err, out)
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "score.py"), []byte(scorePy), 0o644); err != nil {
		return err
	}

	ws, err := aml.Open(ctx, filepath.Join(dir, "ws"), nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	model, err := ws.RegisterModel(ctx, "diabetes-ridge", modelPath, &aml.RegisterModelOptions{Framework: aml.FrameworkScikitLearn})
	if err != nil {
		return err
	}
	sim := simulator.New(nil)
	defer sim.Close()
	target, err := compute.Create(ctx, ws, "bench", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest, VMSize: "Standard_D4_v2"}, &compute.CreateOptions{Provider: sim})
	if err != nil {
		return err
	}
	if err := target.Wait(ctx); err != nil {
		return err
	}
	b := &bench{ws: ws, model: model, modelPath: modelPath, src: src}
	simRes, err := b.measure(ctx, target, n, true)
	if err != nil {
		return err
	}
	var loc *results
	var localStart time.Duration
	if withLocal {
		began := time.Now()
		lt, err := compute.Create(ctx, ws, "bench-local", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest, VMSize: "Standard_D4_v2", AgentCount: 1}, &compute.CreateOptions{Provider: local.NewProvider(nil)})
		if err != nil {
			return err
		}
		defer func() { _ = lt.Delete(context.WithoutCancel(ctx)) }()
		if err := lt.Wait(ctx); err != nil {
			return fmt.Errorf("local cluster: %w", err)
		}
		localStart = time.Since(began)
		if loc, err = b.measure(ctx, lt, n, false); err != nil {
			return fmt.Errorf("local cluster: %w", err)
		}
	}

	goP50, pyP50, floorP50, overP50 := pct(simRes.goMS, 50), pct(simRes.pyMS, 50), pct(simRes.floorMS, 50), pct(simRes.over, 50)
	fmt.Printf("deploy to first score, %d deployments each\n\n", n)
	fmt.Printf("%-52s %9s %9s %9s\n", "", "p50 ms", "p90 ms", "max ms")
	row := func(name string, xs []float64) {
		fmt.Printf("%-52s %9.1f %9.1f %9.1f\n", name, pct(xs, 50), pct(xs, 90), pct(xs, 100))
	}
	row("simulator: Go handler", simRes.goMS)
	row("simulator: sklearn score.py", simRes.pyMS)
	row("floor: python3 start + import sklearn + load", simRes.floorMS)
	row("simulator: score.py minus floor (paired)", simRes.over)
	if loc != nil {
		row("local cluster: Go handler", loc.goMS)
		row("local cluster: sklearn score.py", loc.pyMS)
		fmt.Printf("%-52s %9.1f\n", "local cluster: start (Create → Succeeded)", ms(localStart))
	}
	fmt.Printf("\nscore.py over the floor: %.1f ms at p50 (goal ≤ 300 ms); Go handler goal ≤ 50 ms\n", overP50)
	line := fmt.Sprintf("RESULT go_handler_ms=%.1f scorepy_ms=%.1f python_floor_ms=%.1f scorepy_over_floor_ms=%.1f go_handler_p90_ms=%.1f scorepy_p90_ms=%.1f",
		goP50, pyP50, floorP50, overP50, pct(simRes.goMS, 90), pct(simRes.pyMS, 90))
	if loc != nil {
		lg, lp := pct(loc.goMS, 50), pct(loc.pyMS, 50)
		line += fmt.Sprintf(" local_start_ms=%.0f local_go_handler_ms=%.1f local_scorepy_ms=%.1f local_vs_sim_go=%.1f local_vs_sim_scorepy=%.2f",
			ms(localStart), lg, lp, lg/goP50, lp/pyP50)
	}
	fmt.Println(line)
	return nil
}

// bench holds what every measurement deploys.
type bench struct {
	ws             *aml.Workspace
	model          *aml.Model
	modelPath, src string
}

// results are one target's deploy-to-first-score times in milliseconds;
// floorMS and over only when the floor is measured.
type results struct{ goMS, pyMS, floorMS, over []float64 }

// measure deploys n Go handlers and n score.py services to target, one at a
// time; with floor, each score.py deployment is paired with a floor
// measured right after it, so the difference is taken under the same
// machine load.
func (b *bench) measure(ctx context.Context, target *compute.Target, n int, floor bool) (*results, error) {
	dc := webservice.DeployConfig{NumReplicas: 1, AuthEnabled: new(false)}
	goIC := &aml.InferenceConfig{Handler: newEcho}
	pyIC := &aml.InferenceConfig{EntryScript: "score.py", SourceDirectory: b.src,
		Environment: &aml.Environment{Name: "sklearn", Python: aml.PythonSection{UserManagedDependencies: true, InterpreterPath: python}}}
	r := &results{}
	for i := 0; i < n; i++ {
		d, err := deployToFirstScore(ctx, b.ws, target, fmt.Sprintf("go-%d", i), nil, goIC, dc)
		if err != nil {
			return nil, err
		}
		r.goMS = append(r.goMS, d)
		d, err = deployToFirstScore(ctx, b.ws, target, fmt.Sprintf("py-%d", i), []*aml.Model{b.model}, pyIC, dc)
		if err != nil {
			return nil, err
		}
		r.pyMS = append(r.pyMS, d)
		if !floor {
			continue
		}
		start := time.Now()
		cmd := exec.Command(python, "-c", floorPy)
		cmd.Env = append(os.Environ(), "MODEL="+b.modelPath)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("python floor: %v\n%s", err, out)
		}
		f := ms(time.Since(start))
		r.floorMS = append(r.floorMS, f)
		r.over = append(r.over, r.pyMS[i]-f)
	}
	return r, nil
}

// deployToFirstScore deploys and polls the scoring URI until it answers
// 200, returning the milliseconds from Deploy to that answer.
func deployToFirstScore(ctx context.Context, ws *aml.Workspace, target *compute.Target, name string, models []*aml.Model, ic *aml.InferenceConfig, dc webservice.DeployConfig) (float64, error) {
	start := time.Now()
	svc, err := aml.Deploy(ctx, ws, name, models, ic, dc, target, nil)
	if err != nil {
		return 0, err
	}
	for {
		_, err := svc.Run(ctx, input)
		if err == nil {
			break
		}
		if !errors.Is(err, errcode.Unavailable) {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		if st, _ := svc.State(ctx); st == "Failed" {
			logs, _ := svc.Logs(ctx, 20, false)
			return 0, fmt.Errorf("%s failed: %v", name, logs)
		}
		time.Sleep(500 * time.Microsecond)
	}
	d := ms(time.Since(start))
	return d, svc.Delete(ctx)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pct(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}
