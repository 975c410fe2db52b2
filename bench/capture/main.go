// Command capture measures what model data collection and request
// telemetry cost a replica: the throughput and p99 latency of an echo
// score.py that collects its input and its output with
// azureml.monitoring.ModelDataCollector and prints one line per request,
// with collection and telemetry on (records written to a local store, and
// telemetry as JSON lines, in a temporary directory) and both off, in the
// same run, on loopback, with one closed-loop load generator in this
// program (every client sends its next request when the previous answer
// arrives, on a kept-alive connection).
//
// The sides are measured in rounds, one cell of each side a round, and
// each ratio is taken within a round, between cells a fraction of a second
// apart: the machine's own drift (other tenants of a shared host, its
// speed moving over seconds) falls on both sides of a ratio alike. The
// ratios reported are the medians over the rounds, each with a
// distribution-free 95 % confidence interval (order statistics of the
// rounds' ratios). Many short rounds rather than a few long ones: a change
// of the host's speed spoils the rounds it falls in, not a sixth of the
// run.
//
// A third side, the control (-control, on by default), is a second
// replica with both features off, measured as the off side is: its ratios
// to the off side are what the machine and the method give when nothing
// differs, so "within noise" is measured rather than judged. The rounds
// cycle through the six orders of the three sides (two sides: off then
// on, then on then off). -control-burn D makes the control's run() spin
// for D after its work: a control that costs the worker more per request
// without collecting anything, to tell what extra work alone does to p99.
// -model ridge measures the v1 deployment sample's model instead of the
// echo script: a scikit-learn Ridge regression (trained at start, which
// needs python3-sklearn) whose score.py collects its input and its
// predictions as v1's data collection guide shows, numpy arrays handed to
// collect() after model.predict, and prints the same line.
// -discard makes the on side's records as usual (the CSV rows, the JSON
// lines) but lands none of them in files: the difference from a run
// without it is what writing the files costs on this machine.
//
//	go run ./bench/capture          # 48 rounds of 250 ms cells
//	go run ./bench/capture -quick   # 8 rounds of 250 ms cells
//	go run ./bench/capture -server in-process   # the replicas in this process
//	go run ./bench/capture -model ridge   # the v1 sample's model instead of the echo script
//	go run ./bench/capture -server in-process -cpuprofile cpu.out
//	go tool pprof -top -tagfocus side=on cpu.out   # the on replica's goroutines alone
//	perf record -g go run ./bench/capture -only on   # one side alone
//
// The output ends with "RESULT capture_rps_ratio=… capture_p99_ratio=…
// capture_cpu_ratio=… capture_dropped=… capture_telemetry_dropped=…": the
// ratios are on ÷ off, the median of the rounds' (throughput: the goal is
// ≥ 0.95, capture_rps_ratio_q1 and _q3 the quartiles; p99: within noise of
// 1; the CPU a request costs this process and its workers;
// capture_best_rps_ratio is the best on cell's throughput over the best
// off cell's, as this benchmark reported before it paired the cells),
// capture_cpu_go_on_us and capture_cpu_go_off_us the part of it this
// process spent (the replicas' Go side and the load generator; the rest is
// the Python workers'), capture_dropped the model data records the buffer
// refused (the store did not keep up), capture_telemetry_dropped the
// telemetry records likewise. capture_rps_ratio_ci_lo and _hi, and
// capture_p99_ratio_ci_lo and _hi, are the confidence intervals of the two
// medians; with the control, capture_control_rps_ratio and
// capture_control_p99_ratio (with their _ci_lo and _ci_hi) are the
// control's ratios to the off side, and capture_p99_within_noise is true
// when the on side's p99 ratio's interval overlaps the control's.
//
// By default (-server aksml-score) each replica runs as a deployment's
// container runs it: a cmd/aksml-score process of its own (built from this
// module, with its default GOMAXPROCS, half the CPUs when hosting Python,
// and, with collection or telemetry on, its capture writer process at idle
// priority), configured by the environment v1 set
// (AML_MODEL_DC_STORAGE_ENABLED, AML_APP_INSIGHTS_ENABLED) and aksml's
// directories, its counts read from its /metrics. There, the Go column is
// the load generator and the aksml-score processes. -server in-process
// serves the replicas in this process instead, beside the load generator,
// by scoring.Serve (the lean engine aksml-score serves with; the writers in
// the replica, as the simulator runs them): their goroutines can be told
// apart in a CPU profile, and -discard can swap their store and sink.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/aksml/aksml/bench/internal/benchkit"
	"github.com/aksml/aksml/scoring"
)

