// Command scoring benchmarks the aksml replica server (package scoring, the
// engine of cmd/aksml-score) against gunicorn + Flask hosting the same
// score.py the way azureml-inference-server-http does, with the same number
// of Python worker processes, on loopback, with one load generator in this
// program.
//
//	go run ./bench/scoring            # full run (about 3 minutes: 3 interleaved rounds of 2 s cells)
//	go run ./bench/scoring -quick     # short run (about 1 minute)
//
// Two scripts are measured: an echo script (json.loads of the body) and a
// scikit-learn Ridge regression on the diabetes data set, trained at start.
// Each is driven at concurrency 1, 8 and 32 (closed loop: every client sends
// its next request when the previous answer arrives). The baseline is the
// better of gunicorn's sync workers and gunicorn's gthread workers: the
// higher throughput and, separately, the lower p99. The output ends with one
// line "RESULT key=value ..." whose ratios are aksml ÷ gunicorn+Flask.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/aksml/aksml/bench/internal/benchkit"
)

var (
	quick    = flag.Bool("quick", false, "short run: 1 s per cell, one round")
	python   = flag.String("python", "/usr/bin/python3", "Python interpreter with numpy, scikit-learn, Flask and gunicorn (Debian's)")
	workers  = flag.Int("workers", 2, "Python worker processes per server")
	threads  = flag.Int("threads", 4, "threads per gunicorn gthread worker")
	duration = flag.Duration("duration", 2*time.Second, "measured time per cell")
	warmup   = flag.Duration("warmup", 500*time.Millisecond, "unmeasured time before each cell")
	rounds   = flag.Int("rounds", 3, "interleaved rounds per cell; the round with the highest throughput is kept")
	concs    = flag.String("concurrency", "1,8,32", "comma-separated client concurrencies")
	only     = flag.String("only", "", "run only this script (echo or sklearn) and only aksml when set with -aksml_only")
	aksOnly  = flag.Bool("aksml_only", false, "measure only aksml (for profiling)")
	cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the benchmark process (the load generator) to this file")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	if *quick {
		*duration = time.Second
		*warmup = 300 * time.Millisecond
		*rounds = 1
	}
	var cs []int
	for _, s := range strings.Split(*concs, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			log.Fatalf("bad -concurrency %q", *concs)
		}
		cs = append(cs, c)
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(cs); err != nil {
		pprof.StopCPUProfile()
		log.Fatalf("bench/scoring: %v", err)
	}
}

