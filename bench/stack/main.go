// Command stack measures the whole data plane, front-end to score.py and
// back, against the stack Azure ML v1 ran: on Azure a request went through
// azureml-fe into the model container, where nginx passed it to gunicorn
// running the Flask scoring app.
//
//	go run ./bench/stack            # full run (about 4 minutes)
//	go run ./bench/stack -quick     # short run (about 1.5 minutes)
//
// The two stacks, every process on 127.0.0.1, with the same replicas, the
// same Python workers per replica and the same cores (every process may run
// on every core):
//
//   - v1: nginx as the front-end (worker_processes = cores, the Bearer key
//     checked with a map, a keep-alive upstream pool over the replicas); per
//     replica an nginx (one worker, as in the container) in front of
//     gunicorn's sync workers running the Flask app that loads score.py the
//     way azureml-inference-server-http does (package benchkit);
//   - aksml: the router (package frontend, its default event-loop engine,
//     as its own process, key auth, GOMAXPROCS = cores) in front of
//     cmd/aksml-score replicas.
//
// Loads come from one generator in this program (package benchkit):
// closed-loop maximum throughput, and open-loop fixed rates at a quarter
// and at half of the v1 stack's maximum measured just before (rates both
// stacks sustain; latency counts from each request's scheduled send time).
// The stacks are measured in interleaved rounds; for each the best round is
// kept (the highest throughput; the lowest p99), the round least disturbed
// by other work on the machine.
//
// The output ends with one line "RESULT key=value ..." whose ratios are
// aksml ÷ v1.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aksml/aksml/bench/internal/benchkit"
	"github.com/aksml/aksml/frontend"
)

const (
	service = "svc"
	key     = "benchKey0123456789abcdefghijklmn"
	path    = "/api/v1/service/" + service + "/score"
)

var (
	quick      = flag.Bool("quick", false, "short run: shorter cells, one round")
	python     = flag.String("python", "/usr/bin/python3", "Python interpreter with numpy, scikit-learn, Flask and gunicorn (Debian's)")
	replicas   = flag.Int("replicas", 2, "replicas per stack")
	workers    = flag.Int("workers", 1, "Python worker processes per replica (v1's default WORKER_COUNT is 1)")
	conc       = flag.Int("concurrency", 32, "closed-loop clients for the maximum throughput")
	duration   = flag.Duration("duration", 3*time.Second, "measured time per cell")
	warmup     = flag.Duration("warmup", 500*time.Millisecond, "unmeasured time before each closed-loop cell")
	rounds     = flag.Int("rounds", 3, "interleaved rounds")
	only       = flag.String("only", "", "run only this script (echo or sklearn)")
	maxConcur  = flag.Int("max_concurrent", 64, "the router's max concurrent requests per replica (nginx caps nothing)")
	openConns  = flag.Int("open_conns", 64, "connections of the open-loop generator")
	rateShares = []float64{0.25, 0.5}
)

func main() {
	if os.Getenv("AKSML_BENCH_ROLE") == "router" {
		runRouter()
		return
	}
	flag.Parse()
	log.SetFlags(0)
	if *quick {
		*duration = 1500 * time.Millisecond
		*warmup = 300 * time.Millisecond
		*rounds = 1
	}
	// Stop every server on an interrupt: nginx's and gunicorn's workers do
	// not get the parent-death signal their masters get.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	go func() {
		<-sig
		stopStarted()
		os.Exit(1)
	}()
	err := run()
	stopStarted()
	if err != nil {
		log.Fatalf("bench/stack: %v", err)
	}
}

var (
	startedMu sync.Mutex
	started   []benchkit.Server
)

// track records s so that stopStarted ends it, even on error or interrupt.
func track(s benchkit.Server, err error) (benchkit.Server, error) {
	if err == nil {
		startedMu.Lock()
		started = append(started, s)
		startedMu.Unlock()
	}
	return s, err
}

func stopStarted() {
	startedMu.Lock()
	ss := started
	started = nil
	startedMu.Unlock()
	benchkit.StopAll(ss)
}

// runRouter is the child role: aksml's router over AKSML_BENCH_REPLICAS
// (comma-separated ports), listening on AKSML_BENCH_LISTEN, until killed.
func runRouter() {
	rt := frontend.New(nil)
	var reps []frontend.Replica
	for i, p := range strings.Split(os.Getenv("AKSML_BENCH_REPLICAS"), ",") {
		reps = append(reps, frontend.Replica{ID: strconv.Itoa(i), URL: "http://127.0.0.1:" + p, Ready: true})
	}
	mc, _ := strconv.Atoi(os.Getenv("AKSML_BENCH_MAX_CONCURRENT"))
	err := rt.SetRoute(frontend.Route{
		Name:     service,
		Auth:     frontend.Auth{Mode: frontend.AuthKey, PrimaryKey: key, SecondaryKey: frontend.GenerateKey()},
		Versions: []frontend.Version{{Name: service, Replicas: reps, MaxConcurrentPerReplica: max(mc, 1)}},
	})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", os.Getenv("AKSML_BENCH_LISTEN"))
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(rt.Serve(ln))
}

