// Command batching benchmarks request batching in the aksml replica server
// (aksml-score --max_batch_size) on two scikit-learn models, each served by
// the same score.py with and without batching (the script defines run and
// run_batch; run_batch stacks the rows of its inputs and calls predict
// once), with the same number of Python workers, on loopback, with the load
// generator in this program:
//   - ridge: bench/scoring's model and request, the Ridge regression of
//     Azure ML v1's deployment sample (predict takes about 15 µs, less than
//     the HTTP round trip around it);
//   - forest: scikit-learn's RandomForestRegressor at its defaults (100
//     trees) on the same data and request, a model whose predict call costs
//     milliseconds whatever the number of rows, the kind batching is for.
//
// Run it from the repository:
//
//	go run ./bench/batching                # full run (3 interleaved rounds of 2 s cells per model)
//	go run ./bench/batching -quick         # short run (one round of 1 s cells)
//	go run ./bench/batching -model ridge   # one model
//
// Three measurements per model, each batched vs unbatched:
//   - concurrency 32, closed loop: throughput (batch_rps_ratio);
//   - a fixed open-loop rate both sustain (0.8 × the unbatched maximum):
//     p99 (batch_p99_ratio, batched ÷ unbatched; ≤ 1 is the goal);
//   - concurrency 1, closed loop: the latency batching adds (c1_added_ms,
//     the difference of the medians), beside max_batch_delay_ms; and the
//     same with max_batch_delay_ms 0 (c1_added_ms_delay0, a third server
//     measured in this cell only): the batch path's own cost, without the
//     wait.
//
// The output ends with one line "RESULT key=value ...": the Ridge model's
// keys unprefixed (batch_rps_ratio, ...), the forest's with the prefix
// forest_ (forest_batch_rps_ratio, ...).
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/aksml/aksml/bench/internal/benchkit"
)

var (
	quick    = flag.Bool("quick", false, "short run: 1 s per cell, one round")
	python   = flag.String("python", "/usr/bin/python3", "Python interpreter with numpy and scikit-learn (Debian's)")
	workers  = flag.Int("workers", 2, "Python worker processes per server")
	size     = flag.Int("max_batch_size", 32, "max_batch_size of the batched server")
	delay    = flag.Duration("max_batch_delay", 2*time.Millisecond, "max_batch_delay of the batched server")
	conc     = flag.Int("concurrency", 32, "closed-loop clients for the throughput cell")
	duration = flag.Duration("duration", 2*time.Second, "measured time per cell")
	warmup   = flag.Duration("warmup", 500*time.Millisecond, "unmeasured time before each cell")
	rounds   = flag.Int("rounds", 3, "interleaved rounds per cell; the best round is kept")
	model    = flag.String("model", "both", "the model: ridge, forest or both")
)

// batchScript is bench/scoring's scikit-learn score.py plus run_batch; it
// serves either model.
const batchScript = `import json
import os

import joblib
import numpy as np


def init():
    global model
    model = joblib.load(os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'sklearn_regression_model.pkl'))


def run(raw_data):
    data = np.array(json.loads(raw_data)['data'])
    return model.predict(data).tolist()


def run_batch(inputs):
    rows, parsed = [], []
    for raw in inputs:
        try:
            data = json.loads(raw)['data']
        except Exception as ex:
            data = ex
        parsed.append(data)
        if not isinstance(data, Exception):
            rows.extend(data)
    pred = model.predict(np.array(rows)).tolist() if rows else []
    out, i = [], 0
    for data in parsed:
        if isinstance(data, Exception):
            out.append(data)
        else:
            out.append(pred[i:i + len(data)])
            i += len(data)
    return out
`

func main() {
	flag.Parse()
	log.SetFlags(0)
	if *quick {
		*duration = time.Second
		*warmup = 300 * time.Millisecond
		*rounds = 1
	}
	if err := run(); err != nil {
		log.Fatalf("bench/batching: %v", err)
	}
}

type target struct {
	name string
	srv  benchkit.Server
}

// forestTrain trains the forest model: scikit-learn's RandomForestRegressor
// at its defaults on the diabetes data of the Ridge model, saved under the
// Ridge model's file name (the score.py is the same), with the Ridge
// model's request (the first two rows) and its expected answer.
const forestTrain = `import json
import sys

import joblib
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestRegressor

X, y = load_diabetes(return_X_y=True)
model = RandomForestRegressor(random_state=0).fit(X, y)
joblib.dump(model, sys.argv[1])
json.dump({"data": X[:2].tolist(), "expected": model.predict(X[:2]).tolist()}, open(sys.argv[2], "w"))
`

