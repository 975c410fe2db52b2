// Command scale measures a thousand services in one simulator.
//
//	go run ./bench/scale            # 1,000 services
//	go run ./bench/scale -quick     # 200 services
//	go run ./bench/scale -cpuprofile cpu.out -memprofile mem.out
//	go run ./bench/scale -local     # 100 score.py services on a local cluster (-quick: 20)
//
// Two simulated clusters run in this process: "one" with a single
// Go-handler service and "many" with -n Go-handler services of one replica
// each, deployed one after the other through aml.Deploy and
// WaitForDeployment. It reports:
//
//   - the deploy rate per batch of a tenth of the services (it should not
//     fall as the cluster fills);
//   - memory per service: the process's RSS after a GC, before and after
//     the deployments (replicas, routes, records, the simulator's state);
//   - the CPU the process burns while idle with every service deployed
//     (control loop, probes) against one service;
//   - router throughput on one service of "many" against the service of
//     "one" (closed loop, 32 clients, interleaved rounds, the best round of
//     each), the routes1000_rps_ratio;
//   - route-table update latency while loaded: the time from aml.Deploy of
//     a new service to its first 200, while the closed loop runs on the
//     other service of the same cluster, on "many" against "one";
//   - webservice.List in the workspace with every service recorded.
//
// With -local it deploys score.py services into one local cluster instead
// (kube/local: a real Kubernetes control plane, virtual nodes whose pods
// are processes, the in-cluster front-end as a pod); see local.go.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/bench/internal/benchkit"
	"github.com/aksml/aksml/bench/internal/simbench"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/webservice"
)

type echo struct{}

func (echo) Init(context.Context, string) error                 { return nil }
func (echo) Run(ctx context.Context, in []byte) ([]byte, error) { return in, nil }
func newEcho() scoring.Handler                                  { return echo{} }

var (
	quick   = flag.Bool("quick", false, "200 services, shorter cells")
	n       = flag.Int("n", 1000, "services in the large cluster")
	rounds  = flag.Int("rounds", 3, "interleaved closed-loop rounds")
	cellDur = flag.Duration("duration", 2*time.Second, "measured time per closed-loop cell")
	cpuprof = flag.String("cpuprofile", "", "write a CPU profile of the deployments and the idle period to this file")
	memprof = flag.String("memprofile", "", "write a heap profile after the deployments to this file")
	onLocal = flag.Bool("local", false, "score.py services on a local cluster (kube/local) instead of Go-handler services in the simulator; -n defaults to 100 (20 with -quick)")
	python  = flag.String("python", "/usr/bin/python3", "the Python of the score.py services with -local (needs nothing but the standard library)")
)

func main() {
	flag.Parse()
	nSet := false
	flag.Visit(func(f *flag.Flag) { nSet = nSet || f.Name == "n" })
	defaultN := 200 // -quick in the simulator
	if *quick {
		*rounds, *cellDur = 1, time.Second
	}
	run := run
	if *onLocal {
		defaultN = 20
		if !nSet {
			*n = 100
		}
		run = func() error { return runLocal(*n, *python) }
	}
	if *quick && !nSet {
		*n = defaultN
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/scale:", err)
		os.Exit(1)
	}
}

// rssKB is the process's resident set after a full GC, in KiB.
func rssKB() int {
	runtime.GC()
	debug.FreeOSMemory()
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			k, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return k
		}
	}
	return 0
}

// idleCPU is the share of one core the process uses over d.
func idleCPU(d time.Duration) float64 {
	c0, _ := benchkit.TreeCPU(os.Getpid())
	time.Sleep(d)
	c1, _ := benchkit.TreeCPU(os.Getpid())
	return float64(c1-c0) / float64(d)
}

type env struct {
	ctx  context.Context
	ws   *aml.Workspace
	dc   webservice.DeployConfig
	ic   *aml.InferenceConfig
	tgts map[string]*compute.Target
}

func (e *env) deploy(cluster, name string) (*webservice.Service, error) {
	svc, err := aml.Deploy(e.ctx, e.ws, name, nil, e.ic, e.dc, e.tgts[cluster], nil)
	if err != nil {
		return nil, err
	}
	return svc, svc.WaitForDeployment(e.ctx)
}