// stack is one data plane: its entry point and the processes it runs.
type stack struct {
	name  string
	addr  string
	pids  []int
	parts []string // a name per pid, for the CPU breakdown
}

func (st *stack) add(part string, pid int) {
	st.pids = append(st.pids, pid)
	st.parts = append(st.parts, part)
}

// cpu is the CPU time of each part's process tree.
func (st *stack) cpu() map[string]time.Duration {
	out := map[string]time.Duration{}
	for i, p := range st.pids {
		c, _ := benchkit.TreeCPU(p)
		out[st.parts[i]] += c
	}
	return out
}

func run() error {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/nginx"); e != nil {
			return fmt.Errorf("nginx not found: run scripts/install-deps (Debian package nginx-light)")
		}
		nginx = "/usr/sbin/nginx"
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "aksml-bench-stack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	scripts, bin, err := benchkit.Setup(dir, *python)
	if err != nil {
		return err
	}
	cores := runtime.NumCPU()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("stack benchmark: %d replicas × %d Python worker(s) per stack, %d cores, %v per cell, %d round(s), load average before: %s\n",
		*replicas, *workers, cores, *duration, *rounds, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("v1 = nginx front-end (%d workers, key map, keep-alive pool) → per replica nginx (1 worker) → gunicorn sync + Flask (%s)\n", cores, *python)
	fmt.Printf("aksml = router (package frontend, event loop, own process, GOMAXPROCS=%d, max %d concurrent per replica) → cmd/aksml-score\n", cores, *maxConcur)
	fmt.Printf("closed loop: %d clients; fixed rates: %v of v1's maximum; server CPU/req = all the stack's processes\n\n", *conc, rateShares)
	fmt.Printf("%-8s %-6s %-14s %10s %10s %10s %14s %7s\n", "script", "stack", "load", "req/s", "p50", "p99", "server CPU/req", "errors")

	var kv []string
	for _, sc := range scripts {
		if *only != "" && sc.Name != *only {
			continue
		}
		r, err := measureScript(nginx, self, bin, dir, cores, sc)
		stopStarted()
		if err != nil {
			return fmt.Errorf("%s: %w", sc.Name, err)
		}
		kv = append(kv, r...)
	}
	fmt.Printf("\ngoals: rps ratio ≥ 3 and p99 ratio (at half v1's maximum) ≤ 0.5 on both scripts\n")
	fmt.Println("RESULT " + strings.Join(kv, " "))
	return nil
}

func measureScript(nginx, self, bin, dir string, cores int, sc benchkit.Script) ([]string, error) {
	v1, err := startV1(nginx, dir, cores, sc)
	if err != nil {
		return nil, err
	}
	aks, err := startAksml(self, bin, sc)
	if err != nil {
		return nil, err
	}
	stacks := []stack{v1, aks}
	for _, st := range stacks {
		if err := benchkit.Check("http://"+st.addr+path, sc.Body, sc.Want, [2]string{"Authorization", "Bearer " + key}); err != nil {
			return nil, fmt.Errorf("%s stack: %w", st.name, err)
		}
		req := benchkit.Request(st.addr, path, sc.Body, "Authorization: Bearer wrong")
		cl := &benchkit.Client{Addr: st.addr}
		status, err := cl.Do(req)
		cl.Close()
		if err != nil || status != 401 {
			return nil, fmt.Errorf("%s stack: a wrong key got %d %v, want 401", st.name, status, err)
		}
	}
	req := func(st stack) []byte {
		return benchkit.Request(st.addr, path, sc.Body, "Authorization: Bearer "+key)
	}
	row := func(st stack, load string, m benchkit.Cell) {
		fmt.Printf("%-8s %-6s %-14s %10.0f %10s %10s %14s %7d\n", sc.Name, st.name, load, m.RPS, ms(m.P50), ms(m.P99), micro(m.CPU), m.Errs)
	}
	// Closed loop: the best round of each stack.
	best := map[string]benchkit.Cell{}
	split := map[string]map[string]time.Duration{} // CPU per part over every closed-loop round
	for r := 0; r < *rounds; r++ {
		for k := range stacks {
			st := stacks[(k+r)%len(stacks)]
			before := st.cpu()
			m := benchkit.Closed(st.addr, req(st), *conc, *warmup, *duration, st.pids...)
			if split[st.name] == nil {
				split[st.name] = map[string]time.Duration{}
			}
			for part, c := range st.cpu() {
				split[st.name][part] += c - before[part]
			}
			if old, ok := best[st.name]; !ok || m.RPS > old.RPS {
				best[st.name] = m
			}
		}
	}
	for _, st := range stacks {
		row(st, fmt.Sprintf("closed c%d", *conc), best[st.name])
	}
	for _, st := range stacks {
		var total time.Duration
		for _, c := range split[st.name] {
			total += c
		}
		var parts []string
		seen := map[string]bool{}
		for _, part := range st.parts {
			if seen[part] {
				continue
			}
			seen[part] = true
			parts = append(parts, fmt.Sprintf("%s %.0f%%", part, 100*float64(split[st.name][part])/float64(max(total, 1))))
		}
		fmt.Printf("%-8s %-6s closed-loop CPU by part: %s\n", sc.Name, st.name, strings.Join(parts, ", "))
	}
	v1Max, aksMax := best["v1"], best["aksml"]
	kv := []string{fmt.Sprintf("%s_rps_ratio=%.2f", sc.Name, aksMax.RPS/v1Max.RPS)}
	if v1Max.CPU > 0 && aksMax.CPU > 0 {
		kv = append(kv, fmt.Sprintf("%s_cpu_saving=%.2f", sc.Name, float64(v1Max.CPU)/float64(aksMax.CPU)))
	}
	// Fixed rates, from v1's maximum: the lowest p99 of each stack.
	for _, share := range rateShares {
		rate := max(10, v1Max.RPS*share)
		open := map[string]benchkit.Cell{}
		for r := 0; r < *rounds; r++ {
			for k := range stacks {
				st := stacks[(k+r)%len(stacks)]
				benchkit.OpenCell(st.addr, req(st), rate, 300*time.Millisecond, *openConns) // warm up connections
				m := benchkit.OpenCell(st.addr, req(st), rate, *duration, *openConns, st.pids...)
				if old, ok := open[st.name]; !ok || m.P99 < old.P99 {
					open[st.name] = m
				}
			}
		}
		for _, st := range stacks {
			row(st, fmt.Sprintf("%.0f/s (%.0f%%)", rate, share*100), open[st.name])
			if open[st.name].Errs > 0 {
				return nil, fmt.Errorf("%s stack: %d errors at %.0f/s", st.name, open[st.name].Errs, rate)
			}
		}
		suffix := fmt.Sprintf("_%.0f", share*100)
		if share == 0.5 {
			suffix = ""
		}
		kv = append(kv, fmt.Sprintf("%s_p99_ratio%s=%.2f", sc.Name, suffix, float64(open["aksml"].P99)/float64(open["v1"].P99)))
	}
	return kv, nil
}

