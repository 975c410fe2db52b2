// Command frontend measures the routing overhead of aksml's front-end
// against nginx doing the same job on the same replicas.
//
//	go run ./bench/frontend          # full run (about two minutes)
//	go run ./bench/frontend -quick   # short run
//	go run ./bench/frontend -tls     # HTTPS instead (about 1.5 minutes; see tls.go)
//
// Layout (all on 127.0.0.1, each in its own process):
//   - replicas: 4 net/http servers answering POST /score with a small JSON
//     body (a trivial Go handler);
//   - aksml (event loop): frontend.Router.Serve with its default engine
//     (event loops, one per GOMAXPROCS), one route, key auth, the 4
//     replicas, GOMAXPROCS = cores, GOGC default (the fast path does not
//     allocate, so the collector does not run under load); this is what
//     the simulator, azureml-fe and the RESULT keys without prefix measure;
//   - aksml (net/http): the same Router under net/http's http.Server;
//   - nginx: worker_processes = cores, the Bearer key checked with a map,
//     an upstream pool of the 4 replicas with keep-alive;
//   - direct: the load generator straight to the replicas.
//
// Loads: open-loop fixed rates of 1k and 5k requests/s (latency measured
// from each request's scheduled send time, so queueing counts) and
// closed-loop maximum throughput with wrk (one thread, 64 connections). The
// targets are measured in short slices (0.5 s open loop, 20 slices of each
// rate per target, 10,000 requests at 1k/s; 1 s closed loop),
// interleaved and rotated, so that noise from other work on the machine
// falls on all of them alike. The table reports p50/p99 and what each proxy
// adds over direct, max throughput relative to nginx, and the proxy
// processes' CPU time per request in the closed loop (user+system from
// /proc, a figure that machine noise disturbs less). Closed-loop figures are
// medians over rounds (10, 3 with -quick) of one run per target; the ratios
// to nginx are taken within each round. Every process may run on every
// core (the header line shows the CPU lists), so the router and nginx get
// the same cores and compete for them with the replicas and wrk alike.
//
// Diagnostics (environment): AKSML_BENCH_PROBE=RATE runs only three rounds
// of RATE req/s against the proxies; AKSML_BENCH_CLOSED=ROUNDS runs only
// closed-loop rounds, printing each run's rate and the CPU per request of
// the proxy and of the replicas; AKSML_BENCH_ROUTER_PROCS=N sets the
// routers' GOMAXPROCS; AKSML_BENCH_ROUTER_ENV=K=V[,K=V] adds environment
// variables to the routers only (GODEBUG, GOGC, ...);
// AKSML_BENCH_EXTRA_PROCS=N raises the event-loop router's GOMAXPROCS by N
// after its loops started (one loop per P as before, N Ps beside them);
// AKSML_BENCH_CPUPROFILE=FILE writes a CPU profile of the event-loop router
// (of the ServeTLS router with -tls); AKSML_BENCH_TRACE=FILE writes an
// execution trace of the same router (go tool trace). With -tls: AKSML_BENCH_TLS_ONLY="keepalive
// ROUNDS" or "newconn ROUNDS" runs only that measure and prints each run;
// AKSML_BENCH_NGINX_TLS adds directives to nginx's server block (such as
// "ssl_session_tickets off;").
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aksml/aksml/bench/internal/benchkit"
	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/internal/childproc"
)

const (
	numReplicas = 4
	service     = "svc"
	key         = "benchKey0123456789abcdefghijklmn"
	body        = `{"data": [[1.0, 2.0, 3.0, 4.0]]}`
	answer      = `{"result": [0.5]}`
)

func main() {
	switch os.Getenv("AKSML_BENCH_ROLE") {
	case "replicas":
		runReplicas()
		return
	case "router":
		runRouter()
		return
	}
	quick := flag.Bool("quick", false, "short run")
	tlsMode := flag.Bool("tls", false, "measure HTTPS instead: the router's ServeTLS against nginx with the same certificate, keep-alive and new-connection rates")
	flag.BoolVar(&attackMode, "attack", false, "replay hostile callers instead (large and endless uploads, slow-loris, a pipelining flood, a replica that drops POSTs) against the router and nginx")
	flag.IntVar(&openSlicesFlag, "slices", 0, "0.5 s open-loop slices per target and rate (default 20, 3 with -quick)")
	flag.IntVar(&closedRoundsFlag, "rounds", 0, "closed-loop rounds of one 1 s wrk run per target (default 10, 3 with -quick)")
	flag.Parse()
	log.SetFlags(0)
	if err := orchestrate(*quick, *tlsMode); err != nil {
		log.Fatal(err)
	}
}