const echoScript = `import json
from azureml.monitoring import ModelDataCollector

def init():
    global inputs_dc, prediction_dc
    inputs_dc = ModelDataCollector("echo", designation="inputs", feature_names=["a", "b", "c"])
    prediction_dc = ModelDataCollector("echo", designation="predictions", feature_names=["a", "b", "c"])

def run(raw_data):
    data = json.loads(raw_data)["data"]
    ctx = inputs_dc.collect(data)
    prediction_dc.collect(data, user_correlation_id=ctx.correlation_id)
    print("scored", len(data), "rows")
    return data
`

// ridgeScript is the v1 deployment sample's score.py with data collection
// as v1's guide added it: the input and the predictions collected as numpy
// arrays after model.predict.
const ridgeScript = `import json
import os

import joblib
import numpy as np
from azureml.monitoring import ModelDataCollector

def init():
    global model, inputs_dc, prediction_dc
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))
    inputs_dc = ModelDataCollector("sklearn_regression_model", designation="inputs",
                                   feature_names=["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"])
    prediction_dc = ModelDataCollector("sklearn_regression_model", designation="predictions",
                                       feature_names=["prediction1", "prediction2"])

def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    result = model.predict(data)
    inputs_dc.collect(data)
    prediction_dc.collect(result)
    print("scored", len(data), "rows")
    return result.tolist()
`

// The script measured, its request and its answer (set by -model).
var (
	script   = echoScript
	body     = []byte(`{"data": [[1.5, 2, "x"], [3, 4.25, "y"]]}`)
	want     = []byte(`[[1.5, 2, "x"], [3, 4.25, "y"]]`)
	modelDir string
)

var (
	quick       = flag.Bool("quick", false, "8 rounds of 250 ms cells")
	python      = flag.String("python", "/usr/bin/python3", "Python interpreter")
	workers     = flag.Int("workers", 2, "Python worker processes")
	concurrency = flag.Int("concurrency", 8, "clients")
	duration    = flag.Duration("duration", 250*time.Millisecond, "measured time per cell")
	rounds      = flag.Int("rounds", 48, "rounds (one cell of each side a round)")
	collect     = flag.Bool("collect", true, "the on side collects model data")
	telemetry   = flag.Bool("telemetry", true, "the on side records request telemetry")
	cpuprofile  = flag.String("cpuprofile", "", "write a CPU profile of this process (the replicas and the load) to this file; each replica's goroutines carry the label side=on, side=off or side=ctl (the control)")
	only        = flag.String("only", "", "measure one side alone (on or off), for a profiler such as perf; no ratios")
	control     = flag.Bool("control", true, "also measure a second replica with both features off, as the off side (an A/A control): its ratios to the off side are the method's own noise")
	controlBurn = flag.Duration("control-burn", 0, "make the control's run() spin this long after its work (both features still off): a control that costs more per request without collecting anything, to compare with what the on side's extra work does to p99")
	discard     = flag.Bool("discard", false, "the on side's records are made as usual (CSV rows, JSON lines) but never land in files: its model data store discards the rows it is given and its JSON-lines sink writes to "+os.DevNull+"; the difference from a run without it is what writing the files costs")
	model       = flag.String("model", "echo", "the score.py: echo (returns its input) or ridge (the v1 deployment sample's scikit-learn Ridge regression, collecting numpy arrays as v1's data collection guide does)")
	server      = flag.String("server", "aksml-score", "how the replicas are served: aksml-score (each a cmd/aksml-score process, as a deployment runs it) or in-process (scoring.Serve in this process, beside the load generator)")
	tmp         = flag.String("dir", "", "directory for the score.py, the model data store and the telemetry file (default: the system's temporary directory)")
)