// startV1 starts per replica gunicorn sync + Flask behind its own nginx,
// then the front nginx over the replicas' nginx.
func startV1(nginx, dir string, cores int, sc benchkit.Script) (stack, error) {
	st := stack{name: "v1"}
	var upstreams []string
	for i := range *replicas {
		g, err := track(benchkit.StartGunicorn(fmt.Sprintf("gunicorn %d", i), *python, dir, sc, "sync", *workers, 0))
		if err != nil {
			return st, err
		}
		n, err := track(startNginx(nginx, filepath.Join(dir, fmt.Sprintf("nginx-%s-replica%d", sc.Name, i)), 1, "", []string{g.Addr}))
		if err != nil {
			return st, err
		}
		st.add("gunicorn+Flask", g.Pid)
		st.add("replica nginx", n.Pid)
		upstreams = append(upstreams, n.Addr)
	}
	fe, err := track(startNginx(nginx, filepath.Join(dir, "nginx-"+sc.Name+"-front"), cores, path, upstreams))
	if err != nil {
		return st, err
	}
	st.addr = fe.Addr
	st.add("front nginx", fe.Pid)
	return st, nil
}

// startAksml starts the aksml-score replicas and the router over them.
func startAksml(self, bin string, sc benchkit.Script) (stack, error) {
	st := stack{name: "aksml"}
	var ports []string
	for i := range *replicas {
		s, err := track(benchkit.StartAksmlScore(fmt.Sprintf("aksml-score %d", i), bin, *python, sc, *workers))
		if err != nil {
			return st, err
		}
		st.add("aksml-score", s.Pid)
		ports = append(ports, s.Addr[strings.LastIndexByte(s.Addr, ':')+1:])
	}
	port, err := benchkit.FreePort()
	if err != nil {
		return st, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "AKSML_BENCH_ROLE=router", "AKSML_BENCH_REPLICAS="+strings.Join(ports, ","),
		"AKSML_BENCH_LISTEN=127.0.0.1:"+strconv.Itoa(port), "AKSML_BENCH_MAX_CONCURRENT="+strconv.Itoa(*maxConcur))
	r, err := track(benchkit.StartServer("router", cmd, port, "tcp"))
	if err != nil {
		return st, err
	}
	st.addr = r.Addr
	st.add("router", r.Pid)
	return st, nil
}

// startNginx runs nginx with prefix dir as benchkit.NginxConf configures
// it: the front-end when location is set, a replica's nginx otherwise.
func startNginx(bin, dir string, workers int, location string, upstreams []string) (benchkit.Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return benchkit.Server{}, err
	}
	port, err := benchkit.FreePort()
	if err != nil {
		return benchkit.Server{}, err
	}
	conf := benchkit.NginxConf(dir, port, workers, key, location, upstreams)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return benchkit.Server{}, err
	}
	s, err := benchkit.StartServer("nginx", exec.Command(bin, "-c", confPath, "-p", dir), port, "tcp")
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return s, fmt.Errorf("%w %s", err, b)
	}
	return s, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func micro(d time.Duration) string {
	if d == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}
