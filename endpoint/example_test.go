package endpoint_test

import (
	"context"
	"fmt"
	"os"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/endpoint"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)

// exampleTarget opens a workspace in dir and creates a DevTest target on
// an in-process simulator; close releases both.
func exampleTarget(ctx context.Context, dir string) (ws *aml.Workspace, target *compute.Target, close func(), err error) {
	ws, err = aml.Open(ctx, dir, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	sim := simulator.New(nil)
	close = func() { sim.Close(); ws.Close() }
	target, err = compute.Create(ctx, ws, "aks-example", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest}, &compute.CreateOptions{Provider: sim})
	if err == nil {
		err = target.Wait(ctx)
	}
	if err != nil {
		close()
		return nil, nil, nil, err
	}
	return ws, target, close, nil
}

// A controlled rollout: the first version is the default, a second one
// takes 20 % of the traffic, split exactly; the default cannot be deleted
// until another version is the default.
func ExampleCreate() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "aksml-endpoint-example-")
	defer os.RemoveAll(dir)
	ws, target, closeAll, err := exampleTarget(ctx, dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closeAll()

	// A model answering with its own name (a Go handler: no Python).
	model := func(name string) webservice.Runtime {
		rt, err := aml.Runtime(ctx, ws, "scorer", nil, &aml.InferenceConfig{Handler: func() scoring.Handler {
			return scoring.HandlerFunc(func(context.Context, []byte) ([]byte, error) { return []byte(`"` + name + `"`), nil })
		}})
		if err != nil {
			panic(err)
		}
		return rt
	}
	blue := endpoint.VersionConfig{VersionName: "blue"}
	blue.NumReplicas = 1
	ep, err := endpoint.Create(ctx, target, "scorer", blue, model("blue"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	green := endpoint.VersionConfig{VersionName: "green", TrafficPercentile: 20, IsControlVersion: true}
	green.NumReplicas = 1
	if err := ep.CreateVersion(ctx, green, model("green")); err != nil {
		fmt.Println(err)
		return
	}
	if err := ep.Wait(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for _, v := range ep.Record().Versions {
		fmt.Printf("%s: %v%%, default %v, %s\n", v.Config.VersionName, v.Config.TrafficPercentile, v.Config.IsDefault, v.Type)
	}

	counts := map[string]int{}
	for range 10 {
		out, err := ep.Run(ctx, `{"data": [[1, 2]]}`)
		if err != nil {
			fmt.Println(err)
			return
		}
		counts[string(out)]++
	}
	fmt.Println("10 requests:", counts)

	fmt.Println(ep.DeleteVersion(ctx, "blue"))
	yes := true
	if err := ep.UpdateVersion(ctx, "green", endpoint.VersionUpdate{IsDefault: &yes}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ep.DeleteVersion(ctx, "blue"), ep.Versions())
	fmt.Println(ep.Delete(ctx))
	// Output:
	// blue: 0%, default true, Treatment
	// green: 20%, default false, Control
	// 10 requests: map["blue":8 "green":2]
	// endpoint "scorer": version "blue" is the default and cannot be deleted; make another version the default first
	// <nil> [green]
	// <nil>
}