func main() {
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if *quick {
		*duration, *rounds = 250*time.Millisecond, 8
	}
	sides := []string{"off", "on"}
	if *control {
		sides = append(sides, "ctl")
	}
	switch *only {
	case "":
	case "on", "off":
		sides, *control = []string{*only}, false
	default:
		log.Fatalf("-only %q: want on or off", *only)
	}
	switch *server {
	case "in-process":
	case "aksml-score":
		if *discard {
			log.Fatal("-discard swaps the replica's store and sink in this process: it needs -server in-process")
		}
	default:
		log.Fatalf("-server %q: want in-process or aksml-score", *server)
	}
	dir, err := os.MkdirTemp(*tmp, "aksml-capture-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	switch *model {
	case "echo":
	case "ridge":
		sc, err := benchkit.TrainRidge(dir, *python)
		if err != nil {
			log.Fatal(err)
		}
		script, body, want, modelDir = ridgeScript, sc.Body, sc.Want, sc.ModelDir
	default:
		log.Fatalf("-model %q: want echo or ridge", *model)
	}
	if err := os.WriteFile(filepath.Join(dir, "score.py"), []byte(script), 0o644); err != nil {
		log.Fatal(err)
	}
	if *controlBurn > 0 {
		// The control's run() spins for -control-burn after the
		// script's work, before it returns.
		at := strings.LastIndex(script, "\n    return ")
		if at < 0 {
			log.Fatal("-control-burn: the script has no return line to spin before")
		}
		burn := script[:at+1] + fmt.Sprintf("    _end = _clock() + %g\n    while _clock() < _end:\n        pass\n", controlBurn.Seconds()) + script[at+1:]
		burn = "from time import perf_counter as _clock\n" + burn
		if err := os.WriteFile(filepath.Join(dir, "score_burn.py"), []byte(burn), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	var store scoring.ModelDataStore = &scoring.LocalModelDataStore{Root: filepath.Join(dir, "ws")}
	telPath := filepath.Join(dir, "telemetry.jsonl")
	if *discard {
		store, telPath = discardStore{}, os.DevNull
	}
	sink, err := scoring.NewJSONLinesSink(telPath)
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()
	var dc *scoring.DataCollection
	var tel *scoring.Telemetry
	if *collect {
		dc = &scoring.DataCollection{Store: store, Service: "capture"}
	}
	if *telemetry {
		tel = &scoring.Telemetry{Sink: sink, Service: "capture", Version: "capture", Replica: "capture-0"}
	}
	on, onStats := start("on", dir, dc, tel)
	off, offClose := start("off", dir, nil, nil)
	addrs := map[string]string{"on": on, "off": off}
	if *control {
		ctl, ctlClose := start("ctl", dir, nil, nil)
		defer ctlClose()
		addrs["ctl"] = ctl
	}
	cells := map[string][]benchkit.Cell{}
	goCPUs := map[string][]time.Duration{} // the Go process's part of each cell's CPU
	fmt.Printf("%-6s %-4s %10s %10s %10s %12s %8s %8s\n", "round", "side", "req/s", "p50", "p99", "CPU/request", "Go", "Python")
	for r := range *rounds {
		for _, side := range roundOrder(sides, r) {
			c, goCPU := load(addrs[side])
			fmt.Printf("%-6d %-4s %10.0f %10v %10v %12v %8v %8v\n", r+1, side, c.RPS, c.P50.Round(10*time.Microsecond),
				c.P99.Round(10*time.Microsecond), c.CPU.Round(time.Microsecond), goCPU.Round(time.Microsecond),
				(c.CPU - goCPU).Round(time.Microsecond))
			cells[side] = append(cells[side], c)
			goCPUs[side] = append(goCPUs[side], goCPU)
		}
	}
	all := onStats()
	st, ts := all.DataCollection, all.Telemetry
	offClose()
	if *only != "" {
		fmt.Printf("collection on: %+v\ntelemetry on: %+v\n", st, ts)
		return
	}
	onCells, offCells := cells["on"], cells["off"]
	// Each ratio within its round, then the median (and quartiles) over
	// the rounds.
	ratios := func(side string, f func(c benchkit.Cell) float64) []float64 {
		v := make([]float64, len(offCells))
		for i := range offCells {
			v[i] = f(cells[side][i]) / f(offCells[i])
		}
		return v
	}
	rps := func(c benchkit.Cell) float64 { return c.RPS }
	p99 := func(c benchkit.Cell) float64 { return float64(c.P99) }
	rpsRatios := ratios("on", rps)
	p99Ratios := ratios("on", p99)
	cpuRatios := ratios("on", func(c benchkit.Cell) float64 { return float64(c.CPU) })
	median := func(v []time.Duration) float64 {
		f := make([]float64, len(v))
		for i, d := range v {
			f[i] = float64(d)
		}
		return quantile(f, 0.5)
	}
	cpu := func(cs []benchkit.Cell) []time.Duration {
		v := make([]time.Duration, len(cs))
		for i, c := range cs {
			v[i] = c.CPU
		}
		return v
	}
	best := func(cs []benchkit.Cell) float64 {
		return slices.MaxFunc(cs, func(a, b benchkit.Cell) int { return cmp.Compare(a.RPS, b.RPS) }).RPS
	}
	fmt.Printf("throughput on ÷ off by round: %s\n", strings.Join(formatted(rpsRatios), " "))
	fmt.Printf("collection on: %+v\ntelemetry on: %+v\n", st, ts)
	rpsLo, rpsHi := medianCI(rpsRatios)
	p99Lo, p99Hi := medianCI(p99Ratios)
	result := fmt.Sprintf("RESULT capture_rps_ratio=%.3f capture_rps_ratio_q1=%.3f capture_rps_ratio_q3=%.3f capture_rps_ratio_ci_lo=%.3f capture_rps_ratio_ci_hi=%.3f capture_p99_ratio=%.3f capture_p99_ratio_ci_lo=%.3f capture_p99_ratio_ci_hi=%.3f capture_cpu_ratio=%.3f capture_best_rps_ratio=%.3f capture_cpu_on_us=%.1f capture_cpu_off_us=%.1f capture_dropped=%d capture_written=%d capture_collected=%d capture_telemetry_dropped=%d capture_telemetry_sent=%d capture_telemetry_recorded=%d capture_cpu_go_on_us=%.1f capture_cpu_go_off_us=%.1f",
		quantile(rpsRatios, 0.5), quantile(rpsRatios, 0.25), quantile(rpsRatios, 0.75), rpsLo, rpsHi, quantile(p99Ratios, 0.5), p99Lo, p99Hi, quantile(cpuRatios, 0.5),
		best(onCells)/best(offCells), median(cpu(onCells))/1e3, median(cpu(offCells))/1e3, st.Dropped, st.Written, st.Collected,
		ts.Dropped, ts.Sent, ts.Recorded, median(goCPUs["on"])/1e3, median(goCPUs["off"])/1e3)
	if *control {
		// The control is a second replica with both features off: its
		// ratios to the off side are what this machine and this method
		// give for no difference at all. The on side's p99 is within
		// noise when the confidence intervals of the two medians overlap.
		ctlRPS, ctlP99 := ratios("ctl", rps), ratios("ctl", p99)
		fmt.Printf("throughput control ÷ off by round: %s\n", strings.Join(formatted(ctlRPS), " "))
		cLo, cHi := medianCI(ctlP99)
		rLo, rHi := medianCI(ctlRPS)
		result += fmt.Sprintf(" capture_control_rps_ratio=%.3f capture_control_rps_ratio_ci_lo=%.3f capture_control_rps_ratio_ci_hi=%.3f capture_control_p99_ratio=%.3f capture_control_p99_ratio_ci_lo=%.3f capture_control_p99_ratio_ci_hi=%.3f capture_p99_within_noise=%t",
			quantile(ctlRPS, 0.5), rLo, rHi, quantile(ctlP99, 0.5), cLo, cHi, p99Lo <= cHi && cLo <= p99Hi)
	}
	fmt.Println(result)
}

// discardStore is the model data store of -discard: it takes the rows
// the writer made and keeps nothing.
type discardStore struct{}

func (discardStore) Append(ctx context.Context, name string, header, rows []byte) error {
	return ctx.Err()
}

// roundOrder is the order of the sides' cells in round r: with two sides,
// each goes first in every other round; with three, the rounds cycle
// through the six orders, so that each side is first, second and third
// equally often.
func roundOrder(sides []string, r int) []string {
	switch len(sides) {
	case 2:
		if r%2 == 1 {
			return []string{sides[1], sides[0]}
		}
	case 3:
		a, b, c := sides[0], sides[1], sides[2]
		return [][]string{{a, b, c}, {b, c, a}, {c, a, b}, {a, c, b}, {c, b, a}, {b, a, c}}[r%6]
	}
	return sides
}

// quantile is the q-quantile of v, interpolated between order statistics.
func quantile(v []float64, q float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	i := q * float64(len(v)-1)
	lo := int(i)
	if lo+1 >= len(v) {
		return v[lo]
	}
	return v[lo] + (i-float64(lo))*(v[lo+1]-v[lo])
}

// medianCI is a confidence interval of at least 95 % for the median of
// the distribution v was drawn from, free of any assumption about its
// shape: the order statistics k and n+1-k of v's n values (1-based), with
// k the largest for which Binomial(n, ½) puts at most 2.5 % below k.
// Under 6 values there is none such: the whole range is returned.
func medianCI(v []float64) (lo, hi float64) {
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	// cdf(j) = P(X ≤ j), X ~ Binomial(n, ½), term by term.
	p := math.Pow(0.5, float64(n)) // P(X = 0)
	cdf, k := p, 0
	for j := 0; cdf <= 0.025 && j < n; j++ {
		k = j + 1 // P(X < k) = P(X ≤ j) ≤ 2.5 %
		p *= float64(n-j) / float64(j+1)
		cdf += p
	}
	if k == 0 {
		return v[0], v[n-1]
	}
	return v[k-1], v[n-k]
}

func formatted(v []float64) []string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.3f", x)
	}
	return s
}

