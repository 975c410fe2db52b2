package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/bench/internal/benchkit"
	"github.com/aksml/aksml/bench/internal/simbench"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/kube/local"
	"github.com/aksml/aksml/webservice"
)

// The v1-style entry script every local-cluster service runs: one Python
// worker process per replica, as v1's default WORKER_COUNT.
const echoScore = `import json

def init():
    pass

def run(raw_data):
    return json.loads(raw_data)
`

// runLocal deploys n score.py services of one replica each into one local
// cluster (kube/local: a real control plane, virtual nodes whose pods are
// processes, the in-cluster front-end as a pod) through aml.Deploy, and
// measures what bench/scale measures in the simulator: the deploy rate as
// the cluster fills, memory per service, idle CPU, the front-end's
// throughput with n routes against 1, and the time from Deploy to the
// first 200 while the front-end is loaded.
//
// Memory is the RSS of this process and all its children: the control
// plane (etcd, kube-apiserver, controller-manager, scheduler), the
// front-end pod's process, and per service its scoring-server process and
// Python worker.
func runLocal(n int, python string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	if _, err := os.Stat(python); err != nil {
		return fmt.Errorf("the local-cluster run needs Python at %s (-python): %w", python, err)
	}
	ws, _, cleanup, err := simbench.Open(ctx, "aksml-bench-scale-local-")
	if err != nil {
		return err
	}
	defer cleanup()
	src := filepath.Join(ws.Dir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "score.py"), []byte(echoScore), 0o644); err != nil {
		return err
	}

	t0 := time.Now()
	// Virtual nodes: their capacity is declared, not this machine's.
	tgt, err := compute.Create(ctx, ws, "local", compute.ProvisioningConfig{VMSize: "Standard_D14_v2", AgentCount: 3},
		&compute.CreateOptions{Provider: local.NewProvider(nil)})
	if err != nil {
		return err
	}
	defer tgt.Delete(context.Background())
	if err := tgt.Wait(ctx); err != nil {
		return err
	}
	started := time.Since(t0)
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("scale benchmark (local cluster: control plane, 3 virtual nodes, front-end pod; started in %.1f s): %d score.py services of 1 replica, 1 Python worker each; load average before: %s\n\n",
		started.Seconds(), n, strings.Join(strings.Fields(string(load))[:3], " "))

	dc := webservice.DeployConfig{NumReplicas: 1, CPUCores: 0.1, MemoryGB: 0.1,
		// The front-end, not its queue, is measured: 32 clients on one replica.
		ReplicaMaxConcurrentRequests: 32}
	py := &aml.InferenceConfig{EntryScript: "score.py", SourceDirectory: src,
		Environment: &aml.Environment{Name: "debian-python", Python: aml.PythonSection{UserManagedDependencies: true, InterpreterPath: python}}}
	goh := &aml.InferenceConfig{Handler: newEcho}
	// score.py services keep v1's defaults: 1 concurrent request per
	// replica, so 1 Python worker.
	pydc := webservice.DeployConfig{NumReplicas: 1, CPUCores: 0.1, MemoryGB: 0.1}
	deploy := func(name string, ic *aml.InferenceConfig) (*webservice.Service, error) {
		c := dc
		if ic.Handler == nil {
			c = pydc
		}
		svc, err := aml.Deploy(ctx, ws, name, nil, ic, c, tgt, nil)
		if err != nil {
			return nil, err
		}
		return svc, svc.WaitForDeployment(ctx)
	}
	// The front-end's throughput is measured on a Go-handler service (its
	// replica runs in this process and is not the bottleneck), with 1
	// route and again with n+1.
	probe, err := deploy("probe", goh)
	if err != nil {
		return err
	}
	probeAddr, probeReq, err := addrReq(ctx, probe)
	if err != nil {
		return err
	}
	first, err := deploy("py-000", py)
	if err != nil {
		return err
	}
	if err := firstOK(ctx, first); err != nil {
		return err
	}
	idle1 := idleCPU(3 * time.Second)
	rss0, procs0, _ := benchkit.TreeRSS(os.Getpid())
	pss0, _ := benchkit.TreePSS(os.Getpid())
	before := closedBest(probeAddr, probeReq)

	batch := max(n/10, 1)
	fmt.Printf("%12s %12s %14s %14s %10s\n", "services", "deploys/s", "p50 deploy", "p99 deploy", "processes")
	var rates []float64
	var all []time.Duration
	began := time.Now()
	for i := 1; i < n; i += batch {
		b0 := time.Now()
		var ds []time.Duration
		for j := i; j < min(i+batch, n); j++ {
			d0 := time.Now()
			if _, err := deploy(fmt.Sprintf("py-%03d", j), py); err != nil {
				return fmt.Errorf("service %d: %w", j, err)
			}
			ds = append(ds, time.Since(d0))
		}
		all = append(all, ds...)
		slices.Sort(ds)
		rate := float64(len(ds)) / time.Since(b0).Seconds()
		rates = append(rates, rate)
		_, procs, _ := benchkit.TreeRSS(os.Getpid())
		fmt.Printf("%12d %12.2f %14s %14s %10d\n", min(i+batch, n), rate, ms(benchkit.Percentile(ds, 50)), ms(benchkit.Percentile(ds, 99)), procs)
	}
	total := time.Since(began)
	slices.Sort(all)
	idleN := idleCPU(5 * time.Second)
	rssN, procsN, _ := benchkit.TreeRSS(os.Getpid())
	pssN, _ := benchkit.TreePSS(os.Getpid())
	after := closedBest(probeAddr, probeReq)

	// Every service answers through the front-end.
	recs, err := webservice.List(ctx, ws)
	if err != nil {
		return err
	}
	bad := 0
	for _, r := range recs {
		svc, err := webservice.Get(ctx, tgt, r.Name)
		if err == nil {
			err = firstOKWithin(ctx, svc, 10*time.Second)
		}
		if err != nil {
			bad++
			fmt.Printf("service %s does not answer: %v\n", r.Name, err)
		}
	}
	// Deploy to first 200 while the front-end is loaded.
	done := make(chan benchkit.Cell)
	go func() { done <- benchkit.Closed(probeAddr, probeReq, 16, 0, 8*time.Second) }()
	time.Sleep(500 * time.Millisecond)
	var upd []time.Duration
	for i := range 3 {
		u0 := time.Now()
		svc, err := aml.Deploy(ctx, ws, fmt.Sprintf("py-new-%d", i), nil, py, pydc, tgt, nil)
		if err != nil {
			return err
		}
		if err := firstOK(ctx, svc); err != nil {
			return err
		}
		upd = append(upd, time.Since(u0))
	}
	loaded := <-done
	slices.Sort(upd)

	kbPer := float64(rssN-rss0) / float64(n-1)
	pssPer := float64(pssN-pss0) / float64(n-1)
	load, _ = os.ReadFile("/proc/loadavg")
	fmt.Printf("\nload average after: %s\n", strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("deploys (aml.Deploy to Healthy): %d in %.1f s (%.2f/s), p50 %s, p99 %s; first tenth %.2f/s, last tenth %.2f/s (last ÷ first %.2f)\n",
		n-1, total.Seconds(), float64(n-1)/total.Seconds(), ms(benchkit.Percentile(all, 50)), ms(benchkit.Percentile(all, 99)),
		rates[0], rates[len(rates)-1], rates[len(rates)-1]/rates[0])
	fmt.Printf("memory: RSS of the process tree %d MiB in %d processes with 2 services, %d MiB in %d with %d: %.1f MiB per service\n",
		rss0/1024, procs0, rssN/1024, procsN, n+1, kbPer/1024)
	fmt.Printf("        PSS (shared pages divided among their processes) %d MiB with 2 services, %d MiB with %d: %.1f MiB per service\n",
		pss0/1024, pssN/1024, n+1, pssPer/1024)
	fmt.Printf("idle CPU of the process tree: %.1f%% of a core with 2 services, %.1f%% with %d\n", 100*idle1, 100*idleN, n+1)
	fmt.Printf("front-end, closed loop 32 clients on a Go-handler service, best of 3: 2 routes %.0f req/s (p99 %s, %d errors), %d routes %.0f req/s (p99 %s, %d errors)\n",
		before.RPS, ms(before.P99), before.Errs, n+1, after.RPS, ms(after.P99), after.Errs)
	fmt.Printf("every service answered through the front-end: %d of %d (%d did not)\n", len(recs)-bad, len(recs), bad)
	fmt.Printf("deploy to first 200 while the front-end serves %.0f req/s (median of 3): %s\n", loaded.RPS, ms(upd[1]))
	fmt.Printf("RESULT local_services=%d local_routes_rps_ratio=%.2f local_mb_per_service=%.1f local_pss_mb_per_service=%.1f local_deploy_rate_per_s=%.2f local_deploy_rate_last_vs_first=%.2f local_deploy_p50_ms=%.0f local_route_update_ms=%.0f local_idle_cpu_pct=%.1f local_idle_cpu_pct_1=%.1f local_not_answering=%d\n",
		n, after.RPS/before.RPS, kbPer/1024, pssPer/1024, float64(n-1)/total.Seconds(), rates[len(rates)-1]/rates[0],
		msf(benchkit.Percentile(all, 50)), msf(upd[1]), 100*idleN, 100*idle1, bad)
	if bad > 0 {
		return fmt.Errorf("%d services did not answer", bad)
	}
	return nil
}

// closedBest is the best of three closed-loop cells of 32 clients.
func closedBest(addr string, req []byte) benchkit.Cell {
	var best benchkit.Cell
	for range 3 {
		m := benchkit.Closed(addr, req, 32, 300*time.Millisecond, *cellDur)
		if m.RPS > best.RPS {
			best = m
		}
	}
	return best
}

// firstOKWithin is firstOK bounded by d.
func firstOKWithin(ctx context.Context, svc *webservice.Service, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return firstOK(ctx, svc)
}
