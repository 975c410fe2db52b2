package pending_test

import (
	"context"
	"fmt"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/driver/pending"
	"github.com/aksml/aksml/simulator"
)

// A provider's Provision returns the pending cluster at once; the create
// runs behind it.
func ExampleStart() {
	ctx := context.Background()
	sim := simulator.New(nil)
	defer sim.Close()
	shape := driver.ClusterShape{AgentCount: 1, VMSize: "Standard_D3_v2", VCPUs: 4, MemoryGB: 14, Purpose: "DevTest"}
	gate := make(chan struct{})
	c := pending.Start(ctx, "aks-dev", shape, func(ctx context.Context) (driver.Cluster, error) {
		<-gate // an ARM create and poll, minutes on Azure
		return sim.Provision(ctx, "aks-dev", shape)
	}, nil)
	st, _ := c.Status(ctx)
	fmt.Println(st.State, st.Shape.VMSize)
	fmt.Println(c.ApplyService(ctx, &driver.ServiceSpec{Name: "svc"}))
	close(gate)
	if err := c.Wait(ctx); err != nil {
		panic(err)
	}
	st, _ = c.Status(ctx)
	fmt.Println(st.State)
	_ = c.Delete(ctx)
	// Output:
	// Creating Standard_D3_v2
	// cluster aks-dev is still Creating; wait for provisioning to finish
	// Succeeded
}
