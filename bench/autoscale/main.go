// Command autoscale measures scaling under a load step on the simulator,
// in real time, beside what the autoscaling formula (package autoscale)
// says should happen.
//
//	go run ./bench/autoscale          # full run (about 30 seconds)
//	go run ./bench/autoscale -quick   # short run (about 15 seconds)
//
// One Go-handler service whose handler takes 10 ms, at most 1 concurrent
// request per replica, autoscaling on (min 1, max 20, refresh 1 s, target
// 70%, max_request_wait_time 500 ms), gets 10 requests/s, then from one
// instant 400 requests/s (open loop, latency from each request's scheduled
// send time). The simulator's replica counts are sampled every 10 ms.
//
// It reports the time from the step to the first scale-up decision (the
// version's desired count rising), to ready replicas covering the formula's
// count for the new rate, and to p99 (over 250 ms windows of send time)
// returning for good to within 2× its pre-step value; and the 503s.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/autoscale"
	"github.com/aksml/aksml/bench/internal/benchkit"
	"github.com/aksml/aksml/bench/internal/simbench"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/webservice"
)

const (
	work        = 10 * time.Millisecond
	lowRate     = 10
	highRate    = 400
	refresh     = time.Second
	target      = 70
	maxWait     = 500 * time.Millisecond
	window      = 250 * time.Millisecond
	maxReplicas = 20
)

type slow struct{}