// Flags of the orchestrating run; 0 keeps the defaults.
var openSlicesFlag, closedRoundsFlag int

// attackMode runs orchestrateAttack (attack.go).
var attackMode bool

// ---- child roles ----

func runReplicas() {
	var ports []string
	for i := 0; i < numReplicas; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		ports = append(ports, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, answer)
		}))
	}
	fmt.Println("READY " + strings.Join(ports, ","))
	io.Copy(io.Discard, os.Stdin) // exit when the parent goes away
}

func runRouter() {
	rt := frontend.New(nil)
	var reps []frontend.Replica
	for i, p := range strings.Split(os.Getenv("AKSML_BENCH_REPLICAS"), ",") {
		reps = append(reps, frontend.Replica{ID: strconv.Itoa(i), URL: "http://127.0.0.1:" + p, Ready: true})
	}
	err := rt.SetRoute(frontend.Route{
		Name: service,
		Auth: frontend.Auth{Mode: frontend.AuthKey, PrimaryKey: key, SecondaryKey: frontend.GenerateKey()},
		Versions: []frontend.Version{{Name: service, Replicas: reps,
			// nginx caps nothing; neither does the router here.
			MaxConcurrentPerReplica: 4096}},
	})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	engine := os.Getenv("AKSML_BENCH_ENGINE")
	if engine == "tls" {
		cert, err := tls.LoadX509KeyPair(os.Getenv("AKSML_BENCH_TLS_CERT"), os.Getenv("AKSML_BENCH_TLS_KEY"))
		if err != nil {
			log.Fatal(err)
		}
		rt.SetCertificate(&cert)
	}
	fmt.Printf("READY %d\n", ln.Addr().(*net.TCPAddr).Port)
	stopProfile := func() {}
	if f := os.Getenv("AKSML_BENCH_CPUPROFILE"); f != "" && (engine == "eventloop" || engine == "tls") { // diagnostics only
		out, err := os.Create(f)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(out)
		stopProfile = func() { pprof.StopCPUProfile(); out.Close() }
	}
	if f := os.Getenv("AKSML_BENCH_TRACE"); f != "" && (engine == "eventloop" || engine == "tls") { // diagnostics only
		out, err := os.Create(f)
		if err != nil {
			log.Fatal(err)
		}
		trace.Start(out)
		prev := stopProfile
		stopProfile = func() { prev(); trace.Stop(); out.Close() }
	}
	go func() { io.Copy(io.Discard, os.Stdin); stopProfile(); os.Exit(0) }()
	if v, err := strconv.Atoi(os.Getenv("AKSML_BENCH_EXTRA_PROCS")); err == nil && v > 0 && engine == "eventloop" { // diagnostics only
		// The loops are one per GOMAXPROCS when Serve starts; raising it
		// after that leaves Ps for the goroutines beside them.
		go func() { time.Sleep(200 * time.Millisecond); runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + v) }()
	}
	switch engine {
	case "nethttp":
		log.Fatal((&http.Server{Handler: rt}).Serve(ln))
	case "tls":
		log.Fatal(rt.ServeTLS(ln))
	}
	log.Fatal(rt.Serve(ln))
}

// ---- orchestration ----

type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	dir   string // removed after the process ends
}

func (c *child) stop() {
	c.stdin.Close() // our own children exit on EOF
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	if c.cmd.Process != nil {
		childproc.KillGroup(c.cmd.Process)
	}
	<-done
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
}

// start runs this binary (or another program) and returns the word after
// READY on its first stdout line.
func start(env []string, name string, args ...string) (*child, string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = childproc.Attr()
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	c := &child{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "READY ") {
		c.stop()
		return nil, "", fmt.Errorf("%s did not start: %q %v", name, line, err)
	}
	return c, strings.TrimSpace(strings.TrimPrefix(line, "READY ")), nil
}

