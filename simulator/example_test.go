package simulator_test

import (
	"context"
	"fmt"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/drivertest"
	"github.com/aksml/aksml/simulator"
)

// A cluster of three Standard_D3_v2 nodes runs a Go-handler service; a GPU
// service does not fit and says why.
func Example() {
	ctx := context.Background()
	sim := simulator.New(nil)
	defer sim.Close()
	cluster, err := sim.Provision(ctx, "aks-dev", drivertest.CPUShape)
	if err != nil {
		panic(err)
	}
	if err := cluster.ApplyService(ctx, drivertest.Spec("echo", drivertest.Echo("v1"), 2)); err != nil {
		panic(err)
	}
	st := await(ctx, cluster, "echo", driver.Healthy)
	code, body, _ := drivertest.Score(ctx, st.ScoringURI, "", `{"data": [1, 2]}`)
	fmt.Println(st.State, st.Versions[0].Ready, code, body)

	gpu := drivertest.Spec("gpu", drivertest.Echo("v1"), 1)
	gpu.Versions[0].Replica.GPUs = 1
	if err := cluster.ApplyService(ctx, gpu); err != nil {
		panic(err)
	}
	st = await(ctx, cluster, "gpu", driver.Unschedulable)
	fmt.Println(st.State+":", st.Message)
	// Output:
	// Healthy 2 200 {"echo":{"data":[1,2]},"tag":"v1"}
	// Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.
}

// await polls a service until it reaches state (or a minute passes).
func await(ctx context.Context, c driver.Cluster, name string, state driver.State) *driver.ServiceStatus {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		st, err := c.ServiceStatus(ctx, name)
		if err == nil && st.State == state || ctx.Err() != nil {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
}
