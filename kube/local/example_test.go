package local_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/drivertest"
	"github.com/aksml/aksml/kube/local"
)

// A local cluster runs the manifests AKS would get: here a Go model's
// Deployment, its pod on a virtual node, and the in-cluster front-end that
// routes to it.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	shape := driver.ClusterShape{AgentCount: 1, VMSize: "Standard_D3_v2", VCPUs: 4, MemoryGB: 14}
	c, err := local.Start(ctx, "aks-local", shape, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	spec := drivertest.Spec("hello", drivertest.Echo("v1"), 1)
	if err := c.ApplyService(ctx, spec); err != nil {
		fmt.Println(err)
		return
	}
	var st *driver.ServiceStatus
	for st == nil || st.State != driver.Healthy {
		time.Sleep(50 * time.Millisecond)
		if st, err = c.ServiceStatus(ctx, "hello"); err != nil {
			fmt.Println(err)
			return
		}
	}
	resp, err := http.Post(st.ScoringURI, "application/json", strings.NewReader(`{"x": 1}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(st.State, strings.HasPrefix(st.ScoringURI, c.ScoringBaseURL()))
	fmt.Println(resp.StatusCode, string(body))
	// Output:
	// Healthy true
	// 200 {"echo":{"x":1},"tag":"v1"}
}