// outcome is one model's figures.
type outcome struct {
	rps, p99, added, addedP99, added0, rate float64
}

func run() error {
	var models []string
	switch *model {
	case "both":
		models = []string{"ridge", "forest"}
	case "ridge", "forest":
		models = []string{*model}
	default:
		return fmt.Errorf("-model %q: want ridge, forest or both", *model)
	}
	dir, err := os.MkdirTemp("", "aksml-bench-batching-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	scripts, bin, err := benchkit.Setup(dir, *python)
	if err != nil {
		return err
	}
	var sk benchkit.Script
	for _, s := range scripts {
		if s.Name == "sklearn" {
			sk = s
		}
	}
	sk.Dir = filepath.Join(dir, "batch")
	if err := os.MkdirAll(sk.Dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(sk.Dir, "score.py"), []byte(batchScript), 0o644); err != nil {
		return err
	}
	fmt.Printf("batching benchmark: scikit-learn, aksml-score with %d Python workers each; batched: --max_batch_size %d --max_batch_delay_ms %d; %v per cell, best of %d round(s), loopback, %d CPUs\n",
		*workers, *size, delay.Milliseconds(), *duration, *rounds, runtime.NumCPU())
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average before: %s", b)
	}
	out := map[string]outcome{}
	for _, m := range models {
		sc := sk
		what := "Ridge regression (bench/scoring's model and request, Azure ML v1's deployment sample)"
		if m == "forest" {
			what = "RandomForestRegressor, scikit-learn's defaults (100 trees), the same data and request"
			if sc, err = trainForest(dir, sk); err != nil {
				return err
			}
		}
		fmt.Printf("\n%s: %s\n", m, what)
		o, err := measure(bin, sc)
		if err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		out[m] = o
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("\nload average after: %s", b)
	}
	delayMS := float64(*delay) / float64(time.Millisecond)
	var result strings.Builder
	result.WriteString("RESULT")
	for _, m := range models {
		o := out[m]
		fmt.Printf("\n%s, batched ÷ unbatched: throughput at concurrency %d %.2f× (goal ≥ 3), p99 at %.0f req/s %.2f× (goal ≤ 1)\n", m, *conc, o.rps, o.rate, o.p99)
		fmt.Printf("%s, latency added at concurrency 1: p50 %+.2f ms, p99 %+.2f ms (goal ≤ max_batch_delay %.0f ms); with max_batch_delay 0: p50 %+.2f ms\n", m, o.added, o.addedP99, delayMS, o.added0)
		prefix := ""
		if m == "forest" {
			prefix = "forest_"
		}
		fmt.Fprintf(&result, " %[1]sbatch_rps_ratio=%.2[2]f %[1]sbatch_p99_ratio=%.2[3]f %[1]sc1_added_ms=%.2[4]f %[1]sc1_added_p99_ms=%.2[5]f %[1]sc1_added_ms_delay0=%.2[6]f %[1]srate_rps=%.0[7]f",
			prefix, o.rps, o.p99, o.added, o.addedP99, o.added0, o.rate)
	}
	fmt.Printf("%s max_batch_delay_ms=%.0f max_batch_size=%d\n", result.String(), delayMS, *size)
	return nil
}

// trainForest trains the forest model into its own model directory and
// returns sk (the batching score.py) serving it, with its request and
// answer.
func trainForest(dir string, sk benchkit.Script) (benchkit.Script, error) {
	sc := sk
	sc.ModelDir = filepath.Join(dir, "azureml-models", "forest", "1")
	if err := os.MkdirAll(sc.ModelDir, 0o755); err != nil {
		return sc, err
	}
	train := filepath.Join(dir, "train_forest.py")
	if err := os.WriteFile(train, []byte(forestTrain), 0o644); err != nil {
		return sc, err
	}
	sample := filepath.Join(dir, "forest_sample.json")
	if out, err := exec.Command(*python, train, filepath.Join(sc.ModelDir, "sklearn_regression_model.pkl"), sample).CombinedOutput(); err != nil {
		return sc, fmt.Errorf("training the forest model (needs python3-sklearn): %v\n%s", err, out)
	}
	var err error
	sc.Body, sc.Want, err = benchkit.ReadSample(sample)
	return sc, err
}