// addrReq returns the host:port and request bytes for scoring svc.
func addrReq(ctx context.Context, svc *webservice.Service) (string, []byte, error) {
	key, _, err := svc.Keys(ctx)
	if err != nil {
		return "", nil, err
	}
	u, err := url.Parse(svc.ScoringURI())
	if err != nil {
		return "", nil, err
	}
	return u.Host, benchkit.Request(u.Host, u.Path, []byte(`{"data": [1]}`), "Authorization: Bearer "+key), nil
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	ws, sim, cleanup, err := simbench.Open(ctx, "aksml-bench-scale-")
	if err != nil {
		return err
	}
	defer cleanup()
	e := &env{ctx: ctx, ws: ws, tgts: map[string]*compute.Target{},
		dc: webservice.DeployConfig{NumReplicas: 1, CPUCores: 0.1, MemoryGB: 0.1,
			// The router, not its queue, is measured: 32 clients on one replica.
			ReplicaMaxConcurrentRequests: 32},
		ic: &aml.InferenceConfig{Handler: newEcho}}
	for _, name := range []string{"one", "many"} {
		t, err := compute.Create(ctx, ws, name, compute.ProvisioningConfig{VMSize: "Standard_D64_v3", AgentCount: 3}, &compute.CreateOptions{Provider: sim})
		if err != nil {
			return err
		}
		if err := t.Wait(ctx); err != nil {
			return err
		}
		e.tgts[name] = t
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("scale benchmark (simulator, in process): %d Go-handler services of 1 replica; load average before: %s; GOMAXPROCS=%d\n\n",
		*n, strings.Join(strings.Fields(string(load))[:3], " "), runtime.GOMAXPROCS(0))

	oneSvc, err := e.deploy("one", "solo")
	if err != nil {
		return err
	}
	firstMany, err := e.deploy("many", "svc-0000")
	if err != nil {
		return err
	}
	idle1 := idleCPU(2 * time.Second)
	listStart := time.Now()
	if _, err := webservice.List(ctx, ws); err != nil {
		return err
	}
	list2 := time.Since(listStart)
	rss0 := rssKB()

	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	batch := max(*n/10, 1)
	fmt.Printf("%12s %12s %14s %14s\n", "services", "deploys/s", "p50 deploy", "p99 deploy")
	var rates []float64
	began := time.Now()
	for i := 1; i < *n; i += batch {
		t0 := time.Now()
		var ds []time.Duration
		for j := i; j < min(i+batch, *n); j++ {
			d0 := time.Now()
			if _, err := e.deploy("many", fmt.Sprintf("svc-%04d", j)); err != nil {
				return fmt.Errorf("service %d: %w", j, err)
			}
			ds = append(ds, time.Since(d0))
		}
		slices.Sort(ds)
		rate := float64(len(ds)) / time.Since(t0).Seconds()
		rates = append(rates, rate)
		fmt.Printf("%12d %12.1f %14s %14s\n", min(i+batch, *n), rate, ms(benchkit.Percentile(ds, 50)), ms(benchkit.Percentile(ds, 99)))
	}
	total := time.Since(began)
	idleN := idleCPU(3 * time.Second)
	pprof.StopCPUProfile()
	rssN := rssKB()
	if *memprof != "" {
		f, err := os.Create(*memprof)
		if err != nil {
			return err
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
		f.Close()
	}
	kbPer := float64(rssN-rss0) / float64(*n-1)
	var lists []time.Duration
	for range 5 {
		t0 := time.Now()
		recs, err := webservice.List(ctx, ws)
		if err != nil {
			return err
		}
		if len(recs) != *n+1 {
			return fmt.Errorf("List gave %d services, want %d", len(recs), *n+1)
		}
		lists = append(lists, time.Since(t0))
	}
	slices.Sort(lists)

	// Router throughput: one route against n routes, interleaved rounds.
	oneAddr, oneReq, err := addrReq(ctx, oneSvc)
	if err != nil {
		return err
	}
	manyAddr, manyReq, err := addrReq(ctx, firstMany)
	if err != nil {
		return err
	}
	best := map[string]benchkit.Cell{}
	errs := map[string]int{}
	for r := range *rounds {
		for k := range 2 {
			name, addr, req := "one", oneAddr, oneReq
			if (k+r)%2 == 1 {
				name, addr, req = "many", manyAddr, manyReq
			}
			m := benchkit.Closed(addr, req, 32, 300*time.Millisecond, *cellDur)
			errs[name] += m.Errs
			if old, ok := best[name]; !ok || m.RPS > old.RPS {
				best[name] = m
			}
		}
	}
	// Route-table update while loaded: deploy a new service to each cluster
	// while the closed loop runs on its existing one.
	upd := map[string]time.Duration{}
	for _, c := range []struct{ cluster, addr string }{{"one", oneAddr}, {"many", manyAddr}} {
		req := oneReq
		if c.cluster == "many" {
			req = manyReq
		}
		done := make(chan benchkit.Cell)
		go func() { done <- benchkit.Closed(c.addr, req, 16, 0, 3*time.Second) }()
		time.Sleep(500 * time.Millisecond)
		var ds []time.Duration
		for i := range 5 {
			t0 := time.Now()
			svc, err := aml.Deploy(ctx, ws, fmt.Sprintf("new-%s-%d", c.cluster, i), nil, e.ic, e.dc, e.tgts[c.cluster], nil)
			if err != nil {
				return err
			}
			if err := firstOK(ctx, svc); err != nil {
				return err
			}
			ds = append(ds, time.Since(t0))
		}
		<-done
		slices.Sort(ds)
		upd[c.cluster] = ds[len(ds)/2]
	}

	load, _ = os.ReadFile("/proc/loadavg")
	fmt.Printf("\nload average after: %s\n", strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("deploys: %d in %.1f s (%.1f/s); first batch %.1f/s, last batch %.1f/s (last ÷ first %.2f)\n",
		*n-1, total.Seconds(), float64(*n-1)/total.Seconds(), rates[0], rates[len(rates)-1], rates[len(rates)-1]/rates[0])
	fmt.Printf("memory: RSS %d KiB with 2 services, %d KiB with %d: %.1f KiB per service\n", rss0, rssN, *n+1, kbPer)
	fmt.Printf("idle CPU of the process: %.1f%% of a core with 2 services, %.1f%% with %d\n", 100*idle1, 100*idleN, *n+1)
	fmt.Printf("webservice.List: %s with 2 services, %s with %d (median of 5)\n", ms(list2), ms(lists[2]), *n+1)
	fmt.Printf("router, closed loop 32 clients, best of %d: 1 route %.0f req/s (p99 %s, %d errors), %d routes %.0f req/s (p99 %s, %d errors)\n",
		*rounds, best["one"].RPS, ms(best["one"].P99), errs["one"], *n, best["many"].RPS, ms(best["many"].P99), errs["many"])
	fmt.Printf("deploy to first 200 while loaded (median of 5): 1 route %s, %d routes %s\n", ms(upd["one"]), *n, ms(upd["many"]))
	fmt.Printf("RESULT routes%d_rps_ratio=%.2f sim_kb_per_service=%.1f deploy_rate_per_s=%.1f deploy_rate_last_vs_first=%.2f list_ms=%.2f list_ms_2=%.2f route_update_ms=%.2f route_update_ms_1=%.2f idle_cpu_pct=%.1f idle_cpu_pct_1=%.1f\n",
		*n, best["many"].RPS/best["one"].RPS, kbPer, float64(*n-1)/total.Seconds(), rates[len(rates)-1]/rates[0],
		msf(lists[2]), msf(list2), msf(upd["many"]), msf(upd["one"]), 100*idleN, 100*idle1)
	return nil
}

// firstOK waits for svc's first 200 (polling every millisecond).
func firstOK(ctx context.Context, svc *webservice.Service) error {
	key, _, err := svc.Keys(ctx)
	if err != nil {
		return err
	}
	for {
		req, _ := http.NewRequestWithContext(ctx, "POST", svc.ScoringURI(), strings.NewReader(`{"data": [1]}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", msf(d)) }

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