// start runs a replica of score.py on loopback and returns its address
// and its counters (read after the replica closed).
func start(side, dir string, dc *scoring.DataCollection, tel *scoring.Telemetry) (addr string, stats func() scoring.Stats) {
	entry := "score.py"
	if side == "ctl" && *controlBurn > 0 {
		entry = "score_burn.py"
	}
	if *server == "aksml-score" {
		return startAksmlScore(side, dir, entry, dc != nil, tel != nil)
	}
	// The side's goroutines (its writers, its workers' readers, its
	// connections) carry the label side=on or side=off in a CPU profile.
	pprof.Do(context.Background(), pprof.Labels("side", side), func(context.Context) {
		addr, stats = startReplica(dir, entry, dc, tel)
	})
	return addr, stats
}

func startReplica(dir, entry string, dc *scoring.DataCollection, tel *scoring.Telemetry) (string, func() scoring.Stats) {
	srv, err := scoring.NewServer(scoring.Config{EntryScript: entry, SourceDir: dir, Interpreter: *python,
		ModelDir: modelDir, Workers: *workers, DataCollection: dc, Telemetry: tel})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		log.Fatal(err)
	}
	if err := srv.Wait(ctx); err != nil {
		log.Fatalf("%v\n%s", err, strings.Join(srv.Logs(20, false), "\n"))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	// Served as aksml-score serves it (scoring.Serve: the lean HTTP
	// engine, net/http for the rest).
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- scoring.Serve(sctx, ln, srv) }()
	addr := ln.Addr().String()
	// The answer, checked once before measuring.
	if err := benchkit.Check("http://"+addr+"/score", body, want); err != nil {
		log.Fatal(err)
	}
	return addr, func() scoring.Stats {
		stop()
		<-served
		srv.Close()
		return srv.Stats()
	}
}