func run(cs []int) error {
	dir, err := os.MkdirTemp("", "aksml-bench-scoring-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	scripts, bin, err := benchkit.Setup(dir, *python)
	if err != nil {
		return err
	}
	fmt.Printf("scoring benchmark: %d Python workers per server (gthread: %d threads each), %v per cell, best of %d round(s), concurrency %v, loopback, %d CPUs, GOMAXPROCS=%d\n",
		*workers, *threads, *duration, *rounds, cs, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	fmt.Printf("aksml = cmd/aksml-score (static build, its default GOMAXPROCS: half the CPUs when hosting Python); gunicorn = %s -m gunicorn + Flask (flaskapp.py); the load generator runs in this process\n", *python)
	fmt.Printf("server CPU/req = CPU time of the server's processes (Go server and Python workers, or gunicorn master and workers) per request\n\n")
	fmt.Printf("%-8s %5s  %-17s %10s %10s %10s %12s %7s\n", "script", "conc", "server", "req/s", "p50", "p99", "server CPU/req", "errors")

	results := map[string]map[int]map[string]benchkit.Cell{}
	for _, sc := range scripts {
		if *only != "" && sc.Name != *only {
			continue
		}
		targets, err := startTargets(bin, dir, sc)
		if err != nil {
			return err
		}
		for _, t := range targets {
			if err := benchkit.Check("http://"+t.Addr+"/score", sc.Body, sc.Want); err != nil {
				benchkit.StopAll(targets)
				return fmt.Errorf("%s serving %s: %w", t.Name, sc.Name, err)
			}
		}
		results[sc.Name] = map[int]map[string]benchkit.Cell{}
		for _, c := range cs {
			results[sc.Name][c] = map[string]benchkit.Cell{}
			for r := 0; r < *rounds; r++ {
				for _, t := range targets {
					req := benchkit.Request(t.Addr, "/score", sc.Body)
					m := benchkit.Closed(t.Addr, req, c, *warmup, *duration, t.Pid)
					if old, ok := results[sc.Name][c][t.Name]; !ok || m.RPS > old.RPS {
						results[sc.Name][c][t.Name] = m
					}
				}
			}
			for _, t := range targets {
				m := results[sc.Name][c][t.Name]
				fmt.Printf("%-8s %5d  %-17s %10.0f %10s %10s %12s %7d\n", sc.Name, c, t.Name, m.RPS, fmtDur(m.P50), fmtDur(m.P99), fmtMicro(m.CPU), m.Errs)
			}
		}
		benchkit.StopAll(targets)
	}

	fmt.Printf("\nratios aksml ÷ gunicorn+Flask (throughput vs the faster gunicorn mode, p99 vs the lower gunicorn p99):\n")
	fmt.Printf("%-8s %5s %10s %10s %10s %12s\n", "script", "conc", "rps_ratio", "p50_ratio", "p99_ratio", "cpu_saving")
	kv := []string{}
	for _, sc := range scripts {
		if results[sc.Name] == nil || *aksOnly {
			continue
		}
		for _, c := range cs {
			cell := results[sc.Name][c]
			a := cell["aksml"]
			sync, gth := cell["gunicorn sync"], cell["gunicorn gthread"]
			rps := a.RPS / max(sync.RPS, gth.RPS)
			p50 := float64(a.P50) / float64(min(sync.P50, gth.P50))
			p99 := float64(a.P99) / float64(min(sync.P99, gth.P99))
			cpuSave := 0.0
			if a.CPU > 0 && sync.CPU > 0 && gth.CPU > 0 {
				cpuSave = float64(min(sync.CPU, gth.CPU)) / float64(a.CPU)
			}
			fmt.Printf("%-8s %5d %10.2f %10.2f %10.2f %12.2f\n", sc.Name, c, rps, p50, p99, cpuSave)
			suffix := ""
			if c != 8 {
				suffix = "_c" + strconv.Itoa(c)
			}
			kv = append(kv, fmt.Sprintf("%s_rps_ratio%s=%.2f", sc.Name, suffix, rps), fmt.Sprintf("%s_p99_ratio%s=%.2f", sc.Name, suffix, p99))
			if cpuSave > 0 {
				kv = append(kv, fmt.Sprintf("%s_cpu_saving%s=%.2f", sc.Name, suffix, cpuSave))
			}
		}
	}
	fmt.Printf("\ngoals at concurrency 8: echo rps ≥ 3, sklearn rps ≥ 2.5, p99 ratios ≤ 0.5; at concurrency 1: rps ≥ 1.5\n")
	fmt.Println("RESULT " + strings.Join(kv, " "))
	return nil
}

func fmtMicro(d time.Duration) string {
	if d == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// startTargets starts aksml and both gunicorn modes for one script.
func startTargets(bin, dir string, sc benchkit.Script) ([]benchkit.Server, error) {
	var ts []benchkit.Server
	a, err := benchkit.StartAksmlScore("aksml", bin, *python, sc, *workers)
	if err != nil {
		return nil, err
	}
	ts = append(ts, a)
	if *aksOnly {
		return ts, nil
	}
	for _, mode := range []string{"sync", "gthread"} {
		g, err := benchkit.StartGunicorn("gunicorn "+mode, *python, dir, sc, mode, *workers, *threads)
		if err != nil {
			benchkit.StopAll(ts)
			return nil, err
		}
		ts = append(ts, g)
	}
	return ts, nil
}