// measure runs the three cells on sk, unbatched and batched.
func measure(bin string, sk benchkit.Script) (outcome, error) {
	unb, err := start("unbatched", bin, sk, nil)
	if err != nil {
		return outcome{}, err
	}
	defer unb.srv.Stop()
	bat, err := start("batched", bin, sk, []string{"--max_batch_size", strconv.Itoa(*size), "--max_batch_delay_ms", strconv.Itoa(int(delay.Milliseconds()))})
	if err != nil {
		return outcome{}, err
	}
	defer bat.srv.Stop()
	bat0, err := start("batched-0", bin, sk, []string{"--max_batch_size", strconv.Itoa(*size), "--max_batch_delay_ms", "0"})
	if err != nil {
		return outcome{}, err
	}
	defer bat0.srv.Stop()
	targets := []target{unb, bat}
	for _, t := range []target{unb, bat, bat0} {
		if err := benchkit.Check("http://"+t.srv.Addr+"/score", sk.Body, sk.Want); err != nil {
			return outcome{}, fmt.Errorf("%s: %w", t.name, err)
		}
	}
	fmt.Printf("%-26s %-10s %10s %10s %10s %12s %7s\n", "load", "server", "req/s", "p50", "p99", "server CPU/req", "errors")

	best := func(targets []target, measure func(t target) benchkit.Cell, better func(a, b benchkit.Cell) bool) map[string]benchkit.Cell {
		out := map[string]benchkit.Cell{}
		for r := 0; r < *rounds; r++ {
			for _, t := range targets {
				m := measure(t)
				if old, ok := out[t.name]; !ok || better(m, old) {
					out[t.name] = m
				}
			}
		}
		return out
	}
	show := func(targets []target, load string, cells map[string]benchkit.Cell) {
		for _, t := range targets {
			m := cells[t.name]
			fmt.Printf("%-26s %-10s %10.0f %10s %10s %12s %7d\n", load, t.name, m.RPS, ms(m.P50), ms(m.P99), micro(m.CPU), m.Errs)
		}
	}
	faster := func(a, b benchkit.Cell) bool { return a.RPS > b.RPS }
	lowerP99 := func(a, b benchkit.Cell) bool { return a.Errs <= b.Errs && a.P99 < b.P99 }
	lowerP50 := func(a, b benchkit.Cell) bool { return a.P50 < b.P50 }

	cmax := best(targets, func(t target) benchkit.Cell {
		return benchkit.Closed(t.srv.Addr, benchkit.Request(t.srv.Addr, "/score", sk.Body), *conc, *warmup, *duration, t.srv.Pid)
	}, faster)
	show(targets, fmt.Sprintf("closed, concurrency %d", *conc), cmax)

	rate := 0.8 * cmax["unbatched"].RPS
	fixed := best(targets, func(t target) benchkit.Cell {
		return benchkit.OpenCell(t.srv.Addr, benchkit.Request(t.srv.Addr, "/score", sk.Body), rate, *duration, 64, t.srv.Pid)
	}, lowerP99)
	show(targets, fmt.Sprintf("open, %.0f req/s", rate), fixed)

	c1targets := []target{unb, bat, bat0}
	c1 := best(c1targets, func(t target) benchkit.Cell {
		return benchkit.Closed(t.srv.Addr, benchkit.Request(t.srv.Addr, "/score", sk.Body), 1, *warmup, *duration, t.srv.Pid)
	}, lowerP50)
	show(c1targets, "closed, concurrency 1", c1)

	return outcome{
		rps:      cmax["batched"].RPS / cmax["unbatched"].RPS,
		p99:      float64(fixed["batched"].P99) / float64(fixed["unbatched"].P99),
		added:    float64(c1["batched"].P50-c1["unbatched"].P50) / float64(time.Millisecond),
		addedP99: float64(c1["batched"].P99-c1["unbatched"].P99) / float64(time.Millisecond),
		added0:   float64(c1["batched-0"].P50-c1["unbatched"].P50) / float64(time.Millisecond),
		rate:     rate,
	}, nil
}

func start(name, bin string, sc benchkit.Script, extra []string) (target, error) {
	port, err := benchkit.FreePort()
	if err != nil {
		return target{}, err
	}
	args := []string{"--entry_script", filepath.Join(sc.Dir, "score.py"), "--source_dir", sc.Dir, "--model_dir", sc.ModelDir,
		"--port", strconv.Itoa(port), "--worker_count", strconv.Itoa(*workers), "--interpreter", *python}
	args = append(args, extra...)
	srv, err := benchkit.StartServer(name, exec.Command(bin, args...), port, "")
	return target{name, srv}, err
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func micro(d time.Duration) string {
	if d == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}