type target struct {
	name  string
	urls  []string // round robin (direct has one per replica)
	isRef bool
}

func orchestrate(quick, tlsMode bool) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return errors.New("wrk not found: run scripts/install-deps (Debian package wrk)")
	}
	nginxBin, err := exec.LookPath("nginx")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/nginx"); e == nil {
			nginxBin = "/usr/sbin/nginx"
		} else {
			return errors.New("nginx not found: run scripts/install-deps (Debian package nginx-light)")
		}
	}
	cores := runtime.NumCPU()
	var children []*child
	defer func() {
		for _, c := range children {
			c.stop()
		}
	}()
	// SIGPIPE too: with the output piped into head, dying of a broken pipe
	// would leave nginx's workers running (only its master gets a
	// parent-death signal).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	go func() {
		<-sig
		for _, c := range children {
			c.stop()
		}
		os.Exit(1)
	}()

	reps, ports, err := start([]string{"AKSML_BENCH_ROLE=replicas"}, self)
	if err != nil {
		return err
	}
	children = append(children, reps)
	replicaPorts := strings.Split(ports, ",")
	procs := cores
	if v, err := strconv.Atoi(os.Getenv("AKSML_BENCH_ROUTER_PROCS")); err == nil && v > 0 { // diagnostics only
		procs = v
	}
	routerEnv := []string{"AKSML_BENCH_ROLE=router", "AKSML_BENCH_REPLICAS=" + ports, fmt.Sprintf("GOMAXPROCS=%d", procs)}
	if v := os.Getenv("AKSML_BENCH_ROUTER_ENV"); v != "" { // K=V[,K=V]: diagnostics only
		routerEnv = append(routerEnv, strings.Split(v, ",")...)
	}
	if attackMode {
		return orchestrateAttack(self, nginxBin, cores, routerEnv, replicaPorts, func(c *child) { children = append(children, c) })
	}
	if tlsMode {
		return orchestrateTLS(tlsSetup{self: self, nginx: nginxBin, cores: cores, procs: procs, quick: quick,
			replicas: reps, replicaPorts: replicaPorts, routerEnv: routerEnv,
			keep: func(c *child) { children = append(children, c) }})
	}
	evl, evlPort, err := start(append(routerEnv, "AKSML_BENCH_ENGINE=eventloop"), self)
	if err != nil {
		return err
	}
	children = append(children, evl)
	slow, slowPort, err := start(append(routerEnv, "AKSML_BENCH_ENGINE=nethttp"), self)
	if err != nil {
		return err
	}
	children = append(children, slow)
	ngx, ngxPort, err := startNginx(nginxBin, cores, replicaPorts, "")
	if err != nil {
		return err
	}
	children = append(children, ngx)

	path := "/api/v1/service/" + service + "/score"
	direct := target{name: "direct"}
	for _, p := range replicaPorts {
		direct.urls = append(direct.urls, "http://127.0.0.1:"+p+"/score")
	}
	targets := []target{
		direct,
		{name: "aksml (event loop)", urls: []string{"http://127.0.0.1:" + evlPort + path}},
		{name: "aksml (net/http)", urls: []string{"http://127.0.0.1:" + slowPort + path}},
		{name: "nginx", urls: []string{"http://127.0.0.1:" + ngxPort + path}, isRef: true},
	}
	for _, t := range targets {
		if err := check(t.urls[0]); err != nil {
			return fmt.Errorf("%s: %v", t.name, err)
		}
	}
	if v := os.Getenv("AKSML_BENCH_CLOSED"); v != "" { // ROUNDS: diagnostics only
		rounds, _ := strconv.Atoi(v)
		pp := map[string][]int{"direct": nil, "aksml (event loop)": {evl.cmd.Process.Pid}, "aksml (net/http)": {slow.cmd.Process.Pid}, "nginx": append([]int{ngx.cmd.Process.Pid}, childPids(ngx.cmd.Process.Pid)...)}
		repPids := []int{reps.cmd.Process.Pid}
		for r := 0; r < rounds; r++ {
			for k := range targets {
				t := targets[(k+r)%len(targets)]
				if t.name == "aksml (net/http)" {
					continue
				}
				c0, r0 := cpuSeconds(pp[t.name]), cpuSeconds(repPids)
				n, secs, err := closedLoop(wrk, t.urls[0], time.Second)
				if err != nil {
					return err
				}
				fmt.Printf("%-18s %6.0f req/s  proxy CPU %5.1f µs/req  replicas %5.1f µs/req\n", t.name, float64(n)/secs,
					(cpuSeconds(pp[t.name])-c0)/float64(n)*1e6, (cpuSeconds(repPids)-r0)/float64(n)*1e6)
			}
		}
		return nil
	}
	if probe := os.Getenv("AKSML_BENCH_PROBE"); probe != "" { // RATE: diagnostics only
		rate, _ := strconv.Atoi(probe)
		pp := map[string][]int{"aksml (event loop)": {evl.cmd.Process.Pid}, "aksml (net/http)": {slow.cmd.Process.Pid}, "nginx": append([]int{ngx.cmd.Process.Pid}, childPids(ngx.cmd.Process.Pid)...)}
		for r := 0; r < 3; r++ {
			for _, t := range targets[1:] {
				c0 := cpuSeconds(pp[t.name])
				l := openLoop(t.urls, rate, 2*time.Second)
				fmt.Printf("%-18s %d/s p50 %.3f p90 %.3f p99 %.3f ms, proxy CPU %.0f µs/req; slowest:%s\n", t.name, rate, ms(l.pct(50)), ms(l.pct(90)), ms(l.pct(99)), (cpuSeconds(pp[t.name])-c0)/float64(len(l.d))*1e6, l.worst(8))
			}
		}
		return nil
	}

	openSlices, sliceDur, closedRounds := 20, 500*time.Millisecond, 10
	if quick {
		openSlices, closedRounds = 3, 3
	}
	if openSlicesFlag > 0 {
		openSlices = openSlicesFlag
	}
	if closedRoundsFlag > 0 {
		closedRounds = closedRoundsFlag
	}
	fmt.Printf("bench/frontend: %d cores, %d replicas (net/http trivial handler), nginx worker_processes %d, router GOMAXPROCS %d\n",
		cores, numReplicas, cores, procs)
	fmt.Printf("CPUs each may run on: router %s, nginx workers %s, replicas %s, load generators %s\n",
		cpusAllowed(evl.cmd.Process.Pid), cpusAllowed(childPids(ngx.cmd.Process.Pid)...), cpusAllowed(reps.cmd.Process.Pid), cpusAllowed(os.Getpid()))
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average before the run: %s (other work on the machine makes latencies noisy; the\n"+
			"targets are measured in short interleaved slices so that they share the noise)\n", strings.Fields(string(b))[0])
	}
	pids := map[string][]int{
		"aksml (event loop)": {evl.cmd.Process.Pid},
		"aksml (net/http)":   {slow.cmd.Process.Pid},
		"nginx":              append([]int{ngx.cmd.Process.Pid}, childPids(ngx.cmd.Process.Pid)...),
	}

	type stat struct {
		lat  [2]latencies
		cpu  [2]float64 // proxy CPU seconds during the fixed-rate slices
		reqs [2]int
		// closed loop, one entry per round
		rps, cpuPerReq []float64 // requests/s; proxy CPU µs per request
	}
	stats := map[string]*stat{}
	for _, t := range targets {
		stats[t.name] = &stat{}
		openLoop(t.urls, 1000, 300*time.Millisecond) // warm up connections
	}
	rateList := []int{1000, 5000}
	for ri, rate := range rateList {
		for sl := 0; sl < openSlices; sl++ {
			for k := range targets {
				t := targets[(k+sl)%len(targets)] // rotate the order
				c0 := cpuSeconds(pids[t.name])
				l := openLoop(t.urls, rate, sliceDur)
				st := stats[t.name]
				st.cpu[ri] += cpuSeconds(pids[t.name]) - c0
				st.reqs[ri] += len(l.d) + l.errs
				st.lat[ri].d = append(st.lat[ri].d, l.d...)
				st.lat[ri].errs += l.errs
			}
		}
		for _, t := range targets {
			l := &stats[t.name].lat[ri]
			sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
			fmt.Printf("  %-18s %5d req/s: p50 %7.3f ms  p99 %7.3f ms  (%d requests, %d errors)\n",
				t.name, rate, ms(l.pct(50)), ms(l.pct(99)), len(l.d), l.errs)
			if l.errs > 0 {
				return fmt.Errorf("%s: %d requests failed", t.name, l.errs)
			}
		}
	}
	// Closed loop: in each round every target gets one wrk run, in rotated
	// order; the ratios to nginx are taken within a round (the runs are
	// seconds apart, so they see about the same load from the rest of the
	// machine) and the table reports their median over the rounds.
	for r := 0; r < closedRounds; r++ {
		for k := range targets {
			t := targets[(k+r)%len(targets)]
			c0 := cpuSeconds(pids[t.name])
			n, secs, err := closedLoop(wrk, t.urls[0], time.Second)
			if err != nil {
				return fmt.Errorf("%s: %v", t.name, err)
			}
			st := stats[t.name]
			st.cpuPerReq = append(st.cpuPerReq, (cpuSeconds(pids[t.name])-c0)/float64(n)*1e6)
			st.rps = append(st.rps, float64(n)/secs)
		}
	}
	ratios := func(name string, cpu bool) []float64 {
		a, b := stats[name].rps, stats["nginx"].rps
		if cpu {
			a, b = stats[name].cpuPerReq, stats["nginx"].cpuPerReq
		}
		out := make([]float64, len(a))
		for i := range a {
			out[i] = a[i] / b[i]
		}
		return out
	}
	d := &stats["direct"].lat

	fmt.Println()
	fmt.Printf("%-18s | %21s | %21s | %21s | %21s | %8s | %8s | %11s\n", "target", "1k/s p50 (added)", "1k/s p99 (added)",
		"5k/s p50 (added)", "5k/s p99 (added)", "max rps", "vs nginx", "CPU µs/req")
	// max rps, vs nginx and CPU µs/req are medians over the closed-loop rounds.
	fmt.Println(strings.Repeat("-", 18) + strings.Repeat("-+-"+strings.Repeat("-", 21), 4) + "-+-" + strings.Repeat("-", 8) + "-+-" + strings.Repeat("-", 8) + "-+-" + strings.Repeat("-", 11))
	for _, t := range targets {
		l := &stats[t.name].lat
		cell := func(ri int, p float64) string {
			x := l[ri].pct(p)
			if t.name == "direct" {
				return fmt.Sprintf("%8.3f ms %10s", ms(x), "")
			}
			return fmt.Sprintf("%8.3f ms (%+.3f)", ms(x), ms(x-d[ri].pct(p)))
		}
		cpu := "-"
		if t.name != "direct" {
			cpu = fmt.Sprintf("%.1f", median(stats[t.name].cpuPerReq))
		}
		fmt.Printf("%-18s | %21s | %21s | %21s | %21s | %8.0f | %7.2fx | %11s\n", t.name,
			cell(0, 50), cell(0, 99), cell(1, 50), cell(1, 99), median(stats[t.name].rps), median(ratios(t.name, false)), cpu)
	}
	for _, name := range []string{"aksml (event loop)", "aksml (net/http)"} {
		rr, cr := ratios(name, false), ratios(name, true)
		fmt.Printf("%s vs nginx over %d closed-loop rounds: max rps %.2f–%.2f (above 1 in %d), CPU per request %.2f–%.2f\n",
			name, len(rr), slices.Min(rr), slices.Max(rr), countAbove(rr, 1), slices.Min(cr), slices.Max(cr))
	}
	fmt.Printf("wrk (one thread) used %.0f%% of a core in the median closed-loop run (%.0f%% at most)\n",
		100*median(wrkBusy), 100*slices.Max(wrkBusy))
	a, s, n := &stats["aksml (event loop)"].lat, &stats["aksml (net/http)"].lat, &stats["nginx"].lat
	added := func(l *[2]latencies, ri int, p float64) float64 { return ms(l[ri].pct(p) - d[ri].pct(p)) }
	fmt.Printf("\nRESULT added_p50_ms=%.3f added_p99_ms=%.3f added_p50_5k_ms=%.3f added_p99_5k_ms=%.3f max_rps_ratio_vs_nginx=%.2f "+
		"cpu_per_req_ratio_vs_nginx=%.2f nginx_added_p50_ms=%.3f nginx_added_p99_ms=%.3f nethttp_added_p50_ms=%.3f nethttp_added_p99_ms=%.3f "+
		"nethttp_max_rps_ratio_vs_nginx=%.2f nethttp_cpu_per_req_ratio_vs_nginx=%.2f\n",
		added(a, 0, 50), added(a, 0, 99), added(a, 1, 50), added(a, 1, 99), median(ratios("aksml (event loop)", false)),
		median(ratios("aksml (event loop)", true)), added(n, 0, 50), added(n, 0, 99), added(s, 0, 50), added(s, 0, 99),
		median(ratios("aksml (net/http)", false)), median(ratios("aksml (net/http)", true)))
	return nil
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(x))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func countAbove(x []float64, v float64) int {
	n := 0
	for _, y := range x {
		if y > v {
			n++
		}
	}
	return n
}