func (slow) Init(context.Context, string) error { return nil }
func (slow) Run(ctx context.Context, in []byte) ([]byte, error) {
	select {
	case <-time.After(work):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return in, nil
}

func main() {
	quick := flag.Bool("quick", false, "short run")
	pre := flag.Duration("pre", 5*time.Second, "time at the low rate before the step")
	post := flag.Duration("post", 15*time.Second, "time at the high rate after the step")
	flag.Parse()
	if *quick {
		*pre, *post = 3*time.Second, 6*time.Second
	}
	if err := run(*pre, *post); err != nil {
		fmt.Fprintln(os.Stderr, "bench/autoscale:", err)
		os.Exit(1)
	}
}

// sample is the service's replica counts at one instant.
type sample struct {
	t              time.Duration // from the load's start
	desired, ready int
}

func run(pre, post time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ws, sim, cleanup, err := simbench.Open(ctx, "aksml-bench-autoscale-")
	if err != nil {
		return err
	}
	defer cleanup()
	tgt, err := compute.Create(ctx, ws, "bench", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest, VMSize: "Standard_D4_v2"}, &compute.CreateOptions{Provider: sim})
	if err != nil {
		return err
	}
	if err := tgt.Wait(ctx); err != nil {
		return err
	}
	on := true
	dc := webservice.DeployConfig{AutoscaleEnabled: &on, AutoscaleMinReplicas: 1, AutoscaleMaxReplicas: maxReplicas,
		AutoscaleRefreshSeconds: int(refresh / time.Second), AutoscaleTargetUtilization: target,
		ReplicaMaxConcurrentRequests: 1, MaxRequestWaitTimeMs: int(maxWait / time.Millisecond), CPUCores: 0.1, MemoryGB: 0.1}
	began := time.Now()
	svc, err := aml.Deploy(ctx, ws, "step", nil, &aml.InferenceConfig{Handler: func() scoring.Handler { return slow{} }}, dc, tgt, nil)
	if err != nil {
		return err
	}
	if err := svc.WaitForDeployment(ctx); err != nil {
		return err
	}
	startTime := time.Since(began)
	key, _, err := svc.Keys(ctx)
	if err != nil {
		return err
	}
	u, err := url.Parse(svc.ScoringURI())
	if err != nil {
		return err
	}
	cl, ok := sim.SimCluster("bench")
	if !ok {
		return fmt.Errorf("no simulated cluster")
	}
	req := benchkit.Request(u.Host, u.Path, []byte(`{"data": [1]}`), "Authorization: Bearer "+key)
	want := autoscale.ReplicasForRate(highRate, work, target, 1)

	// The schedule: lowRate until pre, then highRate until pre+post.
	at := benchkit.Even(lowRate, pre)
	for _, t := range benchkit.Even(highRate, post) {
		at = append(at, pre+t)
	}
	var (
		mu      sync.Mutex
		samples []sample
		stop    = make(chan struct{})
		done    = make(chan struct{})
	)
	loadStart := time.Now().Add(20 * time.Millisecond) // benchkit.Open starts 20 ms after its call
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			st, err := cl.ServiceStatus(ctx, "step")
			if err != nil || len(st.Versions) == 0 {
				continue
			}
			mu.Lock()
			samples = append(samples, sample{time.Since(loadStart), st.Versions[0].Desired, st.Versions[0].Ready})
			mu.Unlock()
		}
	}()
	res := benchkit.Open(u.Host, req, at, 600)
	close(stop)
	<-done

	// Pre-step p99: the last 2 s before the step.
	var preLat []time.Duration
	for _, s := range res {
		if s.At < pre && s.At >= pre-2*time.Second && s.Status == 200 {
			preLat = append(preLat, s.Lat)
		}
	}
	slices.Sort(preLat)
	preP99 := benchkit.Percentile(preLat, 99)
	decision, capacity := time.Duration(-1), time.Duration(-1)
	maxDesired := 0
	for _, s := range samples {
		if s.t < pre {
			continue
		}
		maxDesired = max(maxDesired, s.desired)
		if decision < 0 && s.desired > 1 {
			decision = s.t - pre
		}
		if capacity < 0 && s.ready >= want {
			capacity = s.t - pre
		}
	}
	// p99 per window of send time after the step; recovery is the start of
	// the first window from which every window is within 2× preP99.
	type win struct {
		p99        time.Duration
		n, n503, e int
	}
	nw := int((post + window - 1) / window)
	wins := make([]win, nw)
	lats := make([][]time.Duration, nw)
	step503, total503, other := 0, 0, 0
	for _, s := range res {
		if s.At < pre {
			continue
		}
		i := int((s.At - pre) / window)
		switch s.Status {
		case 200:
			lats[i] = append(lats[i], s.Lat)
		case 503:
			total503++
			wins[i].n503++
			if s.At-pre < maxWait {
				step503++
			}
		default:
			other++
			wins[i].e++
		}
	}
	for i := range wins {
		slices.Sort(lats[i])
		wins[i].n = len(lats[i])
		wins[i].p99 = benchkit.Percentile(lats[i], 99)
	}
	recovery := time.Duration(-1)
	for i := nw - 1; i >= 0; i-- {
		if wins[i].n503 > 0 || wins[i].e > 0 || wins[i].p99 > 2*preP99 {
			break
		}
		recovery = time.Duration(i) * window
	}

	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("autoscale benchmark (simulator, real time): handler %v, 1 concurrent per replica, min 1 max %d, refresh %v, target %d%%, max_request_wait_time %v\n",
		work, maxReplicas, refresh, target, maxWait)
	fmt.Printf("load %d/s for %v, then %d/s for %v; load average before: %s\n", lowRate, pre, highRate, post, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("formula: ReplicasForRate(%d/s, %v, %d%%, 1) = %d replicas; first deployment ready in %v (replica start time, bounded by it)\n\n",
		highRate, work, target, want, startTime.Round(time.Millisecond))
	fmt.Printf("%10s %8s %8s %10s %6s %6s\n", "window", "desired", "ready", "p99", "503s", "other")
	si := 0
	for i := range wins {
		t := pre + time.Duration(i)*window
		d, r := 0, 0
		for si < len(samples) && samples[si].t <= t+window {
			d, r = samples[si].desired, samples[si].ready
			si++
		}
		fmt.Printf("%9.2fs %8d %8d %10s %6d %6d\n", (t - pre).Seconds(), d, r, fmtMs(wins[i].p99), wins[i].n503, wins[i].e)
	}
	secs := func(d time.Duration) string {
		if d < 0 {
			return "never"
		}
		return fmt.Sprintf("%.3f", d.Seconds())
	}
	fmt.Printf("\npre-step p99 %s; scale-up decided after %s s (goal ≤ %v); %d ready replicas after %s s (goal ≤ start time + %v); p99 within 2× after %s s; highest desired %d\n",
		fmtMs(preP99), secs(decision), refresh, want, secs(capacity), refresh, secs(recovery), maxDesired)
	fmt.Printf("503s: %d within max_request_wait_time of the step (goal 0), %d in all; other errors %d\n", step503, total503, other)
	fmt.Printf("RESULT scaleup_decision_s=%s capacity_s=%s p99_recovery_s=%s step_503s=%d total_503s=%d formula_replicas=%d max_desired=%d pre_p99_ms=%.2f replica_start_ms=%.1f\n",
		secs(decision), secs(capacity), secs(recovery), step503, total503, want, maxDesired, float64(preP99)/1e6, float64(startTime)/1e6)
	return nil
}

func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
