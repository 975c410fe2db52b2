// Command rollout is a canary rollout on an AksEndpoint (controlled
// rollout): on the in-process simulator it creates an endpoint whose
// default version serves model churn:1, adds a canary version serving
// churn:2, and moves the canary's traffic 10 → 50 → 100 %. At each step it
// sends a bounded number of scoring requests from a few concurrent callers
// and prints, per version, the requests the router counted (its Go API),
// their share, errors, and the latency the callers measured. It ends by
// making the canary the default and deleting the old version.
//
//	go run ./examples/rollout [-requests 200] [-callers 4]
//
// The models are Go handlers (a logistic regression read from the
// registered weights file), so no Python is needed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/endpoint"
	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)

func main() {
	requests := flag.Int("requests", 200, "scoring requests sent at each step")
	callers := flag.Int("callers", 4, "concurrent callers")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *requests, *callers); err != nil {
		fmt.Fprintln(os.Stderr, "rollout:", err)
		os.Exit(1)
	}
}

// weights is the registered model file: a logistic regression.
type weights struct {
	Coef      []float64 `json:"coef"`
	Intercept float64   `json:"intercept"`
}

// churnModel scores {"data": [[tenure, monthly_charges, support_calls], …]}
// with the weights file of the model it was deployed with.
type churnModel struct {
	version string
	w       weights
}

func (m *churnModel) Init(ctx context.Context, modelDir string) error {
	b, err := os.ReadFile(filepath.Join(modelDir, "weights.json"))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, &m.w)
}

func (m *churnModel) Run(ctx context.Context, input []byte) ([]byte, error) {
	var in struct {
		Data [][]float64 `json:"data"`
	}
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, err
	}
	probs := make([]float64, len(in.Data))
	for i, row := range in.Data {
		if len(row) != len(m.w.Coef) {
			return nil, fmt.Errorf("row %d has %d features, want %d", i, len(row), len(m.w.Coef))
		}
		z := m.w.Intercept
		for j, x := range row {
			z += m.w.Coef[j] * x
		}
		probs[i] = math.Round(1e4/(1+math.Exp(-z))) / 1e4
	}
	return json.Marshal(map[string]any{"model": m.version, "churn_probability": probs})
}

// register writes a weights file and registers it as a model version.
func register(ctx context.Context, ws *aml.Workspace, dir string, w weights) (*aml.Model, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(w)
	p := filepath.Join(dir, "weights.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return nil, err
	}
	return ws.RegisterModel(ctx, "churn", p, &aml.RegisterModelOptions{Framework: aml.FrameworkCustom, Description: "logistic regression of churn"})
}