// cpusAllowed lists the CPUs the processes may run on (as taskset shows
// them), or "?".
func cpusAllowed(pids ...int) string {
	seen := map[string]bool{}
	var out []string
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				v = strings.TrimSpace(v)
				if !seen[v] {
					seen[v] = true
					out = append(out, v)
				}
			}
		}
	}
	if len(out) == 0 {
		return "?"
	}
	return strings.Join(out, " ")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// startNginx runs nginx as the front-end over the replicas at ports; with
// tlsConf (directives such as ssl_certificate) it listens with ssl.
func startNginx(bin string, workers int, ports []string, tlsConf string) (*child, string, error) {
	dir, err := os.MkdirTemp("", "aksml-bench-nginx-")
	if err != nil {
		return nil, "", err
	}
	// nginx's workers run as nobody: they must reach the temporary files
	// for bodies too large to buffer in memory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	portN := ln.Addr().(*net.TCPAddr).Port
	port := strconv.Itoa(portN)
	ln.Close()
	var upstreams []string
	for _, p := range ports {
		upstreams = append(upstreams, "127.0.0.1:"+p)
	}
	conf := benchkit.NginxConf(dir, portN, workers, key, "/api/v1/service/"+service+"/score", upstreams)
	if tlsConf != "" {
		listen := fmt.Sprintf("    listen 127.0.0.1:%d;\n", portN)
		if !strings.Contains(conf, listen) {
			os.RemoveAll(dir)
			return nil, "", fmt.Errorf("nginx configuration has no %q line to add ssl to", strings.TrimSpace(listen))
		}
		conf = strings.Replace(conf, listen, fmt.Sprintf("    listen 127.0.0.1:%d ssl;\n%s", portN, tlsConf), 1)
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "-c", confPath, "-p", dir)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = childproc.Attr()
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	c := &child{cmd: cmd, stdin: stdin, dir: dir}
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			c.stop()
			return nil, "", fmt.Errorf("nginx did not start: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c, port, nil
}

func check(url string) error {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != answer {
		return fmt.Errorf("got %d %q", resp.StatusCode, b)
	}
	req, _ = http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if !strings.Contains(url, "/api/") {
		return nil
	}
	if resp.StatusCode != 401 {
		return fmt.Errorf("wrong key got %d, want 401", resp.StatusCode)
	}
	return nil
}

// ---- load generation ----

type latencies struct {
	d    []time.Duration
	errs int
	raw  []time.Duration // by send order (diagnostics)
}

// worst lists the send positions and latencies of the n slowest requests.
func (l *latencies) worst(n int) string {
	idx := make([]int, len(l.raw))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return l.raw[idx[a]] > l.raw[idx[b]] })
	var b strings.Builder
	for _, i := range idx[:min(n, len(idx))] {
		fmt.Fprintf(&b, " #%d:%.2fms", i, ms(l.raw[i]))
	}
	return b.String()
}