// load drives addr with the closed-loop clients for one cell. Each client
// keeps its connection and reads every answer (benchkit's client); the
// cell's CPU is that of this process and its workers, per request, and
// goCPU this process's part of it (the replicas' Go side and the load
// generator; the rest is the Python workers').
func load(addr string) (c benchkit.Cell, goCPU time.Duration) {
	self0, tree0 := goSideCPU(), treeCPU()
	c = benchkit.Closed(addr, request(addr), *concurrency, 200*time.Millisecond, *duration, os.Getpid())
	if c.Errs > 0 || c.N == 0 {
		log.Fatalf("%s: %d requests failed, %d answered", addr, c.Errs, c.N)
	}
	if tree := treeCPU() - tree0; tree > 0 {
		goCPU = time.Duration(float64(c.CPU) * float64(goSideCPU()-self0) / float64(tree))
	}
	return c, goCPU
}

// goSideCPU is the CPU time of the Go side: this process (the load
// generator, and the replicas served in it) and the aksml-score
// processes, without their Python workers.
func goSideCPU() time.Duration {
	t := benchkit.SelfCPU()
	for _, pid := range serverPids {
		c, _ := benchkit.ProcCPU(pid)
		t += c
	}
	return t
}

// treeCPU is the CPU time of this process and its workers.
func treeCPU() time.Duration {
	t, _ := benchkit.TreeCPU(os.Getpid())
	return t
}

