package notebook_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/endpoint"
	"github.com/aksml/aksml/notebook"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)

// An endpoint on the simulator with a canary at 10 %: its traffic split
// (drawn as an SVG bar chart in a notebook), then a load run's count of
// answers per version.
func ExampleTrafficSplit() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "aksml-example-")
	defer os.RemoveAll(dir)
	ws, err := aml.Open(ctx, filepath.Join(dir, "ws"), nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	sim := simulator.New(nil)
	defer sim.Close()
	target, err := compute.Create(ctx, ws, "aks-example", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest},
		&compute.CreateOptions{Provider: sim})
	if err != nil {
		panic(err)
	}
	if err := target.Wait(ctx); err != nil {
		panic(err)
	}
	echo := func(name string) webservice.Runtime {
		rt, err := aml.Runtime(ctx, ws, "echo", nil, &aml.InferenceConfig{Handler: func() scoring.Handler {
			return scoring.HandlerFunc(func(ctx context.Context, in []byte) ([]byte, error) { return []byte(`"` + name + `"`), nil })
		}})
		if err != nil {
			panic(err)
		}
		return rt
	}
	stable := endpoint.VersionConfig{VersionName: "stable"}
	stable.NumReplicas = 1
	ep, err := endpoint.Create(ctx, target, "shop", stable, echo("stable"), nil)
	if err != nil {
		panic(err)
	}
	canary := endpoint.VersionConfig{VersionName: "canary", TrafficPercentile: 10}
	canary.NumReplicas = 1
	if err := ep.CreateVersion(ctx, canary, echo("canary")); err != nil {
		panic(err)
	}
	if err := ep.Wait(ctx); err != nil {
		panic(err)
	}
	fmt.Println(notebook.TrafficSplit(ep).Text)

	if err := ep.UpdateVersion(ctx, "canary", endpoint.VersionUpdate{TrafficPercentile: webservice.Float(100)}); err != nil {
		panic(err)
	}
	res, err := notebook.LoadEndpoint(ctx, ep, `{"data": [[1]]}`, &notebook.LoadOptions{Requests: 20, Concurrency: 2})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.VersionCounts().Text)
	// Output:
	// traffic split of shop: stable 90% canary 10%
	// requests by version: canary=20
}