func (l *latencies) pct(p float64) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	i := int(float64(len(l.d)-1) * p / 100)
	return l.d[i]
}

// openLoop sends rate requests/s for dur, spread over urls round robin,
// measuring each from its scheduled send time.
func openLoop(urls []string, rate int, dur time.Duration) *latencies {
	clients := make([]*fasthttp.HostClient, len(urls))
	for i, u := range urls {
		addr := strings.TrimPrefix(u, "http://")
		addr = addr[:strings.IndexByte(addr, '/')]
		clients[i] = &fasthttp.HostClient{Addr: addr, MaxConns: 1024, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	}
	defer func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}()
	n := int(float64(rate) * dur.Seconds())
	type job struct {
		at time.Time
		i  int
	}
	jobs := make(chan job, n)
	res := make([]time.Duration, n)
	ok := make([]bool, n)
	var wg sync.WaitGroup
	workers := 128
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			sl := benchkit.NewSleeper()
			defer sl.Close()
			for j := range jobs {
				sl.Until(j.at)
				u := urls[j.i%len(urls)]
				req.Reset()
				req.SetRequestURI(u)
				req.Header.SetMethod("POST")
				req.Header.SetContentType("application/json")
				req.Header.Set("Authorization", "Bearer "+key)
				req.SetBodyString(body)
				err := clients[j.i%len(urls)].Do(req, resp)
				res[j.i] = time.Since(j.at)
				ok[j.i] = err == nil && resp.StatusCode() == 200
			}
		}()
	}
	startAt := time.Now().Add(10 * time.Millisecond)
	interval := time.Second / time.Duration(rate)
	// Release jobs shortly before they are due; workers sleep until then
	// (on timers precise to microseconds: see benchkit.Sleeper).
	rel := benchkit.NewSleeper()
	defer rel.Close()
	for i := 0; i < n; i++ {
		at := startAt.Add(time.Duration(i) * interval)
		rel.Until(at.Add(-time.Millisecond))
		jobs <- job{at, i}
	}
	close(jobs)
	wg.Wait()
	l := &latencies{}
	for i := range res {
		if ok[i] {
			l.d = append(l.d, res[i])
		} else {
			l.errs++
		}
	}
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	l.raw = res
	return l
}

