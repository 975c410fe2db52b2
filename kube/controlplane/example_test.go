package controlplane_test

import (
	"fmt"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/kube/controlplane"
)

func ExampleNodesForShape() {
	gpu := driver.ClusterShape{AgentCount: 2, VMSize: "Standard_NC6s_v3", VCPUs: 6, MemoryGB: 112, GPUs: 1}
	for _, n := range controlplane.NodesForShape(gpu) {
		fmt.Println(n.Name, n.MilliCPU, n.GPUs, n.Labels[controlplane.LabelAccelerator], n.Taints[0].ToString())
	}
	// Output:
	// aks-nodepool1-0 6000 1 nvidia nvidia.com/gpu=present:NoSchedule
	// aks-nodepool1-1 6000 1 nvidia nvidia.com/gpu=present:NoSchedule
}