func request(addr string) []byte {
	return benchkit.Request(addr, "/score", body)
}

var (
	aksmlScoreBin string // built once, by the first startAksmlScore
	serverPids    []int  // the aksml-score processes
)

// startAksmlScore runs a replica of entry as a cmd/aksml-score process,
// configured by its environment as a deployment's container is, and
// returns its address and its counters (read from its /metrics once every
// record has been written or counted, before it is stopped).
func startAksmlScore(side, dir, entry string, collect, telemetry bool) (addr string, stats func() scoring.Stats) {
	if aksmlScoreBin == "" {
		bin, err := benchkit.BuildAksmlScore(dir)
		if err != nil {
			log.Fatal(err)
		}
		aksmlScoreBin = bin
	}
	env := []string{"SERVICE_NAME=capture", "AKSML_VERSION_NAME=capture", "AKSML_REPLICA_NAME=capture-" + side}
	if collect {
		env = append(env, "AML_MODEL_DC_STORAGE_ENABLED=true", "AKSML_MODEL_DATA_DIR="+filepath.Join(dir, "ws"))
	}
	if telemetry {
		env = append(env, "AML_APP_INSIGHTS_ENABLED=true", "AKSML_TELEMETRY_DIR="+dir)
	}
	s, err := benchkit.StartAksmlScoreWith("aksml-score ("+side+")", aksmlScoreBin, *python, benchkit.Script{Dir: dir, ModelDir: modelDir}, entry, *workers, env)
	if err != nil {
		log.Fatal(err)
	}
	serverPids = append(serverPids, s.Pid)
	if err := benchkit.Check("http://"+s.Addr+"/score", body, want); err != nil {
		s.Stop()
		log.Fatal(err)
	}
	return s.Addr, func() scoring.Stats {
		defer s.Stop()
		// The writers linger up to 50 ms for a batch: wait until every
		// record is written (or counted as dropped or failed).
		var st scoring.Stats
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			resp, err := http.Get("http://" + s.Addr + "/metrics")
			if err != nil {
				log.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				log.Fatal(err)
			}
			if st, err = scoring.ParseMetrics(b); err != nil {
				log.Fatal(err)
			}
			d, t := st.DataCollection, st.Telemetry
			if d.Written+d.Dropped+d.Failed == d.Collected && t.Sent+t.Dropped+t.Failed == t.Recorded || time.Now().After(deadline) {
				return st
			}
		}
	}
}