var wrkDone = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m)\b`)
var wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)

// wrkBusy collects, per closed-loop run, the share of one core wrk used
// (its user+system time over the run's duration): well below 1, wrk's one
// thread is not what limits the rate.
var wrkBusy []float64

// closedLoop runs wrk with 64 connections for dur and returns the requests
// it completed and the seconds it took.
func closedLoop(wrk, url string, dur time.Duration) (int, float64, error) {
	dir, err := os.MkdirTemp("", "aksml-bench-wrk-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "post.lua")
	lua := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = '%s'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer %s\"\n", body, key)
	if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, wrk, "-t1", "-c64", fmt.Sprintf("-d%ds", int(dur.Seconds()+0.5)), "-s", script, url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("wrk: %v: %s", err, out)
	}
	wrkCPU := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		return 0, 0, fmt.Errorf("wrk saw %s non-2xx responses", m[1])
	}
	m := wrkDone.FindSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("no \"N requests in T\" in wrk output: %s", out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	secs, _ := strconv.ParseFloat(string(m[2]), 64)
	secs *= map[string]float64{"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[string(m[3])]
	if n == 0 || secs <= 0 {
		return 0, 0, fmt.Errorf("wrk completed no requests: %s", out)
	}
	wrkBusy = append(wrkBusy, wrkCPU/secs)
	return n, secs, nil
}

// childPids lists the processes whose parent is pid (nginx's workers).
func childPids(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// cpuSeconds is the user+system CPU time the processes have used.
func cpuSeconds(pids []int) float64 {
	total := 0.0
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		// After the command: state(0) ppid(1) ... utime(11) stime(12).
		if len(f) > 12 {
			u, _ := strconv.ParseFloat(f[11], 64)
			s, _ := strconv.ParseFloat(f[12], 64)
			total += (u + s) / 100 // USER_HZ
		}
	}
	return total
}