func run(ctx context.Context, out io.Writer, requests, callers int) error {
	dir, err := os.MkdirTemp("", "aksml-rollout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ws, err := aml.Open(ctx, filepath.Join(dir, "workspace"), nil)
	if err != nil {
		return err
	}
	defer ws.Close()

	m1, err := register(ctx, ws, filepath.Join(dir, "v1"), weights{Coef: []float64{-0.05, 0.02, 0.3}, Intercept: -1})
	if err != nil {
		return err
	}
	m2, err := register(ctx, ws, filepath.Join(dir, "v2"), weights{Coef: []float64{-0.04, 0.025, 0.45}, Intercept: -1.2})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "registered models %s and %s\n", m1.ID(), m2.ID())

	sim := simulator.New(nil)
	defer sim.Close()
	target, err := compute.Create(ctx, ws, "aks-rollout", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest}, &compute.CreateOptions{Provider: sim})
	if err != nil {
		return err
	}
	if err := target.Wait(ctx); err != nil {
		return err
	}
	cluster, _ := sim.SimCluster("aks-rollout")

	runtime := func(m *aml.Model) (webservice.Runtime, error) {
		return aml.Runtime(ctx, ws, "churn", []*aml.Model{m}, &aml.InferenceConfig{
			Handler: func() scoring.Handler { return &churnModel{version: m.ID()} },
		})
	}
	stableRT, err := runtime(m1)
	if err != nil {
		return err
	}
	canaryRT, err := runtime(m2)
	if err != nil {
		return err
	}

	// AksEndpoint.deploy_configuration + Model.deploy: the first version
	// is the default and takes whatever no other version claims.
	// A long max_request_wait_time: the callers below may briefly queue
	// for a replica's single slot on a busy machine.
	stable := endpoint.VersionConfig{VersionName: "stable"}
	stable.NumReplicas = 2
	stable.MaxRequestWaitTimeMs = 5000
	stable.Description = "churn endpoint"
	ep, err := endpoint.Create(ctx, target, "churn", stable, stableRT, nil)
	if err != nil {
		return err
	}
	if err := ep.Wait(ctx); err != nil {
		return err
	}
	canary := endpoint.VersionConfig{VersionName: "canary", TrafficPercentile: 10}
	canary.NumReplicas = 2
	canary.MaxRequestWaitTimeMs = 5000
	if err := ep.CreateVersion(ctx, canary, canaryRT); err != nil {
		return err
	}
	if err := ep.Wait(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "endpoint churn: versions %v, scoring URI %s\n", ep.Versions(), ep.ScoringURI())

	router := cluster.Router()
	prev, err := router.Stats("churn")
	if err != nil {
		return err
	}
	for i, pct := range []float64{10, 50, 100} {
		if pct != 10 {
			if err := ep.UpdateVersion(ctx, "canary", endpoint.VersionUpdate{TrafficPercentile: &pct}); err != nil {
				return err
			}
		}
		lat, failed := send(ctx, ep, requests, callers)
		now, err := router.Stats("churn")
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "step %d: canary at %v%%: %d requests, %d failed\n", i+1, pct, requests, failed)
		table(out, prev, now, lat)
		prev = now
		if failed > 0 {
			return fmt.Errorf("%d requests failed at step %d", failed, i+1)
		}
	}

	// Promote the canary and retire the old version.
	if err := ep.UpdateVersion(ctx, "canary", endpoint.VersionUpdate{IsDefault: new(true), TrafficPercentile: new(0.0)}); err != nil {
		return err
	}
	if err := ep.DeleteVersion(ctx, "stable"); err != nil {
		return err
	}
	fmt.Fprintf(out, "canary is the default; stable deleted; versions %v\n", ep.Versions())
	res, err := ep.Run(ctx, map[string]any{"data": [][]float64{{24, 70, 1}, {2, 95, 6}}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "score: %s\n", res)
	return ep.Delete(ctx)
}

// send scores n requests from callers concurrent callers and returns the
// latencies the callers measured, by the model version that answered, and
// the number of failed requests.
func send(ctx context.Context, ep *endpoint.Endpoint, n, callers int) (map[string][]time.Duration, int) {
	var mu sync.Mutex
	lat := map[string][]time.Duration{}
	failed := 0
	next := make(chan int)
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				res, err := ep.Run(ctx, map[string]any{"data": [][]float64{{float64(i % 72), 20 + float64(i%100), float64(i % 7)}}})
				d := time.Since(t0)
				var got struct {
					Model string `json:"model"`
				}
				mu.Lock()
				if err != nil || json.Unmarshal(res, &got) != nil {
					failed++
				} else {
					lat[got.Model] = append(lat[got.Model], d)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return lat, failed
}

// table prints, per version, what the router counted between two
// snapshots and the latency the callers saw from that version's model.
func table(out io.Writer, prev, now frontend.RouteStats, lat map[string][]time.Duration) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  version\ttraffic\trequests\tshare\terrors\tp50\tp99")
	total := uint64(0)
	for i, v := range now.Versions {
		total += v.Requests - prev.Versions[i].Requests
	}
	models := map[string]string{"stable": "churn:1", "canary": "churn:2"}
	for i, v := range now.Versions {
		n := v.Requests - prev.Versions[i].Requests
		share := 0.0
		if total > 0 {
			share = 100 * float64(n) / float64(total)
		}
		ds := lat[models[v.Name]]
		fmt.Fprintf(tw, "  %s\t%v%%\t%d\t%.1f%%\t%d\t%s\t%s\n", v.Name, v.EffectivePercent, n, share,
			v.Errors-prev.Versions[i].Errors, pct(ds, 50), pct(ds, 99))
	}
	tw.Flush()
}

// pct is the p-th percentile of ds, in milliseconds, or "-".
func pct(ds []time.Duration, p float64) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return fmt.Sprintf("%.2fms", float64(s[max(i, 0)].Microseconds())/1000)
}
