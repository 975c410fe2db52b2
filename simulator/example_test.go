package simulator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)

// The simulator is the provider of a compute target; aml.Deploy runs a Go
// handler on it with two replicas behind the simulated front-end, and a
// GPU service that does not fit says why.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "simulator-example-")
	defer os.RemoveAll(dir)
	ws, err := aml.Open(ctx, dir, nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()

	// A deployment nothing can schedule fails after a second instead of
	// Azure's five minutes.
	sim := simulator.New(&simulator.Options{UnschedulableTimeout: time.Second})
	defer sim.Close()
	target, err := compute.Create(ctx, ws, "aks-dev", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest},
		&compute.CreateOptions{Provider: sim})
	if err != nil {
		panic(err)
	}
	if err := target.Wait(ctx); err != nil {
		panic(err)
	}

	echo := &aml.InferenceConfig{Handler: func() scoring.Handler {
		return scoring.HandlerFunc(func(_ context.Context, in []byte) ([]byte, error) {
			return json.Marshal(map[string]json.RawMessage{"echo": in})
		})
	}}
	svc, err := aml.Deploy(ctx, ws, "echo", nil, echo, webservice.DeployConfig{NumReplicas: 2}, target, nil)
	if err != nil {
		panic(err)
	}
	if err := svc.WaitForDeployment(ctx); err != nil {
		panic(err)
	}
	out, _ := svc.Run(ctx, `{"data": [1, 2]}`)
	st, _ := svc.Status(ctx)
	fmt.Println(st.State, st.Versions[0].Ready, string(out))

	gpu, err := aml.Deploy(ctx, ws, "gpu", nil, echo, webservice.DeployConfig{GPUCores: 1}, target, nil)
	if err != nil {
		panic(err)
	}
	err = gpu.WaitForDeployment(ctx)
	fmt.Println(err)
	// Output:
	// Healthy 2 {"echo":{"data":[1,2]}}
	// Service deployment polling reached non-successful terminal state, current service state: Failed
	// Error:
	// Couldn't Schedule because the kubernetes cluster didn't have available resources after trying for 00:00:01: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu.
}
